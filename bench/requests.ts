import { S3Bucket } from '../shared/aws/s3-bucket.js';
import { SqsDeadLetterQueue } from '../shared/aws/sqs.js';
import { LinkCache } from '../shared/identity/cache.js';
import { DynamoIdentityStore } from '../shared/aws/dynamo-identity.js';
import { SdkPersonalizeSender } from '../shared/aws/personalize.js';
import { processBatch, type ProcessorDeps } from '../shared/process/process-batch.js';
import { DynamoProfileStore } from '../shared/aws/dynamo-profiles.js';
import { CallLog, FakeDynamo, FakePersonalizeEvents, FakeS3, FakeSqs, type Operation } from './lib/fake-aws.js';
import { entry, isMain, row, type Measure, type Row, type Table } from './lib/harness.js';
import { MinimumModel, type CallCounts, type NaiveCounts } from './lib/minimums.js';
import { collectDay, DAY_SIZES, esmBatches, processorSettings, type CollectedDay } from './lib/pipeline-data.js';

/**
 * Measurement 1: AWS requests per 1,000 events on a synthetic day, next to the minimum the
 * batching rules allow for the same batches and to a one-event-per-call forwarder.
 * The processor runs with its production adapters (DynamoIdentityStore, DynamoProfileStore,
 * S3Bucket, SdkPersonalizeSender, SqsDeadLetterQueue) over in-memory SDK clients that count
 * every call.
 */

/** The processor's documented cache defaults (IDENTITY_CACHE_TTL_SECONDS, ..._NEGATIVE_...). */
export const CACHE_POLICY = { positiveTtlMs: 900_000, negativeTtlMs: 5_000, maxEntries: 100_000 };
export const SHARDS = 2;

interface PassResult {
  batchSize: number;
  batches: number;
  calls: Map<Operation, number>;
  keysRead: number;
  minimum: CallCounts;
  naive: NaiveCounts;
  messages: number;
  duplicates: number;
  stitched: number;
}

async function pass(day: CollectedDay, batchSize: number): Promise<PassResult> {
  const log = new CallLog();
  const dynamo = new FakeDynamo(log);
  const s3 = new FakeS3(log);
  const sqs = new FakeSqs(log);
  const personalize = new FakePersonalizeEvents(log);
  const model = new MinimumModel(CACHE_POLICY);
  let clock = 0;
  const now = () => clock;
  const settings = processorSettings();
  // One warm container per shard, as the event source mapping runs them; one table for all.
  const containers = Array.from({ length: day.shards.length }, (): ProcessorDeps => {
    const archive = new S3Bucket(s3.asClient(), 'bench-archive');
    return {
      identity: new DynamoIdentityStore(dynamo.asClient(), 'bench-identity'),
      profiles: new DynamoProfileStore(dynamo.asClient(), 'bench-identity'),
      linkCache: new LinkCache(CACHE_POLICY, now),
      archive,
      dlq: new SqsDeadLetterQueue(sqs.asClient(), 'https://sqs.us-east-1.amazonaws.com/000000000000/bench-dlq', archive),
      // Pacing off: it spaces calls in time but never changes how many there are.
      personalize: new SdkPersonalizeSender(personalize.asClient(), { itemsPerSecond: 0, usersPerSecond: 0 }),
      settings,
      now,
    };
  });
  const batches = esmBatches(day.shards, batchSize);
  let messages = 0;
  let duplicates = 0;
  let stitched = 0;
  for (const batch of batches) {
    clock = batch.invokeAt;
    const { report } = await processBatch(batch.records, containers[batch.shard]!);
    // The minimum model assumes every record is valid and delivered; anything else is a bench bug.
    if (report.deadLettered > 0 || report.retried > 0 || report.invalid > 0) {
      throw new Error(`synthetic day: batch on shard ${batch.shard} dead-lettered ${report.deadLettered}, retried ${report.retried}: ${report.failure ?? ''}`);
    }
    messages += report.messages;
    duplicates += report.duplicates;
    stitched += report.stitched;
    model.batch(batch.shard, batch.records, clock);
  }
  return {
    batchSize,
    batches: batches.length,
    calls: new Map(log.counts),
    keysRead: log.dynamoKeysRead,
    minimum: model.minimum,
    naive: model.naive,
    messages,
    duplicates,
    stitched,
  };
}

const HEADLINES = new Set(['Personalize, all calls', 'DynamoDB + S3 calls', 'All AWS calls']);

