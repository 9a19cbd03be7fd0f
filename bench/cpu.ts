import { gzipSync } from 'node:zlib';
import type { KinesisStreamRecord } from 'aws-lambda';
import { canonicalMessageSchema } from '../schemas/canonical.js';
import { LinkCache } from '../shared/identity/cache.js';
import { processBatch, type ProcessorDeps } from '../shared/process/process-batch.js';
import type { CapturedRequests } from './lib/fake-aws.js';
import { entry, gcIfExposed, isMain, median, row, timed, type Measure } from './lib/harness.js';
import { MemoryArchive, MemoryDlq, MemoryIdentityStore, MemoryPersonalize, MemoryProfileStore } from '../local/memory-ports.js';
import { collectDay, esmBatches, processorSettings } from './lib/pipeline-data.js';

/**
 * Measurement 2: processor CPU throughput. processBatch over the synthetic day's Kinesis batches
 * with every AWS call answered in memory and a warm link cache, against the floor measured in the
 * same process on the same records: base64 decode + JSON.parse of every record, plus
 * JSON.stringify of the PutEvents/PutItems/PutUsers requests the processor produced from them.
 * Both are timed in CPU seconds of this process (GC threads included), alternating floor and
 * processor passes so a noisy neighbour hits both alike; medians are reported.
 */

export const BATCH_SIZE = 100;
const SESSIONS = { full: 4_000, quick: 100 } as const;

export function floorPass(batches: readonly (readonly KinesisStreamRecord[])[], requests: CapturedRequests): number {
  let sink = 0;
  for (const batch of batches) {
    for (const record of batch) {
      const parsed = JSON.parse(Buffer.from(record.kinesis.data, 'base64').toString('utf8')) as { eventId?: string };
      sink += parsed.eventId?.length ?? 0;
    }
  }
  for (const list of [requests.putEvents, requests.putItems, requests.putUsers]) {
    for (const request of list) sink += JSON.stringify(request).length;
  }
  return sink;
}

/**
 * The floor plus work the design itself requires of every record: schema validation (zod) and/or
 * the gzip NDJSON archive (one object per batch here, fewer than the processor's per-partition
 * objects, so still a floor). Not targets: they show how much of the gap is mandated work.
 */
export function designFloorPass(
  batches: readonly (readonly KinesisStreamRecord[])[],
  requests: CapturedRequests,
  work: { validate: boolean; archive: boolean },
): number {
  let sink = 0;
  for (const batch of batches) {
    const lines: string[] = [];
    for (const record of batch) {
      let message: unknown = JSON.parse(Buffer.from(record.kinesis.data, 'base64').toString('utf8'));
      if (work.validate) {
        const valid = canonicalMessageSchema.safeParse(message);
        if (valid.success) message = valid.data;
      }
      if (work.archive) lines.push(JSON.stringify(message));
    }
    if (work.archive) sink += gzipSync(`${lines.join('\n')}\n`, { level: 6 }).length;
  }
  for (const list of [requests.putEvents, requests.putItems, requests.putUsers]) {
    for (const request of list) sink += JSON.stringify(request).length;
  }
  return sink;
}

const DESIGN_FLOORS = [
  { name: 'floor + zod validation', work: { validate: true, archive: false } },
  { name: 'floor + gzip NDJSON archive', work: { validate: false, archive: true } },
  { name: 'floor + validation + archive (design floor)', work: { validate: true, archive: true } },
] as const;

export function warmDeps(): ProcessorDeps & { personalize: MemoryPersonalize } {
  // A fixed clock: the cache never expires, so every session stays warm across passes.
  const now = () => 1_700_000_000_000;
  return {
    identity: new MemoryIdentityStore(),
    profiles: new MemoryProfileStore(),
    linkCache: new LinkCache({ positiveTtlMs: 900_000, negativeTtlMs: 5_000, maxEntries: 1_000_000 }, now),
    archive: new MemoryArchive(),
    dlq: new MemoryDlq(),
    personalize: new MemoryPersonalize(),
    settings: processorSettings(),
    now,
  };
}

