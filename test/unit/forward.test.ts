import {
  PutEventsCommand,
  PutItemsCommand,
  PutUsersCommand,
  type Event as PersonalizeEvent,
  type Item as PersonalizeItem,
  type PersonalizeEventsClient,
  type PutEventsCommandInput,
  type PutItemsCommandInput,
  type PutUsersCommandInput,
} from '@aws-sdk/client-personalize-events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CanonicalMessage } from '../../schemas/canonical.js';
import { coalesceLatest, forwardEvents, forwardUpserts, isInvalidInput, planEventCalls, type EventOutbound, type Outbound, type PersonalizeSender } from '../../shared/personalize/forward.js';
import { SdkPersonalizeSender } from '../../shared/aws/personalize.js';
import type { Entry } from '../../shared/entry.js';
import { knownUserSessionId } from '../../shared/personalize/put-session.js';

const T = 1_700_000_000_000;
let seq = 0;

function entryOf(message: CanonicalMessage): Entry {
  seq++;
  return { ref: { shardId: 'shardId-1', sequenceNumber: String(5000 + seq), partitionKey: 'pk', arrivedAt: T }, message };
}

function event(sessionId: string, eventId: string, userId?: string): EventOutbound {
  const entry = entryOf({ kind: 'interaction', source: 'native', eventId, sessionId, eventType: 'View', timestamp: T, ...(userId !== undefined && { userId }) });
  const payload: PersonalizeEvent = { eventId, eventType: 'View', sentAt: new Date(T) };
  return { entry, payload, sessionId, userId };
}

const invalidInput = (message: string) => Object.assign(new Error(message), { name: 'InvalidInputException' });
const throttled = () => Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
const idsOf = (entries: readonly Entry[]) => entries.map((e) => e.message.eventId);

/** Records every call; `verdict` decides per call whether it fails. Counts calls in flight. */
class FakeSender implements PersonalizeSender {
  readonly events: PutEventsCommandInput[] = [];
  readonly items: PutItemsCommandInput[] = [];
  readonly users: PutUsersCommandInput[] = [];
  inFlight = 0;
  maxInFlight = 0;
  verdict: (eventIds: string[]) => Error | undefined = () => undefined;

  async putEvents(input: PutEventsCommandInput): Promise<void> {
    this.events.push(input);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    // Yield to the event loop so concurrent calls overlap, as network calls would.
    await new Promise((resolve) => setImmediate(resolve));
    this.inFlight--;
    const error = this.verdict((input.eventList ?? []).map((e) => e.eventId ?? ''));
    if (error) throw error;
  }

  putItems(input: PutItemsCommandInput): Promise<void> {
    this.items.push(input);
    const error = this.verdict((input.items ?? []).map((i) => i.itemId ?? ''));
    return error ? Promise.reject(error) : Promise.resolve();
  }

  putUsers(input: PutUsersCommandInput): Promise<void> {
    this.users.push(input);
    return Promise.resolve();
  }
}

describe('planEventCalls', () => {
  it('groups by (userId, sessionId) in stream order, at most 10 per call, in the minimum number of calls', () => {
    const events = [
      ...Array.from({ length: 23 }, (_, i) => event('s1', `s1-${i}`)),
      ...Array.from({ length: 4 }, (_, i) => event('s2', `s2-${i}`, 'u2')),
      ...Array.from({ length: 10 }, (_, i) => event('s3', `s3-${i}`)),
    ];
    // Interleave the sessions: grouping must not depend on adjacency.
    const interleaved = [...events].sort((a, b) => Number(a.payload.eventId!.split('-')[1]) - Number(b.payload.eventId!.split('-')[1]));
    const calls = planEventCalls(interleaved);
    expect(calls).toHaveLength(3 + 1 + 1);
    for (const call of calls) {
      expect(call.length).toBeGreaterThanOrEqual(1);
      expect(call.length).toBeLessThanOrEqual(10);
      expect(new Set(call.map((e) => `${e.userId}|${e.sessionId}`)).size).toBe(1);
    }
    const s1 = calls.filter((c) => c[0]!.sessionId === 's1').flat();
    expect(s1.map((e) => e.payload.eventId)).toEqual(Array.from({ length: 23 }, (_, i) => `s1-${i}`));
    expect(calls.flat()).toHaveLength(events.length);
  });

  it('sends a session’s anonymous and attributed events in separate calls', () => {
    const calls = planEventCalls([event('s1', 'a'), event('s1', 'b', 'u1'), event('s1', 'c'), event('s1', 'd', 'u1')]);
    expect(calls.map((c) => c.map((e) => e.payload.eventId))).toEqual([
      ['a', 'c'],
      ['b', 'd'],
    ]);
  });

  it('never merges two different (userId, sessionId) pairs, even when the ids contain separator characters', async () => {
    // Ids are free text (1-256 characters): a NUL must not make two pairs look alike.
    const events = [event('b\u0000c', 'x', 'a'), event('c', 'y', 'a\u0000b')];
    expect(planEventCalls(events)).toHaveLength(2);
    const sender = new FakeSender();
    await forwardEvents(events, sender, 't', 1);
    expect(sender.events.map((c) => [c.userId, c.sessionId, (c.eventList ?? []).map((e) => e.eventId)])).toEqual([
      ['a', knownUserSessionId('b\u0000c'), ['x']],
      ['a\u0000b', knownUserSessionId('c'), ['y']],
    ]);
  });

  it('plans nothing for no events', () => {
    expect(planEventCalls([])).toEqual([]);
  });
});

