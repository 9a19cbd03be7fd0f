import { createHash, createHmac, randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeSnapshot,
  deletedUsersOf,
  encodeSnapshot,
  HashList,
  hashUserId,
  keyedHasher,
  loadDeletedUsers,
  recordDeletion,
  UNKEYED_HASHER,
  type UserIdHasher,
} from '../../shared/deletion.js';
import type { ObjectStore } from '../../shared/storage.js';

const KEY = 'unit-deletion-hash-key-0123456789abcdef';

/** Just enough of the bucket for the registry: an in-memory ObjectStore that logs each call. */
function memoryStore(): { store: ObjectStore; objects: Map<string, Buffer>; calls: string[] } {
  const objects = new Map<string, Buffer>();
  const calls: string[] = [];
  const under = (prefix: string) => [...objects.keys()].filter((k) => k.startsWith(prefix)).sort();
  const store: ObjectStore = {
    location: (key) => `s3://b/${key}`,
    list: (prefix) => {
      calls.push(`list ${prefix}`);
      return Promise.resolve(under(prefix).map((key) => ({ key, bytes: objects.get(key)!.length, lastModified: 0 })));
    },
    listLevel: (prefix, delimiter = '/') => {
      calls.push(`list ${prefix}`);
      const keys: string[] = [];
      const prefixes = new Set<string>();
      for (const key of under(prefix)) {
        const cut = key.indexOf(delimiter, prefix.length);
        if (cut >= 0) prefixes.add(key.slice(0, cut + 1));
        else keys.push(key);
      }
      return Promise.resolve({ keys, prefixes: [...prefixes] });
    },
    getIfExists: (key) => {
      calls.push(`get ${key}`);
      return Promise.resolve(objects.get(key));
    },
    put: (key, body, _metadata, contentType) => {
      calls.push(`put ${key} ${contentType ?? '(by suffix)'}`);
      objects.set(key, Buffer.from(body));
      return Promise.resolve();
    },
    delete: (keys) => {
      for (const key of keys) {
        calls.push(`delete ${key}`);
        objects.delete(key);
      }
      return Promise.resolve();
    },
  };
  return { store, objects, calls };
}

