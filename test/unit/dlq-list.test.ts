import { describe, expect, it } from 'vitest';
import type { KinesisOnFailureRecord } from '../../local/poller.js';
import { sqsSafeJson, type DeadLetterRecord } from '../../shared/dlq.js';
import {
  byFailedAt,
  describeMessage,
  EXCERPT_CHARS,
  formatJsonLines,
  formatTable,
  listDeadLetters,
  matches,
  oneLine,
  type DlqEntry,
  type PeekQueue,
} from '../../shared/ops/dlq-list.js';
import type { QueueMessage } from '../../shared/ops/redrive.js';

const NOW = Date.parse('2026-11-23T12:00:00Z');

function deadLetter(extra: Partial<DeadLetterRecord> = {}): DeadLetterRecord {
  return {
    reason: 'sessionId: sessionId is blank or the literal text null, undefined or nan',
    stage: 'validate',
    source: 'native',
    receivedAt: new Date(NOW - 2_000).toISOString(),
    payload: JSON.stringify({ kind: 'interaction', eventId: 'e-1', sessionId: 'null' }),
    eventId: 'e-1',
    kind: 'interaction',
    failedAt: new Date(NOW - 1_000).toISOString(),
    ...extra,
  };
}

function onFailure(): KinesisOnFailureRecord {
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
      streamArn: 'arn:aws:kinesis:us-east-1:000000000000:stream/events',
    },
  };
}

const entryOf = (body: unknown, id = 'm-1') => describeMessage({ id, body: typeof body === 'string' ? body : sqsSafeJson(body) });

describe('describeMessage', () => {
  it('shows a dead-letter record by its own fields, and --json gets the record as it is', () => {
    const record = deadLetter({ source: 'segment', payload: '{"kind":"interaction","eventId":"e-1","name":"é"}' });
    const entry = entryOf(record);
    expect(entry).toMatchObject({ messageId: 'm-1', stage: 'validate', reason: record.reason, eventId: 'e-1', kind: 'interaction', source: 'segment', failedAt: record.failedAt });
    expect(entry.payload).toBe(record.payload);
    expect(entry.record).toEqual(record);
  });

  it('labels a record written before rejections carried eventId and kind from its payload', () => {
    const { eventId: _e, kind: _k, ...old } = deadLetter({ source: 'unknown', payload: '{"kind":"item","eventId":"old-1","source":"feed"}' });
    expect(entryOf(old)).toMatchObject({ eventId: 'old-1', kind: 'item', source: 'feed' });
    // The record's own labels win; base64 and S3-held payloads are not parsed.
    expect(entryOf(deadLetter({ eventId: 'own', payload: '{"eventId":"other"}' })).eventId).toBe('own');
    const { eventId: _e2, kind: _k2, ...binary } = deadLetter({ stage: 'decode', source: 'unknown', payload: Buffer.from('{"eventId":"x"}').toString('base64'), payloadEncoding: 'base64' });
    const entry = entryOf(binary);
    expect(entry.eventId).toBeUndefined();
    expect(entry.source).toBe('unknown');
    expect(entry.payload).toMatch(/^\(base64\) /);
  });

  it('marks a payload whose full text is in S3', () => {
    expect(entryOf(deadLetter({ payloadS3Key: 'dlq-payloads/x.txt' })).payload).toMatch(/^\(start; all in S3\) \{/);
  });

  it("shows the event source mapping's on-failure record by its range", () => {
    const entry = entryOf(onFailure());
    expect(entry).toMatchObject({ stage: 'on-failure', reason: 'on-failure record: RetryAttemptsExhausted', payload: 'shardId-000000000000 100..102 (3 records)' });
    expect(entry.eventId).toBeUndefined();
    expect(entryOf({ ...onFailure(), redriveReason: 'records 100..102 are no longer on the stream' }).reason).toBe('records 100..102 are no longer on the stream');
  });

  it('shows anything else as unrecognised, and --json wraps a body that is not JSON', () => {
    const notJson = entryOf('hello\nworld');
    expect(notJson).toMatchObject({ stage: 'unrecognised', reason: 'message body is not JSON', payload: 'hello\nworld', record: { body: 'hello\nworld' } });
    expect(entryOf({ some: 'thing' })).toMatchObject({ stage: 'unrecognised', record: { some: 'thing' } });
  });
});

describe('filters', () => {
  const entry = entryOf(deadLetter());
  it('--stage is exact, --reason a case-insensitive substring, both must match', () => {
    expect(matches(entry, {})).toBe(true);
    expect(matches(entry, { stage: 'validate' })).toBe(true);
    expect(matches(entry, { stage: 'preflight' })).toBe(false);
    expect(matches(entry, { reason: 'LITERAL TEXT null' })).toBe(true);
    expect(matches(entry, { reason: 'timestamp' })).toBe(false);
    expect(matches(entry, { stage: 'validate', reason: 'timestamp' })).toBe(false);
  });
});

describe('oneLine', () => {
  it('folds whitespace, neutralises terminal escapes and invisible characters, and cuts with an ellipsis', () => {
    expect(oneLine('  a\n\n b\t\r\nc  ', 80)).toBe('a b c');
    expect(oneLine('\u001b[2J\u001b]0;pwned\u0007x', 80)).toBe('?[2J?]0;pwned?x');
    expect(oneLine('a\u202eb\u200bc\ufeffd\ud800e', 80)).toBe('a?b?c?d?e');
    expect(oneLine('x'.repeat(100), 10)).toBe(`${'x'.repeat(9)}…`);
    expect(oneLine('👍'.repeat(20), 10)).toBe(`${'👍'.repeat(9)}…`);
    expect(oneLine('exactly10!', 10)).toBe('exactly10!');
  });
});

describe('formatTable', () => {
  it('has a header and one aligned line per record, the payload cut to an excerpt', () => {
    const entries = [entryOf(deadLetter({ payload: `{"a":"${'p'.repeat(200)}"}` }), 'm-1'), entryOf(onFailure(), 'm-2'), entryOf('not\njson', 'm-3')];
    const lines = formatTable(entries);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^reason\s+stage\s+eventId\s+kind\s+source\s+payload$/);
    const payloadAt = lines[0]!.indexOf('payload');
    expect(lines[1]!.slice(payloadAt)).toBe(`{"a":"${'p'.repeat(EXCERPT_CHARS - 7)}…`);
    expect(lines[1]!.slice(lines[0]!.indexOf('stage')).startsWith('validate ')).toBe(true);
    expect(lines[2]!.slice(payloadAt)).toBe('shardId-000000000000 100..102 (3 records)');
    expect(lines[3]!.slice(payloadAt)).toBe('not json');
    for (const line of lines) expect(line).not.toMatch(/\n/);
  });

  it('cuts a long reason and a 256-character eventId to their columns', () => {
    const [, line] = formatTable([entryOf(deadLetter({ reason: 'r'.repeat(300), eventId: 'e'.repeat(256) }))]);
    expect(line).toContain(`${'r'.repeat(59)}…`);
    expect(line).not.toContain('r'.repeat(60));
    expect(line).toContain(`${'e'.repeat(39)}…`);
  });
});

