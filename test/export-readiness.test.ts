import { describe, expect, it } from 'vitest';
import { deletedUsersOf } from '../shared/deletion.js';
import { exportDay, type ExportOptions } from '../shared/export/export-day.js';
import type { ExportManifest } from '../shared/export/manifest.js';
import type { ArchiveObjectInfo, ArchiveSource } from '../shared/export/ports.js';
import { READINESS_LATEST_KEY, readinessDayKey, readinessKey, type ReadinessReport } from '../shared/export/readiness.js';
import { loadDatasetSchemas } from '../shared/personalize/dataset-schema.js';
import { MemoryArchive, MemoryLinks, MemoryStore, ndjsonGz } from './support/memory-export.js';

/**
 * Issue 14 §4: the same archive and links give byte-identical CSVs and the same counts whatever
 * order the objects are listed and read in; every export writes a readiness report over all days.
 * In memory (no emulators): the real exportDay on the embedded engine.
 */

const schemas = loadDatasetSchemas();
const D1 = '2026-11-20';
const D2 = '2026-11-21';
const at = (day: string, time: string) => Date.parse(`${day}T${time}Z`);

const view = (eventId: string, sessionId: string, ts: number, extra: Record<string, unknown> = {}) => ({
  kind: 'interaction', source: 'native', eventId, sessionId, eventType: 'View', itemId: `item-${eventId}`, timestamp: ts, ...extra,
});
const item = (eventId: string, itemId: string, ts: number, price: number) => ({
  kind: 'item', source: 'feed', eventId, itemId, timestamp: ts, properties: { categoryL1: 'shoes', price, creationTimestamp: ts },
});
const user = (eventId: string, userId: string, ts: number, membershipType: string) => ({
  kind: 'user', source: 'feed', eventId, userId, timestamp: ts, properties: { membershipType },
});

