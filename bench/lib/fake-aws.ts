import { createHash } from 'node:crypto';
import { PutRecordsCommand, type KinesisClient, type PutRecordsResultEntry } from '@aws-sdk/client-kinesis';
import {
  PutEventsCommand,
  PutItemsCommand,
  PutUsersCommand,
  type PersonalizeEventsClient,
} from '@aws-sdk/client-personalize-events';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { CapturedRequests } from '../../test/support/memory-ports.js';
import { BatchGetCommand, BatchWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { KinesisStreamRecord } from 'aws-lambda';

/**
 * In-memory stand-ins for the AWS SDK clients, under the product's own adapters
 * (DynamoIdentityStore, S3ArchiveStore, SdkPersonalizeSender, SqsDeadLetterQueue, putRecords), so
 * what is counted is what the production code would send: its chunking and batching included.
 * Each call can be made to take a fixed time, to measure wall time under service latency.
 */

export type Operation =
  | 'Kinesis.PutRecords'
  | 'DynamoDB.BatchGetItem'
  | 'DynamoDB.BatchWriteItem'
  | 'S3.PutObject'
  | 'SQS.SendMessageBatch'
  | 'Personalize.PutEvents'
  | 'Personalize.PutItems'
  | 'Personalize.PutUsers';

export class CallLog {
  readonly counts = new Map<Operation, number>();
  /** Keys read and items written, for the per-item costs DynamoDB bills. */
  dynamoKeysRead = 0;
  dynamoItemsWritten = 0;
  inFlight = 0;
  maxInFlight = 0;

  count(op: Operation): number {
    return this.counts.get(op) ?? 0;
  }

  add(op: Operation): void {
    this.counts.set(op, this.count(op) + 1);
  }

  reset(): void {
    this.counts.clear();
    this.dynamoKeysRead = 0;
    this.dynamoItemsWritten = 0;
    this.maxInFlight = 0;
  }
}

export interface FakeOptions {
  /** Every call takes this long (ms); 0 answers at once (still asynchronously, like a socket). */
  latencyMs?: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function answer<T>(log: CallLog, op: Operation, options: FakeOptions, respond: () => T): Promise<T> {
  log.add(op);
  log.inFlight++;
  log.maxInFlight = Math.max(log.maxInFlight, log.inFlight);
  try {
    if (options.latencyMs) await sleep(options.latencyMs);
    else await Promise.resolve();
    return respond();
  } finally {
    log.inFlight--;
  }
}

function unexpected(command: unknown): Error {
  return new Error(`fake AWS client: unexpected command ${(command as { constructor?: { name?: string } }).constructor?.name ?? typeof command}`);
}

/** DynamoDB (document client): BatchGet/BatchWrite against one in-memory table keyed by sessionId. */
export class FakeDynamo {
  readonly table = new Map<string, Record<string, unknown>>();
  constructor(
    readonly log: CallLog,
    private readonly options: FakeOptions = {},
  ) {}

  send(command: unknown): Promise<unknown> {
    if (command instanceof BatchGetCommand) {
      return answer(this.log, 'DynamoDB.BatchGetItem', this.options, () => {
        const responses: Record<string, Record<string, unknown>[]> = {};
        for (const [tableName, request] of Object.entries(command.input.RequestItems ?? {})) {
          const keys = request.Keys ?? [];
          this.log.dynamoKeysRead += keys.length;
          responses[tableName] = keys.flatMap((key) => {
            const item = this.table.get(String(key.sessionId));
            return item ? [item] : [];
          });
        }
        return { Responses: responses, UnprocessedKeys: {} };
      });
    }
    if (command instanceof BatchWriteCommand) {
      return answer(this.log, 'DynamoDB.BatchWriteItem', this.options, () => {
        for (const requests of Object.values(command.input.RequestItems ?? {})) {
          for (const request of requests) {
            const item = request.PutRequest?.Item;
            if (!item) continue;
            this.log.dynamoItemsWritten++;
            this.table.set(String(item.sessionId), item);
          }
        }
        return { UnprocessedItems: {} };
      });
    }
    return Promise.reject(unexpected(command));
  }

  /** Typed as the SDK client for the product's adapter; only `send` is ever called on it. */
  asClient(): DynamoDBDocumentClient {
    return this as unknown as DynamoDBDocumentClient;
  }
}

export class FakeS3 {
  bytes = 0;
  constructor(
    readonly log: CallLog,
    private readonly options: FakeOptions = {},
  ) {}

  send(command: unknown): Promise<unknown> {
    if (command instanceof PutObjectCommand) {
      return answer(this.log, 'S3.PutObject', this.options, () => {
        const body = command.input.Body;
        if (body instanceof Uint8Array) this.bytes += body.byteLength;
        return {};
      });
    }
    return Promise.reject(unexpected(command));
  }

  asClient(): S3Client {
    return this as unknown as S3Client;
  }
}

export class FakeSqs {
  constructor(
    readonly log: CallLog,
    private readonly options: FakeOptions = {},
  ) {}

  send(command: unknown): Promise<unknown> {
    if (command instanceof SendMessageBatchCommand) return answer(this.log, 'SQS.SendMessageBatch', this.options, () => ({ Successful: [], Failed: [] }));
    return Promise.reject(unexpected(command));
  }

  asClient(): SQSClient {
    return this as unknown as SQSClient;
  }
}

export class FakePersonalizeEvents {
  /** Set to keep every request (the CPU floor re-serialises them). */
  captured: CapturedRequests | undefined;
  constructor(
    readonly log: CallLog,
    private readonly options: FakeOptions = {},
  ) {}

  send(command: unknown): Promise<unknown> {
    if (command instanceof PutEventsCommand) {
      this.captured?.putEvents.push(command.input);
      return answer(this.log, 'Personalize.PutEvents', this.options, () => ({}));
    }
    if (command instanceof PutItemsCommand) {
      this.captured?.putItems.push(command.input);
      return answer(this.log, 'Personalize.PutItems', this.options, () => ({}));
    }
    if (command instanceof PutUsersCommand) {
      this.captured?.putUsers.push(command.input);
      return answer(this.log, 'Personalize.PutUsers', this.options, () => ({}));
    }
    return Promise.reject(unexpected(command));
  }

  asClient(): PersonalizeEventsClient {
    return this as unknown as PersonalizeEventsClient;
  }
}

// ------------------------------------------------------------------------------------------------
// Kinesis: shards by MD5 of the partition key, as the service does (FACTS §5d)

const HASH_SPACE = 2n ** 128n;
/** A realistic 56-digit sequence number base; each record adds one. */
const SEQUENCE_BASE = 49_590_338_271_490_256_608_559_692_538_361_571_095_921_575_989_136_588_898n;

export interface StoredRecord {
  shardId: string;
  record: KinesisStreamRecord;
}

export class FakeKinesis {
  readonly shards: KinesisStreamRecord[][];
  private sequence = 0n;
  /** The arrival time (epoch ms) stamped on records; the day's simulated clock sets it. */
  arrivalMs: () => number = Date.now;

  constructor(
    readonly log: CallLog,
    readonly shardCount: number,
    private readonly options: FakeOptions = {},
    private readonly streamArn = 'arn:aws:kinesis:us-east-1:000000000000:stream/bench',
  ) {
    this.shards = Array.from({ length: shardCount }, () => []);
  }

  shardOf(partitionKey: string): number {
    const hash = BigInt(`0x${createHash('md5').update(partitionKey, 'utf8').digest('hex')}`);
    return Number((hash * BigInt(this.shardCount)) / HASH_SPACE);
  }

  send(command: unknown): Promise<unknown> {
    if (!(command instanceof PutRecordsCommand)) return Promise.reject(unexpected(command));
    return answer(this.log, 'Kinesis.PutRecords', this.options, () => {
      const arrived = this.arrivalMs() / 1000;
      const results: PutRecordsResultEntry[] = (command.input.Records ?? []).map((entry) => {
        const partitionKey = entry.PartitionKey ?? '';
        const shard = this.shardOf(partitionKey);
        const shardId = `shardId-${String(shard).padStart(12, '0')}`;
        const sequenceNumber = String(SEQUENCE_BASE + this.sequence++);
        this.shards[shard]!.push({
          kinesis: {
            kinesisSchemaVersion: '1.0',
            partitionKey,
            sequenceNumber,
            data: Buffer.from(entry.Data ?? new Uint8Array()).toString('base64'),
            approximateArrivalTimestamp: arrived,
          },
          eventSource: 'aws:kinesis',
          eventVersion: '1.0',
          eventID: `${shardId}:${sequenceNumber}`,
          eventName: 'aws:kinesis:record',
          invokeIdentityArn: 'arn:aws:iam::000000000000:role/bench',
          awsRegion: 'us-east-1',
          eventSourceARN: this.streamArn,
        });
        return { SequenceNumber: sequenceNumber, ShardId: shardId };
      });
      return { FailedRecordCount: 0, Records: results };
    });
  }

  asClient(): KinesisClient {
    return this as unknown as KinesisClient;
  }
}

export type { CapturedRequests };
