import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { listObjects } from '../aws/s3-list.js';

/**
 * Where deletion meets Personalize, in the archive bucket under `control/personalize-deletions/`.
 *
 * The deletion registry holds hashes only, but CreateDataDeletionJob needs the raw USER_ID. So the
 * processor (and `npm run delete-user`) also writes the raw id to a short-lived outbox entry,
 * `pending/<registry hash>.json` `{"userId", "requestedAt", "passes"?}`, which the deletion step
 * removes once the configured number of Personalize deletion jobs that held it have COMPLETED in
 * every configured dataset group. Raw ids live nowhere else: the input CSV of a job is deleted when
 * the job ends, and job records and audit records carry hashes only.
 */

export const PERSONALIZE_DELETIONS_PREFIX = 'control/personalize-deletions/';
export const PENDING_PREFIX = `${PERSONALIZE_DELETIONS_PREFIX}pending/`;
/** One record per job in flight: name, ARN, group, input key, hashes (no raw id). */
export const JOBS_PREFIX = `${PERSONALIZE_DELETIONS_PREFIX}jobs/`;
/** Input CSVs (raw ids): deleted when their job ends. The Personalize role reads them. */
export const INPUT_PREFIX = `${PERSONALIZE_DELETIONS_PREFIX}input/`;
/** One record per ended job: hashes, ARN, numDeleted, completedAt or failureReason (no raw id). */
export const AUDIT_PREFIX = `${PERSONALIZE_DELETIONS_PREFIX}audit/`;

const HEX_HASH = /^[0-9a-f]{64}$/;
const PENDING_KEY = /^control\/personalize-deletions\/pending\/([0-9a-f]{64})\.json$/;

export class DeletionOutboxError extends Error {
  override name = 'DeletionOutboxError';
}

export const pendingSchema = z.strictObject({
  userId: z.string().min(1),
  requestedAt: z.number(),
  /** Dataset group ARN -> COMPLETED deletion jobs that held this user. */
  passes: z.record(z.string(), z.number().int().min(0)).optional(),
});

export type PendingDeletion = z.infer<typeof pendingSchema>;

export interface PendingEntry extends PendingDeletion {
  hash: string;
  key: string;
}

export const pendingKey = (hash: string): string => `${PENDING_PREFIX}${hash}.json`;

/** Writes (or replaces: a second deletion of the user starts over) the user's outbox entry. */
export async function writePendingDeletion(s3: S3Client, bucket: string, hash: string, entry: PendingDeletion): Promise<string> {
  if (!HEX_HASH.test(hash)) throw new DeletionOutboxError(`not a registry hash: ${hash}`);
  const key = pendingKey(hash);
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: JSON.stringify(entry), ContentType: 'application/json' }));
  return key;
}

export async function listKeys(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const { objects } = await listObjects(s3, bucket, prefix);
  return objects.flatMap((o) => (o.Key ? [o.Key] : []));
}

function isNotFound(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}

export async function readJson(s3: S3Client, bucket: string, key: string): Promise<unknown> {
  try {
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const text = (await got.Body?.transformToString('utf8')) ?? '';
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new DeletionOutboxError(`${key} is not JSON`);
    }
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

export async function putJson(s3: S3Client, bucket: string, key: string, body: unknown): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: JSON.stringify(body), ContentType: 'application/json' }));
}

export async function deleteKey(s3: S3Client, bucket: string, key: string): Promise<void> {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
}

/** Every outbox entry, sorted by hash (so batches and job names come out the same on a re-run). */
export async function readPending(s3: S3Client, bucket: string): Promise<PendingEntry[]> {
  const entries: PendingEntry[] = [];
  for (const key of (await listKeys(s3, bucket, PENDING_PREFIX)).sort()) {
    const hash = PENDING_KEY.exec(key)?.[1];
    if (hash === undefined) continue;
    const body = await readJson(s3, bucket, key);
    if (body === undefined) continue;
    const parsed = pendingSchema.safeParse(body);
    // Fail loudly: skipping an entry would leave a user in Personalize without anyone noticing.
    if (!parsed.success) throw new DeletionOutboxError(`outbox entry ${key} is not {"userId", "requestedAt", "passes"?}`);
    entries.push({ ...parsed.data, hash, key });
  }
  return entries;
}
