import { ObjectMissingError } from '../../shared/storage.js';
import { describe, expect, it } from 'vitest';
import type { KinesisOnFailureRecord } from '../../local/poller.js';
import type { DeadLetterQueue, DeadLetterRecord } from '../../shared/dlq.js';
import { sqsSafeJson } from '../../shared/dlq.js';
import { parseEventMapping } from '../../shared/event-mapping.js';
import {
  classifyMessage,
  reasonKey,
  revalidate,
  runRedrive,
  streamNameOfArn,
  type ShardRange,
  type QueueMessage,
  type RangeRead,
  type RedrivableRecord,
  type RedriveDeps,
  type RedriveSettings,
} from '../../shared/ops/redrive.js';
import { loadDatasetSchemas } from '../../shared/personalize/dataset-schema.js';
import type { PutOutcome, StreamRecord } from '../../shared/stream-producer.js';

const schemas = loadDatasetSchemas();
const passthrough = parseEventMapping({ unmapped: 'passthrough', events: {} });
const strict = parseEventMapping({ unmapped: 'reject', events: { View: { eventType: 'View' } } });
const NOW = Date.parse('2026-11-23T12:00:00Z');
const ref = { shardId: 'shardId-000000000000', sequenceNumber: '1', partitionKey: '', arrivedAt: NOW };
const ARN = 'arn:aws:kinesis:us-east-1:000000000000:stream/events';

function interaction(eventId: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ kind: 'interaction', eventId, sessionId: `s-${eventId}`, eventType: 'View', itemId: 'i-1', timestamp: NOW - 60_000, ...extra });
}

function deadLetter(payload: string, extra: Partial<RedrivableRecord> = {}): DeadLetterRecord {
  return { reason: 'old reason', stage: 'validate', source: 'native', receivedAt: new Date(NOW - 120_000).toISOString(), payload, failedAt: new Date(NOW - 100_000).toISOString(), ...extra };
}

function onFailure(range: Partial<KinesisOnFailureRecord['KinesisBatchInfo']> = {}): KinesisOnFailureRecord {
  return {
    requestContext: { requestId: 'r', functionArn: 'arn:aws:lambda:us-east-1:000000000000:function:process', condition: 'RetryAttemptsExhausted', approximateInvokeCount: 3 },
    responseContext: { statusCode: 200, executedVersion: '$LATEST' },
    version: '1.0',
    timestamp: new Date(NOW).toISOString(),
    KinesisBatchInfo: {
      shardId: 'shardId-000000000000',
      startSequenceNumber: '100',
      endSequenceNumber: '102',
      approximateArrivalOfFirstRecord: new Date(NOW).toISOString(),
      approximateArrivalOfLastRecord: new Date(NOW).toISOString(),
      batchSize: 3,
      streamArn: ARN,
      ...range,
    },
  };
}

/** An SQS queue in memory: received messages stay hidden until deleted or released. */
class FakeQueue {
  private next = 0;
  readonly messages = new Map<string, { body: string; hidden: boolean }>();
  add(body: unknown): void {
    this.messages.set(`m${this.next++}`, { body: typeof body === 'string' ? body : sqsSafeJson(body), hidden: false });
  }
  bodies(): unknown[] {
    return [...this.messages.values()].map((m) => (m.body.startsWith('{') ? (JSON.parse(m.body) as unknown) : m.body));
  }
  visible(): number {
    return [...this.messages.values()].filter((m) => !m.hidden).length;
  }
  port(options: { failSend?: boolean } = {}): RedriveDeps['queue'] {
    return {
      receive: (max) => {
        const out: QueueMessage[] = [];
        for (const [id, m] of this.messages) {
          if (out.length >= max) break;
          if (m.hidden) continue;
          m.hidden = true;
          out.push({ id, receiptHandle: `h-${id}`, body: m.body });
        }
        return Promise.resolve(out);
      },
      send: (body) => {
        if (options.failSend) return Promise.reject(new Error('SQS down'));
        this.add(body);
        return Promise.resolve();
      },
      delete: (handles) => {
        for (const h of handles) this.messages.delete(h.slice(2));
        return Promise.resolve([]);
      },
      release: (handles) => {
        for (const h of handles) {
          const m = this.messages.get(h.slice(2));
          if (m) m.hidden = false;
        }
        return Promise.resolve();
      },
    };
  }
  deadLetters(fail = false): DeadLetterQueue {
    return {
      send: (records) => {
        if (fail) return Promise.resolve([...records]);
        for (const r of records) this.add(r);
        return Promise.resolve([]);
      },
    };
  }
}

