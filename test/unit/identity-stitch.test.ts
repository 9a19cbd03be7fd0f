import { describe, expect, it } from 'vitest';
import type { CanonicalMessage } from '../../schemas/canonical.js';
import { LinkCache } from '../../shared/identity/cache.js';
import { linkCarriedBy, stitchBatch } from '../../shared/identity/stitch.js';
import type { IdentityLink, IdentityStore } from '../../shared/identity/store.js';
import type { Entry } from '../../shared/entry.js';

/** In-memory identity table: put overwrites, like DynamoDB's PutRequest. Counts every call. */
class FakeIdentityStore implements IdentityStore {
  readonly links = new Map<string, IdentityLink>();
  readonly reads: string[][] = [];
  readonly writes: IdentityLink[][] = [];

  getLinks(sessionIds: readonly string[]): Promise<Map<string, IdentityLink>> {
    this.reads.push([...sessionIds]);
    const found = new Map<string, IdentityLink>();
    for (const id of sessionIds) {
      const link = this.links.get(id);
      if (link) found.set(id, link);
    }
    return Promise.resolve(found);
  }

  putLinks(links: readonly IdentityLink[]): Promise<void> {
    this.writes.push([...links]);
    for (const link of links) this.links.set(link.sessionId, link);
    return Promise.resolve();
  }

  /** Another shard's invocation writing a link behind this container's back. */
  writeDirectly(sessionId: string, userId: string): void {
    this.links.set(sessionId, { sessionId, userId, linkedAt: 1, eventId: `other-${sessionId}`, source: 'native' });
  }
}

class FakeClock {
  constructor(public ms = 1_000_000) {}
  readonly now = (): number => this.ms;
}

const T = 1_700_000_000_000;
let seq = 0;

function entry(message: CanonicalMessage): Entry {
  seq++;
  return { ref: { shardId: 'shardId-1', sequenceNumber: String(1000 + seq), partitionKey: 'pk', arrivedAt: T }, message };
}

const anon = (sessionId: string, eventId: string): Entry =>
  entry({ kind: 'interaction', source: 'native', eventId, sessionId, eventType: 'View', timestamp: T });
const loggedIn = (sessionId: string, userId: string, eventId: string): Entry =>
  entry({ kind: 'interaction', source: 'native', eventId, sessionId, userId, eventType: 'View', timestamp: T });
const identify = (sessionId: string, userId: string, eventId: string): Entry =>
  entry({ kind: 'identify', source: 'segment', eventId, sessionId, userId, timestamp: T + 5 });
const alias = (previousId: string, userId: string, eventId: string): Entry =>
  entry({ kind: 'alias', source: 'segment', eventId, previousId, userId, timestamp: T });
const item = (itemId: string): Entry =>
  entry({ kind: 'item', source: 'feed', eventId: `item-${itemId}`, itemId, timestamp: T, properties: {} });

function cache(clock = new FakeClock(), options: Partial<{ positiveTtlMs: number; negativeTtlMs: number; maxEntries: number }> = {}) {
  return new LinkCache({ positiveTtlMs: 900_000, negativeTtlMs: 5_000, maxEntries: 1_000, ...options }, clock.now);
}

describe('linkCarriedBy', () => {
  it('reads the link from identify, alias and logged-in interactions only', () => {
    expect(linkCarriedBy(identify('s1', 'u1', 'e1'))).toEqual({ sessionId: 's1', userId: 'u1', linkedAt: T + 5, eventId: 'e1', source: 'segment' });
    expect(linkCarriedBy(alias('anon-7', 'u2', 'e2'))).toMatchObject({ sessionId: 'anon-7', userId: 'u2' });
    expect(linkCarriedBy(loggedIn('s3', 'u3', 'e3'))).toMatchObject({ sessionId: 's3', userId: 'u3' });
    expect(linkCarriedBy(anon('s4', 'e4'))).toBeUndefined();
    expect(linkCarriedBy(item('sku'))).toBeUndefined();
  });
});

