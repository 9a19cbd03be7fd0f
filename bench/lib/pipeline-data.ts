import type { KinesisStreamRecord } from 'aws-lambda';
import { collectorTestSettings } from '../../test/support/collector.js';
import { collect, type CollectorDeps } from '../../shared/collect/collector.js';
import type { HttpRequest } from '../../shared/collect/http.js';
import type { CollectorSecrets } from '../../shared/collect/secrets.js';
import { loadEventMapping } from '../../shared/event-mapping.js';
import { loadDatasetSchemas } from '../../shared/personalize/dataset-schema.js';
import type { ProcessorSettings, TargetSettings } from '../../shared/process/process-batch.js';
import type { Target } from '../../shared/targets.js';
import { putRecords } from '../../shared/aws/kinesis.js';
import { CallLog, FakeKinesis } from './fake-aws.js';
import { generateDay, type DayOptions, type SyntheticDay, type TimedRequest } from './synthetic-day.js';

/**
 * The synthetic day through the real collector (auth, Segment adapter, validation, the producer's
 * PutRecords planning) into an in-memory Kinesis stream, then cut into the batches the Lambda event
 * source mapping would hand the processor: per shard, in order, `batchSize` records at a time.
 */

export const BENCH_SECRETS: CollectorSecrets = {
  trackerWriteKeys: ['bench-write-key'],
  serverWriteKeys: [],
  privacyApiKeys: [],
  feedApiKeys: ['bench-feed-key'],
};

const AUTH: Record<TimedRequest['path'], string> = {
  '/v1/batch': `Basic ${Buffer.from('bench-write-key:').toString('base64')}`,
  '/v1/items': 'Bearer bench-feed-key',
  '/v1/users': 'Bearer bench-feed-key',
};

export function toHttpRequest(request: TimedRequest): HttpRequest {
  return {
    method: 'POST',
    path: request.path,
    headers: { authorization: AUTH[request.path], 'content-type': 'application/json' },
    rawBody: Buffer.from(JSON.stringify(request.body)),
    receivedAt: request.at,
  };
}

/** `targets`: the routes of several targets (docs/targets.md), as the collector's runtime passes them; unset: one target. */
export function collectorDeps(kinesis: FakeKinesis, targets?: readonly Target[]): CollectorDeps {
  return {
    stream: { put: (records) => putRecords(kinesis.asClient(), records, { streamName: 'bench', maxAttempts: 1 }) },
    secrets: () => Promise.resolve(BENCH_SECRETS),
    settings: collectorTestSettings({
      publicProfileUpdates: 'accept',
      ...(targets && { targets }),
    }),
  };
}

export interface CollectedDay {
  day: SyntheticDay;
  shards: KinesisStreamRecord[][];
  /** Stream records (canonical messages) written. */
  records: number;
  /** PutRecords calls the collector made, and the minimum: ceil(records/500) per request. */
  putRecordsCalls: number;
  putRecordsMinimum: number;
  /** Source messages the collector filtered (plain page views...) or rejected. */
  filtered: number;
  rejected: number;
}

/** With `targets`, the collector routes and stamps as it does when TARGETS_FILE is set: one record per target. */
export async function collectDay(options: DayOptions, shardCount: number, targets?: readonly Target[]): Promise<CollectedDay> {
  const day = generateDay(options);
  const log = new CallLog();
  const kinesis = new FakeKinesis(log, shardCount);
  const deps = collectorDeps(kinesis, targets);
  let records = 0;
  let minimum = 0;
  let filtered = 0;
  let rejected = 0;
  for (const request of day.requests) {
    kinesis.arrivalMs = () => request.at;
    const before = kinesis.shards.reduce((n, s) => n + s.length, 0);
    const { response, report } = await collect(toHttpRequest(request), deps);
    if (response.status >= 300 && response.status !== 207) throw new Error(`collector answered ${response.status}: ${JSON.stringify(response.body)}`);
    const written = kinesis.shards.reduce((n, s) => n + s.length, 0) - before;
    records += written;
    minimum += Math.ceil(written / 500);
    filtered += report.filtered;
    rejected += report.rejected;
  }
  return {
    day,
    shards: kinesis.shards,
    records,
    putRecordsCalls: log.count('Kinesis.PutRecords'),
    putRecordsMinimum: minimum,
    filtered,
    rejected,
  };
}

export interface EsmBatch {
  shard: number;
  records: KinesisStreamRecord[];
  /** When the batch would be invoked: its last record's arrival (epoch ms). */
  invokeAt: number;
}

/** Per shard, consecutive `batchSize` records; all shards' batches in invocation order. */
export function esmBatches(shards: readonly KinesisStreamRecord[][], batchSize: number): EsmBatch[] {
  const batches: EsmBatch[] = [];
  shards.forEach((records, shard) => {
    for (let i = 0; i < records.length; i += batchSize) {
      const slice = records.slice(i, i + batchSize);
      batches.push({ shard, records: slice, invokeAt: Math.round(slice[slice.length - 1]!.kinesis.approximateArrivalTimestamp * 1000) });
    }
  });
  return batches.sort((a, b) => a.invokeAt - b.invokeAt || a.shard - b.shard);
}

export const BENCH_DATASETS = {
  items: 'arn:aws:personalize:us-east-1:000000000000:dataset/bench/ITEMS',
  users: 'arn:aws:personalize:us-east-1:000000000000:dataset/bench/USERS',
} as const;

/**
 * The processor's settings as deployed by default (FORWARD_CONCURRENCY 8), both datasets configured;
 * `targets`: the other targets' settings (docs/targets.md), unset: one target.
 */
export function processorSettings(forwardConcurrency = 8, targets?: ReadonlyMap<string, TargetSettings>): ProcessorSettings {
  return {
    trackingId: 'bench-tracking-id',
    itemsDatasetArn: BENCH_DATASETS.items,
    usersDatasetArn: BENCH_DATASETS.users,
    forwardConcurrency,
    schemas: loadDatasetSchemas(),
    mapping: loadEventMapping({}),
    ...(targets && { targets }),
  };
}

/** Day sizes: the full run and the quick (harness check) run. */
export const DAY_SIZES = { full: 12_000, quick: 150 } as const;
