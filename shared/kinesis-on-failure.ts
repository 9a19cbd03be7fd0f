/**
 * What Lambda's Kinesis event source mapping writes to an SQS/SNS on-failure destination for a
 * batch it gave up on: metadata only, no record data (FACTS §5c). The redrive reads it; the local
 * stack's poller writes it.
 */

export type OnFailureCondition = 'RetryAttemptsExhausted' | 'RecordAgeExceeded';

/** What Lambda writes to an SQS/SNS on-failure destination for a Kinesis batch: metadata only (FACTS §5c). */
export interface KinesisOnFailureRecord {
  requestContext: {
    requestId: string;
    functionArn: string;
    condition: OnFailureCondition;
    approximateInvokeCount: number;
  };
  responseContext: {
    statusCode: number;
    executedVersion: string;
    functionError?: string;
  };
  version: '1.0';
  timestamp: string;
  KinesisBatchInfo: {
    shardId: string;
    startSequenceNumber: string;
    endSequenceNumber: string;
    approximateArrivalOfFirstRecord: string;
    approximateArrivalOfLastRecord: string;
    batchSize: number;
    streamArn: string;
  };
}

/** Tells an ESM on-failure record apart from the pipeline's own dead-letter records in a shared queue. */
export function isKinesisOnFailureRecord(value: unknown): value is KinesisOnFailureRecord {
  if (typeof value !== 'object' || value === null) return false;
  const info = (value as { KinesisBatchInfo?: unknown }).KinesisBatchInfo;
  return (
    typeof info === 'object' &&
    info !== null &&
    typeof (info as { startSequenceNumber?: unknown }).startSequenceNumber === 'string' &&
    typeof (info as { shardId?: unknown }).shardId === 'string'
  );
}

