import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { PutEventsCommandInput, PutItemsCommandInput, PutUsersCommandInput } from '@aws-sdk/client-personalize-events';
import type { KinesisStreamRecord } from 'aws-lambda';
import { canonicalMessageSchema, type CanonicalMessage } from '../schemas/canonical.js';
import { LinkCache } from '../shared/identity/cache.js';
import { processBatch, type ProcessorDeps } from '../shared/process/process-batch.js';
import type { CapturedRequests } from './lib/fake-aws.js';
import { entry, gcIfExposed, isMain, median, row, timed, type Measure } from './lib/harness.js';
import { MemoryArchive, MemoryDlq, MemoryIdentityStore, MemoryPersonalize, MemoryProfileStore } from '../test/support/memory-ports.js';
import { ARCHIVE_GZIP_LEVEL, archiveKindOf } from '../shared/archive.js';
import { collectDay, esmBatches, processorSettings } from './lib/pipeline-data.js';

/**
 * Measurement 2: processor CPU throughput. processBatch over the synthetic day's Kinesis batches
 * with every AWS call answered in memory and a warm link cache, against the floor measured in the
 * same process on the same records. The floor is the work any correct processor must do on them
 * (issue 17): base64 decode + JSON.parse of every record; JSON.stringify of every message as an
 * archive line, with its stream reference as the archive keeps it; gzip of each batch's lines as
 * one object at the product's level (ARCHIVE_GZIP_LEVEL); and JSON.stringify of the
 * PutEvents/PutItems/PutUsers requests the processor produced from them, as the SDK serialises a
 * request body. The processor pass pays for the same request serialisation: its fake Personalize
 * (SdkSerializingPersonalize) stringifies every request it receives.
 * Both are timed in CPU seconds of this process (GC threads included), alternating floor and
 * processor passes so a noisy neighbour hits both alike; medians are reported.
 */

export const BATCH_SIZE = 100;
const SESSIONS = { full: 4_000, quick: 100 } as const;

/**
 * The in-memory Personalize, paying what the SDK would for each request: its JSON body. (The SDK's
 * serialiser writes sentAt as epoch seconds where JSON.stringify writes an ISO string; the work is
 * the same walk of the same request, and the floor stringifies the very same objects.)
 */
export class SdkSerializingPersonalize extends MemoryPersonalize {
  serializedChars = 0;
  override putEvents(input: PutEventsCommandInput): Promise<void> {
    this.serializedChars += JSON.stringify(input).length;
    return super.putEvents(input);
  }
  override putItems(input: PutItemsCommandInput): Promise<void> {
    this.serializedChars += JSON.stringify(input).length;
    return super.putItems(input);
  }
  override putUsers(input: PutUsersCommandInput): Promise<void> {
    this.serializedChars += JSON.stringify(input).length;
    return super.putUsers(input);
  }
}

