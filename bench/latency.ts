import type { KinesisStreamRecord } from 'aws-lambda';
import { S3Bucket } from '../shared/aws/s3-bucket.js';
import { SqsDeadLetterQueue } from '../shared/aws/sqs.js';
import { LinkCache } from '../shared/identity/cache.js';
import { DynamoIdentityStore } from '../shared/aws/dynamo-identity.js';
import { SdkPersonalizeSender } from '../shared/aws/personalize.js';
import { processBatch, type BatchReport } from '../shared/process/process-batch.js';
import { DynamoProfileStore } from '../shared/aws/dynamo-profiles.js';
import { CallLog, FakeDynamo, FakePersonalizeEvents, FakeS3, FakeSqs, type Operation } from './lib/fake-aws.js';
import { cpuSeconds, entry, gcIfExposed, isMain, median, row, type Measure } from './lib/harness.js';
import { collectDay, processorSettings } from './lib/pipeline-data.js';

/**
 * Measurement 3: wall time of one large batch when every AWS call takes 20 ms, next to the ideal
 * for the configured concurrency, and the batch's peak memory.
 *
 * The processor runs with its production adapters and defaults (FORWARD_CONCURRENCY 8, PutItems/
 * PutUsers paced to 10 calls/s) over in-memory SDK clients that answer after the latency. The ideal
 * counts the processor's sequential phases as the design orders them, each at its own concurrency:
 * identity read (all BatchGetItem calls in parallel), identity write (all BatchWriteItem calls in
 * parallel), profile read and profile write (the same), archive (4 PutObject at a time), then
 * forwarding: PutEvents 8 at a time, alongside
 * PutItems and PutUsers one at a time no faster than their pace. CPU work costs nothing in the ideal.
 */

export const CALL_LATENCY_MS = 20;
const ARCHIVE_CONCURRENCY = 4;
const FORWARD_CONCURRENCY = 8;
const UPSERTS_PER_SECOND = 10;
const LAMBDA_MEMORY_MB = 512;
const RECORDS = { full: 10_000, quick: 500 } as const;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** What a call "taking 20 ms" really takes here: timers fire a little late; the ideal uses this. */
async function calibrateLatency(): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 25; i++) {
    const t0 = performance.now();
    await sleep(CALL_LATENCY_MS);
    samples.push(performance.now() - t0);
  }
  return median(samples);
}

export interface Phases {
  read: number;
  write: number;
  /** Profile read and write (merged item/user records): their own round trips, after pre-flight. */
  profiles: number;
  archive: number;
  forward: number;
}

/** The ideal wall time (ms) for the calls made, phase by phase. */
export function idealMs(calls: (op: Operation) => number, latencyMs: number, profileCalls: (op: Operation) => number = () => 0): { total: number; phases: Phases } {
  const rounds = (n: number, concurrency: number) => Math.ceil(n / concurrency);
  const paced = (n: number) => (n === 0 ? 0 : (n - 1) * (1000 / UPSERTS_PER_SECOND) + latencyMs);
  const phases: Phases = {
    read: calls('DynamoDB.BatchGetItem') > 0 ? latencyMs : 0,
    write: calls('DynamoDB.BatchWriteItem') > 0 ? latencyMs : 0,
    profiles: (profileCalls('DynamoDB.BatchGetItem') > 0 ? latencyMs : 0) + (profileCalls('DynamoDB.BatchWriteItem') > 0 ? latencyMs : 0),
    archive: rounds(calls('S3.PutObject'), ARCHIVE_CONCURRENCY) * latencyMs,
    forward: Math.max(
      rounds(calls('Personalize.PutEvents'), FORWARD_CONCURRENCY) * latencyMs,
      paced(calls('Personalize.PutItems')),
      paced(calls('Personalize.PutUsers')),
    ),
  };
  return { total: phases.read + phases.write + phases.profiles + phases.archive + phases.forward, phases };
}