describe('forwardEvents', () => {
  it('sends anonymous events with their sessionId and a user’s events with a session derived from it, so Personalize never merges the anonymous session', async () => {
    const sender = new FakeSender();
    const result = await forwardEvents([event('s1', 'a', 'u1'), event('s2', 'b')], sender, 'tracker-1', 4);
    expect(knownUserSessionId('s1')).toMatch(/^u\.[A-Za-z0-9_-]{43}$/);
    expect(knownUserSessionId('s1')).not.toBe(knownUserSessionId('s2'));
    expect(sender.events).toEqual([
      { trackingId: 'tracker-1', sessionId: knownUserSessionId('s1'), userId: 'u1', eventList: [expect.objectContaining({ eventId: 'a' })] },
      { trackingId: 'tracker-1', sessionId: 's2', eventList: [expect.objectContaining({ eventId: 'b' })] },
    ]);
    expect(sender.events[1]).not.toHaveProperty('userId');
    expect(result.calls).toBe(2);
    expect(idsOf(result.delivered).sort()).toEqual(['a', 'b']);
  });

  it('isolates the one bad event of a 10-event call by bisection: rejects it with the message and delivers the other 9', async () => {
    for (let bad = 0; bad < 10; bad++) {
      const sender = new FakeSender();
      sender.verdict = (ids) => (ids.includes(`e${bad}`) ? invalidInput(`itemId of e${bad} is blocked`) : undefined);
      const events = Array.from({ length: 10 }, (_, i) => event('s1', `e${i}`));
      const result = await forwardEvents(events, sender, 't', 1);

      expect(result.rejected).toHaveLength(1);
      expect(result.rejected[0]!.entry.message.eventId).toBe(`e${bad}`);
      expect(result.rejected[0]!.reason).toBe(`Personalize rejected the record: itemId of e${bad} is blocked`);
      expect(idsOf(result.delivered).sort()).toEqual(events.map((e) => e.payload.eventId).filter((id) => id !== `e${bad}`).sort());
      expect(result.failed).toEqual([]);
      // One call, then two per halving until the bad event is alone: 10 -> 5 -> 3 -> 2 -> 1 at most.
      expect(result.calls).toBeLessThanOrEqual(9);
      expect(result.calls).toBe(sender.events.length);
      if (bad === 0) expect(result.calls).toBe(9); // 10 -> [0-4] -> [0-2] -> [0,1] -> [0]
      if (bad === 9) expect(result.calls).toBe(7); // 10 -> [5-9] -> [8,9] -> [9]
    }
  });

  it('isolates two bad events in one call', async () => {
    const sender = new FakeSender();
    sender.verdict = (ids) => (ids.includes('e2') || ids.includes('e7') ? invalidInput('bad') : undefined);
    const result = await forwardEvents(Array.from({ length: 10 }, (_, i) => event('s1', `e${i}`)), sender, 't', 1);
    expect(result.rejected.map((r) => r.entry.message.eventId).sort()).toEqual(['e2', 'e7']);
    expect(result.delivered).toHaveLength(8);
  });

  it('puts every entry of a throttled call in failed, and delivers the other calls', async () => {
    const sender = new FakeSender();
    sender.verdict = (ids) => (ids.includes('b3') ? throttled() : undefined);
    const events = [...Array.from({ length: 12 }, (_, i) => event('a', `a${i}`)), ...Array.from({ length: 12 }, (_, i) => event('b', `b${i}`))];
    const result = await forwardEvents(events, sender, 't', 2);
    expect(idsOf(result.failed)).toEqual(Array.from({ length: 10 }, (_, i) => `b${i}`));
    expect(idsOf(result.delivered).sort()).toEqual([...Array.from({ length: 12 }, (_, i) => `a${i}`), 'b10', 'b11'].sort());
    expect(result.rejected).toEqual([]);
    expect(result.calls).toBe(4);
  });

  it('treats a throttle during bisection as a failure of only that part', async () => {
    const sender = new FakeSender();
    let call = 0;
    sender.verdict = (ids) => {
      call++;
      if (call === 1) return invalidInput('bad');
      if (ids.includes('e0')) return throttled();
      return undefined;
    };
    const result = await forwardEvents(Array.from({ length: 10 }, (_, i) => event('s', `e${i}`)), sender, 't', 1);
    expect(idsOf(result.failed)).toEqual(['e0', 'e1', 'e2', 'e3', 'e4']);
    expect(idsOf(result.delivered)).toEqual(['e5', 'e6', 'e7', 'e8', 'e9']);
    expect(result.calls).toBe(3);
  });

  it('keeps at most `concurrency` calls in flight', async () => {
    const sender = new FakeSender();
    const events = Array.from({ length: 200 }, (_, i) => event(`s${i % 20}`, `e${i}`));
    const result = await forwardEvents(events, sender, 't', 3);
    expect(sender.maxInFlight).toBe(3);
    expect(result.calls).toBe(20);
    expect(result.delivered).toHaveLength(200);

    const serial = new FakeSender();
    await forwardEvents(events, serial, 't', 0);
    expect(serial.maxInFlight).toBe(1);
  });

  it('makes no call for no events', async () => {
    const sender = new FakeSender();
    expect(await forwardEvents([], sender, 't', 4)).toEqual({ calls: 0, delivered: [], rejected: [], failed: [] });
    expect(sender.events).toEqual([]);
  });
});

