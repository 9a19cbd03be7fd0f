import { gzipSync } from 'node:zlib';
import type { PutEventsCommandInput } from '@aws-sdk/client-personalize-events';
import { describe, expect, it } from 'vitest';
import { deletedUsersOf } from '../../shared/deletion.js';
import { loadDatasetSchemas } from '../../shared/personalize/dataset-schema.js';
import type { PersonalizeSender } from '../../shared/personalize/forward.js';
import {
  daysBetween,
  pacedSender,
  parseArchiveObject,
  pendingObjects,
  replayArchive,
  type Checkpoint,
  type ReplayDeps,
  type ReplayRejection,
  type ReplaySettings,
} from '../../shared/ops/replay.js';

const T = Date.parse('2026-11-21T10:00:00Z');
const KEY = (hour: string, n: number) => `archive/interactions/dt=2026-11-21/hour=${hour}/shardId-000000000000-${n}-${n}.ndjson.gz`;

const line = (eventId: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ kind: 'interaction', source: 'native', eventId, sessionId: 's-1', eventType: 'View', itemId: 'i', timestamp: T, stream: { shardId: 'shardId-000000000000', sequenceNumber: '1', arrivedAt: T }, ...extra });

describe('replay planning', () => {
  it('covers every UTC day of the range and refuses bad or reversed ranges', () => {
    expect(daysBetween('2026-02-27', '2026-03-01')).toEqual(['2026-02-27', '2026-02-28', '2026-03-01']);
    expect(() => daysBetween('2026-02-30', '2026-03-01')).toThrow(/--from must be a date/);
    expect(() => daysBetween('2026-03-02', '2026-03-01')).toThrow(/before --from/);
    expect(() => daysBetween('2024-01-01', '2026-01-01')).toThrow(/longer than 366 days/);
  });

  it('skips objects a checkpoint covers, unless they were written after its listing', () => {
    const listing = [
      { key: KEY('11', 3), lastModified: 100 },
      { key: KEY('10', 1), lastModified: 100 },
      { key: KEY('10', 2), lastModified: 500 },
    ];
    expect(pendingObjects(listing, undefined).map((o) => o.key)).toEqual([KEY('10', 1), KEY('10', 2), KEY('11', 3)]);
    expect(pendingObjects(listing, { through: KEY('10', 2), listedUpTo: 200 }).map((o) => o.key)).toEqual([KEY('10', 2), KEY('11', 3)]);
  });

  it('reads archived lines as canonical messages, keeping the stitched userId and setting aside what it cannot read', () => {
    const body = gzipSync([line('a', { userId: 'u-1', stitched: true }), 'not json', line('b', { kind: 'item', itemId: 'x', properties: {} }), ''].join('\n'));
    const parsed = parseArchiveObject(KEY('10', 1), body);
    expect(parsed.messages.map((m) => m.message)).toEqual([expect.objectContaining({ eventId: 'a', userId: 'u-1' })]);
    expect(parsed.messages[0]!.message).not.toHaveProperty('stream');
    expect(parsed.malformed.map((r) => r.reason)).toEqual(['not JSON', 'a item message under interactions folder']);
  });

  it('paces PutEvents calls to the configured rate', async () => {
    let calls = 0;
    const sender: PersonalizeSender = { putEvents: () => Promise.resolve(void calls++), putItems: () => Promise.resolve(), putUsers: () => Promise.resolve() };
    const paced = pacedSender(sender, 100);
    const started = Date.now();
    await Promise.all(Array.from({ length: 25 }, () => paced.putEvents({ trackingId: 't', sessionId: 's', eventList: [] })));
    // 10 per 100 ms: the 21st call waits for the third window.
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(calls).toBe(25);
  });
});

describe('replayArchive', () => {
  const objects = new Map([
    [KEY('10', 1), gzipSync([line('e1'), line('e2', { sessionId: 's-2', userId: 'gone-user' })].join('\n'))],
    [KEY('10', 2), gzipSync(line('e3'))],
    [KEY('11', 3), gzipSync(line('e4'))],
  ]);
  const settings: ReplaySettings = { from: '2026-11-21', to: '2026-11-21', kinds: ['interactions'], trackingId: 't', schemas: loadDatasetSchemas(), forwardConcurrency: 2 };

  function deps(saved: { checkpoint?: Checkpoint }, sent: string[], extra: Partial<ReplayDeps> = {}): ReplayDeps {
    return {
      archive: {
        list: (prefix) => Promise.resolve([...objects.keys()].filter((k) => k.startsWith(prefix)).map((key) => ({ key, lastModified: 1 }))),
        get: (key) => Promise.resolve(objects.get(key)!),
      },
      sender: {
        putEvents: (input: PutEventsCommandInput) => Promise.resolve(void sent.push(...(input.eventList ?? []).map((e) => e.eventId ?? ''))),
        putItems: () => Promise.resolve(),
        putUsers: () => Promise.resolve(),
      },
      checkpoint: { load: () => Promise.resolve(saved.checkpoint), save: (c) => Promise.resolve(void (saved.checkpoint = c)) },
      rejections: { write: (_: readonly ReplayRejection[]) => Promise.resolve() },
      deletedUsers: () => Promise.resolve(deletedUsersOf(['gone-user'])),
      ...extra,
    };
  }

  it('stops before the next object when asked, and a second run sends only the rest', async () => {
    const saved: { checkpoint?: Checkpoint } = {};
    const sent: string[] = [];
    const controller = new AbortController();
    const first = await replayArchive(deps(saved, sent, { signal: controller.signal, onProgress: () => controller.abort() }), settings);
    expect(first).toMatchObject({ objectsDone: 1, interrupted: true, finished: false, deletedUserRecords: 1 });
    expect(saved.checkpoint).toMatchObject({ through: KEY('10', 1), objectsDone: 1, finished: false });
    expect(sent).toEqual(['e1']);

    const second = await replayArchive(deps(saved, sent), settings);
    expect(second).toMatchObject({ objectsSkipped: 1, objectsDone: 2, finished: true });
    expect(sent).toEqual(['e1', 'e3', 'e4']);
    expect(saved.checkpoint).toMatchObject({ through: KEY('11', 3), objectsDone: 3, eventsSent: 3, finished: true });
  });
});