interface Run {
  wallMs: number;
  /** CPU this process spent during the batch: the processor's own work, which the ideal leaves out. */
  cpuMs: number;
  idealMs: number;
  phases: Phases;
  calls: Map<Operation, number>;
  profileCalls: Map<Operation, number>;
  maxInFlight: number;
  peakRssMb: number;
  peakHeapMb: number;
  baselineHeapMb: number;
  report: BatchReport;
}

async function runOnce(records: readonly KinesisStreamRecord[], latencyMs: number): Promise<Run> {
  const log = new CallLog();
  // Profile calls on their own log: they are a phase of their own in the ideal.
  const profileLog = new CallLog();
  const options = { latencyMs: CALL_LATENCY_MS };
  const s3 = new FakeS3(log, options);
  const archive = new S3Bucket(s3.asClient(), 'bench-archive');
  const deps = {
    // A fresh container: cold cache and an empty table, so every phase makes its calls.
    identity: new DynamoIdentityStore(new FakeDynamo(log, options).asClient(), 'bench-identity'),
    profiles: new DynamoProfileStore(new FakeDynamo(profileLog, options).asClient(), 'bench-identity'),
    linkCache: new LinkCache({ positiveTtlMs: 900_000, negativeTtlMs: 5_000, maxEntries: 100_000 }),
    archive,
    dlq: new SqsDeadLetterQueue(new FakeSqs(log, options).asClient(), 'https://sqs.us-east-1.amazonaws.com/000000000000/bench-dlq', archive),
    personalize: new SdkPersonalizeSender(new FakePersonalizeEvents(log, options).asClient(), {
      itemsPerSecond: UPSERTS_PER_SECOND,
      usersPerSecond: UPSERTS_PER_SECOND,
    }),
    settings: processorSettings(FORWARD_CONCURRENCY),
  };
  gcIfExposed();
  const baseline = process.memoryUsage();
  let peakRss = baseline.rss;
  let peakHeap = baseline.heapUsed;
  const sample = () => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
  };
  const sampler = setInterval(sample, 5);
  const c0 = cpuSeconds();
  const t0 = performance.now();
  const { report } = await processBatch(records, deps);
  const wallMs = performance.now() - t0;
  const cpuMs = (cpuSeconds() - c0) * 1000;
  clearInterval(sampler);
  sample();
  if (report.retried > 0 || report.deadLettered > 0) throw new Error(`latency batch: ${report.retried} retried, ${report.deadLettered} dead-lettered`);
  const ideal = idealMs((op) => log.count(op), latencyMs, (op) => profileLog.count(op));
  const mb = (bytes: number) => bytes / 2 ** 20;
  return {
    wallMs,
    cpuMs,
    idealMs: ideal.total,
    phases: ideal.phases,
    calls: new Map(log.counts),
    profileCalls: new Map(profileLog.counts),
    maxInFlight: log.maxInFlight,
    peakRssMb: mb(peakRss),
    peakHeapMb: mb(peakHeap),
    baselineHeapMb: mb(baseline.heapUsed),
    report,
  };
}

