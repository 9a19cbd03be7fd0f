import { SendMessageBatchCommand, type SendMessageBatchCommandInput, type SendMessageBatchCommandOutput, type SQSClient } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import type { ArchiveStore } from '../../shared/archive.js';
import { attributeValue, sqsSafeJson, type DeadLetterRecord } from '../../shared/dlq.js';
import { SqsDeadLetterQueue } from '../../shared/aws/sqs.js';

const QUEUE_URL = 'http://sqs.local/000000000000/dlq';
/** SQS: 256 KiB per message and per SendMessageBatch. */
const SQS_LIMIT = 256 * 1024;

class FakeSqs {
  readonly batches: SendMessageBatchCommandInput[] = [];
  calls = 0;
  /** Per call (0-based): entry ids SQS reports as Failed, or an error to throw. Only accepted batches are kept. */
  script: ((input: SendMessageBatchCommandInput, call: number) => { failIds?: string[]; throws?: Error }) | undefined;

  readonly send = (command: unknown): Promise<SendMessageBatchCommandOutput> => {
    if (!(command instanceof SendMessageBatchCommand)) return Promise.reject(new Error('unexpected command'));
    const input = command.input;
    const outcome = this.script?.(input, this.calls++) ?? {};
    if (outcome.throws) return Promise.reject(outcome.throws);
    this.batches.push(input);
    const failIds = new Set(outcome.failIds ?? []);
    const entries = input.Entries ?? [];
    return Promise.resolve({
      $metadata: {},
      Successful: entries.filter((e) => !failIds.has(e.Id!)).map((e) => ({ Id: e.Id, MessageId: `m-${e.Id}`, MD5OfMessageBody: '' })),
      Failed: entries.filter((e) => failIds.has(e.Id!)).map((e) => ({ Id: e.Id, SenderFault: false, Code: 'InternalError' })),
    });
  };

  bodies(): DeadLetterRecord[] {
    return this.batches.flatMap((b) => (b.Entries ?? []).map((e) => JSON.parse(e.MessageBody ?? 'null') as DeadLetterRecord));
  }
}

class FakeOverflow implements ArchiveStore {
  readonly objects = new Map<string, Buffer>();
  failing = false;
  put(key: string, body: Buffer): Promise<void> {
    if (this.failing) return Promise.reject(new Error('S3 down'));
    this.objects.set(key, body);
    return Promise.resolve();
  }
}

function setup() {
  const sqs = new FakeSqs();
  const overflow = new FakeOverflow();
  const dlq = new SqsDeadLetterQueue(sqs as unknown as SQSClient, QUEUE_URL, overflow);
  return { sqs, overflow, dlq };
}

function record(i: number, payload = `{"n":${i}}`, extra: Partial<DeadLetterRecord> = {}): DeadLetterRecord {
  return {
    reason: `record ${i} is bad`,
    stage: 'validate',
    source: 'segment',
    receivedAt: '2024-03-31T10:00:00.000Z',
    payload,
    shardId: 'shardId-000000000001',
    sequenceNumber: String(49600000000000000000n + BigInt(i)),
    failedAt: '2024-03-31T10:00:01.000Z',
    ...extra,
  };
}

const batchBytes = (input: SendMessageBatchCommandInput): number => (input.Entries ?? []).reduce((n, e) => n + Buffer.byteLength(e.MessageBody ?? ''), 0);

