import { createHash, createHmac } from 'node:crypto';
import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { s3Client } from '../shared/aws/clients.js';
import { S3Bucket } from '../shared/aws/s3-bucket.js';
import {
  DELETIONS_SNAPSHOT_KEY,
  decodeSnapshot,
  deletionKey,
  encodeSnapshot,
  HashList,
  hashUserId,
  keyedHasher,
  loadDeletedUsers,
  recordDeletion,
  UNKEYED_HASHER,
  utcDay,
  writeSnapshot,
} from '../shared/deletion.js';
import { useEmulators, uniqueName } from './support/env.js';
import { listKeys, readText } from './support/export.js';

useEmulators();

const s3 = s3Client();
/** The registry's port over a bucket, as the runtimes build it. */
const store = (bucket: string) => new S3Bucket(s3, bucket);
const contentType = async (bucket: string, key: string) => (await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ContentType;
const KEY = 'test-deletion-hash-key-0123456789abcdef';
const hasher = keyedHasher(KEY);
const DAY_MS = 86_400_000;
const NOW = Date.parse('2026-12-10T12:00:00Z');
const daysAgo = (n: number) => () => NOW - n * DAY_MS;

async function freshBucket(): Promise<string> {
  const bucket = uniqueName('deletions');
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  return bucket;
}

async function readBytes(bucket: string, key: string): Promise<Buffer> {
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await got.Body!.transformToByteArray());
}

/** Every key and body in the bucket, as text (binary bodies as latin1: a raw id would still show). */
async function everything(bucket: string): Promise<string> {
  const keys = await listKeys(bucket, '');
  const bodies = await Promise.all(keys.map(async (k) => (await readBytes(bucket, k)).toString('latin1')));
  return [...keys, ...bodies].join('\n');
}

/** The format before issue 12: key sha256(userId), body with the raw id. */
async function putLegacy(bucket: string, userId: string, requestedAt: number): Promise<string> {
  const key = `control/deletions/${createHash('sha256').update(userId).digest('hex')}.json`;
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: JSON.stringify({ userId, requestedAt }) }));
  return key;
}

