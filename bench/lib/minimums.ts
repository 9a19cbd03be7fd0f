import type { KinesisStreamRecord } from 'aws-lambda';

/**
 * The fewest AWS calls the batching rules allow for one Kinesis batch, computed from the records
 * themselves, independently of the processor's code, and what a one-event-per-call forwarder (the
 * shape most samples have) would make for the same records.
 *
 * Minimum per batch (the processor sees one batch at a time; messages are deduplicated by eventId
 * within it, as the design requires):
 * - PutEvents: per (userId after stitching, sessionId) group, ceil(n / 10) (FACTS §1c);
 * - PutItems / PutUsers: ceil(distinct ids / 10);
 * - BatchGetItem: ceil(sessions the warm cache cannot answer / 100);
 * - BatchWriteItem: ceil(sessions linked for the first time / 25);
 * - profiles (the merged item/user records, same table): BatchGetItem ceil(item and user ids / 100),
 *   BatchWriteItem ceil(item and user ids / 25) — for writes a bound: the processor does not
 *   rewrite a record the batch leaves unchanged;
 * - S3 PutObject: one per distinct (kind, event-time hour) partition (README "Archive");
 * - the record of what PutEvents accepted (docs/bulk-modes.md): one object per event-time UTC day of
 *   the batch's interactions, counted apart (`s3Forwarded`, not in `s3Puts`).
 * "The warm cache cannot answer" follows the documented cache policy (found links kept
 * `positiveTtlMs`, "no link yet" kept `negativeTtlMs`, one cache per shard's container) with
 * this model's own bookkeeping, not the product's cache.
 *
 * Several targets (docs/targets.md): a record the collector stamped with `target` is that target's
 * copy of a message (same eventId), so deduplication is per (eventId, target). Identity is shared:
 * the sessions a batch touches are read and linked once, whichever targets their events go to.
 * Everything from pre-flight on is per target, because each target is its own destination:
 * PutEvents per (target, user, session) (one tracking id per call), PutItems / PutUsers per
 * (target) (one dataset per call), profile reads and writes per target (its records live under
 * its own keys; the processor merges each target's profiles as one step, docs/targets.md), archive
 * objects per (target, kind, hour) and forwarded-record objects per (target, day) (one prefix per
 * target). Unstamped records are the default target's; with one target the counts are exactly
 * those of the rules above.
 */

interface Message {
  kind: 'interaction' | 'item' | 'user' | 'identify' | 'alias';
  eventId: string;
  /** The target the collector stamped (docs/targets.md); absent: the default target. */
  target?: string;
  timestamp: number;
  sessionId?: string;
  previousId?: string;
  userId?: string;
  itemId?: string;
}

export interface CallCounts {
  putEvents: number;
  putItems: number;
  putUsers: number;
  batchGet: number;
  batchWrite: number;
  /** Archive objects. */
  s3Puts: number;
  /** Keys read (billed per item), not calls. */
  keysRead: number;
  /** Of batchGet, batchWrite and keysRead: the profile records' (per target); the rest is identity's (shared). */
  profileGet: number;
  profileWrite: number;
  profileKeysRead: number;
  /** Objects of the record of what PutEvents accepted (forwarded/), not counted in s3Puts. */
  s3Forwarded: number;
}

export interface NaiveCounts {
  putEvents: number;
  putItems: number;
  putUsers: number;
  getItem: number;
  putItem: number;
  s3Puts: number;
}

export function emptyCounts(): CallCounts {
  return { putEvents: 0, putItems: 0, putUsers: 0, batchGet: 0, batchWrite: 0, s3Puts: 0, keysRead: 0, profileGet: 0, profileWrite: 0, profileKeysRead: 0, s3Forwarded: 0 };
}

export function emptyNaive(): NaiveCounts {
  return { putEvents: 0, putItems: 0, putUsers: 0, getItem: 0, putItem: 0, s3Puts: 0 };
}

const PER_CALL = 10;
const GET_KEYS = 100;
const WRITE_ITEMS = 25;

export function decodeRecord(record: KinesisStreamRecord): Message {
  return JSON.parse(Buffer.from(record.kinesis.data, 'base64').toString('utf8')) as Message;
}

function hourOf(timestampMs: number): string {
  return new Date(timestampMs).toISOString().slice(0, 13);
}

function dayOf(timestampMs: number): string {
  return new Date(timestampMs).toISOString().slice(0, 10);
}

/** The default target's name here: unstamped records (the processor's DEFAULT_TARGET, not imported to stay independent). */
export const DEFAULT_TARGET_NAME = 'default';

function targetOf(m: Message): string {
  return m.target ?? DEFAULT_TARGET_NAME;
}

const ARCHIVE_KIND: Record<Message['kind'], string> = {
  interaction: 'interactions',
  item: 'items',
  user: 'users',
  identify: 'identity',
  alias: 'identity',
};

export class MinimumModel {
  /** The identity table: session -> user, first link wins. */
  private readonly table = new Map<string, string>();
  /** One warm cache per shard (a container per shard): session -> user or null, until expiry. */
  private readonly caches = new Map<number, Map<string, { user: string | null; until: number }>>();
  readonly minimum = emptyCounts();
  /**
   * The same minimum split by target: what each target's own calls cost (Personalize, profiles,
   * archive, forwarded record). Identity reads and writes are shared by every target and are in no
   * target's counts; the default target's include unstamped records only.
   */
  readonly byTarget = new Map<string, CallCounts>();
  readonly naive = emptyNaive();

  constructor(private readonly cachePolicy: { positiveTtlMs: number; negativeTtlMs: number }) {}