/** Informative additions to the floor (rows without a target in measure below). */
export interface FloorWork {
  /** The canonical schema's zod parse of every message (interpreted): how much of the gap is validation the design requires. */
  validate?: boolean;
  /**
   * What the product's output adds to the floor: the archive's objects per (kind, event
   * hour), as its layout requires, rather than one per batch; and the record of what PutEvents
   * accepted (shared/archive.ts buildForwardedObjects: per event day, {"sessionId","eventId"}
   * lines, their sha256, gzip at the same level).
   */
  layout?: boolean;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** The floor (see above), plus the informative `work`. */
export function floorPass(batches: readonly (readonly KinesisStreamRecord[])[], requests: CapturedRequests, work: FloorWork = {}): number {
  let sink = 0;
  for (const batch of batches) {
    // One object per batch, or per (kind, hour) with `layout`; forwarded-record lines per day.
    const objects = new Map<string, string[]>();
    const days = new Map<number, string[]>();
    for (const record of batch) {
      // Unvalidated: the floor reads only kind, timestamp and the ids, and only for `layout`.
      let message = JSON.parse(Buffer.from(record.kinesis.data, 'base64').toString('utf8')) as CanonicalMessage;
      if (work.validate) {
        const valid = canonicalMessageSchema.safeParse(message);
        if (valid.success) message = valid.data;
      }
      // The archive line: the message and where it sat in the stream (shared/archive.ts ArchivedRecord).
      const { eventID, kinesis } = record;
      const stream = JSON.stringify({ shardId: eventID.slice(0, eventID.indexOf(':')), sequenceNumber: kinesis.sequenceNumber, arrivedAt: Math.round(kinesis.approximateArrivalTimestamp * 1000) });
      const key = work.layout ? `${archiveKindOf(message.kind)}/${Math.floor(message.timestamp / HOUR_MS)}` : '';
      let lines = objects.get(key);
      if (!lines) objects.set(key, (lines = []));
      lines.push(`${JSON.stringify(message).slice(0, -1)},"stream":${stream}}`);
      if (work.layout && message.kind === 'interaction') {
        const day = Math.floor(message.timestamp / DAY_MS);
        let accepted = days.get(day);
        if (!accepted) days.set(day, (accepted = []));
        accepted.push(`{"sessionId":${JSON.stringify(message.sessionId)},"eventId":${JSON.stringify(message.eventId)}}`);
      }
    }
    for (const lines of objects.values()) sink += gzipSync(`${lines.join('\n')}\n`, { level: ARCHIVE_GZIP_LEVEL }).length;
    for (const lines of days.values()) {
      const text = `${lines.join('\n')}\n`;
      sink += createHash('sha256').update(text).digest('hex').length + gzipSync(text, { level: ARCHIVE_GZIP_LEVEL }).length;
    }
  }
  for (const list of [requests.putEvents, requests.putItems, requests.putUsers]) {
    for (const request of list) sink += JSON.stringify(request).length;
  }
  return sink;
}

export function warmDeps(): ProcessorDeps & { personalize: SdkSerializingPersonalize } {
  // A fixed clock: the cache never expires, so every session stays warm across passes.
  const now = () => 1_700_000_000_000;
  return {
    identity: new MemoryIdentityStore(),
    profiles: new MemoryProfileStore(),
    linkCache: new LinkCache({ positiveTtlMs: 900_000, negativeTtlMs: 5_000, maxEntries: 1_000_000 }, now),
    archive: new MemoryArchive(),
    dlq: new MemoryDlq(),
    personalize: new SdkSerializingPersonalize(),
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
  floorPass(batches, captured, { validate: true });
  floorPass(batches, captured, { layout: true });

  const floorRuns: number[] = [];
  const runs: number[] = [];
  const wallRuns: number[] = [];
  const validateRuns: number[] = [];
  const layoutRuns: number[] = [];
  for (let i = 0; i < repeats; i++) {
    gcIfExposed();
    const f = await timed(() => void floorPass(batches, captured));
    floorRuns.push(records / f.cpu);
    gcIfExposed();
    const v = await timed(() => void floorPass(batches, captured, { validate: true }));
    validateRuns.push(records / v.cpu);
    gcIfExposed();
    const l = await timed(() => void floorPass(batches, captured, { layout: true }));
    layoutRuns.push(records / l.cpu);
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
          row({
            name: 'Processor against floor + zod validation',
            figure: median(runs),
            unit: 'events/s',
            floor: median(validateRuns),
            floorKind: 'floor + zod validation',
            runs,
            floorRuns: validateRuns,
            note: 'informative, no target: how much of the gap is validation the design requires',
          }),
          row({
            name: 'Processor against floor + the archive layout and the forwarded record',
            figure: median(runs),
            unit: 'events/s',
            floor: median(layoutRuns),
            floorKind: 'floor + archive layout + forwarded record',
            runs,
            floorRuns: layoutRuns,
            note: 'informative, no target: archive objects per (kind, event hour) instead of one per batch, and the record of what PutEvents accepted (lines, sha256, gzip per event day), which the issue-17 floor leaves out',
          }),
          row({ name: 'Processor events / wall-second (one thread)', figure: median(wallRuns), unit: 'events/s', runs: wallRuns }),
        ],
      },
    ],
    notes: [
      `Floor (issue 17): the work any correct processor must do on these records: base64 decode + JSON.parse of every record, JSON.stringify of every message as an archive line with its stream reference (shard, sequence number, arrival time), gzip of each batch's lines as one object at the archive's level (${ARCHIVE_GZIP_LEVEL}), and JSON.stringify of the PutEvents/PutItems/PutUsers requests the processor produced for those records (captured in the warm-up pass), as the SDK serialises a request body; no validation, stitching, grouping or request building.`,
      'The processor pass includes everything processBatch does: KPL check, UTF-8 and nesting checks, zod validation, event mapping, dedupe, stitching against the warm cache, dataset-schema shaping, pre-flight limits, archive lines and gzip of the archive objects (per kind and hour), grouping and request building, the record of what PutEvents accepted; and its in-memory Personalize JSON.stringifies every request it receives, as the SDK would.',
      'The two informative floors add to the issue-17 floor, one the interpreted zod parse of every message, the other what the product\'s output requires beyond it: archive objects per (kind, event hour) and the record of what PutEvents accepted.',
      `CPU seconds of the whole process (process.cpuUsage), so they do not count time the OS gave to other processes; ${repeats} alternating floor/processor passes, medians.`,
    ],
  };
};

if (isMain(import.meta.url)) await entry('cpu', 'cpu.ts', measure);
