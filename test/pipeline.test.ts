import type { KinesisStreamEvent } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { InteractionMessage } from '../schemas/canonical.js';
import { kinesisClient } from '../shared/aws/clients.js';
import { putRecords } from '../shared/aws/kinesis.js';
import { startLocalStack, type LocalStack } from '../local/stack.js';
import { useEmulators } from './support/env.js';
import { kplAggregate } from './support/kpl.js';
import { drainDlq, eventTime, isDeadLetter, readArchive, send, isolatedStack } from './support/stack.js';
import { knownUserSessionId } from '../shared/personalize/put-session.js';

useEmulators();

let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack({
    ...isolatedStack('events', 2),
    // One batch per shard when everything is put at once: lets the tests count calls exactly.
    poller: { batchSize: 10_000, maxBatchingWindowMs: 1_500, pollIntervalMs: 50, maxRetryAttempts: 20 },
    processorEnv: { PERSONALIZE_MAX_ATTEMPTS: '3' },
  });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

beforeEach(async () => {
  await stack.poller.idle(30_000);
  stack.personalize!.setFaults({ throttleRate: 0, serverErrorRate: 0, latencyMs: 0, rejectEvent: undefined });
  stack.personalize!.reset();
  await drainDlq(stack);
});

function interaction(sessionId: string, eventId: string, extra: Partial<InteractionMessage> = {}): InteractionMessage {
  return { kind: 'interaction', source: 'native', eventId, sessionId, eventType: 'View', itemId: `item-${eventId}`, timestamp: eventTime(), ...extra };
}