describe('the deletion registry (s3rver)', () => {
  it('holds keyed hashes only: one entry per user and day, no raw id anywhere in the bucket', async () => {
    const bucket = await freshBucket();
    const k1 = await recordDeletion(store(bucket), 'user@example.com', 1_795_000_000_000, { hasher, now: () => NOW });
    await recordDeletion(store(bucket), 'user@example.com', 1_795_000_000_500, { hasher, now: () => NOW });
    const k2 = await recordDeletion(store(bucket), 'u-2', 1_795_000_001_000, { hasher, now: () => NOW });

    const hmac = createHmac('sha256', KEY).update('user@example.com').digest('hex');
    expect(k1).toBe(`control/deletions/dt=2026-12-10/${hmac}.json`);
    expect(await listKeys(bucket, 'control/deletions/')).toEqual([k1, k2].sort());
    expect(JSON.parse(await readText(bucket, k1))).toEqual({ hash: hmac, scheme: 'hmac-sha256', keyId: hasher.keyId, requestedAt: 1_795_000_000_500 });
    expect(await readText(bucket, k1)).toBe(JSON.stringify({ hash: hmac, scheme: 'hmac-sha256', keyId: hasher.keyId, requestedAt: 1_795_000_000_500 }));
    expect(await contentType(bucket, k1)).toBe('application/json');

    const all = await everything(bucket);
    for (const id of ['user@example.com', 'u-2']) {
      expect(all).not.toContain(id);
      // Not even the unkeyed hash, which anyone could compute from a candidate id.
      expect(all).not.toContain(hashUserId(id, UNKEYED_HASHER));
    }

    const deleted = await loadDeletedUsers(store(bucket), { hasher });
    expect([deleted.isDeleted('user@example.com'), deleted.isDeleted('u-2'), deleted.isDeleted('u-3')]).toEqual([true, true, false]);
    expect(deleted.size).toBe(2);
  });

  it('refuses to load keyed entries without the key, or with another one, naming the entry', async () => {
    const bucket = await freshBucket();
    const key = await recordDeletion(store(bucket), 'u-keyed', 1, { hasher, now: () => NOW });
    await expect(loadDeletedUsers(store(bucket))).rejects.toThrow(new RegExp(`${key}.*no deletion hash key is configured.*DELETION_HASH_KEY`));
    await expect(loadDeletedUsers(store(bucket), { hasher: keyedHasher('another-key-of-at-least-32-characters') })).rejects.toThrow(
      new RegExp(`${key} was hashed with another key`),
    );
  });

  it('honours old-format entries (raw userId bodies) and, when compacting, moves them to keyed entries', async () => {
    const bucket = await freshBucket();
    const legacyKey = await putLegacy(bucket, 'old-user', 1_700_000_000_000);
    await recordDeletion(store(bucket), 'new-user', 2, { hasher, now: () => NOW });

    // A plain load (the replay) reads and hashes them, and writes nothing.
    const read = await loadDeletedUsers(store(bucket), { hasher, now: () => NOW });
    expect([read.isDeleted('old-user'), read.isDeleted('new-user'), read.isDeleted('other')]).toEqual([true, true, false]);
    expect(read.stats).toMatchObject({ legacyEntries: 1, entriesRead: 1 });
    expect(await listKeys(bucket, 'control/deletions/')).toContain(legacyKey);

    // Compaction (the export) migrates: the raw id is gone from the bucket, the deletion is not.
    const compacted = await loadDeletedUsers(store(bucket), { hasher, compact: true, now: () => NOW });
    expect(compacted.isDeleted('old-user')).toBe(true);
    expect(compacted.stats.compacted).toMatchObject({ legacyMigrated: 1 });
    const migrated = deletionKey(hashUserId('old-user', hasher), utcDay(NOW));
    expect(await listKeys(bucket, 'control/deletions/')).not.toContain(legacyKey);
    expect(JSON.parse(await readText(bucket, migrated))).toEqual({ hash: hashUserId('old-user', hasher), scheme: 'hmac-sha256', keyId: hasher.keyId, requestedAt: 1_700_000_000_000 });
    expect(await everything(bucket)).not.toContain('old-user');

    const after = await loadDeletedUsers(store(bucket), { hasher, now: () => NOW });
    expect([after.isDeleted('old-user'), after.isDeleted('new-user')]).toEqual([true, true]);
    expect(after.stats.legacyEntries).toBe(0);
  });

  it('compacts entries of days before yesterday into the snapshot, then reads only newer days', async () => {
    const bucket = await freshBucket();
    await recordDeletion(store(bucket), 'u-10-days', 1, { hasher, now: daysAgo(10) });
    const twoDaysKey = await recordDeletion(store(bucket), 'u-2-days', 2, { hasher, now: daysAgo(2) });
    await recordDeletion(store(bucket), 'u-yesterday', 3, { hasher, now: daysAgo(1) });

    const first = await loadDeletedUsers(store(bucket), { hasher, compact: true, now: () => NOW });
    expect(first.stats).toMatchObject({ daysRead: ['2026-11-30', '2026-12-08', '2026-12-09'], entriesRead: 3, compacted: { coveredBefore: '2026-12-09' } });
    const snapshot = decodeSnapshot(await readBytes(bucket, DELETIONS_SNAPSHOT_KEY));
    expect(snapshot.coveredBefore).toBe('2026-12-09');
    expect(snapshot.keyed).toMatchObject({ keyId: hasher.keyId });
    expect(snapshot.keyed?.hashes.count).toBe(3);
    expect(await contentType(bucket, DELETIONS_SNAPSHOT_KEY)).toBe('application/octet-stream');

    // An entry written after the snapshot, today.
    await recordDeletion(store(bucket), 'u-today', 4, { hasher, now: () => NOW });
    // Entries the snapshot covers are not read again: remove one, and its user is still deleted.
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: twoDaysKey }));

    const next = await loadDeletedUsers(store(bucket), { hasher, compact: true, now: () => NOW });
    expect(next.stats).toMatchObject({ snapshot: { coveredBefore: '2026-12-09', entries: 3 }, daysRead: ['2026-12-09', '2026-12-10'], entriesRead: 2 });
    // Nothing before 2026-12-09 was left outside the snapshot: no rewrite.
    expect(next.stats.compacted).toBeUndefined();
    for (const id of ['u-10-days', 'u-2-days', 'u-yesterday', 'u-today']) expect(next.isDeleted(id), id).toBe(true);
    expect(next.isDeleted('u-never')).toBe(false);
    expect(next.size).toBe(4);

    // Two days on, yesterday's and today's entries are folded in too.
    const later = await loadDeletedUsers(store(bucket), { hasher, compact: true, now: () => NOW + 2 * DAY_MS });
    expect(later.stats.compacted).toMatchObject({ coveredBefore: '2026-12-11' });
    expect(decodeSnapshot(await readBytes(bucket, DELETIONS_SNAPSHOT_KEY)).keyed?.hashes.count).toBe(4);
  });

  it('keeps honouring entries written without a key once a key is configured (upgrade)', async () => {
    const bucket = await freshBucket();
    await recordDeletion(store(bucket), 'u-unkeyed-old', 1, { now: daysAgo(5) });
    await recordDeletion(store(bucket), 'u-unkeyed-new', 2, { now: () => NOW });
    const keyed = await loadDeletedUsers(store(bucket), { hasher, compact: true, now: () => NOW });
    expect([keyed.isDeleted('u-unkeyed-old'), keyed.isDeleted('u-unkeyed-new'), keyed.isDeleted('u-x')]).toEqual([true, true, false]);
    const snapshot = decodeSnapshot(await readBytes(bucket, DELETIONS_SNAPSHOT_KEY));
    expect([snapshot.keyed?.hashes.count, snapshot.unkeyed.count]).toEqual([0, 2]);
    await recordDeletion(store(bucket), 'u-keyed', 3, { hasher, now: () => NOW });
    const again = await loadDeletedUsers(store(bucket), { hasher, now: () => NOW });
    expect(['u-unkeyed-old', 'u-unkeyed-new', 'u-keyed'].map((id) => again.isDeleted(id))).toEqual([true, true, true]);
  });

  describe('fails closed, naming the key', () => {
    it('on an entry it cannot read', async () => {
      const bucket = await freshBucket();
      const key = deletionKey(hashUserId('u-broken', hasher), '2026-12-10');
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: '{"hash":' }));
      await expect(loadDeletedUsers(store(bucket), { hasher })).rejects.toThrow(key);
    });

    it('on an old-format entry it cannot read', async () => {
      const bucket = await freshBucket();
      const key = `control/deletions/${hashUserId('u-broken')}.json`;
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: '{"userId":' }));
      await expect(loadDeletedUsers(store(bucket), { hasher })).rejects.toThrow(key);
    });

    it('on an entry whose body names another hash than its key', async () => {
      const bucket = await freshBucket();
      const key = deletionKey(hashUserId('u-a', hasher), '2026-12-10');
      const body = { hash: hashUserId('u-b', hasher), scheme: 'hmac-sha256', keyId: hasher.keyId, requestedAt: 1 };
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: JSON.stringify(body) }));
      await expect(loadDeletedUsers(store(bucket), { hasher })).rejects.toThrow(new RegExp(`${key} holds the hash of another key`));
    });

    it('on a snapshot that is not one, or was cut short', async () => {
      const bucket = await freshBucket();
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: DELETIONS_SNAPSHOT_KEY, Body: 'not a snapshot' }));
      await expect(loadDeletedUsers(store(bucket), { hasher })).rejects.toThrow(DELETIONS_SNAPSHOT_KEY);

      const whole = encodeSnapshot({ coveredBefore: '2026-12-01', keyed: { keyId: hasher.keyId!, hashes: HashList.from([hasher.digest('a'), hasher.digest('b')]) }, unkeyed: HashList.EMPTY });
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: DELETIONS_SNAPSHOT_KEY, Body: whole.subarray(0, whole.length - 1) }));
      await expect(loadDeletedUsers(store(bucket), { hasher })).rejects.toThrow(new RegExp(`${DELETIONS_SNAPSHOT_KEY} is truncated`));
    });

    it('on a snapshot written with another key', async () => {
      const bucket = await freshBucket();
      const other = keyedHasher('another-key-of-at-least-32-characters');
      await writeSnapshot(store(bucket), { coveredBefore: '2026-12-01', keyed: { keyId: other.keyId!, hashes: HashList.from([other.digest('a')]) }, unkeyed: HashList.EMPTY });
      await expect(loadDeletedUsers(store(bucket), { hasher })).rejects.toThrow(new RegExp(`${DELETIONS_SNAPSHOT_KEY} was hashed with another key`));
    });

    it('on a folder under control/deletions/ that is not a day partition', async () => {
      const bucket = await freshBucket();
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'control/deletions/tmp/x.json', Body: '{}' }));
      await expect(loadDeletedUsers(store(bucket), { hasher })).rejects.toThrow(/control\/deletions\/tmp\/ is not a day partition/);
    });
  });
});