/** Lists the objects in another order (seeded), whatever the source does. */
class ShuffledArchive implements ArchiveSource {
  constructor(
    private readonly inner: ArchiveSource,
    private readonly seed: number,
  ) {}
  async list(prefix: string): Promise<ArchiveObjectInfo[]> {
    const out = await this.inner.list(prefix);
    let s = this.seed;
    for (let i = out.length - 1; i > 0; i--) {
      s = (s * 1103515245 + 12345) % 2147483648;
      const j = s % (i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
  open(key: string) {
    return this.inner.open(key);
  }
}

/** A day with every tie the rules must break the same way each time. */
function tieDay(): { archive: MemoryArchive; links: MemoryLinks } {
  const archive = new MemoryArchive();
  const links = new MemoryLinks();
  const t = (time: string) => at(D1, time);
  const dir = `archive/interactions/dt=${D1}/hour=09/`;
  // e1: anonymous in one object, stitched in a retried one, own userId in a third: the first object's copy wins.
  // e3: copies with different times; e5: byte-identical copies. s-tie: two logins at the same time.
  archive.put(`${dir}shardId-000000000000-100-199.ndjson.gz`, ndjsonGz([
    view('e1', 's1', t('09:00:00')),
    view('e2', 's2', t('09:01:00'), { userId: 'u1' }),
    view('e3', 's-tie', t('09:02:00')),
    view('e4', 's-none', t('09:03:00')),
    view('e5', 's5', t('09:04:00'), { userId: 'u5', eventValue: 2.5 }),
    '{"kind":"interaction", broken',
  ]));
  archive.put(`${dir}shardId-000000000000-150-299.ndjson.gz`, ndjsonGz([
    { ...view('e1', 's1', t('09:00:00')), userId: 'u-stitched', stitched: true },
    view('e3', 's-tie', t('09:02:00.500')),
    view('e5', 's5', t('09:04:00'), { userId: 'u5', eventValue: 2.5 }),
  ]));
  archive.put(`${dir}shardId-000000000001-100-100.ndjson.gz`, ndjsonGz([view('e1', 's1', t('09:00:00'), { userId: 'u-own' })]));
  // Many anonymous sessions, each backfilled from a login that ties with another.
  archive.put(`${dir}shardId-000000000002-1-999.ndjson.gz`, ndjsonGz(Array.from({ length: 40 }, (_, i) => view(`g${i}`, `gs${i % 10}`, t('09:30:00') + i * 1000))));
  archive.put(`${dir}shardId-000000000003-1-999.ndjson.gz`, ndjsonGz(Array.from({ length: 40 }, (_, i) => view(`g${i}`, `gs${i % 10}`, t('09:30:00') + i * 1000, i % 3 === 0 ? { userId: `own-${i}` } : {}))));
  // Two damaged objects: named in the manifest in the same order every time.
  archive.put(`${dir}shardId-000000000004-1-1.ndjson.gz`, Buffer.from('not gzip'));
  archive.put(`${dir}shardId-000000000005-1-1.ndjson.gz`, Buffer.concat([ndjsonGz([view('d1', 's-d', t('09:05:00'), { userId: 'u-d' })]).subarray(0, 30)]));
  links.add('s1', 'u-login', t('10:00:00')).add('s-tie', 'u-b', t('10:00:00')).add('s-tie', 'u-a', t('10:00:00'));
  for (let i = 0; i < 10; i++) links.add(`gs${i}`, `gu${i}-z`, t('09:40:00')).add(`gs${i}`, `gu${i}-a`, t('09:40:00'));
  // Items and users: versions at the same time (the larger eventId wins), copies across objects.
  archive.put(`archive/items/dt=${D1}/hour=08/a.ndjson.gz`, ndjsonGz([item('i1', 'sku-1', t('08:00:00'), 10), item('i9', 'sku-1', t('08:00:00'), 12), item('i3', 'sku-2', t('08:10:00'), 3)]));
  archive.put(`archive/items/dt=${D1}/hour=08/b.ndjson.gz`, ndjsonGz([item('i5', 'sku-1', t('08:00:00'), 11), item('i3', 'sku-2', t('08:10:00'), 3)]));
  archive.put(`archive/users/dt=${D1}/hour=08/a.ndjson.gz`, ndjsonGz([user('p1', 'u1', t('08:00:00'), 'gold'), user('p2', 'u1', t('08:00:00'), 'silver')]));
  archive.put(`archive/users/dt=${D1}/hour=08/b.ndjson.gz`, ndjsonGz([user('p0', 'u1', t('08:00:00'), 'bronze'), user('p4', 'u-gone', t('08:00:00'), 'gold')]));
  // What PutEvents accepted (complement leaves these out of the CSV; readiness still counts them).
  archive.put(`forwarded/interactions/dt=${D1}/shardId-000000000000-1-9-x.ndjson.gz`, ndjsonGz([
    { sessionId: 's2', eventId: 'e2' },
    { sessionId: 's5', eventId: 'e5' },
  ]));
  return { archive, links };
}

async function run(archive: ArchiveSource, links: MemoryLinks, store: MemoryStore, options: Partial<ExportOptions> & { date: string }, deleted: string[] = []) {
  const manifest = await exportDay(
    { archive, store, links, deletedUsers: () => Promise.resolve(deletedUsersOf(deleted)), settings: { schemas, datasets: {} } },
    { import: false, engine: { memoryLimit: '256MB', threads: 1 }, readConcurrency: 1, ...options },
  );
  return manifest;
}

/** The manifest without its clock readings. */
function timeless(manifest: ExportManifest): unknown {
  const { startedAt, finishedAt, options, ...rest } = manifest;
  void startedAt;
  void finishedAt;
  // The engine's threads are one of the things varied.
  return { ...rest, options: { ...options, engine: { ...options.engine, threads: undefined } } };
}

function report(store: MemoryStore, key = READINESS_LATEST_KEY): ReadinessReport {
  return store.json.get(key) as ReadinessReport;
}

describe('the export is deterministic', () => {
  it('writes byte-identical CSVs and the same manifest and readiness whatever the listing order, read concurrency and threads', async () => {
    const { archive, links } = tieDay();
    /** Claims in the opposite order: the tie-break must not depend on it. */
    const reversed = new MemoryLinks();
    for (const [session, claims] of links.claims) for (const c of [...claims].reverse()) reversed.add(session, c.userId, c.linkedAt);

    const runs = [
      { archive: archive as ArchiveSource, links, readConcurrency: 1, threads: 1 },
      { archive: new ShuffledArchive(archive, 7), links: reversed, readConcurrency: 8, threads: 4 },
      { archive: new ShuffledArchive(archive, 12345), links, readConcurrency: 3, threads: 2 },
    ];
    const outcomes = [];
    for (const r of runs) {
      const store = new MemoryStore();
      const manifest = await run(r.archive, r.links, store, { date: D1, readConcurrency: r.readConcurrency, engine: { memoryLimit: '256MB', threads: r.threads } }, ['u-gone']);
      outcomes.push({ store, manifest });
    }
    const [first, ...others] = outcomes;
    const csvs = first!.store.csvs();
    expect([...csvs.keys()].sort()).toEqual([
      `imports/interactions/dt=${D1}/interactions-${D1}-001.csv`,
      `imports/items/dt=${D1}/items-${D1}-001.csv`,
      `imports/users/dt=${D1}/users-${D1}-001.csv`,
    ]);
    for (const other of others) {
      expect(other.store.csvs()).toEqual(csvs);
      expect(timeless(other.manifest)).toEqual(timeless(first!.manifest));
      expect(JSON.stringify(timeless(other.manifest))).toBe(JSON.stringify(timeless(first!.manifest)));
      const { generatedAt: _a, ...a } = report(other.store);
      const { generatedAt: _b, ...b } = report(first!.store);
      expect(a).toEqual(b);
    }

    // What the ties resolved to, so "identical" is not "identically wrong".
    const interactions = csvs.get(`imports/interactions/dt=${D1}/interactions-${D1}-001.csv`)!;
    const byItem = new Map(interactions.trim().split('\n').slice(1).map((line) => [line.split(',')[1], line.split(',')[0]]));
    // e1: the first object's copy in key order (the anonymous one), backfilled, whichever object was read first.
    expect(byItem.get('item-e1')).toBe('u-login');
    expect(byItem.get('item-e3')).toBe('u-a'); // equal login times: the smaller user id
    expect(byItem.has('item-e2')).toBe(false); // streamed: complement leaves it out
    expect(byItem.get('item-g1')).toBe('gu1-a');
    const m = first!.manifest.kinds.interactions;
    expect(m.archive.unreadableObjects).toEqual([...m.archive.unreadableObjects].sort());
    expect(m).toMatchObject({ duplicates: 44, streamed: 2 });
    expect(csvs.get(`imports/items/dt=${D1}/items-${D1}-001.csv`)).toContain('sku-1,shoes,,12,');
    expect(csvs.get(`imports/users/dt=${D1}/users-${D1}-001.csv`)!.trim().split('\n').slice(1)).toEqual(['u1,silver,']);
  }, 60_000);
});

describe('the readiness report', () => {
  it('counts what Personalize will hold over every day, bulk and streamed, and says what is missing', async () => {
    const archive = new MemoryArchive();
    const links = new MemoryLinks();
    const store = new MemoryStore();
    // Day 1: ua 2 own; ub 1 stitched; s-b backfilled to uc; s-n never logs in; u-del 2 (deleted before day 2's export).
    archive.put(`archive/interactions/dt=${D1}/hour=09/a.ndjson.gz`, ndjsonGz([
      view('a1', 'sa', at(D1, '09:00:00'), { userId: 'ua', itemId: 'item-1' }),
      view('a2', 'sa', at(D1, '09:01:00'), { userId: 'ua', eventType: 'Purchase' }),
      { ...view('b1', 'sb0', at(D1, '09:02:00')), userId: 'ub', stitched: true },
      view('c1', 's-b', at(D1, '09:03:00')),
      view('n1', 's-n', at(D1, '09:04:00')),
      view('x1', 'sx', at(D1, '09:05:00'), { userId: 'u-del' }),
      view('x2', 'sx', at(D1, '09:06:00'), { userId: 'u-del' }),
    ]));
    archive.put(`archive/items/dt=${D1}/hour=08/a.ndjson.gz`, ndjsonGz([item('i1', 'item-1', at(D1, '08:00:00'), 5)]));
    archive.put(`archive/users/dt=${D1}/hour=08/a.ndjson.gz`, ndjsonGz([user('p1', 'ua', at(D1, '08:00:00'), 'gold'), user('p2', 'u-del', at(D1, '08:00:00'), 'gold')]));
    links.add('s-b', 'uc', at(D1, '10:00:00'));
    const first = await run(archive, links, store, { date: D1 });
    expect(first.readiness).toMatchObject({ verdict: 'NOT READY', key: readinessKey(D1) });
    expect(report(store).interactions).toMatchObject({ total: 6, users: 4, usersWithTwo: 2 });

    // Day 2: ub, uc, ud reach two; ud's second event was streamed (left out of the CSV, held by Personalize);
    // ua sends two eventIds Personalize keeps as one record (same item, second, type and value).
    archive.put(`archive/interactions/dt=${D2}/hour=12/a.ndjson.gz`, ndjsonGz([
      view('b2', 'sb', at(D2, '12:00:00'), { userId: 'ub' }),
      view('c2', 'sc', at(D2, '12:01:00'), { userId: 'uc' }),
      view('d1', 'sd', at(D2, '12:02:00'), { userId: 'ud' }),
      view('d2', 'sd', at(D2, '12:03:00'), { userId: 'ud', eventType: 'Purchase' }),
      view('a3', 'sa', at(D2, '12:04:00.100'), { userId: 'ua', itemId: 'item-same' }),
      view('a4', 'sa', at(D2, '12:04:00.900'), { userId: 'ua', itemId: 'item-same' }),
    ]));
    archive.put(`forwarded/interactions/dt=${D2}/x.ndjson.gz`, ndjsonGz([{ sessionId: 'sd', eventId: 'd2' }]));
    const second = await run(archive, links, store, { date: D2 }, ['u-del']);
    const csv = store.csvs().get(`imports/interactions/dt=${D2}/interactions-${D2}-001.csv`)!;
    expect(csv).not.toContain('Purchase'); // d2 was streamed

    const r = report(store);
    expect(r).toEqual(report(store, readinessKey(D2)));
    expect(r.days).toEqual([D1, D2]);
    expect(r.interactions).toEqual({ total: 9, events: 10, users: 4, usersWithTwo: 4, byType: { View: 7, Purchase: 2 }, anonymous: 1 });
    expect(r.userIds).toEqual({ own: 7, stitched: 1, backfilled: 1, 'session-as-user': 0, anonymous: 1 });
    expect(r.byDay).toEqual([
      { day: D1, byType: { View: 3, Purchase: 1 }, total: 4, anonymous: 1 },
      { day: D2, byType: { View: 4, Purchase: 1 }, total: 5, anonymous: 0 },
    ]);
    // item-1 has a catalog record; the others do not. Items stay referenced by a user deleted after
    // the day's export until that day is exported again (the day file names items, not who used them).
    expect(r.items).toMatchObject({ referenced: 11, withoutMetadata: 10 });
    expect(r.items.sample[0]).toBe('item-same');
    expect(r.users).toEqual({ withInteractions: 4, withoutProfile: 3, sample: ['ub', 'uc', 'ud'] });
    expect(r.verdict).toBe('NOT READY');
    expect(r.checks.map((c) => [c.id, c.value, c.threshold, c.pass])).toEqual([
      ['interactions', 9, 1000, false],
      ['users-with-two', 4, 25, false],
      ['users-with-two-share', 1, 0.01, true],
      ['recommended-interactions', 9, 50000, false],
      ['recommended-users-with-two', 4, 1000, false],
    ]);
    expect(r.line).toBe(
      'readiness: NOT READY — 9/1000 interactions, 4/25 users with ≥2 interactions, 100%/1% of users with ≥2 ' +
        '(recommended: 9/50000 interactions, 4/1000 users with ≥2)',
    );
    expect(second.readiness).toMatchObject({ verdict: 'NOT READY', line: r.line });
    expect([...store.files.keys()].filter((k) => k.startsWith('imports/readiness/')).sort()).toEqual([readinessDayKey(D1), readinessDayKey(D2)]);

    // Day 1 again: its file is replaced, not added to; the deleted user stays out.
    await run(archive, links, store, { date: D1 }, ['u-del']);
    const again = report(store);
    expect(again.date).toBe(D1);
    expect(again.interactions).toEqual(r.interactions);
    expect(again.users.withoutProfile).toBe(3);
  }, 60_000);

  it('is READY once the minimums are met, and a broken day file is named, not fatal', async () => {
    const archive = new MemoryArchive();
    const store = new MemoryStore();
    // 30 users x 34 interactions = 1020 interactions, every user with two or more.
    const lines = Array.from({ length: 1020 }, (_, i) => view(`r${i}`, `rs${i % 30}`, at(D1, '06:00:00') + i * 60_000, { userId: `ru${i % 30}` }));
    archive.put(`archive/interactions/dt=${D1}/hour=06/a.ndjson.gz`, ndjsonGz(lines));
    store.files.set(readinessDayKey('2026-11-01'), { body: Buffer.from('not parquet'), rows: 0 });
    const manifest = await run(archive, new MemoryLinks(), store, { date: D1, bulkMode: 'bulk-only' });
    expect(manifest.readiness).toMatchObject({ verdict: 'READY', recommended: false });
    const r = report(store);
    expect(r.line).toBe(
      'readiness: READY (below the recommended amounts) — 1020/1000 interactions, 30/25 users with ≥2 interactions, 100%/1% of users with ≥2 ' +
        '(recommended: 1020/50000 interactions, 30/1000 users with ≥2)',
    );
    expect(r.unreadableDays).toEqual(['2026-11-01']);
  }, 60_000);

  it('never fails the export: a report that cannot be written is named in the manifest', async () => {
    const { archive, links } = tieDay();
    class FailingStore extends MemoryStore {
      override upload(key: string, localPath: string, rows: number): Promise<void> {
        return key.startsWith('imports/readiness/') ? Promise.reject(new Error('access denied')) : super.upload(key, localPath, rows);
      }
    }
    const store = new FailingStore();
    const manifest = await run(archive, links, store, { date: D1 });
    expect(manifest.readiness).toEqual({ error: 'access denied', line: 'readiness: not computed — access denied' });
    expect(manifest.kinds.interactions.exported).toBeGreaterThan(0);
    expect(store.json.has(READINESS_LATEST_KEY)).toBe(false);
  }, 60_000);
});