export async function processorPass(batches: readonly (readonly KinesisStreamRecord[])[], deps: ProcessorDeps): Promise<number> {
  let forwarded = 0;
  for (const batch of batches) {
    const { report } = await processBatch(batch, deps);
    forwarded += report.forwardedEvents;
  }
  return forwarded;
}

export const measure: Measure = async ({ quick, repeats }) => {
  const day = await collectDay({ sessions: quick ? SESSIONS.quick : SESSIONS.full }, 2);
  const batches = esmBatches(day.shards, BATCH_SIZE).map((b) => b.records);
  const records = batches.reduce((n, b) => n + b.length, 0);
  const deps = warmDeps();
  const captured: CapturedRequests = { putEvents: [], putItems: [], putUsers: [] };
  deps.personalize.captured = captured;
  // Warm-up: fills the link cache and the table, captures the requests, and lets V8 optimise.
  await processorPass(batches, deps);
  deps.personalize.captured = undefined;
  await processorPass(batches, deps);
  floorPass(batches, captured);
  for (const d of DESIGN_FLOORS) designFloorPass(batches, captured, d.work);

  const floorRuns: number[] = [];
  const runs: number[] = [];
  const wallRuns: number[] = [];
  const designRuns: number[][] = DESIGN_FLOORS.map(() => []);
  for (let i = 0; i < repeats; i++) {
    gcIfExposed();
    const f = await timed(() => void floorPass(batches, captured));
    floorRuns.push(records / f.cpu);
    for (const [k, d] of DESIGN_FLOORS.entries()) {
      gcIfExposed();
      const t = await timed(() => void designFloorPass(batches, captured, d.work));
      designRuns[k]!.push(records / t.cpu);
    }
    gcIfExposed();
    const p = await timed(async () => void (await processorPass(batches, deps)));
    runs.push(records / p.cpu);
    wallRuns.push(records / p.wall);
  }
  const requests = captured.putEvents.length + captured.putItems.length + captured.putUsers.length;
  return {
    title: 'Processor CPU throughput (warm cache, AWS answered in memory)',
    params: { records, batchSize: BATCH_SIZE, batches: batches.length, outgoingRequests: requests, repeats },
    tables: [
      {
        title: `processBatch over ${records.toLocaleString('en-US')} records in ${batches.length} batches of ${BATCH_SIZE}`,
        rows: [
          row({
            name: 'Processor events / CPU-second (= per core)',
            headline: true,
            figure: median(runs),
            unit: 'events/s',
            floor: median(floorRuns),
            floorKind: 'floor',
            target: { op: '>=', value: 0.5 },
            runs,
            floorRuns,
          }),
          ...DESIGN_FLOORS.map((d, k) =>
            row({
              name: `Processor against ${d.name}`,
              figure: median(runs),
              unit: 'events/s',
              floor: median(designRuns[k]!),
              floorKind: d.name,
              runs,
              floorRuns: designRuns[k]!,
              note: 'informative, no target: how much of the gap is work the design requires',
            }),
          ),
          row({ name: 'Processor events / wall-second (one thread)', figure: median(wallRuns), unit: 'events/s', runs: wallRuns }),
        ],
      },
    ],
    notes: [
      'Floor: base64 decode + JSON.parse of every record, and JSON.stringify of the PutEvents/PutItems/PutUsers requests the processor produced for those records (captured in the warm-up pass); no validation, stitching, archive or grouping.',
      'The processor pass includes everything processBatch does: KPL check, UTF-8 and nesting checks, zod validation, event mapping, dedupe, stitching against the warm cache, dataset-schema shaping, pre-flight limits, gzip of the archive objects, grouping and request building.',
      `CPU seconds of the whole process (process.cpuUsage), so they do not count time the OS gave to other processes; ${repeats} alternating floor/processor passes, medians.`,
    ],
  };
};

if (isMain(import.meta.url)) await entry('cpu', 'cpu.ts', measure);