describe('isInvalidInput', () => {
  it('recognises only InvalidInputException errors', () => {
    expect(isInvalidInput(invalidInput('x'))).toBe(true);
    expect(isInvalidInput(throttled())).toBe(false);
    expect(isInvalidInput({ name: 'InvalidInputException' })).toBe(false);
  });
});

function itemVersion(itemId: string, eventId: string, timestamp: number): Outbound<PersonalizeItem> {
  return { entry: entryOf({ kind: 'item', source: 'feed', eventId, itemId, timestamp, properties: {} }), payload: { itemId, properties: `{"v":"${eventId}"}` } };
}

describe('coalesceLatest', () => {
  it('keeps the latest version per id by event time, whatever the stream order', () => {
    const versions = [itemVersion('a', 'a-new', T + 10), itemVersion('b', 'b-1', T), itemVersion('a', 'a-old', T + 1), itemVersion('a', 'a-mid', T + 5)];
    const { latest, superseded } = coalesceLatest(versions, (o) => o.payload.itemId ?? '');
    expect(latest.map((o) => o.entry.message.eventId)).toEqual(['a-new', 'b-1']);
    expect(idsOf(superseded).sort()).toEqual(['a-mid', 'a-old']);
  });

  it('gives a tie in event time to the later entry in the stream', () => {
    const { latest, superseded } = coalesceLatest([itemVersion('a', 'first', T), itemVersion('a', 'second', T)], (o) => o.payload.itemId ?? '');
    expect(latest.map((o) => o.entry.message.eventId)).toEqual(['second']);
    expect(idsOf(superseded)).toEqual(['first']);
  });

  it('accounts for every input exactly once', () => {
    const versions = Array.from({ length: 50 }, (_, i) => itemVersion(`i${i % 7}`, `v${i}`, T + ((i * 37) % 11)));
    const { latest, superseded } = coalesceLatest(versions, (o) => o.payload.itemId ?? '');
    expect(latest).toHaveLength(7);
    expect(new Set([...latest.map((o) => o.entry), ...superseded]).size).toBe(50);
  });
});