export const measure: Measure = async ({ quick, repeats }) => {
  const wanted = quick ? RECORDS.quick : RECORDS.full;
  // One shard, so one batch of `wanted` consecutive records is available from a day sized for it.
  const day = await collectDay({ sessions: Math.ceil(wanted / 7.5) }, 1);
  const records = day.shards[0]!.slice(0, wanted);
  if (records.length < wanted) throw new Error(`latency: the day has ${records.length} records, ${wanted} wanted`);
  const latencyMs = await calibrateLatency();
  await runOnce(records.slice(0, 200), latencyMs);
  const runs: Run[] = [];
  for (let i = 0; i < Math.min(repeats, 3); i++) runs.push(await runOnce(records, latencyMs));
  const wall = runs.map((r) => r.wallMs);
  const mid = runs[runs.findIndex((r) => r.wallMs === median(wall))] ?? runs[0]!;
  const c = (op: Operation) => mid.calls.get(op) ?? 0;
  const ideal = runs[0]!.idealMs;
  return {
    title: `Batch wall time under ${CALL_LATENCY_MS} ms service latency`,
    params: {
      records: records.length,
      callLatencyMs: CALL_LATENCY_MS,
      measuredTimerLatencyMs: Number(latencyMs.toFixed(2)),
      forwardConcurrency: FORWARD_CONCURRENCY,
      archiveConcurrency: ARCHIVE_CONCURRENCY,
      upsertsPerSecond: UPSERTS_PER_SECOND,
      repeats: runs.length,
    },
    tables: [
      {
        title: `One ${records.length.toLocaleString('en-US')}-record batch, cold cache, every call ${CALL_LATENCY_MS} ms`,
        rows: [
          row({
            name: 'Batch wall time',
            headline: true,
            figure: median(wall),
            unit: 'ms',
            floor: ideal,
            floorKind: 'ideal',
            target: { op: '<=', value: 1.2 },
            runs: wall,
            note: `ideal = read ${mid.phases.read.toFixed(0)} + write ${mid.phases.write.toFixed(0)} + profiles ${mid.phases.profiles.toFixed(0)} + archive ${mid.phases.archive.toFixed(0)} + forward ${mid.phases.forward.toFixed(0)} ms`,
          }),
          row({
            name: 'CPU time of the process during the batch',
            figure: median(runs.map((r) => r.cpuMs)),
            unit: 'ms',
            runs: runs.map((r) => r.cpuMs),
            note: 'the processor work the ideal leaves out; part of it overlaps the calls, part (decoding, validating, gzip before the first call) does not',
          }),
          row({
            name: 'Peak RSS during the batch (whole process)',
            headline: true,
            figure: median(runs.map((r) => r.peakRssMb)),
            unit: 'MB',
            floor: LAMBDA_MEMORY_MB,
            floorKind: 'Lambda memory',
            target: { op: '<=', value: 0.5 },
            runs: runs.map((r) => r.peakRssMb),
          }),
          row({
            name: 'Peak heap used during the batch',
            headline: true,
            figure: median(runs.map((r) => r.peakHeapMb)),
            unit: 'MB',
            floor: LAMBDA_MEMORY_MB,
            floorKind: 'Lambda memory',
            target: { op: '<=', value: 0.5 },
            runs: runs.map((r) => r.peakHeapMb),
            note: `heap used before the batch: ${median(runs.map((r) => r.baselineHeapMb)).toFixed(1)} MB`,
          }),
        ],
        notes: [
          `Calls: ${c('DynamoDB.BatchGetItem')} BatchGetItem and ${c('DynamoDB.BatchWriteItem')} BatchWriteItem for links, ${mid.profileCalls.get('DynamoDB.BatchGetItem') ?? 0} and ${mid.profileCalls.get('DynamoDB.BatchWriteItem') ?? 0} for profiles, ${c('S3.PutObject')} PutObject, ${c('Personalize.PutEvents')} PutEvents, ${c('Personalize.PutItems')} PutItems, ${c('Personalize.PutUsers')} PutUsers; at most ${mid.maxInFlight} in flight.`,
          `${mid.report.messages} messages: ${mid.report.interactions} interactions, ${mid.report.items} items, ${mid.report.users} users, ${mid.report.links} identify/alias; ${mid.report.duplicates} duplicates.`,
        ],
      },
    ],
    notes: [
      `Each call sleeps ${CALL_LATENCY_MS} ms; timers here fire after ${latencyMs.toFixed(2)} ms (median of 25), and the ideal uses that figure so timer slack is not counted against the processor.`,
      'The ideal counts no CPU time: decoding, validating, shaping and gzip of a large batch happen before the first call and add to the wall time.',
      'PutItems/PutUsers are paced to 10 calls/s (PUT_ITEMS_PER_SECOND/PUT_USERS_PER_SECOND defaults, the service quota): the ideal paces them too.',
      'RSS is the whole process (Node, the AWS SDK modules, the benchmark data), so it is an upper bound for the batch; heap used is sampled every 5 ms.',
    ],
  };
};

if (isMain(import.meta.url)) await entry('latency', 'latency.ts', measure);
