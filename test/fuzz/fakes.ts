import type { PutEventsCommandInput, PutItemsCommandInput, PutUsersCommandInput } from '@aws-sdk/client-personalize-events';
import type { KinesisStreamRecord } from 'aws-lambda';
import { loadEventMapping } from '../../shared/event-mapping.js';
import { LinkCache } from '../../shared/identity/cache.js';
import { loadDatasetSchemas } from '../../shared/personalize/dataset-schema.js';
import type { PersonalizeSender } from '../../shared/personalize/forward.js';
import { piiPolicy } from '../../shared/pii.js';
import type { ProcessorDeps } from '../../shared/process/process-batch.js';
import { MemoryArchive, MemoryDlq, MemoryIdentityStore, MemoryProfileStore } from '../support/memory-ports.js';
import { formatValidationErrors, validatePutEvents, validatePutItems, validatePutUsers } from '../../local/personalize-validation.js';

/** In-memory ports for fuzzing processBatch, and a Personalize sender that checks every request like the real API. */

/** The JSON the SDK would put on the wire: sentAt as epoch seconds, undefined members gone. */
export function toWire(input: unknown): unknown {
  return JSON.parse(JSON.stringify(input, function (this: Record<string, unknown>, key, value: unknown) {
    const raw = this[key];
    return raw instanceof Date ? raw.getTime() / 1000 : value;
  })) as unknown;
}

export class ValidatingSender implements PersonalizeSender {
  readonly violations: string[] = [];
  calls = 0;
  /** Fails now and then as the service does (throttling), so the retry paths run too. */
  constructor(private readonly random: () => number = () => 1) {}

  private check(what: string, body: unknown, validate: (b: unknown) => { path: string; reason: string }[]): Promise<void> {
    this.calls++;
    const errors = validate(toWire(body));
    if (errors.length > 0) {
      this.violations.push(`${what}: ${formatValidationErrors(errors)}`);
      return Promise.reject(Object.assign(new Error(formatValidationErrors(errors)), { name: 'InvalidInputException' }));
    }
    if (this.random() < 0.05) return Promise.reject(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    return Promise.resolve();
  }

  putEvents(input: PutEventsCommandInput): Promise<void> {
    return this.check('PutEvents', input, validatePutEvents);
  }
  putItems(input: PutItemsCommandInput): Promise<void> {
    return this.check('PutItems', input, validatePutItems);
  }
  putUsers(input: PutUsersCommandInput): Promise<void> {
    return this.check('PutUsers', input, validatePutUsers);
  }
}

const schemas = loadDatasetSchemas();
const mapping = loadEventMapping({});

export function fuzzDeps(sender: ValidatingSender): ProcessorDeps & { identity: MemoryIdentityStore; profiles: MemoryProfileStore; archive: MemoryArchive; dlq: MemoryDlq } {
  return {
    identity: new MemoryIdentityStore(),
    profiles: new MemoryProfileStore(),
    linkCache: new LinkCache({ positiveTtlMs: 60_000, negativeTtlMs: 1_000, maxEntries: 10_000 }),
    archive: new MemoryArchive(),
    dlq: new MemoryDlq(),
    personalize: sender,
    settings: {
      trackingId: 'fuzz-tracker',
      itemsDatasetArn: 'arn:aws:personalize:us-east-1:000000000000:dataset/fuzz/ITEMS',
      usersDatasetArn: 'arn:aws:personalize:us-east-1:000000000000:dataset/fuzz/USERS',
      forwardConcurrency: 4,
      schemas,
      mapping,
      pii: piiPolicy(),
    },
  };
}

let sequence = 49_600_000_000_000_000_000_000_000_000_000_000_000_000n;

/** Kinesis records as the event source mapping delivers them, with increasing sequence numbers. */
export function kinesisRecords(items: readonly { data: Buffer | Uint8Array; partitionKey?: string }[], shardId = 'shardId-000000000000'): KinesisStreamRecord[] {
  return items.map((item) => {
    const sequenceNumber = String((sequence += 1n));
    return {
      kinesis: {
        kinesisSchemaVersion: '1.0',
        partitionKey: item.partitionKey ?? 'pk',
        sequenceNumber,
        data: Buffer.from(item.data).toString('base64'),
        approximateArrivalTimestamp: Date.now() / 1000,
      },
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventID: `${shardId}:${sequenceNumber}`,
      eventName: 'aws:kinesis:record',
      invokeIdentityArn: 'arn:aws:iam::000000000000:role/fuzz',
      awsRegion: 'us-east-1',
      eventSourceARN: 'arn:aws:kinesis:us-east-1:000000000000:stream/fuzz',
    };
  });
}
