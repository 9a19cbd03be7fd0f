import { z } from 'zod';
import type { ObjectStore } from '../storage.js';

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
export async function writePendingDeletion(store: ObjectStore, hash: string, entry: PendingDeletion): Promise<string> {
  if (!HEX_HASH.test(hash)) throw new DeletionOutboxError(`not a registry hash: ${hash}`);
  const key = pendingKey(hash);
  await putJson(store, key, entry);
  return key;
}

/** Every key under a prefix, in key order (folder markers left out). */
export async function listKeys(store: ObjectStore, prefix: string): Promise<string[]> {
  return (await store.list(prefix)).map((o) => o.key);
}

/** The object's JSON, or undefined when it does not exist; DeletionOutboxError when it is not JSON. */
export async function readJson(store: ObjectStore, key: string): Promise<unknown> {
  const bytes = await store.getIfExists(key);
  if (bytes === undefined) return undefined;
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    throw new DeletionOutboxError(`${key} is not JSON`);
  }
}

/** Compact JSON (no indentation, no trailing newline), as application/json. */
export async function putJson(store: ObjectStore, key: string, body: unknown): Promise<void> {
  await store.put(key, JSON.stringify(body), undefined, 'application/json');
}

export async function deleteKey(store: ObjectStore, key: string): Promise<void> {
  await store.delete([key]);
}

/** Every outbox entry, sorted by hash (so batches and job names come out the same on a re-run). */
export async function readPending(store: ObjectStore): Promise<PendingEntry[]> {
  const entries: PendingEntry[] = [];
  for (const key of (await listKeys(store, PENDING_PREFIX)).sort()) {
    const hash = PENDING_KEY.exec(key)?.[1];
    if (hash === undefined) continue;
    const body = await readJson(store, key);
    if (body === undefined) continue;
    const parsed = pendingSchema.safeParse(body);
    // Fail loudly: skipping an entry would leave a user in Personalize without anyone noticing.
    if (!parsed.success) throw new DeletionOutboxError(`outbox entry ${key} is not {"userId", "requestedAt", "passes"?}`);
    entries.push({ ...parsed.data, hash, key });
  }
  return entries;
}
