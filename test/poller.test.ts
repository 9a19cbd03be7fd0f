import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  PutRecordsCommand,
  SplitShardCommand,
  type KinesisClient,
} from '@aws-sdk/client-kinesis';
import { CreateQueueCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Context, KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import {
  isKinesisOnFailureRecord,
  startPoller,
  type KinesisOnFailureRecord,
  type Poller,
  type PollerOptions,
} from '../local/poller.js';
import { kinesisClient, sqsClient } from '../shared/aws/clients.js';
import { uniqueName, useEmulators } from './support/env.js';

useEmulators();

/** Hash keys that land on the first and the second shard of a 2-shard stream. */
const LOW_HASH = '0';
const HIGH_HASH = (2n ** 128n - 1n).toString();
const MID_HASH = (2n ** 127n).toString();

let kinesis: KinesisClient;
let sqs: SQSClient;
const pollers: Poller[] = [];

beforeAll(() => {
  kinesis = kinesisClient();
  sqs = sqsClient();
});

afterEach(async () => {
  await Promise.all(pollers.splice(0).map((p) => p.stop()));
});

afterAll(() => {
  kinesis.destroy();
  sqs.destroy();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitActive(streamName: string): Promise<string> {
  for (;;) {
    const out = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: streamName }));
    const summary = out.StreamDescriptionSummary;
    if (summary?.StreamStatus === 'ACTIVE') return summary.StreamARN ?? '';
    await sleep(10);
  }
}

async function createStream(shards: number): Promise<{ streamName: string; streamArn: string }> {
  const streamName = uniqueName('poller');
  await kinesis.send(new CreateStreamCommand({ StreamName: streamName, ShardCount: shards }));
  return { streamName, streamArn: await waitActive(streamName) };
}

async function createQueue(): Promise<string> {
  const out = await sqs.send(new CreateQueueCommand({ QueueName: uniqueName('on-failure') }));
  return out.QueueUrl ?? '';
}

interface Put {
  data: string;
  shardId: string;
  sequenceNumber: string;
}

async function put(streamName: string, datas: string[], hashKey = LOW_HASH): Promise<Put[]> {
  const out = await kinesis.send(
    new PutRecordsCommand({
      StreamName: streamName,
      Records: datas.map((data, i) => ({
        Data: Buffer.from(data),
        PartitionKey: `pk-${i}`,
        ExplicitHashKey: hashKey,
      })),
    }),
  );
  expect(out.FailedRecordCount ?? 0).toBe(0);
  return (out.Records ?? []).map((r, i) => ({
    data: datas[i]!,
    shardId: r.ShardId ?? '',
    sequenceNumber: r.SequenceNumber ?? '',
  }));
}

async function receiveAll(queueUrl: string): Promise<KinesisOnFailureRecord[]> {
  const bodies: KinesisOnFailureRecord[] = [];
  for (;;) {
    const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10 }));
    if (!out.Messages?.length) return bodies;
    for (const m of out.Messages) {
      const body: unknown = JSON.parse(m.Body ?? 'null');
      if (!isKinesisOnFailureRecord(body)) throw new Error(`not an on-failure record: ${m.Body}`);
      bodies.push(body);
    }
  }
}

interface Invocation {
  event: KinesisStreamEvent;
  context: Context;
  seqs: string[];
  datas: string[];
}

type Respond = (inv: Invocation, index: number) => Promise<KinesisStreamBatchResponse | void> | KinesisStreamBatchResponse | void;

/** A handler that records every invocation and answers as `respond` says. */
function recorder(respond: Respond = () => undefined) {
  const invocations: Invocation[] = [];
  const handler = async (event: KinesisStreamEvent, context: Context) => {
    const inv: Invocation = {
      event,
      context,
      seqs: event.Records.map((r) => r.kinesis.sequenceNumber),
      datas: event.Records.map((r) => Buffer.from(r.kinesis.data, 'base64').toString('utf8')),
    };
    invocations.push(inv);
    return respond(inv, invocations.length - 1);
  };
  return { invocations, handler };
}

const logs: object[] = [];