class FakeStream {
  readonly put: StreamRecord[] = [];
  constructor(private readonly failing = false) {}
  sink(): RedriveDeps['stream'] {
    return {
      put: (records): Promise<PutOutcome> => {
        if (this.failing) return Promise.resolve({ stored: [], failed: records.map((_, index) => ({ index, error: 'throttled' })), calls: 1 });
        this.put.push(...records);
        return Promise.resolve({ stored: records.map((_, i) => i), failed: [], calls: 1 });
      },
    };
  }
}

function deps(queue: FakeQueue, stream: FakeStream, extra: Partial<RedriveDeps> = {}): RedriveDeps {
  return {
    queue: queue.port(),
    deadLetters: queue.deadLetters(),
    stream: stream.sink(),
    reader: { read: () => Promise.resolve({ records: [] }) },
    payloads: { get: (key) => Promise.reject(new ObjectMissingError(key)) },
    now: () => NOW,
    ...extra,
  };
}

const settings = (extra: Partial<RedriveSettings> = {}): RedriveSettings => ({ streamName: 'events', mapping: passthrough, schemas, maxMessages: 100, ...extra });

describe('telling the queue\'s messages apart', () => {
  it('recognises dead-letter records, on-failure records and anything else', () => {
    expect(classifyMessage(sqsSafeJson(deadLetter('x'))).type).toBe('dead-letter');
    expect(classifyMessage(JSON.stringify(onFailure())).type).toBe('on-failure');
    expect(classifyMessage('not json')).toEqual({ type: 'unrecognised', reason: 'message body is not JSON' });
    expect(classifyMessage('{"Records":[]}').type).toBe('unrecognised');
    expect(classifyMessage(JSON.stringify(onFailure({ startSequenceNumber: 'abc' }))).type).toBe('unrecognised');
    expect(streamNameOfArn(ARN)).toBe('events');
    expect(reasonKey('eventType "Foo" at 49600000000000000001')).toBe('eventType "" at N');
    // A quote inside a value (JSON-escaped) does not end the value early.
    expect(reasonKey(String.raw`price: expected a number, got string "a\"ada@example.com\" b"`)).toBe('price: expected a number, got string ""');
  });
});

describe('re-validation with the current configuration', () => {
  it('fixed: the same bytes, keyed by the session', () => {
    const data = Buffer.from(interaction('a', { eventType: 'Hover' }));
    expect(revalidate(data, { mapping: passthrough, schemas }, ref)).toEqual({ ok: true, record: { partitionKey: 's-a', data } });
  });

  it('still bad: the stage and reason the processor would give now', () => {
    expect(revalidate(Buffer.from(interaction('a', { eventType: 'Hover' })), { mapping: strict, schemas }, ref)).toMatchObject({
      ok: false,
      stage: 'validate',
      reason: 'eventType "Hover" has no entry in the event mapping',
    });
    expect(revalidate(Buffer.from('{"kind":'), { mapping: passthrough, schemas }, ref)).toMatchObject({ ok: false, stage: 'decode' });
    const item = JSON.stringify({ kind: 'item', eventId: 'i', itemId: 'sku', timestamp: NOW - 1000, properties: {} });
    expect(revalidate(Buffer.from(item), { mapping: passthrough, schemas }, ref)).toMatchObject({ ok: false, stage: 'preflight' });
  });
});

