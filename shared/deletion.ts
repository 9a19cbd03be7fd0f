import { createHash, createHmac } from 'node:crypto';
import pMap from 'p-map';
import { z } from 'zod';
import type { ObjectStore } from './storage.js';

/**
 * The deletion registry, in the archive bucket. Every export and replay leaves its users out.
 *
 * It holds no user id: only HMAC-SHA256(hash key, userId) in hex, or, where no hash key is
 * configured, unkeyed SHA-256 (shared/deletion-key.ts reads the key; README "Deleting a user").
 *
 * - Entries (the audit log, kept): `control/deletions/dt=<UTC day written>/<hash>.json`, body
 *   `{"hash", "scheme", "keyId"?, "requestedAt"}`. One small object per deleted user and day; the
 *   day is the writer's clock when it wrote, so partitions only grow at the tip.
 * - Snapshot: `control/deletions.snapshot`, every hash in sorted binary, with the first day whose
 *   partition it does not cover (`coveredBefore`). Loading = one GET of the snapshot + a listing of
 *   the day prefixes + the entries of the days from `coveredBefore` on: a few objects, whatever the
 *   registry's size. Lookups are a binary search: nothing grows linearly per row.
 * - Compaction (the nightly export, `compact: true`) folds the entries of days before yesterday into
 *   a new snapshot, and moves entries of the old format (`control/deletions/<sha256>.json`, body with
 *   the raw userId) to keyed entries. A writer's clock may lag the exporter's by up to a day.
 *
 * Fail closed: an entry or snapshot that cannot be read, or was hashed with another key, stops the
 * load with its key named, rather than let a deleted user through.
 */

/** Where deletion requests are recorded so every later export leaves the user out (the processor's port). */
export interface DeletionRegistry {
  record(userId: string, requestedAt: number): Promise<void>;
  /** The user's anonymous sessions whose links were removed (no one else's claim left): exports leave them out too. */
  recordSessions?(sessionIds: readonly string[], requestedAt: number): Promise<void>;
}

export const DELETIONS_PREFIX = 'control/deletions/';
export const DELETIONS_SNAPSHOT_KEY = 'control/deletions.snapshot';

const HASH_BYTES = 32;
const DAY_MS = 86_400_000;
const HEX_HASH = /^[0-9a-f]{64}$/;
const DAY = /^\d{4}-\d{2}-\d{2}$/;
/** The format before issue 12: the key is sha256(userId), the body holds the raw userId. */
const LEGACY_KEY = /^control\/deletions\/([0-9a-f]{64})\.json$/;
const DAY_PREFIX = /^control\/deletions\/dt=(\d{4}-\d{2}-\d{2})\/$/;
const ENTRY_KEY = /^control\/deletions\/dt=(\d{4}-\d{2}-\d{2})\/([0-9a-f]{64})\.json$/;

export class DeletionRegistryError extends Error {
  override name = 'DeletionRegistryError';
}

// ---------------------------------------------------------------------------------------------
// Hashing

export type HashScheme = 'hmac-sha256' | 'sha256';

/** How a userId becomes the 32 bytes the registry holds. */
export interface UserIdHasher {
  readonly scheme: HashScheme;
  /** Keyed only: a fingerprint of the key (an HMAC of a constant; it reveals nothing of the key). */
  readonly keyId?: string;
  digest(userId: string): Buffer;
}

const KEY_ID_LABEL = 'personalize-ingest deletion registry key id v1';

export function keyedHasher(key: string): UserIdHasher {
  if (key === '') throw new DeletionRegistryError('the deletion hash key is empty');
  const keyId = createHmac('sha256', key).update(KEY_ID_LABEL).digest('hex').slice(0, 16);
  return { scheme: 'hmac-sha256', keyId, digest: (userId) => createHmac('sha256', key).update(userId, 'utf8').digest() };
}

/** The fallback when no key is configured: anyone holding a candidate userId can test it. */
export const UNKEYED_HASHER: UserIdHasher = {
  scheme: 'sha256',
  digest: (userId) => createHash('sha256').update(userId, 'utf8').digest(),
};

export function hashUserId(userId: string, hasher: UserIdHasher = UNKEYED_HASHER): string {
  return hasher.digest(userId).toString('hex');
}