describe('hashing user ids', () => {
  it('is HMAC-SHA256 with the configured key, hex; the key id fingerprints the key without revealing it', () => {
    const hasher = keyedHasher(KEY);
    expect(hashUserId('u-1', hasher)).toBe(createHmac('sha256', KEY).update('u-1').digest('hex'));
    expect(hashUserId('u-1', UNKEYED_HASHER)).toBe(createHash('sha256').update('u-1').digest('hex'));
    expect(hasher.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(keyedHasher(KEY).keyId).toBe(hasher.keyId);
    expect(keyedHasher(`${KEY}x`).keyId).not.toBe(hasher.keyId);
    expect(hasher.keyId).not.toContain(KEY);
  });
});

describe('HashList', () => {
  const hash = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((a) => Buffer.from(a));

  it('answers membership like a Set, after from() and merge()', () => {
    fc.assert(
      fc.property(fc.array(hash, { maxLength: 60 }), fc.array(hash, { maxLength: 60 }), fc.array(hash, { maxLength: 20 }), (a, b, probes) => {
        const merged = HashList.merge(HashList.from(a), HashList.from(b));
        const reference = new Set([...a, ...b].map((h) => h.toString('hex')));
        expect(merged.count).toBe(reference.size);
        merged.assertSorted('merged');
        for (const h of [...a, ...b]) expect(merged.has(h)).toBe(true);
        for (const h of probes) expect(merged.has(h)).toBe(reference.has(h.toString('hex')));
      }),
    );
  });

  it('refuses unsorted bytes', () => {
    const [x, y] = [Buffer.alloc(32, 1), Buffer.alloc(32, 2)];
    expect(() => new HashList(Buffer.concat([y, x])).assertSorted('test list')).toThrow(/test list: hashes not in strictly ascending order/);
    expect(() => new HashList(Buffer.concat([x, x])).assertSorted('test list')).toThrow(/strictly ascending/);
  });
});

describe('the snapshot format', () => {
  const hasher = keyedHasher(KEY);
  const keyed = HashList.from(['a', 'b', 'c'].map((id) => hasher.digest(id)));
  const unkeyed = HashList.from([UNKEYED_HASHER.digest('d')]);

  it('round-trips: a JSON header line, then sorted 32-byte hashes', () => {
    const bytes = encodeSnapshot({ coveredBefore: '2026-12-01', keyed: { keyId: hasher.keyId!, hashes: keyed }, unkeyed }, new Date('2026-12-02T00:00:00Z'));
    const header = JSON.parse(bytes.subarray(0, bytes.indexOf(0x0a)).toString('utf8')) as Record<string, unknown>;
    expect(header).toMatchObject({ version: 1, coveredBefore: '2026-12-01', sections: [{ scheme: 'hmac-sha256', keyId: hasher.keyId, count: 3 }, { scheme: 'sha256', count: 1 }] });
    expect(bytes.length - bytes.indexOf(0x0a) - 1).toBe(4 * 32);
    const back = decodeSnapshot(bytes);
    expect(back.coveredBefore).toBe('2026-12-01');
    expect(back.keyed?.hashes.bytes.equals(keyed.bytes)).toBe(true);
    expect(back.unkeyed.bytes.equals(unkeyed.bytes)).toBe(true);
  });

  it('is refused when a byte changed (checksum), or when sorted order was broken under a valid checksum', () => {
    const bytes = encodeSnapshot({ coveredBefore: '', keyed: { keyId: hasher.keyId!, hashes: keyed }, unkeyed: HashList.EMPTY });
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 1]! ^= 1;
    expect(() => decodeSnapshot(flipped, 'k')).toThrow(/snapshot k does not match its checksum/);

    // Hand-made: hashes out of order with a correct checksum.
    const payload = Buffer.concat([keyed.at(2), keyed.at(0)]);
    const header = { format: 'personalize-ingest deletion registry snapshot', version: 1, coveredBefore: '', createdAt: 'x', sections: [{ scheme: 'hmac-sha256', keyId: hasher.keyId, count: 2 }], payloadSha256: createHash('sha256').update(payload).digest('hex') };
    expect(() => decodeSnapshot(Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), payload]), 'k')).toThrow(/snapshot k: hashes not in strictly ascending order/);
  });
});

describe('isDeleted', () => {
  it('hashes each distinct userId once, then answers from its cache', async () => {
    const { store } = memoryStore();
    const base = keyedHasher(KEY);
    await recordDeletion(store, 'gone', 1, { hasher: base });
    let digests = 0;
    const counting: UserIdHasher = { scheme: base.scheme, keyId: base.keyId!, digest: (id) => (digests++, base.digest(id)) };
    const deleted = await loadDeletedUsers(store, { hasher: counting });
    digests = 0;
    const rows = ['gone', 'kept', 'gone', 'kept', 'other', 'gone'];
    expect(rows.map((id) => deleted.isDeleted(id))).toEqual([true, false, true, false, false, true]);
    expect(digests).toBe(3);
  });

  it('keeps the cache bounded: answers older than two generations are forgotten', async () => {
    const { store } = memoryStore();
    await recordDeletion(store, 'gone', 1, { hasher: keyedHasher(KEY) });
    let digests = 0;
    const base = keyedHasher(KEY);
    const counting: UserIdHasher = { scheme: base.scheme, keyId: base.keyId!, digest: (id) => (digests++, base.digest(id)) };
    const deleted = await loadDeletedUsers(store, { hasher: counting, cacheMaxEntries: 2 });
    digests = 0;
    // Generations of 2: {a, b} then {c, d} then {e}: by then a is gone.
    for (const id of ['a', 'b', 'c', 'd', 'e', 'a']) deleted.isDeleted(id);
    expect(digests).toBe(6);
    // Still remembered: e (this generation) and d (the one before, moved forward when asked).
    for (const id of ['e', 'd', 'e']) deleted.isDeleted(id);
    expect(digests).toBe(6);
    expect(deleted.isDeleted('gone')).toBe(true);
  });

  it('does not hash at all while the registry is empty', async () => {
    const { store } = memoryStore();
    let digests = 0;
    const deleted = await loadDeletedUsers(store, { hasher: { scheme: 'sha256', digest: (id) => (digests++, UNKEYED_HASHER.digest(id)) } });
    expect(deleted.isDeleted('anyone')).toBe(false);
    expect(digests).toBe(0);
  });

  it('adapts a set of raw ids (tests, benchmarks)', () => {
    const deleted = deletedUsersOf(['x']);
    expect([deleted.isDeleted('x'), deleted.isDeleted('y'), deleted.size]).toEqual([true, false, 1]);
  });
});