describe('re-validation of a record stamped for a target (docs/targets.md)', () => {
  const video = parseEventMapping({ unmapped: 'reject', events: { 'Video Content Playing': { eventType: 'Watch' } } });
  const targets = new Map([['video', { mapping: video, schemas }]]);

  it("checks it with its target's mapping, not the default's", () => {
    const hover = Buffer.from(interaction('a', { eventType: 'Hover', target: 'video' }));
    // The default mapping passes Hover through; the video target's refuses it.
    expect(revalidate(hover, { mapping: passthrough, schemas }, ref, targets)).toMatchObject({ ok: false, stage: 'validate', reason: 'eventType "Hover" has no entry in the event mapping' });
    const playing = Buffer.from(interaction('b', { eventType: 'Video Content Playing', target: 'video' }));
    expect(revalidate(playing, { mapping: strict, schemas }, ref, targets)).toMatchObject({ ok: true, record: { data: playing } });
  });

  it('keeps it in the DLQ, naming the target, when this deployment does not declare the target', () => {
    expect(revalidate(Buffer.from(interaction('c', { target: 'radio' })), { mapping: passthrough, schemas }, ref, targets)).toMatchObject({
      ok: false,
      stage: 'validate',
      reason: 'target radio is not configured in this processor (TARGETS_FILE)',
    });
  });
});

describe('re-validation of item and user updates (partial, merged by the processor)', () => {
  const user = (properties: Record<string, unknown>) => Buffer.from(JSON.stringify({ kind: 'user', eventId: 'p', userId: 'u-1', timestamp: NOW - 1000, properties }));

  it('passes an update missing a required field: the processor merges it into the stored profile, or holds it', () => {
    expect(revalidate(user({ country: 'DE' }), { mapping: passthrough, schemas }, ref)).toMatchObject({ ok: true, record: { partitionKey: 'u-1' } });
  });

  it('applies the trait renames, and still refuses an unusable value of a required field', () => {
    const renamed = parseEventMapping({ events: {}, traits: { plan: 'membershipType' } });
    expect(revalidate(user({ plan: { tier: 'gold' } }), { mapping: renamed, schemas }, ref)).toMatchObject({
      ok: false,
      stage: 'preflight',
      errors: [{ path: 'properties.plan' }],
    });
    expect(revalidate(user({ plan: { tier: 'gold' } }), { mapping: passthrough, schemas }, ref)).toMatchObject({ ok: false, reason: expect.stringContaining('no user property matches') as string });
  });
});