/**
 * What a deleted user's anonymous session is hashed as: a NUL-framed label before the id. User ids
 * cannot hold NUL (schemas/canonical.ts), so a session's hash never equals any user's hash.
 */
const SESSION_DOMAIN = '\u0000session\u0000';
export const sessionDigestInput = (sessionId: string): string => `${SESSION_DOMAIN}${sessionId}`;

export function hashSessionId(sessionId: string, hasher: UserIdHasher = UNKEYED_HASHER): string {
  return hasher.digest(sessionDigestInput(sessionId)).toString('hex');
}

const describeScheme = (scheme: HashScheme, keyId: string | undefined) => (scheme === 'sha256' ? 'unkeyed SHA-256' : `HMAC-SHA256 with key id ${keyId ?? '?'}`);
const KEY_HINT = 'set DELETION_HASH_KEY (or DELETION_HASH_SECRET_ID) to the key the registry was written with';

// ---------------------------------------------------------------------------------------------
// A sorted list of hashes: the snapshot's payload and the in-memory lookup

/** Unique 32-byte hashes, sorted, in one buffer; a 16-bit prefix index narrows each binary search. */
export class HashList {
  static readonly EMPTY = new HashList(Buffer.alloc(0));
  readonly count: number;
  private readonly index = new Uint32Array(65_537);

  /** `bytes` must be sorted and unique (HashList.from and decodeSnapshot see to it). */
  constructor(readonly bytes: Buffer) {
    if (bytes.length % HASH_BYTES !== 0) throw new DeletionRegistryError(`a hash list of ${bytes.length} bytes is not whole 32-byte hashes`);
    this.count = bytes.length / HASH_BYTES;
    let bucket = 0;
    for (let i = 0; i < this.count; i++) {
      const prefix = (bytes[i * HASH_BYTES]! << 8) | bytes[i * HASH_BYTES + 1]!;
      while (bucket <= prefix) this.index[bucket++] = i;
    }
    while (bucket <= 65_536) this.index[bucket++] = this.count;
  }

  static from(hashes: readonly Buffer[]): HashList {
    if (hashes.length === 0) return HashList.EMPTY;
    const sorted = [...hashes].sort((x, y) => Buffer.compare(x, y));
    const unique = sorted.filter((h, i) => i === 0 || !h.equals(sorted[i - 1]!));
    return new HashList(Buffer.concat(unique));
  }

  /** The union, in one pass over the larger list (a binary search places each hash of the smaller). */
  static merge(a: HashList, b: HashList): HashList {
    const [big, small] = a.count >= b.count ? [a, b] : [b, a];
    if (small.count === 0) return big;
    const parts: Buffer[] = [];
    let from = 0;
    for (let i = 0; i < small.count; i++) {
      const hash = small.at(i);
      const at = big.lowerBound(hash);
      if (at > from) parts.push(big.bytes.subarray(from * HASH_BYTES, at * HASH_BYTES));
      from = at;
      if (at < big.count && big.at(at).equals(hash)) continue;
      parts.push(hash);
    }
    parts.push(big.bytes.subarray(from * HASH_BYTES));
    return new HashList(Buffer.concat(parts));
  }

