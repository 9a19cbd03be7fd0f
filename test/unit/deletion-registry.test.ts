import { createHash, createHmac, randomBytes } from 'node:crypto';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
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

const KEY = 'unit-deletion-hash-key-0123456789abcdef';

/** Just enough S3 for the registry: Put/Get/List (prefix, delimiter); no pagination needed here. */
function memoryS3(): { s3: S3Client; objects: Map<string, Buffer>; calls: string[] } {
  const objects = new Map<string, Buffer>();
  const calls: string[] = [];
  const send = (command: unknown): Promise<unknown> => {
    if (command instanceof PutObjectCommand) {
      calls.push(`put ${command.input.Key}`);
      const body = command.input.Body;
      objects.set(command.input.Key!, Buffer.isBuffer(body) ? body : Buffer.from(body as string));
      return Promise.resolve({});
    }
    if (command instanceof GetObjectCommand) {
      calls.push(`get ${command.input.Key}`);
      const body = objects.get(command.input.Key!);
      if (!body) return Promise.reject(Object.assign(new Error('NoSuchKey'), { name: 'NoSuchKey' }));
      return Promise.resolve({ Body: { transformToByteArray: () => Promise.resolve(new Uint8Array(body)) } });
    }
    if (command instanceof ListObjectsV2Command) {
      const { Prefix = '', Delimiter } = command.input;
      calls.push(`list ${Prefix}`);
      const keys = [...objects.keys()].filter((k) => k.startsWith(Prefix)).sort();
      const contents: { Key: string }[] = [];
      const prefixes = new Set<string>();
      for (const key of keys) {
        const cut = Delimiter ? key.indexOf(Delimiter, Prefix.length) : -1;
        if (cut >= 0) prefixes.add(key.slice(0, cut + 1));
        else contents.push({ Key: key });
      }
      return Promise.resolve({ Contents: contents, CommonPrefixes: [...prefixes].map((p) => ({ Prefix: p })), IsTruncated: false });
    }
    return Promise.reject(new Error(`unexpected command ${(command as object).constructor.name}`));
  };
  // A real client whose send answers from memory: the SDK's paginators accept only an S3Client.
  const s3 = new S3Client({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  s3.send = send as S3Client['send'];
  return { s3, objects, calls };
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
    const { s3 } = memoryS3();
    const base = keyedHasher(KEY);
    await recordDeletion(s3, 'b', 'gone', 1, { hasher: base });
    let digests = 0;
    const counting: UserIdHasher = { scheme: base.scheme, keyId: base.keyId!, digest: (id) => (digests++, base.digest(id)) };
    const deleted = await loadDeletedUsers(s3, 'b', { hasher: counting });
    digests = 0;
    const rows = ['gone', 'kept', 'gone', 'kept', 'other', 'gone'];
    expect(rows.map((id) => deleted.isDeleted(id))).toEqual([true, false, true, false, false, true]);
    expect(digests).toBe(3);
  });

  it('keeps the cache bounded: answers older than two generations are forgotten', async () => {
    const { s3 } = memoryS3();
    await recordDeletion(s3, 'b', 'gone', 1, { hasher: keyedHasher(KEY) });
    let digests = 0;
    const base = keyedHasher(KEY);
    const counting: UserIdHasher = { scheme: base.scheme, keyId: base.keyId!, digest: (id) => (digests++, base.digest(id)) };
    const deleted = await loadDeletedUsers(s3, 'b', { hasher: counting, cacheMaxEntries: 2 });
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
    const { s3 } = memoryS3();
    let digests = 0;
    const deleted = await loadDeletedUsers(s3, 'b', { hasher: { scheme: 'sha256', digest: (id) => (digests++, UNKEYED_HASHER.digest(id)) } });
    expect(deleted.isDeleted('anyone')).toBe(false);
    expect(digests).toBe(0);
  });

  it('adapts a set of raw ids (tests, benchmarks)', () => {
    const deleted = deletedUsersOf(['x']);
    expect([deleted.isDeleted('x'), deleted.isDeleted('y'), deleted.size]).toEqual([true, false, 1]);
  });
});

describe('loading at a million entries', () => {
  it('reads the snapshot, one listing and the newer days: the request count does not grow with the registry', async () => {
    const { s3, objects, calls } = memoryS3();
    const hasher = keyedHasher(KEY);
    const many = Array.from({ length: 20_000 }, () => randomBytes(32));
    objects.set('control/deletions.snapshot', encodeSnapshot({ coveredBefore: '2026-12-09', keyed: { keyId: hasher.keyId!, hashes: HashList.from(many) }, unkeyed: HashList.EMPTY }));
    await recordDeletion(s3, 'b', 'u-today', 1, { hasher, now: () => Date.parse('2026-12-10T08:00:00Z') });
    calls.length = 0;
    const deleted = await loadDeletedUsers(s3, 'b', { hasher, now: () => Date.parse('2026-12-10T12:00:00Z') });
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
