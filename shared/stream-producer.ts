import { packBySize } from './util/batching.js';

/**
 * Kinesis PutRecords within its limits (FACTS §5d): at most 500 records and 5 MiB per call, 1 MiB
 * per record including the partition key. The adapter (shared/aws/kinesis.ts putRecords) retries
 * failed entries alone with backoff and returns what still fails, so the caller never acknowledges it.
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


export function recordBytes(record: StreamRecord): number {
  return record.data.byteLength + Buffer.byteLength(record.partitionKey);
}

/** Pure: splits records into PutRecords calls within the count and size limits. */
export function planPutRecords(indexes: readonly number[], records: readonly StreamRecord[]): number[][] {
  return packBySize(indexes, (i) => recordBytes(records[i]!), KINESIS_LIMITS.recordsPerCall, KINESIS_LIMITS.bytesPerCall);
}