describe('forwardUpserts', () => {
  it('sends 10 per call, sequentially, isolating a rejected item', async () => {
    const sender = new FakeSender();
    sender.verdict = (ids) => (ids.includes('sku-13') ? invalidInput('bad price') : undefined);
    const outbound = Array.from({ length: 25 }, (_, i) => itemVersion(`sku-${i}`, `v${i}`, T));
    const result = await forwardUpserts(outbound, (items) => sender.putItems({ datasetArn: 'arn', items }));
    expect(sender.items.slice(0, 3).map((c) => c.items?.length)).toEqual([10, 10, 5]);
    expect(result.rejected.map((r) => r.entry.message.eventId)).toEqual(['v13']);
    expect(result.delivered).toHaveLength(24);
  });
});

describe('SdkPersonalizeSender', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  function fakeClient() {
    const sent: { name: string; at: number; input: unknown }[] = [];
    const client = {
      send: (command: unknown) => {
        const name = command instanceof PutItemsCommand ? 'PutItems' : command instanceof PutUsersCommand ? 'PutUsers' : command instanceof PutEventsCommand ? 'PutEvents' : 'other';
        sent.push({ name, at: Date.now(), input: (command as { input: unknown }).input });
        return Promise.resolve({});
      },
    };
    return { sent, client: client as unknown as PersonalizeEventsClient };
  }

  it('paces PutItems to N calls per second, evenly spaced', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { sent, client } = fakeClient();
    const sender = new SdkPersonalizeSender(client, { itemsPerSecond: 10, usersPerSecond: 0 });
    const done = Promise.all(Array.from({ length: 12 }, (_, i) => sender.putItems({ datasetArn: 'arn', items: [{ itemId: `i${i}` }] })));
    await vi.runAllTimersAsync();
    await done;
    const times = sent.filter((s) => s.name === 'PutItems').map((s) => s.at);
    expect(times).toHaveLength(12);
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(100);
    // No one-second window holds more than 10 calls.
    for (let i = 10; i < times.length; i++) expect(times[i]! - times[i - 10]!).toBeGreaterThanOrEqual(1000);
    expect(sent.map((s) => (s.input as PutItemsCommandInput).items?.[0]?.itemId)).toEqual(Array.from({ length: 12 }, (_, i) => `i${i}`));
  });

  it('paces PutUsers separately from PutItems, and does not pace PutEvents', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { sent, client } = fakeClient();
    const sender = new SdkPersonalizeSender(client, { itemsPerSecond: 5, usersPerSecond: 5 });
    const done = Promise.all([
      sender.putItems({ datasetArn: 'arn', items: [{ itemId: 'i1' }] }),
      sender.putItems({ datasetArn: 'arn', items: [{ itemId: 'i2' }] }),
      sender.putUsers({ datasetArn: 'arn', users: [{ userId: 'u1' }] }),
      sender.putUsers({ datasetArn: 'arn', users: [{ userId: 'u2' }] }),
      ...Array.from({ length: 20 }, (_, i) => sender.putEvents({ trackingId: 't', sessionId: `s${i}`, eventList: [] })),
    ]);
    await vi.advanceTimersByTimeAsync(0);
    expect(sent.filter((s) => s.name === 'PutEvents')).toHaveLength(20);
    expect(sent.filter((s) => s.name === 'PutItems')).toHaveLength(1);
    expect(sent.filter((s) => s.name === 'PutUsers')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(200);
    await done;
    expect(sent.filter((s) => s.name === 'PutItems').map((s) => s.at - 1_000_000)).toEqual([0, 200]);
    expect(sent.filter((s) => s.name === 'PutUsers').map((s) => s.at - 1_000_000)).toEqual([0, 200]);
  });

  it('does not pace when the rate is 0 (unlimited)', async () => {
    const { sent, client } = fakeClient();
    const sender = new SdkPersonalizeSender(client, { itemsPerSecond: 0, usersPerSecond: 0 });
    await Promise.all(Array.from({ length: 30 }, (_, i) => sender.putItems({ datasetArn: 'arn', items: [{ itemId: `i${i}` }] })));
    expect(sent).toHaveLength(30);
  });
});