  batch(shard: number, records: readonly KinesisStreamRecord[], nowMs: number): CallCounts {
    const messages: Message[] = [];
    const seen = new Set<string>();
    for (const record of records) {
      const m = decodeRecord(record);
      // One call per message, duplicates included: that forwarder keeps no state.
      this.countNaive(m);
      // A copy for another target carries the same eventId and is not a duplicate.
      const key = m.target === undefined ? m.eventId : `${m.eventId}\u0000${m.target}`;
      if (seen.has(key)) continue;
      seen.add(key);
      messages.push(m);
    }
    const counts = emptyCounts();

    // Identity: every session the batch touches, read unless the cache holds it; then new links.
    let cache = this.caches.get(shard);
    if (!cache) this.caches.set(shard, (cache = new Map<string, { user: string | null; until: number }>()));
    const carried: [string, string][] = [];
    const touched = new Set<string>();
    for (const m of messages) {
      const link = linkOf(m);
      if (link) {
        carried.push(link);
        touched.add(link[0]);
      } else if (m.kind === 'interaction' && m.sessionId !== undefined) touched.add(m.sessionId);
    }
    const known = new Map<string, string>();
    let misses = 0;
    for (const session of touched) {
      const hit = cache.get(session);
      if (hit && hit.until > nowMs) {
        if (hit.user !== null) known.set(session, hit.user);
        continue;
      }
      misses++;
      const user = this.table.get(session);
      if (user !== undefined) {
        known.set(session, user);
        cache.set(session, { user, until: nowMs + this.cachePolicy.positiveTtlMs });
      } else if (this.cachePolicy.negativeTtlMs > 0) {
        cache.set(session, { user: null, until: nowMs + this.cachePolicy.negativeTtlMs });
      } else {
        cache.delete(session);
      }
    }
    counts.keysRead = misses;
    counts.batchGet = Math.ceil(misses / GET_KEYS);
    let fresh = 0;
    for (const [session, user] of carried) {
      if (known.has(session)) continue;
      known.set(session, user);
      this.table.set(session, user);
      cache.set(session, { user, until: nowMs + this.cachePolicy.positiveTtlMs });
      fresh++;
    }
    counts.batchWrite = Math.ceil(fresh / WRITE_ITEMS);

    // From here on per target: each target's messages (unstamped ones are the default's).
    const perTarget = new Map<string, Message[]>();
    for (const m of messages) {
      const target = targetOf(m);
      let list = perTarget.get(target);
      if (!list) perTarget.set(target, (list = []));
      list.push(m);
    }
    for (const [target, list] of perTarget) {
      const own = emptyCounts();

      // Profiles: one read of every item/user id the batch updates, one write set of the merged records.
      const profiles = new Set<string>();
      for (const m of list) {
        if (m.kind === 'item' && m.itemId !== undefined) profiles.add(`item#${m.itemId}`);
        else if (m.kind === 'user' && m.userId !== undefined) profiles.add(`user#${m.userId}`);
      }
      own.profileKeysRead = own.keysRead = profiles.size;
      own.profileGet = own.batchGet = Math.ceil(profiles.size / GET_KEYS);
      own.profileWrite = own.batchWrite = Math.ceil(profiles.size / WRITE_ITEMS);

      // Personalize: groups by (effective user, session); latest-per-id for items and users.
      const groups = new Map<string, number>();
      const items = new Set<string>();
      const users = new Set<string>();
      const partitions = new Set<string>();
      const days = new Set<string>();
      for (const m of list) {
        partitions.add(`${ARCHIVE_KIND[m.kind]}/${hourOf(m.timestamp)}`);
        if (m.kind === 'interaction') {
          const user = m.userId ?? known.get(m.sessionId ?? '') ?? '';
          const key = JSON.stringify([user, m.sessionId]);
          groups.set(key, (groups.get(key) ?? 0) + 1);
          days.add(dayOf(m.timestamp));
        } else if (m.kind === 'item' && m.itemId !== undefined) items.add(m.itemId);
        else if (m.kind === 'user' && m.userId !== undefined) users.add(m.userId);
      }
      for (const n of groups.values()) own.putEvents += Math.ceil(n / PER_CALL);
      own.putItems = Math.ceil(items.size / PER_CALL);
      own.putUsers = Math.ceil(users.size / PER_CALL);
      own.s3Puts = partitions.size;
      own.s3Forwarded = days.size;

      let sum = this.byTarget.get(target);
      if (!sum) this.byTarget.set(target, (sum = emptyCounts()));
      for (const key of Object.keys(own) as (keyof CallCounts)[]) {
        counts[key] += own[key];
        sum[key] += own[key];
      }
    }

    for (const key of Object.keys(counts) as (keyof CallCounts)[]) this.minimum[key] += counts[key];
    return counts;
  }

  private countNaive(m: Message): void {
    this.naive.s3Puts++;
    switch (m.kind) {
      case 'interaction':
        this.naive.putEvents++;
        this.naive.getItem++;
        break;
      case 'item':
        this.naive.putItems++;
        break;
      case 'user':
        this.naive.putUsers++;
        break;
      case 'identify':
      case 'alias':
        this.naive.putItem++;
        break;
    }
  }
}

/** The session -> user link a message carries: identify, alias, or an interaction with both ids. */
function linkOf(m: Message): [string, string] | undefined {
  if (m.userId === undefined) return undefined;
  if (m.kind === 'identify' || m.kind === 'interaction') return m.sessionId === undefined ? undefined : [m.sessionId, m.userId];
  if (m.kind === 'alias') return m.previousId === undefined ? undefined : [m.previousId, m.userId];
  return undefined;
}
