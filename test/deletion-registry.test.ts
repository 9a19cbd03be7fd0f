import { CreateBucketCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { s3Client } from '../shared/aws/clients.js';
import { deletionKey, loadDeletedUsers, recordDeletion } from '../shared/deletion.js';
import { useEmulators, uniqueName } from './support/env.js';
import { readText } from './support/export.js';

useEmulators();

const s3 = s3Client();
let bucket: string;

beforeAll(async () => {
  bucket = uniqueName('deletions');
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
});

describe('the deletion registry', () => {
  it('records each user once under a hash of the id, and lists every recorded user', async () => {
    await recordDeletion(s3, bucket, 'user@example.com', 1_795_000_000_000);
    await recordDeletion(s3, bucket, 'user@example.com', 1_795_000_000_500);
    await recordDeletion(s3, bucket, 'u-2', 1_795_000_001_000);

    const keys = (await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'control/deletions/' }))).Contents?.map((o) => o.Key);
    expect(keys?.sort()).toEqual([deletionKey('u-2'), deletionKey('user@example.com')].sort());
    expect(deletionKey('user@example.com')).toMatch(/^control\/deletions\/[0-9a-f]{64}\.json$/);
    expect(JSON.parse(await readText(bucket, deletionKey('user@example.com')))).toEqual({ userId: 'user@example.com', requestedAt: 1_795_000_000_500 });
    expect(await loadDeletedUsers(s3, bucket)).toEqual(new Set(['user@example.com', 'u-2']));
  });

  it('refuses to load a registry entry it cannot read, rather than let a deleted user through', async () => {
    const other = uniqueName('deletions-bad');
    await s3.send(new CreateBucketCommand({ Bucket: other }));
    const key = deletionKey('u-broken');
    await s3.send(new PutObjectCommand({ Bucket: other, Key: key, Body: '{"userId":' }));
    await expect(loadDeletedUsers(s3, other)).rejects.toThrow(key);
  });
});
