import { createHash } from 'node:crypto';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import pMap from 'p-map';

/**
 * The deletion registry: one small object per deleted user under `control/deletions/`, in the
 * archive bucket. Every export reads it and leaves those users out. The key is a hash of the
 * userId, so listing the registry shows no ids, and recording the same user twice is one object.
 */

export const DELETIONS_PREFIX = 'control/deletions/';

export interface DeletionRecord {
  userId: string;
  /** Epoch milliseconds when the deletion was requested. */
  requestedAt: number;
}

export function deletionKey(userId: string): string {
  return `${DELETIONS_PREFIX}${createHash('sha256').update(userId, 'utf8').digest('hex')}.json`;
}

export async function recordDeletion(s3: S3Client, bucket: string, userId: string, requestedAt: number): Promise<void> {
  const record: DeletionRecord = { userId, requestedAt };
  await s3.send(
    new PutObjectCommand({ Bucket: bucket, Key: deletionKey(userId), Body: JSON.stringify(record), ContentType: 'application/json' }),
  );
}

function parseRecord(key: string, text: string): DeletionRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const { userId, requestedAt } = (value ?? {}) as Partial<DeletionRecord>;
  // Failing closed: an unreadable entry must stop an export rather than let a deleted user through.
  if (typeof userId !== 'string' || userId === '' || typeof requestedAt !== 'number') {
    throw new Error(`deletion registry entry ${key} is not {"userId": string, "requestedAt": number}`);
  }
  if (deletionKey(userId) !== key) throw new Error(`deletion registry entry ${key} holds a userId whose hash is another key`);
  return { userId, requestedAt };
}

/** Every userId in the registry. Throws (naming the key) on an entry it cannot read. */
export async function loadDeletedUsers(s3: S3Client, bucket: string): Promise<Set<string>> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: DELETIONS_PREFIX, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key?.endsWith('.json')) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const records = await pMap(
    keys,
    async (key) => {
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return parseRecord(key, (await got.Body?.transformToString('utf8')) ?? '');
    },
    { concurrency: 16 },
  );
  return new Set(records.map((r) => r.userId));
}