describe('formatJsonLines', () => {
  it('prints every full record on its own line, each parseable', () => {
    const records = [deadLetter({ payload: 'line one\nline two' }), onFailure()];
    const lines = formatJsonLines(records.map((r, i) => entryOf(r, `m-${i}`)));
    expect(lines.map((l) => JSON.parse(l) as unknown)).toEqual(records);
    for (const line of lines) expect(line).not.toMatch(/\n/);
  });
});

describe('byFailedAt', () => {
  it('orders oldest first, records without a time last, ties by message id', () => {
    const e = (id: string, failedAt?: string): DlqEntry => ({ messageId: id, stage: 'validate', reason: '', payload: '', record: {}, ...(failedAt && { failedAt }) });
    const sorted = [e('d'), e('c', '2026-01-02T00:00:00Z'), e('b', '2026-01-01T00:00:00Z'), e('a', '2026-01-02T00:00:00Z')].sort(byFailedAt);
    expect(sorted.map((x) => x.messageId)).toEqual(['b', 'a', 'c', 'd']);
  });
});

/**
 * SQS in memory: a receive hands out visible messages (at most 10) and hides them until released;
 * `reappearAfter` makes hidden messages visible again after that many receives (the timeout ran out).
 */
class FakePeekQueue implements PeekQueue {
  readonly messages: { id: string; body: string; hiddenUntil: number; handle?: string }[] = [];
  receives = 0;
  released: string[] = [];
  failRelease = false;
  visibleCount: number | undefined;
  reappearAfter = Infinity;
  private handles = 0;

  constructor(bodies: readonly string[]) {
    bodies.forEach((body, i) => this.messages.push({ id: `id-${i}`, body, hiddenUntil: 0 }));
  }

  counts(): Promise<{ visible: number; inFlight: number }> {
    return Promise.resolve({ visible: this.visibleCount ?? this.messages.length, inFlight: 0 });
  }

  receive(max: number): Promise<QueueMessage[]> {
    this.receives++;
    const out: QueueMessage[] = [];
    for (const m of this.messages) {
      if (out.length >= max) break;
      if (m.hiddenUntil > this.receives) continue;
      m.hiddenUntil = this.receives + this.reappearAfter;
      m.handle = `h-${this.handles++}`;
      out.push({ id: m.id, receiptHandle: m.handle, body: m.body });
    }
    return Promise.resolve(out);
  }

  release(handles: readonly string[]): Promise<void> {
    if (this.failRelease) return Promise.reject(new Error('SQS down'));
    this.released.push(...handles);
    for (const m of this.messages) if (m.handle && handles.includes(m.handle)) m.hiddenUntil = 0;
    return Promise.resolve();
  }

