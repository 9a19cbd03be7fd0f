import type { KinesisStreamRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { MinimumModel, type CallCounts } from '../../bench/lib/minimums.js';
import { measure, measureTwoTargets } from '../../bench/requests.js';

/**
 * The call-count benchmark (bench/requests.ts): its minimum model with several targets
 * (docs/targets.md) — identity shared, everything from pre-flight on per target — and the
 * two-target pass on the quick day.
 */

const T = Date.UTC(2026, 0, 15, 10, 0, 0);
const POLICY = { positiveTtlMs: 900_000, negativeTtlMs: 5_000 };

function record(message: Record<string, unknown>): KinesisStreamRecord {
  return { kinesis: { data: Buffer.from(JSON.stringify(message)).toString('base64') } } as KinesisStreamRecord;
}

const view = (n: number, target?: string) => ({ kind: 'interaction', eventId: `e-${n}`, timestamp: T + n, sessionId: 's-1', userId: 'u-1', itemId: `sku-${n}`, ...(target && { target }) });
const item = (n: number, target?: string) => ({ kind: 'item', eventId: `i-${n}`, timestamp: T + n, itemId: `sku-${n}`, ...(target && { target }) });
const identify = { kind: 'identify', eventId: 'id-1', timestamp: T, sessionId: 's-1', userId: 'u-1' };

function minimumOf(messages: Record<string, unknown>[]): { counts: CallCounts; model: MinimumModel } {
  const model = new MinimumModel(POLICY);
  const counts = model.batch(0, messages.map(record), T + 60_000);
  return { counts, model };
}

describe('MinimumModel with several targets', () => {
  it('one target: the rules as before (groups of 10, identity and profiles read apart, one object per kind and hour)', () => {
    const { counts, model } = minimumOf([identify, ...Array.from({ length: 12 }, (_, n) => view(n)), item(1), item(2)]);
    expect(counts).toMatchObject({ putEvents: 2, putItems: 1, putUsers: 0, batchGet: 2, batchWrite: 2, keysRead: 3, profileGet: 1, profileWrite: 1, profileKeysRead: 2, s3Puts: 3, s3Forwarded: 1 });
    expect([...model.byTarget.keys()]).toEqual(['default']);
  });

  it('counts a copy stamped for another target as its own message, and a re-sent copy as a duplicate', () => {
    const { counts } = minimumOf([view(1), view(1, 'video'), view(1, 'video')]);
    expect(counts.putEvents).toBe(2);
    expect(counts.s3Puts).toBe(2);
  });

  it('computes Personalize, profiles and S3 per target, and identity once for the batch', () => {
    // Five events and five items per target: together they would fit one PutEvents and one PutItems call.
    const one = minimumOf([identify, ...Array.from({ length: 5 }, (_, n) => view(n)), ...Array.from({ length: 5 }, (_, n) => item(n))]).counts;
    const both = minimumOf([
      identify,
      ...Array.from({ length: 5 }, (_, n) => view(n)),
      ...Array.from({ length: 5 }, (_, n) => view(n, 'video')),
      ...Array.from({ length: 5 }, (_, n) => item(n)),
      ...Array.from({ length: 5 }, (_, n) => item(n, 'video')),
    ]);
    const { counts, model } = both;
    // Per target: a tracking id and a dataset per call.
    expect(counts.putEvents).toBe(2 * one.putEvents);
    expect(counts.putItems).toBe(2);
    // Profiles per target (their own keys), identity shared: one session read and linked once.
    expect(counts.profileKeysRead).toBe(10);
    expect(counts.profileGet).toBe(2);
    expect(counts.profileWrite).toBe(2);
    expect(counts.keysRead - counts.profileKeysRead).toBe(one.keysRead - one.profileKeysRead);
    expect(counts.batchGet - counts.profileGet).toBe(one.batchGet - one.profileGet);
    expect(counts.batchWrite - counts.profileWrite).toBe(one.batchWrite - one.profileWrite);
    // Archive per (target, kind, hour): default interactions, items, identity; video interactions, items. Forwarded record per (target, day).
    expect(counts.s3Puts).toBe(5);
    expect(counts.s3Forwarded).toBe(2);

    // The split by target: identity's calls are in neither target's; the rest adds up to the whole.
    const video = model.byTarget.get('video')!;
    expect(video).toMatchObject({ putEvents: 1, putItems: 1, profileGet: 1, profileWrite: 1, profileKeysRead: 5, batchGet: 1, batchWrite: 1, keysRead: 5, s3Puts: 2, s3Forwarded: 1 });
    const dflt = model.byTarget.get('default')!;
    for (const key of ['putEvents', 'putItems', 'putUsers', 'profileGet', 'profileWrite', 's3Puts', 's3Forwarded'] as const) {
      expect(dflt[key] + video[key], key).toBe(model.minimum[key]);
    }
    expect(model.minimum.batchGet - dflt.batchGet - video.batchGet).toBe(one.batchGet - one.profileGet);
  });

  it('groups PutEvents per (target, user, session): a stitched anonymous event follows its session in every target', () => {
    const anonymous = (n: number, target?: string) => ({ kind: 'interaction', eventId: `a-${n}`, timestamp: T + n, sessionId: 's-1', itemId: 'sku-1', ...(target && { target }) });
    const { counts } = minimumOf([anonymous(1), anonymous(1, 'video'), identify, view(2), view(2, 'video')]);
    // The identify links s-1 to u-1 in this batch: each target's two events form one (u-1, s-1) group.
    expect(counts.putEvents).toBe(2);
  });
});

describe('bench/requests.ts --two-targets (quick day)', () => {
  it('meets every call-count target with two targets, next to the one-target figures of the one-target table', async () => {
    const [single, dual] = await Promise.all([measure({ quick: true, repeats: 1 }), measureTwoTargets({ quick: true, repeats: 1 })]);
    expect(dual.tables.map((t) => t.title)).toEqual([
      expect.stringMatching(/^Two targets, batch size 100, per 1,000 source events/),
      expect.stringMatching(/^Two targets, batch size 100, per 1,000 stream records/),
      expect.stringMatching(/^Two targets, batch size 1000, per 1,000 source events/),
      expect.stringMatching(/^Two targets, batch size 1000, per 1,000 stream records/),
    ]);
    for (const table of dual.tables) {
      for (const r of table.rows) if (r.target) expect(r.met, `${table.title}: ${r.name} ${r.figure} vs ${r.floor}`).toBe(true);
    }
    // The reference column is the one-target table's figure (per 1k events), per batch size.
    for (const [i, size] of [100, 1000].entries()) {
      const oneTable = new Map(single.tables[i]!.rows.map((r) => [r.name, r.figure]));
      const twoTable = new Map(dual.tables[2 * i]!.rows.map((r) => [r.name, r.reference]));
      expect(twoTable.get('Personalize PutEvents (per target, user, session)'), `batch size ${size}`).toBeCloseTo(oneTable.get('Personalize PutEvents')!, 9);
      expect(twoTable.get('Personalize, all calls'), `batch size ${size}`).toBeCloseTo(oneTable.get('Personalize, all calls')!, 9);
      expect(twoTable.get('DynamoDB, all calls'), `batch size ${size}`).toBeCloseTo(oneTable.get('DynamoDB, all calls')!, 9);
      expect(twoTable.get('All AWS calls'), `batch size ${size}`).toBeCloseTo(oneTable.get('All AWS calls')!, 9);
    }
    // A realistic share is routed to the second target, and the stream grows by exactly those copies.
    const n = (param: string) => Number(dual.params[param]);
    expect(n('streamRecords')).toBe(n('sourceEvents') + n('copiedInteractions') + n('copiedItemUpdates') + n('copiedUserUpdates'));
    expect(n('copiedInteractions') / n('sourceEvents')).toBeGreaterThan(0.2);
    expect(n('copiedInteractions') / n('sourceEvents')).toBeLessThan(0.5);
  }, 60_000);
});