function tableFor(day: CollectedDay, p: PassResult): Table {
  const per1k = (n: number) => (n * 1000) / day.records;
  const c = (op: Operation) => p.calls.get(op) ?? 0;
  const line = (name: string, figure: number, minimum: number, naive: number | undefined, target?: Row['target'], note?: string, unit = 'calls / 1k events'): Row =>
    row({
      name,
      ...(HEADLINES.has(name) && { headline: true }),
      figure: per1k(figure),
      unit,
      floor: per1k(minimum),
      floorKind: 'minimum',
      ...(target && { target }),
      ...(naive !== undefined && { reference: per1k(naive) }),
      ...(note && { note }),
    });
  const personalizeOps = c('Personalize.PutEvents') + c('Personalize.PutItems') + c('Personalize.PutUsers');
  const personalizeMin = p.minimum.putEvents + p.minimum.putItems + p.minimum.putUsers;
  const personalizeNaive = p.naive.putEvents + p.naive.putItems + p.naive.putUsers;
  const dynamoOps = c('DynamoDB.BatchGetItem') + c('DynamoDB.BatchWriteItem');
  const dynamoMin = p.minimum.batchGet + p.minimum.batchWrite;
  const dynamoNaive = p.naive.getItem + p.naive.putItem;
  const total = personalizeOps + dynamoOps + c('S3.PutObject') + c('SQS.SendMessageBatch') + day.putRecordsCalls;
  const totalMin = personalizeMin + dynamoMin + p.minimum.s3Puts + day.putRecordsMinimum;
  const totalNaive = personalizeNaive + dynamoNaive + p.naive.s3Puts + day.records;
  const exact = { op: '=' as const, value: 1 };
  const within10 = { op: '<=' as const, value: 1.1 };
  return {
    title: `Batch size ${p.batchSize} (${p.batches} batches over ${day.shards.length} shards)`,
    referenceLabel: 'one event per call',
    rows: [
      line('Personalize PutEvents', c('Personalize.PutEvents'), p.minimum.putEvents, p.naive.putEvents, exact),
      line('Personalize PutItems', c('Personalize.PutItems'), p.minimum.putItems, p.naive.putItems, exact),
      line('Personalize PutUsers', c('Personalize.PutUsers'), p.minimum.putUsers, p.naive.putUsers, exact),
      line('Personalize, all calls', personalizeOps, personalizeMin, personalizeNaive, exact),
      line('DynamoDB BatchGetItem (naive: GetItem)', c('DynamoDB.BatchGetItem'), p.minimum.batchGet, p.naive.getItem, within10),
      line('DynamoDB BatchWriteItem (naive: PutItem)', c('DynamoDB.BatchWriteItem'), p.minimum.batchWrite, p.naive.putItem, within10),
      line('DynamoDB keys read (billed per item)', p.keysRead, p.minimum.keysRead, p.naive.getItem, within10, undefined, 'keys / 1k events'),
      line('DynamoDB, all calls', dynamoOps, dynamoMin, dynamoNaive, within10),
      line('S3 PutObject (archive)', c('S3.PutObject'), p.minimum.s3Puts, p.naive.s3Puts, within10),
      line('DynamoDB + S3 calls', dynamoOps + c('S3.PutObject'), dynamoMin + p.minimum.s3Puts, dynamoNaive + p.naive.s3Puts, within10),
      line('SQS SendMessageBatch (DLQ)', c('SQS.SendMessageBatch'), 0, undefined, undefined, 'no invalid records in the synthetic day'),
      line('Kinesis PutRecords (collector)', day.putRecordsCalls, day.putRecordsMinimum, day.records, undefined, 'minimum: ceil(records / 500) per collector request'),
      line('All AWS calls', total, totalMin, totalNaive),
    ],
    notes: [
      `${p.messages} messages processed, ${p.duplicates} duplicates dropped in-batch, ${p.stitched} anonymous interactions stitched to a user.`,
    ],
  };
}

export const measure: Measure = async ({ quick }) => {
  const day = await collectDay({ sessions: quick ? DAY_SIZES.quick : DAY_SIZES.full }, SHARDS);
  const passes = [];
  for (const size of [100, 1000]) passes.push(await pass(day, size));
  const s = day.day.stats;
  return {
    title: 'AWS requests per 1,000 events (synthetic day)',
    params: {
      sessions: s.sessions,
      streamRecords: day.records,
      shards: SHARDS,
      trackerRequests: day.day.requests.length,
      loginShare: Number((s.loginSessions / s.sessions).toFixed(3)),
      knownShare: Number((s.knownSessions / s.sessions).toFixed(3)),
      anonymousShare: Number((s.anonymousSessions / s.sessions).toFixed(3)),
      longestSession: s.longestSession,
      itemUpdates: s.itemUpdates,
      userUpdates: s.userUpdates,
      retriedRequests: s.retriedRequests,
    },
    tables: passes.map((p) => tableFor(day, p)),
    notes: [
      `Events = records on the stream (canonical messages after the collector): ${day.records} from ${s.trackerMessages + s.itemUpdates + s.userUpdates} source messages (${day.filtered} filtered by the collector, e.g. page views without a product; orders split per product).`,
      `Sessions: ${(100 * s.loginSessions / s.sessions).toFixed(0)}% anonymous then logging in part-way (identify, 15% alias), ${(100 * s.knownSessions / s.sessions).toFixed(0)}% of a known user, ${(100 * s.anonymousSessions / s.sessions).toFixed(0)}% anonymous throughout; log-normal lengths (longest ${s.longestSession}); ${s.retriedRequests} tracker requests sent twice (duplicates).`,
      'Batches are cut by size only, per shard in order, as the event source mapping cuts them when traffic fills a batch within its window; at low traffic the window cuts smaller batches and every per-batch cost (S3 objects, reads, writes) rises per event for us and for the minimum alike.',
      'The minimum is computed from the records by bench/lib/minimums.ts, independently of the processor: per batch, dedupe by eventId, then PutEvents per (stitched user, session) ceil(n/10), PutItems/PutUsers ceil(distinct ids/10), BatchGetItem ceil(sessions not in the warm cache/100) under the documented cache policy (found links 900 s, "no link yet" 5 s, one cache per shard), BatchWriteItem ceil(first-time links/25), S3 one object per (kind, event-time hour).',
      'One event per call: PutEvents/PutItems/PutUsers per message (duplicates included), one GetItem per interaction, one PutItem per identify/alias, one PutObject per message, one PutRecord per record.',
    ],
  };
};

if (isMain(import.meta.url)) await entry('requests', 'requests.ts', measure);