  at(i: number): Buffer {
    return this.bytes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES);
  }

  /** The first position whose hash is not less than `hash`. */
  private lowerBound(hash: Buffer): number {
    const prefix = (hash[0]! << 8) | hash[1]!;
    let lo = this.index[prefix]!;
    let hi = this.index[prefix + 1]!;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (hash.compare(this.bytes, mid * HASH_BYTES, (mid + 1) * HASH_BYTES) > 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  has(hash: Buffer): boolean {
    const at = this.lowerBound(hash);
    return at < this.count && hash.compare(this.bytes, at * HASH_BYTES, (at + 1) * HASH_BYTES) === 0;
  }

  /** Throws unless strictly ascending (a snapshot from elsewhere could otherwise make lookups miss). */
  assertSorted(what: string): void {
    // The first 4 bytes decide almost every pair; a full compare only when they are equal.
    const words = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    for (let i = 1; i < this.count; i++) {
      const previous = words.getUint32((i - 1) * HASH_BYTES);
      const next = words.getUint32(i * HASH_BYTES);
      if (previous < next) continue;
      if (previous > next || this.bytes.compare(this.bytes, i * HASH_BYTES, (i + 1) * HASH_BYTES, (i - 1) * HASH_BYTES, i * HASH_BYTES) >= 0) {
        throw new DeletionRegistryError(`${what}: hashes not in strictly ascending order at position ${i}`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Membership: what the export and the replay ask

export interface DeletedUsers {
  isDeleted(userId: string): boolean;
  /** An anonymous session of a deleted user (registered when its links were removed). */
  isSessionDeleted?(sessionId: string): boolean;
  /** Hashes (or ids) held. */
  readonly size: number;
}

/** An in-memory set of raw ids (tests, benchmarks, callers that still hold ids). */
export function deletedUsersOf(userIds: Iterable<string>, sessionIds: Iterable<string> = []): DeletedUsers {
  const ids = new Set(userIds);
  const sessions = new Set(sessionIds);
  return { size: ids.size + sessions.size, isDeleted: (userId) => ids.has(userId), isSessionDeleted: (sessionId) => sessions.has(sessionId) };
}

export const NO_DELETED_USERS: DeletedUsers = deletedUsersOf([]);

export interface RegistryLoadStats {
  /** The snapshot read, if any. */
  snapshot?: { coveredBefore: string; entries: number };
  /** Days whose partitions were listed and read (the snapshot does not cover them). */
  daysRead: string[];
  entriesRead: number;
  /** Old-format entries (raw userId bodies) read and hashed. */
  legacyEntries: number;
  /** Hashes held after the load. */
  entries: number;
  compacted?: { coveredBefore: string; snapshotBytes: number; legacyMigrated: number };
}

export interface LoadedDeletedUsers extends DeletedUsers {
  isSessionDeleted(sessionId: string): boolean;
  readonly stats: RegistryLoadStats;
}

class HashedDeletedUsers implements LoadedDeletedUsers {
  /** Two generations: when `recent` is full it becomes `older` and the one before is dropped (O(1), bounded). */
  private recent = new Map<string, boolean>();
  private older = new Map<string, boolean>();
  readonly size: number;

  constructor(
    private readonly hasher: UserIdHasher,
    /** Hashes under `hasher`. */
    private readonly current: HashList,
    /** Unkeyed hashes when `hasher` is keyed (written before a key was configured), else empty. */
    private readonly unkeyed: HashList,
    private readonly cacheMaxEntries: number,
    readonly stats: RegistryLoadStats,
  ) {
    this.size = current.count + unkeyed.count;
  }

  /** One HMAC per distinct userId: a bounded cache remembers the answers for the users seen last. */
  isDeleted(userId: string): boolean {
    return this.holds(userId);
  }

  isSessionDeleted(sessionId: string): boolean {
    // The domain-separated input never equals a userId (ids hold no NUL), so neither does the cache key.
    return this.holds(sessionDigestInput(sessionId));
  }

  private holds(input: string): boolean {
    if (this.size === 0) return false;
    const cached = this.recent.get(input);
    if (cached !== undefined) return cached;
    let deleted = this.older.get(input);
    deleted ??= this.current.has(this.hasher.digest(input)) || (this.unkeyed.count > 0 && this.unkeyed.has(UNKEYED_HASHER.digest(input)));
    if (this.recent.size >= this.cacheMaxEntries) {
      this.older = this.recent;
      this.recent = new Map();
    }
    this.recent.set(input, deleted);
    return deleted;
  }
}

// ---------------------------------------------------------------------------------------------
// Entries

export interface DeletionEntry {
  /** Hex of the 32-byte hash; also the entry's file name. */
  hash: string;
  scheme: HashScheme;
  keyId?: string;
  /** Epoch milliseconds when the deletion was requested. */
  requestedAt: number;
}

export const utcDay = (epochMs: number): string => new Date(epochMs).toISOString().slice(0, 10);

/** The entry of `hash` written on `day` (YYYY-MM-DD, UTC). */
export function deletionKey(hash: string, day: string): string {
  return `${DELETIONS_PREFIX}dt=${day}/${hash}.json`;
}

function entryOf(hash: string, hasher: UserIdHasher, requestedAt: number): DeletionEntry {
  return { hash, scheme: hasher.scheme, ...(hasher.keyId !== undefined && { keyId: hasher.keyId }), requestedAt };
}

async function putEntry(store: ObjectStore, key: string, entry: DeletionEntry): Promise<void> {
  await store.put(key, JSON.stringify(entry), undefined, 'application/json');
}

export interface RecordDeletionOptions {
  /** Default: unkeyed SHA-256 (what the registry holds when no key is configured). */
  hasher?: UserIdHasher;
  now?: () => number;
}

/** Records a deletion and returns the entry's key. The same user twice on one day is one object. */
export async function recordDeletion(store: ObjectStore, userId: string, requestedAt: number, options: RecordDeletionOptions = {}): Promise<string> {
  const hasher = options.hasher ?? UNKEYED_HASHER;
  const hash = hashUserId(userId, hasher);
  const key = deletionKey(hash, utcDay((options.now ?? Date.now)()));
  await putEntry(store, key, entryOf(hash, hasher, requestedAt));
  return key;
}

/**
 * Registers a deleted user's anonymous sessions (their links were just removed) in the same
 * registry, hashed in their own domain (hashSessionId): exports leave their rows out in
 * `session-as-user` mode too. Returns the entries' keys.
 */
export async function recordDeletedSessions(store: ObjectStore, sessionIds: readonly string[], requestedAt: number, options: RecordDeletionOptions = {}): Promise<string[]> {
  const hasher = options.hasher ?? UNKEYED_HASHER;
  const day = utcDay((options.now ?? Date.now)());
  return pMap(
    [...new Set(sessionIds)],
    async (sessionId) => {
      const hash = hashSessionId(sessionId, hasher);
      const key = deletionKey(hash, day);
      await putEntry(store, key, entryOf(hash, hasher, requestedAt));
      return key;
    },
    { concurrency: 8 },
  );
}

const entrySchema = z.strictObject({
  hash: z.string().regex(HEX_HASH),
  scheme: z.enum(['hmac-sha256', 'sha256']),
  keyId: z.string().regex(/^[0-9a-f]{16}$/).optional(),
  requestedAt: z.number(),
});

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Checks that hashes of `scheme`/`keyId` can be matched with `hasher` (or are unkeyed, always matched). */
function checkScheme(what: string, scheme: HashScheme, keyId: string | undefined, hasher: UserIdHasher): void {
  if (scheme === 'sha256') return;
  if (hasher.scheme !== 'hmac-sha256') {
    throw new DeletionRegistryError(`${what} holds keyed hashes (${describeScheme(scheme, keyId)}) but no deletion hash key is configured: ${KEY_HINT}`);
  }
  if (keyId !== hasher.keyId) {
    throw new DeletionRegistryError(`${what} was hashed with another key (${describeScheme(scheme, keyId)}; configured: key id ${hasher.keyId ?? '?'}): ${KEY_HINT}`);
  }
}

function parseEntry(key: string, text: string, hasher: UserIdHasher): DeletionEntry {
  const parsed = entrySchema.safeParse(parseJson(text));
  if (!parsed.success) throw new DeletionRegistryError(`deletion registry entry ${key} is not {"hash", "scheme", "keyId"?, "requestedAt"}`);
  const entry = parsed.data;
  if (!key.endsWith(`/${entry.hash}.json`)) throw new DeletionRegistryError(`deletion registry entry ${key} holds the hash of another key`);
  if (entry.scheme === 'hmac-sha256' && entry.keyId === undefined) throw new DeletionRegistryError(`deletion registry entry ${key} is keyed but names no keyId`);
  checkScheme(`deletion registry entry ${key}`, entry.scheme, entry.keyId, hasher);
  return entry;
}

interface LegacyEntry {
  key: string;
  /** The userId hashed with the loader's hasher (the raw id is not kept). */
  hash: Buffer;
  requestedAt: number;
}

function parseLegacy(key: string, text: string, hasher: UserIdHasher): LegacyEntry {
  const { userId, requestedAt } = (parseJson(text) ?? {}) as { userId?: unknown; requestedAt?: unknown };
  if (typeof userId !== 'string' || userId === '' || typeof requestedAt !== 'number') {
    throw new DeletionRegistryError(`deletion registry entry ${key} is not {"userId": string, "requestedAt": number} (old format)`);
  }
  if (`${DELETIONS_PREFIX}${hashUserId(userId)}.json` !== key) throw new DeletionRegistryError(`deletion registry entry ${key} holds a userId whose hash is another key`);
  return { key, hash: hasher.digest(userId), requestedAt };
}

// ---------------------------------------------------------------------------------------------
// The snapshot

export interface RegistrySnapshot {
  /** Every entry of a partition before this day (YYYY-MM-DD) is in the snapshot; '' covers none. */
  coveredBefore: string;
  keyed?: { keyId: string; hashes: HashList };
  unkeyed: HashList;
}

const SNAPSHOT_FORMAT = 'personalize-ingest deletion registry snapshot';
const snapshotHeader = z.strictObject({
  format: z.literal(SNAPSHOT_FORMAT),
  version: z.literal(1),
  coveredBefore: z.union([z.literal(''), z.string().regex(DAY)]),
  createdAt: z.string(),
  sections: z.array(
    z.strictObject({
      scheme: z.enum(['hmac-sha256', 'sha256']),
      keyId: z.string().regex(/^[0-9a-f]{16}$/).optional(),
      count: z.number().int().min(0),
    }),
  ),
  /** SHA-256 of everything after the header line. */
  payloadSha256: z.string().regex(HEX_HASH),
});

/**
 * One JSON header line (format, coveredBefore, per section its scheme, key id and count, payload
 * checksum), then each section's hashes: 32 bytes each, sorted ascending, no separators.
 */
export function encodeSnapshot(snapshot: RegistrySnapshot, createdAt: Date = new Date()): Buffer {
  const sections = [
    ...(snapshot.keyed ? [{ scheme: 'hmac-sha256' as const, keyId: snapshot.keyed.keyId, count: snapshot.keyed.hashes.count }] : []),
    { scheme: 'sha256' as const, count: snapshot.unkeyed.count },
  ];
  const payload = [...(snapshot.keyed ? [snapshot.keyed.hashes.bytes] : []), snapshot.unkeyed.bytes];
  const digest = createHash('sha256');
  for (const part of payload) digest.update(part);
  const header: z.infer<typeof snapshotHeader> = {
    format: SNAPSHOT_FORMAT,
    version: 1,
    coveredBefore: snapshot.coveredBefore,
    createdAt: createdAt.toISOString(),
    sections,
    payloadSha256: digest.digest('hex'),
  };
  return Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`, 'utf8'), ...payload]);
}

export function decodeSnapshot(bytes: Uint8Array, key = DELETIONS_SNAPSHOT_KEY): RegistrySnapshot {
  const what = `deletion registry snapshot ${key}`;
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const newline = buffer.indexOf(0x0a);
  if (newline < 0 || newline > 64 * 1024) throw new DeletionRegistryError(`${what} has no header line`);
  const parsed = snapshotHeader.safeParse(parseJson(buffer.subarray(0, newline).toString('utf8')));
  if (!parsed.success) throw new DeletionRegistryError(`${what} has an unreadable header (${parsed.error.issues.map((i) => i.path.join('.') || i.message).join(', ')})`);
  const header = parsed.data;
  const payload = buffer.subarray(newline + 1);
  const total = header.sections.reduce((n, s) => n + s.count, 0);
  if (payload.length !== total * HASH_BYTES) throw new DeletionRegistryError(`${what} is truncated: ${payload.length} bytes of hashes, the header says ${total * HASH_BYTES}`);
  if (createHash('sha256').update(payload).digest('hex') !== header.payloadSha256) throw new DeletionRegistryError(`${what} does not match its checksum`);
  const snapshot: RegistrySnapshot = { coveredBefore: header.coveredBefore, unkeyed: HashList.EMPTY };
  let offset = 0;
  const seen = new Set<HashScheme>();
  for (const section of header.sections) {
    if (seen.has(section.scheme)) throw new DeletionRegistryError(`${what} has two ${section.scheme} sections`);
    seen.add(section.scheme);
    const bytes = payload.subarray(offset, offset + section.count * HASH_BYTES);
    offset += section.count * HASH_BYTES;
    // A view of the object's bytes, unless it is the smaller part: a small view would keep them all alive.
    const hashes = section.count === 0 ? HashList.EMPTY : new HashList(bytes.length * 2 >= payload.length ? bytes : Buffer.from(bytes));
    hashes.assertSorted(what);
    if (section.scheme === 'sha256') snapshot.unkeyed = hashes;
    else if (section.keyId === undefined) throw new DeletionRegistryError(`${what} has a keyed section without keyId`);
    else snapshot.keyed = { keyId: section.keyId, hashes };
  }
  return snapshot;
}

/** Writes the snapshot (one PUT, application/octet-stream); returns its size in bytes. */
export async function writeSnapshot(store: ObjectStore, snapshot: RegistrySnapshot, createdAt: Date = new Date()): Promise<number> {
  const body = encodeSnapshot(snapshot, createdAt);
  await store.put(DELETIONS_SNAPSHOT_KEY, body, undefined, 'application/octet-stream');
  return body.length;
}

// ---------------------------------------------------------------------------------------------
// Reads, failing closed

/** undefined when the object does not exist; any other failure names the key. */
async function getBytes(store: ObjectStore, key: string, what: string): Promise<Buffer | undefined> {
  try {
    return await store.getIfExists(key);
  } catch (error) {
    throw new DeletionRegistryError(`${what} ${key} could not be read: ${(error as Error).message}`);
  }
}

async function getText(store: ObjectStore, key: string): Promise<string> {
  const bytes = await getBytes(store, key, 'deletion registry entry');
  // Listed a moment ago: gone now means someone removed it, not that the user is no longer deleted.
  if (bytes === undefined) throw new DeletionRegistryError(`deletion registry entry ${key} was listed but could not be read (404)`);
  return bytes.toString('utf8');
}

/** With a delimiter: the keys and folders one level down; without: every key under the prefix. */
async function listAll(store: ObjectStore, prefix: string, delimiter?: string): Promise<{ keys: string[]; prefixes: string[] }> {
  try {
    if (delimiter !== undefined) return await store.listLevel(prefix, delimiter);
    return { keys: (await store.list(prefix)).map((o) => o.key), prefixes: [] };
  } catch (error) {
    throw new DeletionRegistryError(`deletion registry listing of ${prefix} failed: ${(error as Error).message}`);
  }
}

/** Entries are `.json`; anything else (a console folder marker, a note) is not an entry, as before. */
const isEntryCandidate = (key: string) => key.endsWith('.json');

// ---------------------------------------------------------------------------------------------
// Loading and compaction

export interface LoadDeletedUsersOptions {
  /** The configured hash (shared/deletion-key.ts); default unkeyed SHA-256. */
  hasher?: UserIdHasher;
  /**
   * Write a new snapshot when entries of days before yesterday are outside the current one, and move
   * old-format entries to the new format (the nightly export). Needs s3:PutObject on
   * control/deletions.snapshot and control/deletions/*, s3:DeleteObject on control/deletions/*.
   */
  compact?: boolean;
  now?: () => number;
  /** Entries read at once. */
  concurrency?: number;
  /** Distinct userIds whose answer is remembered: between this and twice this many (default 100,000). */
  cacheMaxEntries?: number;
}

/**
 * The registry as a membership test. Reads the snapshot, lists the day prefixes, reads the entries
 * of days the snapshot does not cover and any old-format entries. Throws (naming the key) on
 * anything it cannot read or match with the configured key.
 */
export async function loadDeletedUsers(store: ObjectStore, options: LoadDeletedUsersOptions = {}): Promise<LoadedDeletedUsers> {
  const hasher = options.hasher ?? UNKEYED_HASHER;
  const now = options.now ?? Date.now;
  const concurrency = options.concurrency ?? 16;

  const snapshotBytes = await getBytes(store, DELETIONS_SNAPSHOT_KEY, 'deletion registry snapshot');
  const snapshot = snapshotBytes === undefined ? undefined : decodeSnapshot(snapshotBytes);
  if (snapshot?.keyed && snapshot.keyed.hashes.count > 0) checkScheme(`deletion registry snapshot ${DELETIONS_SNAPSHOT_KEY}`, 'hmac-sha256', snapshot.keyed.keyId, hasher);

  // One listing with a delimiter: old-format entries and one prefix per day, not every entry.
  const top = await listAll(store, DELETIONS_PREFIX, '/');
  const legacyKeys: string[] = [];
  for (const key of top.keys) {
    if (LEGACY_KEY.test(key)) legacyKeys.push(key);
    else if (isEntryCandidate(key)) throw new DeletionRegistryError(`deletion registry entry ${key} has an unrecognised key (expected ${DELETIONS_PREFIX}dt=YYYY-MM-DD/<hash>.json)`);
  }
  const days: string[] = [];
  for (const prefix of top.prefixes) {
    const day = DAY_PREFIX.exec(prefix)?.[1];
    // An unknown folder could hold entries the old loader read: refuse rather than skip it.
    if (day === undefined) throw new DeletionRegistryError(`deletion registry folder ${prefix} is not a day partition (expected ${DELETIONS_PREFIX}dt=YYYY-MM-DD/)`);
    days.push(day);
  }
  const daysRead = days.filter((day) => snapshot === undefined || day >= snapshot.coveredBefore).sort();

  const listed = await pMap(daysRead, async (day) => (await listAll(store, `${DELETIONS_PREFIX}dt=${day}/`)).keys, { concurrency: 4 });
  const entryKeys: string[] = [];
  for (const key of listed.flat()) {
    if (ENTRY_KEY.test(key)) entryKeys.push(key);
    else if (isEntryCandidate(key)) throw new DeletionRegistryError(`deletion registry entry ${key} has an unrecognised key (expected ${DELETIONS_PREFIX}dt=YYYY-MM-DD/<hash>.json)`);
  }
  const entries = await pMap(entryKeys, async (key) => parseEntry(key, await getText(store, key), hasher), { concurrency });
  const legacy = await pMap(legacyKeys, async (key) => parseLegacy(key, await getText(store, key), hasher), { concurrency });

  const keyedMode = hasher.scheme === 'hmac-sha256';
  const current = HashList.merge(
    (keyedMode ? snapshot?.keyed?.hashes : snapshot?.unkeyed) ?? HashList.EMPTY,
    HashList.from([...entries.filter((e) => e.scheme === hasher.scheme).map((e) => Buffer.from(e.hash, 'hex')), ...legacy.map((l) => l.hash)]),
  );
  const unkeyed = keyedMode
    ? HashList.merge(snapshot?.unkeyed ?? HashList.EMPTY, HashList.from(entries.filter((e) => e.scheme === 'sha256').map((e) => Buffer.from(e.hash, 'hex'))))
    : HashList.EMPTY;

  const stats: RegistryLoadStats = {
    ...(snapshot && {
      snapshot: { coveredBefore: snapshot.coveredBefore, entries: (snapshot.keyed?.hashes.count ?? 0) + snapshot.unkeyed.count },
    }),
    daysRead,
    entriesRead: entries.length,
    legacyEntries: legacy.length,
    entries: current.count + unkeyed.count,
  };

  if (options.compact) {
    // Days before yesterday: a writer whose clock lags by less than a day still writes after them.
    const coveredBefore = [snapshot?.coveredBefore ?? '', utcDay(now() - DAY_MS)].sort().at(-1)!;
    if (legacy.length > 0 || daysRead.some((day) => day < coveredBefore)) {
      // Old-format entries become new ones in today's partition (never covered by a snapshot yet, so
      // a concurrent compaction that missed them still leaves them listed), then go.
      const today = utcDay(now());
      const step = async <T>(what: string, key: string, run: () => Promise<T>): Promise<T> => {
        try {
          return await run();
        } catch (error) {
          throw new DeletionRegistryError(`deletion registry compaction: could not ${what} ${key}: ${(error as Error).message}`);
        }
      };
      await pMap(
        legacy,
        (l) => {
          const key = deletionKey(l.hash.toString('hex'), today);
          return step('write', key, () => putEntry(store, key, entryOf(l.hash.toString('hex'), hasher, l.requestedAt)));
        },
        { concurrency },
      );
      const next: RegistrySnapshot = keyedMode
        ? { coveredBefore, keyed: { keyId: hasher.keyId!, hashes: current }, unkeyed }
        : { coveredBefore, unkeyed: current };
      const snapshotBytesWritten = await step('write', DELETIONS_SNAPSHOT_KEY, () => writeSnapshot(store, next, new Date(now())));
      await pMap(legacy, (l) => step('delete the migrated old-format entry', l.key, () => store.delete([l.key])), { concurrency });
      stats.compacted = { coveredBefore, snapshotBytes: snapshotBytesWritten, legacyMigrated: legacy.length };
    }
  }

  return new HashedDeletedUsers(hasher, current, unkeyed, options.cacheMaxEntries ?? 100_000, stats);
}