describe('SqsDeadLetterQueue', () => {
  it('sends batches of at most 10, each body the record itself, with stage and source attributes', async () => {
    const { sqs, dlq } = setup();
    const records = Array.from({ length: 25 }, (_, i) => record(i));
    expect(await dlq.send(records)).toEqual([]);
    expect(sqs.batches.map((b) => b.Entries?.length)).toEqual([10, 10, 5]);
    expect(sqs.batches.every((b) => b.QueueUrl === QUEUE_URL)).toBe(true);
    expect(sqs.bodies()).toEqual(records);
    expect(sqs.batches[0]!.Entries![0]!.MessageAttributes).toEqual({
      stage: { DataType: 'String', StringValue: 'validate' },
      source: { DataType: 'String', StringValue: 'segment' },
    });
  });

  it('labels an empty source as unknown (SQS refuses empty attribute values)', async () => {
    const { sqs, dlq } = setup();
    await dlq.send([record(1, '{}', { source: '' })]);
    expect(sqs.batches[0]!.Entries![0]!.MessageAttributes?.source?.StringValue).toBe('unknown');
  });

  it('sends a hostile source as a printable ASCII attribute (SQS refuses some characters there) and keeps it exact in the body', async () => {
    const { sqs, dlq } = setup();
    const source = 'seg\u0000ment\ufffe\ud800 é';
    expect(await dlq.send([record(1, '{}', { source })])).toEqual([]);
    expect(sqs.batches[0]!.Entries![0]!.MessageAttributes?.source?.StringValue).toBe('seg?ment?? ?');
    expect(sqs.bodies()[0]!.source).toBe(source);
    expect(attributeValue(' \u0007 ')).toBe(' ? ');
    expect(attributeValue('  ')).toBe('unknown');
  });

  it('keeps every batch within 256 KB in total', async () => {
    const { sqs, dlq } = setup();
    const records = Array.from({ length: 12 }, (_, i) => record(i, 'x'.repeat(90_000 + i * 1_000)));
    expect(await dlq.send(records)).toEqual([]);
    for (const batch of sqs.batches) {
      expect(batch.Entries!.length).toBeLessThanOrEqual(10);
      expect(batchBytes(batch)).toBeLessThanOrEqual(SQS_LIMIT);
    }
    expect(sqs.batches.length).toBeGreaterThanOrEqual(6);
    expect(sqs.bodies().map((r) => r.sequenceNumber)).toEqual(records.map((r) => r.sequenceNumber));
  });

  it('moves a payload too large for SQS to the overflow store and points to it', async () => {
    const { sqs, overflow, dlq } = setup();
    const big = record(7, 'y'.repeat(300_000), { subSequenceNumber: 3 });
    expect(await dlq.send([big, record(8)])).toEqual([]);
    const key = 'dlq-payloads/shardId-000000000001/49600000000000000007-3.txt';
    expect(overflow.objects.get(key)?.toString('utf8')).toBe(big.payload);
    const [sent, small] = sqs.bodies();
    expect(sent).toEqual({ ...big, payload: 'y'.repeat(2_000), payloadS3Key: key });
    expect(small?.payloadS3Key).toBeUndefined();
    for (const batch of sqs.batches) expect(batchBytes(batch)).toBeLessThanOrEqual(SQS_LIMIT);
  });

  it('counts the escaped size: 60,000 non-ASCII characters (180 KB as UTF-8) overflow once escaped', async () => {
    const { sqs, overflow, dlq } = setup();
    const payload = '€'.repeat(60_000);
    await dlq.send([record(1, payload)]);
    const [sent] = sqs.bodies();
    expect(sent?.payloadS3Key).toBeDefined();
    expect(overflow.objects.get(sent!.payloadS3Key!)?.toString('utf8')).toBe(payload);
    expect(batchBytes(sqs.batches[0]!)).toBeLessThanOrEqual(SQS_LIMIT);
  });

  it('returns the records SQS reports as Failed, and only those', async () => {
    const { sqs, dlq } = setup();
    sqs.script = (_input, call) => (call === 1 ? { failIds: ['0', '3'] } : {});
    const records = Array.from({ length: 15 }, (_, i) => record(i));
    const notQueued = await dlq.send(records);
    expect(notQueued).toEqual([records[10], records[13]]);
    expect(notQueued[0]).toBe(records[10]);
  });

  it('returns every record of a batch whose call throws, and still sends the other batches', async () => {
    const { sqs, dlq } = setup();
    sqs.script = (_input, call) => (call === 0 ? { throws: new Error('AWS.SimpleQueueService.NonExistentQueue') } : {});
    const records = Array.from({ length: 12 }, (_, i) => record(i));
    const notQueued = await dlq.send(records);
    expect(notQueued).toEqual(records.slice(0, 10));
    expect(sqs.bodies()).toEqual(records.slice(10));
  });

  it('returns a record whose overflow upload fails, and sends the others', async () => {
    const { sqs, overflow, dlq } = setup();
    overflow.failing = true;
    const big = record(1, 'z'.repeat(300_000));
    const small = record(2);
    expect(await dlq.send([big, small])).toEqual([big]);
    expect(sqs.bodies()).toEqual([small]);
  });

  it('makes no call for no records', async () => {
    const { sqs, dlq } = setup();
    expect(await dlq.send([])).toEqual([]);
    expect(sqs.batches).toEqual([]);
  });
});

describe('sqsSafeJson', () => {
  const hostile = {
    loneHigh: 'a\ud800b',
    loneLow: '\udc00',
    nonCharacter: 'x\ufffey\uffff',
    emoji: 'ok 👍🏽 🇫🇷',
    rtl: '\u200fשלום\u202e',
    controls: '\u0000\u0007\u001f\u007f',
    cjk: '中文テキスト',
    quotes: '"\\u00e9\\',
    nested: [{ k: 'é' }, null, 1.5, true],
  };

  it('is printable ASCII only', () => {
    expect(sqsSafeJson(hostile)).toMatch(/^[\x20-\x7e]*$/);
  });

  it('round-trips through JSON.parse to the original value, lone surrogates included', () => {
    const back = JSON.parse(sqsSafeJson(hostile)) as typeof hostile;
    expect(back).toEqual(hostile);
    expect(back.loneHigh).toBe('a\ud800b');
    expect(back.loneLow).toBe('\udc00');
    expect(back.nonCharacter.charCodeAt(1)).toBe(0xfffe);
  });

  it('leaves plain ASCII JSON unchanged', () => {
    const value = { a: 'plain text', n: [1, 2] };
    expect(sqsSafeJson(value)).toBe(JSON.stringify(value));
  });
});