describe('stitchBatch', () => {
  it('records the batch’s links, then attributes anonymous events of those sessions, including ones before the login', async () => {
    const store = new FakeIdentityStore();
    const before = anon('s1', 'a1');
    const login = identify('s1', 'u1', 'login');
    const after = anon('s1', 'a2');
    const other = anon('s2', 'a3');
    const report = await stitchBatch([before, login, after, other], store, cache());

    expect(store.links.get('s1')).toMatchObject({ userId: 'u1', eventId: 'login' });
    expect(before).toMatchObject({ userId: 'u1', stitched: true });
    expect(after).toMatchObject({ userId: 'u1', stitched: true });
    expect(other.userId).toBeUndefined();
    expect(other.stitched).toBeUndefined();
    expect(report).toEqual({ linksRecorded: 1, linkConflicts: 0, stitched: 2, anonymous: 1, lookups: 2 });
  });

  it('links an alias’s previous id to the user', async () => {
    const store = new FakeIdentityStore();
    const earlier = anon('anon-9', 'a1');
    await stitchBatch([earlier, alias('anon-9', 'u9', 'al')], store, cache());
    expect(store.links.get('anon-9')?.userId).toBe('u9');
    expect(earlier.userId).toBe('u9');
  });

  const at = (e: Entry, timestamp: number): Entry => ({ ...e, message: { ...e.message, timestamp } });

  it('gives each anonymous event the next login after it on its session, else the latest before, and counts the second user', async () => {
    const store = new FakeIdentityStore();
    const early = at(anon('s1', 'a-early'), T);
    const between = at(anon('s1', 'a-between'), T + 20);
    const late = at(anon('s1', 'a-late'), T + 60);
    const report = await stitchBatch([at(identify('s1', 'first', 'l1'), T + 5), early, between, at(identify('s1', 'second', 'l2'), T + 50), late], store, cache());
    expect([early.userId, between.userId, late.userId]).toEqual(['first', 'second', 'second']);
    // The item shows the latest login; both claims are kept for the export's backfill.
    expect(store.links.get('s1')).toMatchObject({ userId: 'second', linkedAt: T + 50, claims: [{ userId: 'first', linkedAt: T + 5 }, { userId: 'second', linkedAt: T + 50 }] });
    expect(report).toMatchObject({ linkConflicts: 1, linksRecorded: 1 });
  });

  it('lets a later login take over a session someone else linked first: events after it are the later user\'s', async () => {
    const store = new FakeIdentityStore();
    // The attacker identified on the session first (e.g. through a shared ?ajs_aid= link).
    store.writeDirectly('s1', 'attacker');
    const afterLogin = at(anon('s1', 'a1'), T + 40);
    const report = await stitchBatch([at(identify('s1', 'victim', 'l2'), T + 30), afterLogin], store, cache());
    expect(afterLogin.userId).toBe('victim');
    expect(store.links.get('s1')?.userId).toBe('victim');
    expect(report).toMatchObject({ linkConflicts: 1, linksRecorded: 1, stitched: 1 });
    // A later batch: the victim's session stays the victim's.
    const later = at(anon('s1', 'a2'), T + 90);
    await stitchBatch([later], store, cache());
    expect(later.userId).toBe('victim');
  });

  it('does not count the same user identifying twice as a conflict, and writes the link once', async () => {
    const store = new FakeIdentityStore();
    const report = await stitchBatch([identify('s1', 'u1', 'l1'), loggedIn('s1', 'u1', 'e1'), identify('s1', 'u1', 'l2')], store, cache());
    expect(report).toMatchObject({ linkConflicts: 0, linksRecorded: 1 });
    expect(store.writes.flat()).toHaveLength(1);
  });

  it('never replaces the userId an event carries itself', async () => {
    const store = new FakeIdentityStore();
    store.writeDirectly('s1', 'first');
    const explicit = loggedIn('s1', 'second', 'e1');
    const report = await stitchBatch([explicit], store, cache());
    expect(explicit.message).toMatchObject({ userId: 'second' });
    expect(explicit.userId).toBeUndefined();
    expect(explicit.stitched).toBeUndefined();
    expect(report).toMatchObject({ stitched: 0, anonymous: 0, linkConflicts: 1 });
  });

  it('reads every cache miss in one batched call and writes every new link in one batched call', async () => {
    const store = new FakeIdentityStore();
    store.writeDirectly('known', 'u-known');
    const entries = [
      ...Array.from({ length: 30 }, (_, i) => anon(`s${i % 15}`, `a${i}`)),
      ...Array.from({ length: 5 }, (_, i) => identify(`s${i}`, `u${i}`, `l${i}`)),
      loggedIn('s20', 'u20', 'e20'),
      anon('known', 'k1'),
      item('not-a-session'),
    ];
    const report = await stitchBatch(entries, store, cache());
    expect(store.reads).toHaveLength(1);
    expect(new Set(store.reads[0])).toEqual(new Set([...Array.from({ length: 15 }, (_, i) => `s${i}`), 's20', 'known']));
    expect(store.reads[0]).toHaveLength(17);
    expect(store.writes).toHaveLength(1);
    expect(store.writes[0]!.map((l) => l.sessionId).sort()).toEqual(['s0', 's1', 's2', 's20', 's3', 's4']);
    expect(report.lookups).toBe(17);
    // s0..s4: 2 anonymous events each, plus the one in "known".
    expect(report.stitched).toBe(11);
    expect(report.anonymous).toBe(20);
  });

  it('makes no table call when there is nothing to look up or record', async () => {
    const store = new FakeIdentityStore();
    const report = await stitchBatch([item('a'), item('b')], store, cache());
    expect(store.reads).toEqual([]);
    expect(store.writes).toEqual([]);
    expect(report).toEqual({ linksRecorded: 0, linkConflicts: 0, stitched: 0, anonymous: 0, lookups: 0 });
  });

  it('answers from a warm cache without reading the table', async () => {
    const store = new FakeIdentityStore();
    const linkCache = cache();
    await stitchBatch([identify('s1', 'u1', 'l1'), anon('s2', 'a0')], store, linkCache);
    expect(store.reads).toHaveLength(1);

    const later = anon('s1', 'a1');
    const report = await stitchBatch([later, anon('s2', 'a2')], store, linkCache);
    expect(store.reads).toHaveLength(1);
    expect(later.userId).toBe('u1');
    expect(report.lookups).toBe(0);
  });

  it('sees a link another shard wrote only once the negative cache entry has expired', async () => {
    const clock = new FakeClock();
    const store = new FakeIdentityStore();
    const linkCache = cache(clock, { negativeTtlMs: 5_000 });

    await stitchBatch([anon('s1', 'a1')], store, linkCache);
    expect(store.reads).toHaveLength(1);
    store.writeDirectly('s1', 'u-elsewhere');

    clock.ms += 4_999;
    const stillCached = anon('s1', 'a2');
    await stitchBatch([stillCached], store, linkCache);
    expect(store.reads).toHaveLength(1);
    expect(stillCached.userId).toBeUndefined();

    clock.ms += 1;
    const afterExpiry = anon('s1', 'a3');
    const report = await stitchBatch([afterExpiry], store, linkCache);
    expect(store.reads).toHaveLength(2);
    expect(afterExpiry.userId).toBe('u-elsewhere');
    expect(report).toMatchObject({ stitched: 1, lookups: 1 });
  });

  it('replaces a cached "no link" with the link the batch records', async () => {
    const store = new FakeIdentityStore();
    const linkCache = cache();
    await stitchBatch([anon('s1', 'a1')], store, linkCache);
    expect(linkCache.get('s1')).toBeNull();
    await stitchBatch([identify('s1', 'u1', 'l1')], store, linkCache);
    expect(linkCache.get('s1')?.userId).toBe('u1');
  });

  it('lets a store failure propagate without marking events as stitched', async () => {
    const store = new FakeIdentityStore();
    store.putLinks = () => Promise.reject(new Error('throttled'));
    const event = anon('s1', 'a1');
    await expect(stitchBatch([identify('s1', 'u1', 'l1'), event], store, cache())).rejects.toThrow('throttled');
    expect(event.userId).toBeUndefined();
  });
});
