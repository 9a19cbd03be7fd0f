import { CreateBucketCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { s3Client } from '../shared/aws/clients.js';
import { useEmulators, uniqueName } from './support/env.js';

useEmulators();

describe('the local S3 emulator', () => {
  // Regression: s3rver's continuation tokens used single DES, refused by Node 20's OpenSSL, so a
  // listing past 1,000 keys (a busy day of archive, the chaos run) answered 500 InternalError.
  it('pages a ListObjectsV2 listing with continuation tokens', async () => {
    const s3 = s3Client();
    const bucket = uniqueName('listing');
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const keys = Array.from({ length: 7 }, (_, i) => `archive/interactions/dt=2026-01-01/hour=00/shard-${String(i).padStart(5, '0')}.ndjson.gz`);
    await Promise.all(keys.map((Key) => s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'x' }))));

    const listed: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      // Pages of 3: the same truncated-listing path as 1,000 keys per page, with 7 objects instead of 1,001.
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'archive/', MaxKeys: 3, ContinuationToken: token }));
      listed.push(...(page.Contents ?? []).map((o) => o.Key ?? ''));
      token = page.NextContinuationToken;
      pages++;
    } while (token);
    expect(pages).toBe(3);
    expect(listed).toEqual(keys);
  });
});