describe('runRedrive', () => {
  it('puts fixed records back and deletes them only once the stream stored them', async () => {
    const queue = new FakeQueue();
    queue.add(deadLetter(interaction('ok')));
    queue.add(deadLetter(Buffer.from(interaction('b64')).toString('base64'), { payloadEncoding: 'base64', stage: 'personalize' }));
    const stream = new FakeStream();
    const summary = await runRedrive(deps(queue, stream), settings());
    expect(summary.outcomes.redriven).toBe(2);
    expect(stream.put.map((r) => r.partitionKey)).toEqual(['s-ok', 's-b64']);
    expect(queue.messages.size).toBe(0);

    const failing = new FakeQueue();
    failing.add(deadLetter(interaction('kept')));
    const result = await runRedrive(deps(failing, new FakeStream(true)), settings());
    expect(result.outcomes).toMatchObject({ redriven: 0, failed: 1 });
    expect(failing.visible()).toBe(1);
  });

  it('replaces a still-bad record once per run, and keeps the original when the replacement cannot be queued', async () => {
    const queue = new FakeQueue();
    for (const id of ['x', 'y', 'z']) queue.add(deadLetter(interaction(id, { eventType: 'Hover' }), { redriveAttempts: 4 }));
    const summary = await runRedrive(deps(queue, new FakeStream()), settings({ mapping: strict }));
    expect(summary).toMatchObject({ messages: 3, outcomes: { stillBad: 3 }, newReasons: { 'eventType "" has no entry in the event mapping': 3 } });
    expect(queue.bodies()).toHaveLength(3);
    for (const body of queue.bodies()) {
      expect(body).toMatchObject({ reason: expect.stringMatching(/^eventType "Hover"/) as string, redriveAttempts: 5, lastRedriveAt: new Date(NOW).toISOString() });
    }

    const stuck = new FakeQueue();
    stuck.add(deadLetter(interaction('x', { eventType: 'Hover' })));
    const failed = await runRedrive({ ...deps(stuck, new FakeStream()), deadLetters: stuck.deadLetters(true) }, settings({ mapping: strict }));
    expect(failed.outcomes.failed).toBe(1);
    expect(stuck.bodies()).toMatchObject([{ reason: 'old reason' }]);
  });

  it('reads an oversized payload from S3, and says so when the object is gone', async () => {
    const queue = new FakeQueue();
    queue.add(deadLetter('{"kind":"inter', { payloadS3Key: 'dlq-payloads/a.txt' }));
    queue.add(deadLetter('{"kind":"inter', { payloadS3Key: 'dlq-payloads/gone.txt' }));
    const stream = new FakeStream();
    const payloads = {
      get: (key: string) => (key.endsWith('a.txt') ? Promise.resolve(Buffer.from(interaction('big'))) : Promise.reject(new ObjectMissingError(key))),
    };
    const summary = await runRedrive(deps(queue, stream, { payloads }), settings());
    expect(summary.outcomes).toMatchObject({ redriven: 1, stillBad: 1 });
    expect(stream.put.map((r) => r.partitionKey)).toEqual(['s-big']);
    expect(queue.bodies()).toMatchObject([{ reason: 'payload object dlq-payloads/gone.txt is missing from the archive bucket', payloadS3Key: 'dlq-payloads/gone.txt' }]);
  });

  it('re-puts an on-failure range, keeps one that expired, and leaves other streams and unknown messages alone', async () => {
    const queue = new FakeQueue();
    queue.add(onFailure());
    queue.add(onFailure({ shardId: 'shardId-000000000001' }));
    queue.add(onFailure({ streamArn: 'arn:aws:kinesis:us-east-1:000000000000:stream/other' }));
    queue.add('something else');
    const stream = new FakeStream();
    const reader = {
      read: (range: ShardRange): Promise<RangeRead> =>
        Promise.resolve(
          range.shardId === 'shardId-000000000000'
            ? { records: ['101', '102'].map((sequenceNumber) => ({ sequenceNumber, partitionKey: `pk-${sequenceNumber}`, data: Buffer.from(sequenceNumber) })) }
            : { records: [], gone: 'ResourceNotFoundException: no such shard' },
        ),
    };
    const summary = await runRedrive(deps(queue, stream, { reader }), settings());
    expect(summary.outcomes).toMatchObject({ reread: 1, expired: 1, otherStream: 1, unrecognised: 1 });
    // The range started with a record that had already gone: the rest went back.
    expect(summary.partiallyExpired).toBe(1);
    expect(stream.put.map((r) => r.partitionKey)).toEqual(['pk-101', 'pk-102']);
    const left = queue.bodies();
    expect(left).toHaveLength(3);
    expect(left).toContainEqual(expect.objectContaining({ redriveReason: expect.stringContaining('no longer on the stream') as string, redriveAttempts: 1 }));
    expect(queue.visible()).toBe(3);
  });

  it('in a dry run changes nothing and makes every message visible again', async () => {
    const queue = new FakeQueue();
    queue.add(deadLetter(interaction('ok')));
    queue.add(deadLetter(interaction('bad', { sessionId: 'null' })));
    const stream = new FakeStream();
    const summary = await runRedrive(deps(queue, stream), settings({ dryRun: true }));
    expect(summary.outcomes).toMatchObject({ redriven: 1, stillBad: 1 });
    expect(stream.put).toEqual([]);
    expect(queue.bodies()).toMatchObject([{ reason: 'old reason' }, { reason: 'old reason' }]);
    expect(queue.visible()).toBe(2);
  });

  it('stops at the maximum', async () => {
    const queue = new FakeQueue();
    for (let i = 0; i < 25; i++) queue.add(deadLetter(interaction(`m${i}`)));
    const summary = await runRedrive(deps(queue, new FakeStream()), settings({ maxMessages: 12 }));
    expect(summary).toMatchObject({ messages: 12, stoppedBecause: 'max' });
    expect(queue.messages.size).toBe(13);
  });
});
