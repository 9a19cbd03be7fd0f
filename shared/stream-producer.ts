import { setTimeout as sleep } from 'node:timers/promises';
import { PutRecordsCommand, type KinesisClient, type PutRecordsRequestEntry } from '@aws-sdk/client-kinesis';
import { packBySize } from './util/batching.js';

/**
 * Kinesis PutRecords within its limits (FACTS §5d): at most 500 records and 5 MiB per call, 1 MiB
 * per record including the partition key. Entries that fail (throttled, internal failure) are
 * retried alone with backoff; what still fails is returned so the caller never acknowledges it.
 */
export const KINESIS_LIMITS = {
  recordsPerCall: 500,
  bytesPerCall: 5 * 1024 * 1024,
  bytesPerRecord: 1024 * 1024,
  partitionKeyChars: 256,
} as const;

export interface StreamRecord {
  partitionKey: string;
  data: Uint8Array;
}

export interface PutOutcome {
  /** Indexes (into the input) stored on the stream. */
  stored: number[];
  /** Indexes not stored, with the last error for each. */
  failed: { index: number; error: string }[];
  calls: number;
}

export interface ProducerOptions {
  streamName?: string;
  streamArn?: string;
  /** Attempts per entry, first included. */
  maxAttempts?: number;
  baseDelayMs?: number;
}


function recordBytes(record: StreamRecord): number {
  return record.data.byteLength + Buffer.byteLength(record.partitionKey);
}

/** Pure: splits records into PutRecords calls within the count and size limits. */
export function planPutRecords(indexes: readonly number[], records: readonly StreamRecord[]): number[][] {
  return packBySize(indexes, (i) => recordBytes(records[i]!), KINESIS_LIMITS.recordsPerCall, KINESIS_LIMITS.bytesPerCall);
}

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