describe('the processor on the local stack', () => {
  it('delivers 1,000 interactions over 100 sessions exactly once each, in the minimum number of PutEvents calls', async () => {
    // Skewed sessions: 50 short (4 events), 30 medium (10), 20 long (25); a third of them logged in.
    const lengths = [...Array<number>(50).fill(4), ...Array<number>(30).fill(10), ...Array<number>(20).fill(25)];
    const messages: InteractionMessage[] = lengths.flatMap((length, s) =>
      Array.from({ length }, (_, i) => interaction(`bulk-s${s}`, `bulk-s${s}-e${i}`, s % 3 === 0 ? { userId: `user-${s}` } : {})),
    );
    expect(messages).toHaveLength(1000);
    const perSession = new Map<string, number>();
    for (const m of messages) perSession.set(m.sessionId, (perSession.get(m.sessionId) ?? 0) + 1);
    let minimumCalls = 0;
    for (const n of perSession.values()) minimumCalls += Math.ceil(n / 10);
    expect(minimumCalls).toBe(140);
    expect(perSession.size).toBe(100);

    await send(stack, messages);
    await stack.poller.idle(30_000);

    const received = stack.personalize!.receivedEvents();
    const ids = received.map((e) => e.eventId);
    expect(ids).toHaveLength(1000);
    expect(new Set(ids).size).toBe(1000);
    expect(new Set(ids)).toEqual(new Set(messages.map((m) => m.eventId)));
    expect(stack.personalize!.received('PutEvents')).toHaveLength(minimumCalls);
    for (const call of stack.personalize!.received('PutEvents')) {
      expect(call.request.eventList.length).toBeLessThanOrEqual(10);
      const session = (call.request.eventList[0]?.eventId ?? '').split('-e')[0]!;
      expect(new Set(call.request.eventList.map((e) => (e.eventId ?? '').split('-e')[0]))).toEqual(new Set([session]));
      // A user's events name a session derived from the anonymous one (shared/personalize/put-session.ts).
      expect(call.request.sessionId).toBe(call.request.userId === undefined ? session : knownUserSessionId(session));
    }
    // Event time is the client's, in epoch seconds.
    const first = messages[0]!;
    expect(received.find((e) => e.eventId === first.eventId)?.sentAt).toBe(Math.floor(first.timestamp / 1000));
  });

  it('attributes anonymous events to the user who logs in, including those earlier in the login batch', async () => {
    await send(stack, [interaction('stitch-s1', 'stitch-a1'), interaction('stitch-s1', 'stitch-a2')]);
    await stack.poller.idle();
    await send(stack, [
      interaction('stitch-s1', 'stitch-b1'),
      { kind: 'identify', source: 'native', eventId: 'stitch-login', sessionId: 'stitch-s1', userId: 'stitch-user', timestamp: eventTime() },
      interaction('stitch-s1', 'stitch-b2'),
    ]);
    await stack.poller.idle();
    await send(stack, [interaction('stitch-s1', 'stitch-c1')]);
    await stack.poller.idle();

    const userOf = new Map(stack.personalize!.receivedEvents().map((e) => [e.eventId, e.userId]));
    expect(userOf.get('stitch-a1')).toBeUndefined();
    expect(userOf.get('stitch-a2')).toBeUndefined();
    expect(userOf.get('stitch-b1')).toBe('stitch-user');
    expect(userOf.get('stitch-b2')).toBe('stitch-user');
    expect(userOf.get('stitch-c1')).toBe('stitch-user');
    expect(stack.summary().stitched).toBeGreaterThanOrEqual(3);
  });

  it('gives an anonymous event after two logins on one session to the latest login before it (README "Identity stitching")', async () => {
    await send(stack, [
      { kind: 'identify', source: 'native', eventId: 'conflict-login-1', sessionId: 'conflict-s', userId: 'first-user', timestamp: eventTime() },
      { kind: 'identify', source: 'native', eventId: 'conflict-login-2', sessionId: 'conflict-s', userId: 'second-user', timestamp: eventTime() },
      interaction('conflict-s', 'conflict-anon'),
      interaction('conflict-s', 'conflict-explicit', { userId: 'second-user' }),
    ]);
    await stack.poller.idle();
    const userOf = new Map(stack.personalize!.receivedEvents().map((e) => [e.eventId, e.userId]));
    expect(userOf.get('conflict-anon')).toBe('second-user');
    expect(userOf.get('conflict-explicit')).toBe('second-user');
  });

  it('dead-letters a malformed record and a record Personalize rejects, with reasons, and delivers the rest', async () => {
    stack.personalize!.setFaults({ rejectEvent: (event) => (event.eventId === 'poison-rejected' ? 'item is blocked by test' : undefined) });
    await send(stack, [
      interaction('poison-s', 'poison-ok-1'),
      '{"kind":"interaction", this is not json',
      interaction('poison-s', 'poison-rejected'),
      interaction('poison-s', 'poison-ok-2'),
      { kind: 'interaction', eventId: 'poison-invalid', sessionId: 'undefined', eventType: 'View', timestamp: 1_700_000_000 },
      interaction('poison-s2', 'poison-ok-3'),
    ]);
    await stack.poller.idle();
    await send(stack, [interaction('poison-s', 'poison-after')]);
    await stack.poller.idle();

    const delivered = new Set(stack.personalize!.receivedEvents().map((e) => e.eventId));
    expect([...delivered].sort()).toEqual(['poison-after', 'poison-ok-1', 'poison-ok-2', 'poison-ok-3']);

    const dlq = (await drainDlq(stack)).filter(isDeadLetter);
    const malformed = dlq.find((d) => d.stage === 'decode');
    expect(malformed?.reason).toMatch(/not valid JSON/);
    expect(malformed?.payload).toBe('{"kind":"interaction", this is not json');
    expect(malformed?.shardId).toMatch(/^shardId-/);
    expect(malformed?.sequenceNumber).toMatch(/^\d+$/);
    expect(malformed?.receivedAt).toMatch(/^\d{4}-\d\d-\d\dT/);

    const rejected = dlq.find((d) => d.eventId === 'poison-rejected');
    expect(rejected?.stage).toBe('personalize');
    expect(rejected?.reason).toMatch(/item is blocked by test/);
    expect(rejected?.source).toBe('native');

    const invalid = dlq.find((d) => d.stage === 'validate');
    expect(invalid?.errors?.map((e) => e.path).sort()).toEqual(['sessionId', 'timestamp']);
    expect(invalid?.reason).toMatch(/sessionId: sessionId is blank or the literal text null, undefined or nan/);
    expect(invalid?.reason).toMatch(/timestamp: .*epoch seconds/);
    expect(dlq).toHaveLength(3);
  });

  it('delivers every event in the end with 30% throttling and 5% server errors at Personalize', async () => {
    let draws = 0;
    stack.personalize!.setFaults({ throttleRate: 0.3, serverErrorRate: 0.05 });
    const messages = Array.from({ length: 200 }, (_, i) => interaction(`flaky-s${i % 40}`, `flaky-${i}`));
    await send(stack, messages);
    await stack.poller.idle(60_000);
    const stats = stack.personalize!.stats().PutEvents;
    draws = stats.throttled + stats.failed;
    const delivered = new Set(stack.personalize!.receivedEvents().map((e) => e.eventId));
    expect(messages.filter((m) => !delivered.has(m.eventId))).toEqual([]);
    expect(draws).toBeGreaterThan(0);
    expect((await drainDlq(stack)).length).toBe(0);
  }, 90_000);

  it('coalesces 25 updates of one item into one PutItems entry and sends 25 users in 3 PutUsers calls', async () => {
    const base = eventTime();
    const updates = Array.from({ length: 25 }, (_, i) => ({
      kind: 'item' as const,
      source: 'feed' as const,
      eventId: `item-upd-${i}`,
      itemId: 'sku-coalesce',
      timestamp: base + i,
      properties: { categoryL1: 'shoes', price: 10 + i, creationTimestamp: base },
    }));
    const users = Array.from({ length: 25 }, (_, i) => ({
      kind: 'user' as const,
      source: 'feed' as const,
      eventId: `user-upd-${i}`,
      userId: `coalesce-user-${i}`,
      timestamp: base + i,
      properties: { membershipType: i % 2 ? 'gold' : 'silver' },
    }));
    await send(stack, [...updates.slice().reverse(), ...users]);
    await stack.poller.idle();

    const itemCalls = stack.personalize!.received('PutItems');
    const itemEntries = itemCalls.flatMap((c) => c.request.items);
    expect(itemEntries).toHaveLength(1);
    expect(JSON.parse(itemEntries[0]!.properties!)).toMatchObject({ price: 34, categoryL1: 'shoes', creationTimestamp: Math.floor(base / 1000) });
    const userCalls = stack.personalize!.received('PutUsers');
    expect(userCalls).toHaveLength(3);
    expect(userCalls.flatMap((c) => c.request.users.map((u) => u.userId)).sort()).toEqual(users.map((u) => u.userId).sort());
  });

  it('processes a KPL-aggregated record like its plain equivalent', async () => {
    const messages = [interaction('kpl-s', 'kpl-1'), interaction('kpl-s', 'kpl-2', { userId: 'kpl-user' }), interaction('kpl-s', 'kpl-3')];
    const encoded = await kplAggregate(messages.map((m) => ({ partitionKey: m.sessionId, data: Buffer.from(JSON.stringify(m)) })));
    expect(encoded).toHaveLength(1);
    await putRecords(kinesisClient(), encoded, { streamName: stack.names.streamName });
    await stack.poller.idle();

    const received = stack.personalize!.receivedEvents().filter((e) => (e.eventId ?? '').startsWith('kpl-'));
    expect(received.map((e) => e.eventId).sort()).toEqual(['kpl-1', 'kpl-2', 'kpl-3']);
    // The interaction with a userId links the session: the other two are stitched to it.
    expect(received.every((e) => e.userId === 'kpl-user')).toBe(true);
    const archived = [...(await readArchive(stack.names.archiveBucket)).values()].flatMap((o) => o.records).filter((r) => r.eventId.startsWith('kpl-'));
    expect(archived.map((r) => r.stream.subSequenceNumber).sort()).toEqual([0, 1, 2]);
  });

  it('archives exactly the normalized records, and processing the same batch twice leaves the same objects', async () => {
    const { handler } = await import('../functions/process/handler.js');
    const messages = [
      interaction('archive-s', 'archive-1', { eventType: 'Product Viewed', properties: { device: 'ios', unknownKey: 'x' } }),
      { kind: 'identify' as const, source: 'native' as const, eventId: 'archive-login', sessionId: 'archive-s', userId: 'archive-user', timestamp: eventTime() },
      { kind: 'item' as const, source: 'feed' as const, eventId: 'archive-item', itemId: 'archive-sku', timestamp: eventTime(), properties: { categoryL1: 'hats', price: 5, creationTimestamp: Date.now() - 86_400_000 } },
    ];
    const event: KinesisStreamEvent = {
      Records: messages.map((m, i) => ({
        kinesis: {
          kinesisSchemaVersion: '1.0',
          partitionKey: 'archive-s',
          sequenceNumber: `4960000000000000000000000000000000000000000000000000${i}`,
          data: Buffer.from(JSON.stringify(m)).toString('base64'),
          approximateArrivalTimestamp: 1_795_000_000.5 + i,
        },
        eventSource: 'aws:kinesis',
        eventVersion: '1.0',
        eventID: `shardId-000000000009:4960000000000000000000000000000000000000000000000000${i}`,
        eventName: 'aws:kinesis:record',
        invokeIdentityArn: 'arn:aws:iam::000000000000:role/test',
        awsRegion: 'us-east-1',
        eventSourceARN: 'arn:aws:kinesis:us-east-1:000000000000:stream/test',
      })),
    };
    const context = { functionName: 'process', awsRequestId: 'req-1', getRemainingTimeInMillis: () => 60_000 } as never;
    const isThisBatch = (key: string) => key.includes('shardId-000000000009-');

    const first = await handler(event, context);
    expect(first).toEqual({ batchItemFailures: [] });
    const once = new Map([...(await readArchive(stack.names.archiveBucket))].filter(([key]) => isThisBatch(key)));
    await handler(event, context);
    const twice = new Map([...(await readArchive(stack.names.archiveBucket))].filter(([key]) => isThisBatch(key)));

    expect([...twice.keys()].sort()).toEqual([...once.keys()].sort());
    for (const [key, object] of once) expect(twice.get(key)!.bytes.equals(object.bytes)).toBe(true);
    expect([...once.keys()].map((k) => k.split('/')[1]).sort()).toEqual(['identity', 'interactions', 'items']);
    for (const key of once.keys()) {
      expect(key).toMatch(/^archive\/(interactions|identity|items)\/dt=\d{4}-\d\d-\d\d\/hour=\d\d\/shardId-000000000009-\d+-\d+\.ndjson\.gz$/);
    }
    const records = [...once.values()].flatMap((o) => o.records);
    const view = records.find((r) => r.eventId === 'archive-1');
    // Normalized: event name mapped, stitched to the login in the same batch, stream position kept.
    expect(view).toMatchObject({ kind: 'interaction', eventType: 'View', userId: 'archive-user', stitched: true, sessionId: 'archive-s' });
    expect(view?.stream).toEqual({ shardId: 'shardId-000000000009', sequenceNumber: event.Records[0]!.kinesis.sequenceNumber, arrivedAt: 1_795_000_000_500 });
    expect(records.map((r) => r.eventId).sort()).toEqual(['archive-1', 'archive-item', 'archive-login']);
  });
});