describe('what the registry writes', () => {
  it('entries as compact JSON (application/json); compaction: the migrated entry, then the snapshot (application/octet-stream), then the old entry goes', async () => {
    const { store, objects, calls } = memoryStore();
    const hasher = keyedHasher(KEY);
    const now = Date.parse('2026-12-10T12:00:00Z');
    const legacyKey = `control/deletions/${hashUserId('old-user')}.json`;
    objects.set(legacyKey, Buffer.from(JSON.stringify({ userId: 'old-user', requestedAt: 5 })));
    const key = await recordDeletion(store, 'u-old', 7, { hasher, now: () => now - 5 * 86_400_000 });
    expect(objects.get(key)!.toString('utf8')).toBe(JSON.stringify({ hash: hashUserId('u-old', hasher), scheme: 'hmac-sha256', keyId: hasher.keyId, requestedAt: 7 }));

    calls.length = 0;
    const deleted = await loadDeletedUsers(store, { hasher, compact: true, now: () => now });
    const migrated = `control/deletions/dt=2026-12-10/${hashUserId('old-user', hasher)}.json`;
    expect(calls.filter((c) => !c.startsWith('get ') && !c.startsWith('list '))).toEqual([
      `put ${migrated} application/json`,
      'put control/deletions.snapshot application/octet-stream',
      `delete ${legacyKey}`,
    ]);
    expect(objects.has(legacyKey)).toBe(false);
    expect(decodeSnapshot(objects.get('control/deletions.snapshot')!).coveredBefore).toBe('2026-12-09');
    expect([deleted.isDeleted('old-user'), deleted.isDeleted('u-old')]).toEqual([true, true]);
  });

  it('fails closed, naming the key, when the store cannot read or list', async () => {
    const { store } = memoryStore();
    const failing: ObjectStore = { ...store, getIfExists: () => Promise.reject(new Error('AccessDenied')) };
    await expect(loadDeletedUsers(failing)).rejects.toThrow('deletion registry snapshot control/deletions.snapshot could not be read: AccessDenied');
    const unlisted: ObjectStore = { ...store, listLevel: () => Promise.reject(new Error('SlowDown')) };
    await expect(loadDeletedUsers(unlisted)).rejects.toThrow('deletion registry listing of control/deletions/ failed: SlowDown');
  });
});

describe('loading at a million entries', () => {
  it('reads the snapshot, one listing and the newer days: the request count does not grow with the registry', async () => {
    const { store, objects, calls } = memoryStore();
    const hasher = keyedHasher(KEY);
    const many = Array.from({ length: 20_000 }, () => randomBytes(32));
    objects.set('control/deletions.snapshot', encodeSnapshot({ coveredBefore: '2026-12-09', keyed: { keyId: hasher.keyId!, hashes: HashList.from(many) }, unkeyed: HashList.EMPTY }));
    await recordDeletion(store, 'u-today', 1, { hasher, now: () => Date.parse('2026-12-10T08:00:00Z') });
    calls.length = 0;
    const deleted = await loadDeletedUsers(store, { hasher, now: () => Date.parse('2026-12-10T12:00:00Z') });
    expect(calls).toEqual([
      'get control/deletions.snapshot',
      'list control/deletions/',
      'list control/deletions/dt=2026-12-10/',
      `get control/deletions/dt=2026-12-10/${hashUserId('u-today', hasher)}.json`,
    ]);
    expect(deleted.size).toBe(20_001);
    expect(deleted.isDeleted('u-today')).toBe(true);
  });
});
