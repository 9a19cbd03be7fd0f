import { setTimeout as sleep } from 'node:timers/promises';
import { GetRecordsCommand, GetShardIteratorCommand, PutRecordsCommand, type KinesisClient, type PutRecordsRequestEntry } from '@aws-sdk/client-kinesis';
import type { RangeRead, RangeReader, RangeRecord, ShardRange, StreamSink } from '../ops/redrive.js';
import { KINESIS_LIMITS, planPutRecords, recordBytes, type ProducerOptions, type PutOutcome, type StreamRecord } from '../stream-producer.js';

/** The stream in Kinesis: the collector and the redrive put records, the redrive reads a range back. */

export async function putRecords(kinesis: KinesisClient, records: readonly StreamRecord[], options: ProducerOptions): Promise<PutOutcome> {
  const maxAttempts = options.maxAttempts ?? 5;
  const baseDelayMs = options.baseDelayMs ?? 100;
  const outcome: PutOutcome = { stored: [], failed: [], calls: 0 };
  const lastError = new Map<number, string>();
  let pending: number[] = [];
  records.forEach((record, index) => {
    if (recordBytes(record) > KINESIS_LIMITS.bytesPerRecord) {
      outcome.failed.push({ index, error: `record is ${recordBytes(record)} bytes, Kinesis limit ${KINESIS_LIMITS.bytesPerRecord}` });
    } else if (record.partitionKey.length < 1 || record.partitionKey.length > KINESIS_LIMITS.partitionKeyChars) {
      outcome.failed.push({ index, error: `partition key must be 1-${KINESIS_LIMITS.partitionKeyChars} characters` });
    } else {
      pending.push(index);
    }
  });
  for (let attempt = 1; pending.length > 0 && attempt <= maxAttempts; attempt++) {
    if (attempt > 1) await sleep(Math.min(2_000, baseDelayMs * 2 ** (attempt - 2)) * (0.5 + Math.random() / 2));
    const retry: number[] = [];
    for (const call of planPutRecords(pending, records)) {
      outcome.calls++;
      const entries: PutRecordsRequestEntry[] = call.map((i) => ({ PartitionKey: records[i]!.partitionKey, Data: records[i]!.data }));
      try {
        const out = await kinesis.send(
          new PutRecordsCommand({
            Records: entries,
            ...(options.streamArn ? { StreamARN: options.streamArn } : { StreamName: options.streamName }),
          }),
        );
        (out.Records ?? []).forEach((result, position) => {
          const index = call[position]!;
          if (result.ErrorCode) {
            lastError.set(index, `${result.ErrorCode}: ${result.ErrorMessage ?? ''}`.trim());
            retry.push(index);
          } else {
            outcome.stored.push(index);
          }
        });
      } catch (error) {
        for (const index of call) lastError.set(index, (error as Error).message);
        retry.push(...call);
      }
    }
    pending = retry;
  }
  for (const index of pending) outcome.failed.push({ index, error: lastError.get(index) ?? 'not stored' });
  outcome.stored.sort((a, b) => a - b);
  outcome.failed.sort((a, b) => a.index - b.index);
  return outcome;
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