  get hidden(): number {
    return this.messages.filter((m) => m.hiddenUntil > this.receives).length;
  }
}

const bodies = (n: number, extra: (i: number) => Partial<DeadLetterRecord> = () => ({})) =>
  Array.from({ length: n }, (_, i) => sqsSafeJson(deadLetter({ eventId: `e-${i}`, failedAt: new Date(NOW + i).toISOString(), ...extra(i) })));

describe('listDeadLetters', () => {
  it('reads every message once, oldest first, hands all of them back, and a second listing sees the same', async () => {
    const queue = new FakePeekQueue(bodies(25).reverse());
    const first = await listDeadLetters(queue, { limit: 1_000 });
    expect(first.entries.map((e) => e.eventId)).toEqual(Array.from({ length: 25 }, (_, i) => `e-${i}`));
    expect(first).toMatchObject({ scanned: 25, stoppedBecause: 'count', notReleased: 0 });
    expect(queue.receives).toBe(3);
    expect(queue.hidden).toBe(0);
    const second = await listDeadLetters(queue, { limit: 1_000 });
    expect(second.entries.map((e) => e.messageId)).toEqual(first.entries.map((e) => e.messageId));
  });

  it('stops at an empty receive when the queue reported fewer than it holds, or none', async () => {
    const queue = new FakePeekQueue(bodies(12));
    queue.visibleCount = 0;
    const listing = await listDeadLetters(queue, { limit: 1_000 });
    expect(listing).toMatchObject({ scanned: 12, stoppedBecause: 'empty' });
    expect(queue.hidden).toBe(0);
  });

  it('dedupes a message handed out again after its timeout ran out, and releases it by its latest handle', async () => {
    const queue = new FakePeekQueue(bodies(15));
    queue.visibleCount = 100;
    // Hidden for one receive only: the first ten come back while the last five are read.
    queue.reappearAfter = 2;
    const listing = await listDeadLetters(queue, { limit: 1_000 });
    expect(listing.entries).toHaveLength(15);
    expect(new Set(listing.entries.map((e) => e.messageId)).size).toBe(15);
    expect(listing.stoppedBecause).toBe('no-new-messages');
    expect(queue.released).toHaveLength(15);
    expect(queue.hidden).toBe(0);
  });

  it('applies the filters to what it lists and counts everything it read', async () => {
    const queue = new FakePeekQueue([
      ...bodies(6, (i) => (i % 2 === 0 ? { stage: 'preflight', reason: `eventValue: must be a number (${i})` } : {})),
      sqsSafeJson(onFailure()),
      'not json',
    ]);
    const preflight = await listDeadLetters(queue, { limit: 1_000, stage: 'preflight' });
    expect(preflight.entries.map((e) => e.eventId)).toEqual(['e-0', 'e-2', 'e-4']);
    expect(preflight.scanned).toBe(8);
    expect((await listDeadLetters(queue, { limit: 1_000, reason: 'MUST BE A NUMBER (2)' })).entries.map((e) => e.eventId)).toEqual(['e-2']);
    expect((await listDeadLetters(queue, { limit: 1_000, stage: 'on-failure' })).entries).toHaveLength(1);
    expect((await listDeadLetters(queue, { limit: 1_000, stage: 'unrecognised' })).entries).toHaveLength(1);
    expect(queue.hidden).toBe(0);
  });

  it('stops at --limit', async () => {
    const queue = new FakePeekQueue(bodies(30));
    const listing = await listDeadLetters(queue, { limit: 12 });
    expect(listing.entries).toHaveLength(12);
    expect(listing.stoppedBecause).toBe('limit');
    expect(queue.receives).toBe(2);
    expect(queue.hidden).toBe(0);
  });

  it('stops when interrupted, and still returns and releases what it read', async () => {
    const queue = new FakePeekQueue(bodies(30));
    const controller = new AbortController();
    const receive = queue.receive.bind(queue);
    queue.receive = async (max) => {
      const out = await receive(max);
      controller.abort();
      return out;
    };
    const listing = await listDeadLetters(queue, { limit: 1_000, signal: controller.signal });
    expect(listing).toMatchObject({ stoppedBecause: 'interrupted', scanned: 10 });
    expect(queue.hidden).toBe(0);
  });

  it('counts the messages it could not hand back, and hands back what it read when a receive fails', async () => {
    const queue = new FakePeekQueue(bodies(15));
    queue.failRelease = true;
    expect((await listDeadLetters(queue, { limit: 1_000 })).notReleased).toBe(15);

    const failing = new FakePeekQueue(bodies(15));
    const receive = failing.receive.bind(failing);
    failing.receive = async (max) => {
      if (failing.receives >= 1) throw new Error('throttled');
      return receive(max);
    };
    await expect(listDeadLetters(failing, { limit: 1_000 })).rejects.toThrow('throttled');
    expect(failing.released).toHaveLength(10);
    expect(failing.hidden).toBe(0);
  });
});
