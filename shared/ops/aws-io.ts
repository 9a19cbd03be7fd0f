import { setTimeout as sleep } from 'node:timers/promises';
import { GetRecordsCommand, GetShardIteratorCommand, type KinesisClient } from '@aws-sdk/client-kinesis';
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { chunk } from '../util/batching.js';
import { putRecords, type PutOutcome, type StreamRecord } from '../stream-producer.js';
import { type ShardRange, type QueueMessage, type RangeRead, type RangeReader, type RangeRecord, type RedriveQueue, type StreamSink } from './redrive.js';

/** The AWS adapters behind the operator tools' ports (redrive, replay). */

/** SQS batch calls take at most 10 entries. */
const SQS_BATCH = 10;

export class SqsRedriveQueue implements RedriveQueue {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
    private readonly options: { visibilityTimeoutSeconds: number; waitTimeSeconds: number },
  ) {}

  async receive(max: number): Promise<QueueMessage[]> {
    const out = await this.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: this.queueUrl,
        MaxNumberOfMessages: Math.max(1, Math.min(SQS_BATCH, max)),
        VisibilityTimeout: this.options.visibilityTimeoutSeconds,
        // A short long-poll asks every SQS server, so a nearly empty queue is not mistaken for an empty one.
        WaitTimeSeconds: this.options.waitTimeSeconds,
      }),
    );
    return (out.Messages ?? []).flatMap((m) =>
      m.MessageId && m.ReceiptHandle ? [{ id: m.MessageId, receiptHandle: m.ReceiptHandle, body: m.Body ?? '' }] : [],
    );
  }

  async send(body: string): Promise<void> {
    await this.sqs.send(new SendMessageCommand({ QueueUrl: this.queueUrl, MessageBody: body }));
  }

  async delete(receiptHandles: readonly string[]): Promise<string[]> {
    const failed: string[] = [];
    for (const group of chunk(receiptHandles, SQS_BATCH)) {
      try {
        const out = await this.sqs.send(
          new DeleteMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: group.map((h, i) => ({ Id: String(i), ReceiptHandle: h })) }),
        );
        for (const f of out.Failed ?? []) {
          const handle = group[Number(f.Id)];
          if (handle !== undefined) failed.push(handle);
        }
      } catch {
        failed.push(...group);
      }
    }
    return failed;
  }

  async release(receiptHandles: readonly string[]): Promise<void> {
    for (const group of chunk(receiptHandles, SQS_BATCH)) {
      await this.sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: group.map((h, i) => ({ Id: String(i), ReceiptHandle: h, VisibilityTimeout: 0 })),
        }),
      );
    }
  }
}

/** Errors that mean the range cannot be read any more, as opposed to "try again later". */
const GONE_ERRORS = new Set(['ResourceNotFoundException', 'TrimmedDataAccessException', 'ExpiredIteratorException']);

function goneReason(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  if (GONE_ERRORS.has(error.name)) return `${error.name}: ${error.message}`;
  // A sequence number the shard does not know: the stream was recreated, or the number is from elsewhere.
  if (error.name === 'InvalidArgumentException' && /sequence ?number/i.test(error.message)) return `${error.name}: ${error.message}`;
  return undefined;
}

export interface RangeReaderOptions {
  /** Pause between reads of an empty response (a shard allows 5 GetRecords per second, shared with the ESM). */
  pauseMs?: number;
  /** Reads before giving up on reaching the end of the range (a transient failure: the message stays). */
  maxReads?: number;
}

/**
 * Re-reads a sequence range of one shard (FACTS §5c: the on-failure record carries the range, not
 * the data). Addressed by stream name, which the Kinesis emulators need and AWS accepts.
 */
export class KinesisRangeReader implements RangeReader {
  constructor(
    private readonly kinesis: KinesisClient,
    private readonly streamName: string,
    private readonly options: RangeReaderOptions = {},
  ) {}

  async read(range: ShardRange): Promise<RangeRead> {
    const end = BigInt(range.endSequenceNumber);
    let iterator: string | undefined;
    try {
      const out = await this.kinesis.send(
        new GetShardIteratorCommand({
          StreamName: this.streamName,
          ShardId: range.shardId,
          ShardIteratorType: 'AT_SEQUENCE_NUMBER',
          StartingSequenceNumber: range.startSequenceNumber,
        }),
      );
      iterator = out.ShardIterator;
    } catch (error) {
      const gone = goneReason(error);
      if (gone !== undefined) return { records: [], gone };
      throw error;
    }
    const records: RangeRecord[] = [];
    const maxReads = this.options.maxReads ?? 100;
    for (let reads = 0; iterator; reads++) {
      if (reads >= maxReads) throw new Error(`range not read to its end after ${reads} GetRecords calls`);
      let out;
      try {
        out = await this.kinesis.send(new GetRecordsCommand({ ShardIterator: iterator }));
      } catch (error) {
        const gone = goneReason(error);
        if (gone !== undefined && records.length === 0) return { records: [], gone };
        throw error;
      }
      for (const r of out.Records ?? []) {
        if (!r.SequenceNumber || BigInt(r.SequenceNumber) > end) return { records };
        records.push({ sequenceNumber: r.SequenceNumber, partitionKey: r.PartitionKey ?? '', data: r.Data ?? new Uint8Array() });
        if (BigInt(r.SequenceNumber) === end) return { records };
      }
      // At the tip with nothing more: the rest of the range is not there.
      if ((out.Records ?? []).length === 0 && out.MillisBehindLatest === 0) return { records };
      iterator = out.NextShardIterator;
      if ((out.Records ?? []).length === 0) await sleep(this.options.pauseMs ?? 200);
    }
    return { records };
  }
}

export class KinesisStreamSink implements StreamSink {
  constructor(
    private readonly kinesis: KinesisClient,
    private readonly streamName: string,
  ) {}

  put(records: readonly StreamRecord[]): Promise<PutOutcome> {
    return putRecords(this.kinesis, records, { streamName: this.streamName });
  }
}