async function poll(options: Omit<PollerOptions, 'kinesis'> & Partial<Pick<PollerOptions, 'kinesis'>>): Promise<Poller> {
  const poller = await startPoller({
    kinesis,
    pollIntervalMs: 20,
    maxBatchingWindowMs: 20,
    retryBaseDelayMs: 5,
    retryMaxDelayMs: 20,
    logger: (line) => logs.push(line),
    ...options,
  });
  pollers.push(poller);
  return poller;
}

const numbered = (n: number, prefix = 'r') => Array.from({ length: n }, (_, i) => JSON.stringify({ id: `${prefix}${i}` }));

describe('stream poller (Lambda Kinesis event source mapping)', () => {
  test('delivers every record of a 2-shard stream once, in order per shard, in the Lambda event shape', async () => {
    const { streamName, streamArn } = await createStream(2);
    const before = Date.now() / 1000;
    const low = await put(streamName, numbered(15, 'low'), LOW_HASH);
    const high = await put(streamName, numbered(15, 'high'), HIGH_HASH);
    const after = Date.now() / 1000;
    expect(new Set([...low, ...high].map((p) => p.shardId)).size).toBe(2);

    const { invocations, handler } = recorder();
    const poller = await poll({ streamName, handler, batchSize: 7, functionName: 'processor' });
    await poller.idle(5_000);

    const delivered = invocations.flatMap((inv) => inv.event.Records);
    expect(delivered).toHaveLength(30);
    expect(new Set(delivered.map((r) => r.kinesis.sequenceNumber)).size).toBe(30);

    for (const puts of [low, high]) {
      const shardId = puts[0]!.shardId;
      const mine = delivered.filter((r) => r.eventID.startsWith(`${shardId}:`));
      expect(mine.map((r) => r.kinesis.sequenceNumber)).toEqual(puts.map((p) => p.sequenceNumber));
      expect(mine.map((r) => Buffer.from(r.kinesis.data, 'base64').toString('utf8'))).toEqual(puts.map((p) => p.data));
    }
    for (const inv of invocations) {
      // A batch holds records of one shard only.
      expect(new Set(inv.event.Records.map((r) => r.eventID.split(':')[0])).size).toBe(1);
      expect(inv.context.functionName).toBe('processor');
      expect(inv.context.awsRequestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(inv.context.invokedFunctionArn).toBe('arn:aws:lambda:us-east-1:000000000000:function:processor');
      expect(inv.context.getRemainingTimeInMillis()).toBeGreaterThan(0);
    }
    expect(new Set(invocations.map((inv) => inv.context.awsRequestId)).size).toBe(invocations.length);

    const first = delivered.find((r) => r.kinesis.sequenceNumber === low[0]!.sequenceNumber)!;
    expect(first).toEqual({
      kinesis: {
        kinesisSchemaVersion: '1.0',
        partitionKey: 'pk-0',
        sequenceNumber: low[0]!.sequenceNumber,
        data: Buffer.from(low[0]!.data).toString('base64'),
        approximateArrivalTimestamp: expect.any(Number) as number,
      },
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventID: `${low[0]!.shardId}:${low[0]!.sequenceNumber}`,
      eventName: 'aws:kinesis:record',
      invokeIdentityArn: expect.stringMatching(/^arn:aws:iam::000000000000:role\//) as string,
      awsRegion: 'us-east-1',
      eventSourceARN: streamArn,
    });
    // Epoch seconds, not milliseconds.
    expect(first.kinesis.approximateArrivalTimestamp).toBeGreaterThanOrEqual(before - 1);
    expect(first.kinesis.approximateArrivalTimestamp).toBeLessThanOrEqual(after + 1);

    const stats = poller.stats();
    expect(stats.recordsDelivered).toBe(30);
    expect(stats.batchesSucceeded).toBe(stats.invocations);
    expect(stats.shards.map((s) => s.checkpoint).sort()).toEqual(
      [low.at(-1)!.sequenceNumber, high.at(-1)!.sequenceNumber].sort(),
    );
    expect(stats.shards.every((s) => s.pendingRecords === 0)).toBe(true);
  });

  test('never puts more than batchSize records in one invocation', async () => {
    const { streamName } = await createStream(1);
    await put(streamName, numbered(25));
    const { invocations, handler } = recorder();
    const poller = await poll({ streamName, handler, batchSize: 10 });
    await poller.idle(5_000);
    expect(invocations.map((inv) => inv.seqs.length)).toEqual([10, 10, 5]);
  });

  test('gathers records that arrive within the batching window into one invocation', async () => {
    const { streamName } = await createStream(1);
    const { invocations, handler } = recorder();
    const poller = await poll({ streamName, handler, maxBatchingWindowMs: 600 });
    await put(streamName, numbered(3, 'a'));
    await sleep(100);
    await put(streamName, numbered(3, 'b'));
    await poller.idle(5_000);
    expect(invocations.map((inv) => inv.seqs.length)).toEqual([6]);
  });

  test('a partial batch response re-delivers the records from the lowest failed one on, and not those before', async () => {
    const { streamName } = await createStream(1);
    const puts = await put(streamName, numbered(8));
    const seqs = puts.map((p) => p.sequenceNumber);
    const { invocations, handler } = recorder((inv, i) =>
      // Listed out of order: the lowest sequence number decides.
      i === 0 ? { batchItemFailures: [{ itemIdentifier: inv.seqs[5]! }, { itemIdentifier: inv.seqs[3]! }] } : undefined,
    );
    const poller = await poll({ streamName, handler });
    await poller.idle(5_000);

    expect(invocations.map((inv) => inv.seqs)).toEqual([seqs, seqs.slice(3)]);
    const stats = poller.stats();
    expect(stats).toMatchObject({ batchesPartiallyFailed: 1, batchesSucceeded: 1, retries: 1, onFailureRecordsSent: 0 });
    expect(stats.shards[0]!.checkpoint).toBe(seqs.at(-1));
  });

  test.each([
    ['an empty itemIdentifier', () => [{ itemIdentifier: '' }]],
    ['a sequence number that is not in the batch', () => [{ itemIdentifier: '12345' }]],
    ['a wrong key name', (seq: string) => [{ itemId: seq }]],
  ])('a partial batch response with %s fails the whole batch', async (_name, failures) => {
    const { streamName } = await createStream(1);
    const seqs = (await put(streamName, numbered(4))).map((p) => p.sequenceNumber);
    const { invocations, handler } = recorder((inv, i) =>
      // Deliberately malformed responses, as a buggy handler might return.
      i === 0 ? ({ batchItemFailures: failures(inv.seqs[2]!) } as unknown as KinesisStreamBatchResponse) : undefined,
    );
    const poller = await poll({ streamName, handler });
    await poller.idle(5_000);

    expect(invocations.map((inv) => inv.seqs)).toEqual([seqs, seqs]);
    expect(poller.stats()).toMatchObject({ batchesFailed: 1, batchesSucceeded: 1, retries: 1 });
  });

  test('ignores the response when reportBatchItemFailures is off', async () => {
    const { streamName } = await createStream(1);
    const seqs = (await put(streamName, numbered(4))).map((p) => p.sequenceNumber);
    const { invocations, handler } = recorder((inv) => ({ batchItemFailures: [{ itemIdentifier: inv.seqs[1]! }] }));
    const poller = await poll({ streamName, handler, reportBatchItemFailures: false });
    await poller.idle(5_000);
    expect(invocations.map((inv) => inv.seqs)).toEqual([seqs]);
    expect(poller.stats().shards[0]!.checkpoint).toBe(seqs.at(-1));
  });

  test('bisects around a poison record, delivers the others, sends its batch info to on-failure and moves on', async () => {
    const { streamName, streamArn } = await createStream(1);
    const queueUrl = await createQueue();
    const puts = await put(streamName, numbered(8));
    const poison = puts[5]!;
    const { invocations, handler } = recorder((inv) => {
      if (inv.seqs.includes(poison.sequenceNumber)) throw new Error('poison');
    });
    const poller = await poll({
      streamName,
      handler,
      maxRetryAttempts: 2,
      onFailure: { sqs, queueUrl },
      functionName: 'processor',
    });
    await poller.idle(5_000);

    const succeeded = invocations.filter((inv) => !inv.seqs.includes(poison.sequenceNumber)).flatMap((inv) => inv.seqs);
    expect(new Set(succeeded)).toEqual(new Set(puts.filter((p) => p !== poison).map((p) => p.sequenceNumber)));
    // The poison record alone was tried once and retried maxRetryAttempts times.
    expect(invocations.filter((inv) => inv.seqs.length === 1 && inv.seqs[0] === poison.sequenceNumber)).toHaveLength(3);

    const messages = await receiveAll(queueUrl);
    expect(messages).toHaveLength(1);
    const message = messages[0]!;
    expect(message).toMatchObject({
      requestContext: {
        functionArn: 'arn:aws:lambda:us-east-1:000000000000:function:processor',
        condition: 'RetryAttemptsExhausted',
      },
      responseContext: { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' },
      version: '1.0',
      KinesisBatchInfo: {
        shardId: poison.shardId,
        startSequenceNumber: poison.sequenceNumber,
        endSequenceNumber: poison.sequenceNumber,
        batchSize: 1,
        streamArn,
      },
    });
    expect(message.requestContext.approximateInvokeCount).toBeGreaterThanOrEqual(3);
    expect(invocations.map((inv) => inv.context.awsRequestId)).toContain(message.requestContext.requestId);
    expect(Date.parse(message.timestamp)).not.toBeNaN();
    expect(Date.parse(message.KinesisBatchInfo.approximateArrivalOfFirstRecord)).not.toBeNaN();
    expect(message.KinesisBatchInfo.approximateArrivalOfLastRecord).toBe(
      message.KinesisBatchInfo.approximateArrivalOfFirstRecord,
    );
    // Metadata only: the record itself is not in the message.
    expect(JSON.stringify(message)).not.toContain(Buffer.from(poison.data).toString('base64'));

    const stats = poller.stats();
    expect(stats.bisections).toBeGreaterThan(0);
    expect(stats.onFailureRecordsSent).toBe(1);
    expect(stats.recordsDiscarded).toBe(1);

    // The shard is not stuck.
    const later = await put(streamName, numbered(2, 'later'));
    await poller.idle(5_000);
    expect(invocations.at(-1)!.seqs).toEqual(later.map((p) => p.sequenceNumber));
    expect(poller.stats().shards[0]!.checkpoint).toBe(later.at(-1)!.sequenceNumber);
  });

  test('without bisection a failing batch is retried whole, then sent to on-failure as one batch', async () => {
    const { streamName } = await createStream(1);
    const queueUrl = await createQueue();
    const puts = await put(streamName, numbered(4));
    const seqs = puts.map((p) => p.sequenceNumber);
    const { invocations, handler } = recorder((inv) => {
      if (inv.seqs.includes(seqs[2]!)) throw new Error('poison');
    });
    const poller = await poll({
      streamName,
      handler,
      bisectBatchOnFunctionError: false,
      maxRetryAttempts: 1,
      onFailure: { sqs, queueUrl },
    });
    await poller.idle(5_000);

    expect(invocations.map((inv) => inv.seqs)).toEqual([seqs, seqs]);
    const messages = await receiveAll(queueUrl);
    expect(messages.map((m) => m.KinesisBatchInfo)).toMatchObject([
      { startSequenceNumber: seqs[0], endSequenceNumber: seqs[3], batchSize: 4 },
    ]);
    expect(messages[0]!.requestContext.approximateInvokeCount).toBe(2);
    expect(poller.stats()).toMatchObject({ bisections: 0, retries: 1, batchesFailed: 2 });
  });

  test('records older than maxRecordAgeSeconds go to on-failure without reaching the handler', async () => {
    const { streamName } = await createStream(1);
    const queueUrl = await createQueue();
    const old = await put(streamName, numbered(3, 'old'));
    await sleep(600);
    const { invocations, handler } = recorder();
    const poller = await poll({ streamName, handler, maxRecordAgeSeconds: 0.5, onFailure: { sqs, queueUrl } });
    await poller.idle(5_000);

    expect(invocations).toHaveLength(0);
    const messages = await receiveAll(queueUrl);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatchObject({
      requestContext: { condition: 'RecordAgeExceeded', approximateInvokeCount: 0 },
      KinesisBatchInfo: {
        startSequenceNumber: old[0]!.sequenceNumber,
        endSequenceNumber: old[2]!.sequenceNumber,
        batchSize: 3,
      },
    });

    const fresh = await put(streamName, numbered(2, 'fresh'));
    await poller.idle(5_000);
    expect(invocations.flatMap((inv) => inv.seqs)).toEqual(fresh.map((p) => p.sequenceNumber));
  });

  test('without an on-failure destination, exhausted records are logged and the shard moves on', async () => {
    const { streamName } = await createStream(1);
    const puts = await put(streamName, numbered(3));
    const poison = puts[0]!.sequenceNumber;
    const { invocations, handler } = recorder((inv) => {
      if (inv.seqs.includes(poison)) throw new Error('poison');
    });
    const poller = await poll({ streamName, handler, maxRetryAttempts: 0 });
    await poller.idle(5_000);

    expect(invocations.filter((inv) => !inv.seqs.includes(poison)).flatMap((inv) => inv.seqs)).toEqual(
      puts.slice(1).map((p) => p.sequenceNumber),
    );
    expect(poller.stats()).toMatchObject({ recordsDiscarded: 1, onFailureRecordsSent: 0 });
    expect(logs).toContainEqual(
      expect.objectContaining({ stream: streamName, msg: expect.stringContaining('no on-failure destination') as string }),
    );
  });

  test('LATEST skips records put before the poller started', async () => {
    const { streamName } = await createStream(1);
    await put(streamName, numbered(3, 'before'));
    const { invocations, handler } = recorder();
    const poller = await poll({ streamName, handler, startingPosition: 'LATEST' });
    const after = await put(streamName, numbered(2, 'after'));
    await poller.idle(5_000);
    expect(invocations.flatMap((inv) => inv.seqs)).toEqual(after.map((p) => p.sequenceNumber));
  });

  test('keeps going through Kinesis and SQS errors and expired iterators, losing and repeating nothing', async () => {
    const { streamName } = await createStream(1);
    const queueUrl = await createQueue();
    const faultyKinesis = kinesisClient();
    const faultySqs = sqsClient();
    let kinesisFaults = 0;
    let sqsFaults = 2;
    faultyKinesis.middlewareStack.add(
      (next, context) => (args) => {
        if (context.commandName === 'GetRecordsCommand' && kinesisFaults > 0) {
          kinesisFaults--;
          const name = kinesisFaults === 0 ? 'ExpiredIteratorException' : 'InternalFailure';
          return Promise.reject(Object.assign(new Error(`injected ${name}`), { name }));
        }
        return next(args);
      },
      { step: 'initialize', name: 'injectKinesisFaults' },
    );
    faultySqs.middlewareStack.add(
      (next, context) => (args) => {
        if (context.commandName === 'SendMessageCommand' && sqsFaults-- > 0) {
          return Promise.reject(Object.assign(new Error('injected'), { name: 'InternalError' }));
        }
        return next(args);
      },
      { step: 'initialize', name: 'injectSqsFaults' },
    );
    try {
      const first = await put(streamName, numbered(3, 'a'));
      const { invocations, handler } = recorder((inv) => {
        if (inv.datas.some((d) => d.includes('poison'))) throw new Error('poison');
      });
      const poller = await poll({
        streamName,
        handler,
        kinesis: faultyKinesis,
        maxRetryAttempts: 0,
        onFailure: { sqs: faultySqs, queueUrl },
      });
      await poller.idle(5_000);

      kinesisFaults = 3;
      const second = await put(streamName, [...numbered(3, 'b'), JSON.stringify({ id: 'poison' })]);
      await poller.idle(5_000);

      const good = [...first, ...second.slice(0, 3)].map((p) => p.sequenceNumber);
      const succeeded = invocations.filter((inv) => !inv.datas.some((d) => d.includes('poison'))).flatMap((inv) => inv.seqs);
      expect(succeeded).toEqual(good);
      expect(await receiveAll(queueUrl)).toHaveLength(1);
      expect(poller.stats().errors).toBeGreaterThanOrEqual(4);
      expect(logs).toContainEqual(expect.objectContaining({ stream: streamName, errorType: 'InternalFailure' }));
    } finally {
      await Promise.all(pollers.splice(0).map((p) => p.stop()));
      faultyKinesis.destroy();
      faultySqs.destroy();
    }
  });

  test('stop() waits for the invocation in flight, then nothing is read or invoked any more', async () => {
    const { streamName } = await createStream(2);
    const counted = kinesisClient();
    let getRecordsInFlight = 0;
    let getRecordsCalls = 0;
    counted.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName !== 'GetRecordsCommand') return next(args);
        getRecordsCalls++;
        getRecordsInFlight++;
        try {
          return await next(args);
        } finally {
          getRecordsInFlight--;
        }
      },
      { step: 'initialize', name: 'countGetRecords' },
    );
    try {
      let release: () => void = () => undefined;
      const blocked = new Promise<void>((resolve) => {
        release = resolve;
      });
      const { invocations, handler } = recorder(() => blocked);
      const poller = await poll({ streamName, handler, kinesis: counted });
      await put(streamName, numbered(2));
      await vi.waitFor(() => expect(invocations).toHaveLength(1), { timeout: 5_000, interval: 10 });

      let stopped = false;
      const stopping = poller.stop().then(() => {
        stopped = true;
      });
      await sleep(60);
      expect(stopped).toBe(false);
      release();
      await stopping;

      expect(getRecordsInFlight).toBe(0);
      const callsAtStop = getRecordsCalls;
      await put(streamName, numbered(2, 'after-stop'));
      await sleep(150);
      expect(getRecordsCalls).toBe(callsAtStop);
      expect(invocations).toHaveLength(1);
      await expect(poller.idle(100)).rejects.toThrow('stopped');
    } finally {
      counted.destroy();
    }
  });

  test('finds shards created by a reshard and reads them after their parent', async () => {
    const { streamName } = await createStream(1);
    const { invocations, handler } = recorder();
    const poller = await poll({ streamName, handler, shardDiscoveryIntervalMs: 30 });
    const parentPuts = await put(streamName, numbered(3, 'parent'));
    await poller.idle(5_000);

    await kinesis.send(
      new SplitShardCommand({ StreamName: streamName, ShardToSplit: parentPuts[0]!.shardId, NewStartingHashKey: MID_HASH }),
    );
    await waitActive(streamName);
    const children = [...(await put(streamName, numbered(2, 'lo'), LOW_HASH)), ...(await put(streamName, numbered(2, 'hi'), HIGH_HASH))];
    expect(new Set(children.map((p) => p.shardId)).size).toBe(2);

    await vi.waitFor(() => expect(invocations.flatMap((inv) => inv.seqs)).toHaveLength(7), { timeout: 5_000, interval: 10 });
    const delivered = invocations.flatMap((inv) => inv.datas);
    expect(delivered.slice(0, 3)).toEqual(parentPuts.map((p) => p.data));
    expect(new Set(delivered.slice(3))).toEqual(new Set(children.map((p) => p.data)));
    await vi.waitFor(() => expect(poller.stats().shards.find((s) => s.shardId === parentPuts[0]!.shardId)?.finished).toBe(true), {
      timeout: 5_000,
      interval: 10,
    });
  });

  test('a child shard waits until its closed parent is fully processed', async () => {
    const { streamName } = await createStream(1);
    const parentPuts = await put(streamName, numbered(4, 'parent'));
    await kinesis.send(
      new SplitShardCommand({ StreamName: streamName, ShardToSplit: parentPuts[0]!.shardId, NewStartingHashKey: MID_HASH }),
    );
    await waitActive(streamName);
    const childPuts = [...(await put(streamName, numbered(2, 'lo'), LOW_HASH)), ...(await put(streamName, numbered(2, 'hi'), HIGH_HASH))];

    // A slow first batch on the parent: the children must not overtake it.
    const { invocations, handler } = recorder(async (inv) => {
      if (inv.datas.some((d) => d.includes('parent'))) await sleep(100);
    });
    const poller = await poll({ streamName, handler, batchSize: 2 });
    await poller.idle(5_000);

    const delivered = invocations.flatMap((inv) => inv.datas);
    expect(delivered).toHaveLength(8);
    expect(delivered.slice(0, 4)).toEqual(parentPuts.map((p) => p.data));
    expect(new Set(delivered.slice(4))).toEqual(new Set(childPuts.map((p) => p.data)));
    expect(poller.stats().shards).toHaveLength(3);
  });
});
