import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { CanonicalMessage } from '../../schemas/canonical.js';
import { archiveKindOf, buildArchiveObjects, toArchivedRecord, type ArchiveObject, type SequenceRange } from '../../shared/archive.js';
import type { Entry } from '../../shared/entry.js';

const RANGE: SequenceRange = { shardId: 'shardId-000000000003', firstSequenceNumber: '49600000000000000001', lastSequenceNumber: '49600000000000000009' };
const H10 = Date.UTC(2024, 2, 31, 10, 15, 0);
const END_OF_DAY = Date.UTC(2024, 2, 31, 23, 59, 59, 999);
const NEXT_DAY = Date.UTC(2024, 3, 1, 0, 0, 0, 0);

let seq = 0;
function entry(message: CanonicalMessage, extra: Partial<Entry> = {}): Entry {
  seq++;
  return { ref: { shardId: RANGE.shardId, sequenceNumber: String(49600000000000000000n + BigInt(seq)), partitionKey: 'pk', arrivedAt: 1_711_880_000_000 + seq }, message, ...extra };
}
const view = (eventId: string, timestamp: number, extra: Partial<Extract<CanonicalMessage, { kind: 'interaction' }>> = {}) =>
  entry({ kind: 'interaction', source: 'native', eventId, sessionId: 's1', eventType: 'View', itemId: 'sku', timestamp, ...extra });

function lines(object: ArchiveObject | undefined): Record<string, unknown>[] {
  if (!object) throw new Error('no such object');
  const text = gunzipSync(object.body).toString('utf8');
  expect(text.endsWith('\n')).toBe(true);
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('buildArchiveObjects', () => {
  const stitched = view('v-1', H10, {});
  stitched.userId = 'user-9';
  stitched.stitched = true;
  const entries: Entry[] = [
    stitched,
    view('v-2', END_OF_DAY),
    entry({ kind: 'identify', source: 'segment', eventId: 'id-1', sessionId: 's1', userId: 'user-9', timestamp: H10 + 1 }),
    view('v-3', H10 + 5, { userId: 'own-user' }),
    entry({ kind: 'item', source: 'feed', eventId: 'item-1', itemId: 'sku', timestamp: NEXT_DAY, properties: { price: 3 } }),
    entry({ kind: 'user', source: 'feed', eventId: 'user-1', userId: 'u', timestamp: H10, properties: {} }),
    entry({ kind: 'alias', source: 'segment', eventId: 'al-1', previousId: 'anon', userId: 'u', timestamp: H10 + 2 }),
    view('v-4', NEXT_DAY + 1, {}),
  ];
  entries[7]!.ref.subSequenceNumber = 2;
  const objects = buildArchiveObjects(entries, RANGE);
  const byKey = new Map(objects.map((o) => [o.key, o]));
  const name = 'shardId-000000000003-49600000000000000001-49600000000000000009.ndjson.gz';

  it('groups by kind and event-time hour (UTC), under keys derived from the batch range', () => {
    expect([...byKey.keys()].sort()).toEqual(
      [
        `archive/identity/dt=2024-03-31/hour=10/${name}`,
        `archive/interactions/dt=2024-03-31/hour=10/${name}`,
        `archive/interactions/dt=2024-03-31/hour=23/${name}`,
        `archive/interactions/dt=2024-04-01/hour=00/${name}`,
        `archive/items/dt=2024-04-01/hour=00/${name}`,
        `archive/users/dt=2024-03-31/hour=10/${name}`,
      ].sort(),
    );
    for (const key of byKey.keys()) {
      expect(key).toMatch(/^archive\/(interactions|items|users|identity)\/dt=\d{4}-\d\d-\d\d\/hour=\d\d\/shardId-\d+-\d+-\d+\.ndjson\.gz$/);
    }
    expect(objects.reduce((n, o) => n + o.records, 0)).toBe(entries.length);
  });

  it('writes one JSON line per record, in stream order, with its stream position and the stitched userId', () => {
    const hour10 = lines(byKey.get(`archive/interactions/dt=2024-03-31/hour=10/${name}`));
    expect(hour10.map((r) => r.eventId)).toEqual(['v-1', 'v-3']);
    expect(hour10[0]).toEqual({
      kind: 'interaction',
      source: 'native',
      eventId: 'v-1',
      sessionId: 's1',
      eventType: 'View',
      itemId: 'sku',
      timestamp: H10,
      userId: 'user-9',
      stitched: true,
      stream: { shardId: RANGE.shardId, sequenceNumber: stitched.ref.sequenceNumber, arrivedAt: stitched.ref.arrivedAt },
    });
    // An event's own userId is kept and not marked as stitched.
    expect(hour10[1]).toMatchObject({ userId: 'own-user' });
    expect(hour10[1]).not.toHaveProperty('stitched');

    const identity = lines(byKey.get(`archive/identity/dt=2024-03-31/hour=10/${name}`));
    expect(identity.map((r) => r.eventId)).toEqual(['id-1', 'al-1']);
    const nextDay = lines(byKey.get(`archive/interactions/dt=2024-04-01/hour=00/${name}`));
    expect(nextDay[0]?.stream).toEqual({ shardId: RANGE.shardId, sequenceNumber: entries[7]!.ref.sequenceNumber, subSequenceNumber: 2, arrivedAt: entries[7]!.ref.arrivedAt });
    expect(byKey.get(`archive/interactions/dt=2024-04-01/hour=00/${name}`)?.records).toBe(1);
  });

  it('gives byte-identical objects for identical input', () => {
    const again = buildArchiveObjects(entries.map((e) => structuredClone(e)), RANGE);
    expect(again.map((o) => o.key)).toEqual(objects.map((o) => o.key));
    again.forEach((o, i) => expect(o.body.equals(objects[i]!.body)).toBe(true));
  });

  it('does not change the entries it archives', () => {
    expect(entries[0]!.message).not.toHaveProperty('userId');
    expect(entries[0]!.message).not.toHaveProperty('stream');
  });

  it('makes no object for an empty batch', () => {
    expect(buildArchiveObjects([], RANGE)).toEqual([]);
  });
});

describe('toArchivedRecord / archiveKindOf', () => {
  it('does not mark an anonymous, unstitched interaction', () => {
    const record = toArchivedRecord(view('anon', H10));
    expect(record).not.toHaveProperty('userId');
    expect(record).not.toHaveProperty('stitched');
  });

  it('maps each message kind to its archive folder', () => {
    expect(['interaction', 'item', 'user', 'identify', 'alias'].map((k) => archiveKindOf(k as CanonicalMessage['kind']))).toEqual([
      'interactions',
      'items',
      'users',
      'identity',
      'identity',
    ]);
  });
});
