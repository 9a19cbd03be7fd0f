import { Session } from 'node:inspector/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { KinesisStreamRecord } from 'aws-lambda';
import { ARCHIVE_GZIP_LEVEL, FORWARDED_PREFIX } from '../shared/archive.js';
import { BATCH_SIZE, processorPass, warmDeps } from './cpu.js';
import { cpuSeconds, gcIfExposed, isMain, median } from './lib/harness.js';
import { collectDay, esmBatches } from './lib/pipeline-data.js';

/**
 * Where the processor's CPU goes, per stage, in µs per event (issue 17). Runs bench/cpu.ts's
 * processor pass (same synthetic day, warm link cache, AWS answered in memory, requests serialised
 * as the SDK would) under the V8 sampling profiler and attributes every sample to the innermost
 * frame that belongs to a known stage (STAGES below, first match walking from the leaf up).
 *
 *   node --expose-gc --import tsx bench/profile-stages.ts [--passes 10] [--sessions 4000] [--top 30] [--gzip]
 *
 *   npm run bench:profile -- [--passes 10] [--sessions 4000] [--top 30] [--gzip]
 *
 *   --top n  also lists the n functions with the most self time.
 *   --gzip   also measures gzip of the processor's own objects (archive, and the record of what
 *            PutEvents accepted) at levels 1 to 6 and 9: CPU and bytes, to choose ARCHIVE_GZIP_LEVEL.
 *
 * Sampling adds some overhead of its own; the table's shares are what matters, the total is
 * close to (slightly above) what bench/cpu.ts reports as 1e6 / events-per-CPU-second.
 */

interface CallFrame {
  functionName: string;
  url: string;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
}

const PROFILER = '(the profiler itself)';

/** Stage rules, tried on each frame from the sampled leaf towards the root; the first match wins. */
const STAGES: { stage: string; match: (f: CallFrame) => boolean }[] = [
  { stage: PROFILER, match: (f) => f.url === 'node:inspector' },
  { stage: 'GC', match: (f) => f.functionName === '(garbage collector)' },
  { stage: 'gzip (archive)', match: (f) => f.url.includes('zlib') || f.functionName === 'gzipSync' },
  { stage: 'zod validation', match: (f) => f.url.includes('/node_modules/zod/') },
  { stage: 'request serialisation (JSON.stringify, as the SDK)', match: (f) => f.url.includes('/bench/cpu.') && /put(Events|Items|Users)$/.test(f.functionName) },
  { stage: 'forwarded record (lines + sha256)', match: (f) => f.url.includes('/shared/archive.') && f.functionName === 'buildForwardedObjects' },
  { stage: 'archive serialisation (build lines + JSON.stringify)', match: (f) => f.url.includes('/shared/archive.') },
  { stage: 'decode (base64, UTF-8, nesting, JSON.parse, eventId)', match: (f) => f.url.includes('/shared/decode.') || f.url.includes('/shared/event-id.') || f.url.includes('aws-kinesis-agg') },
  { stage: 'event mapping', match: (f) => f.url.includes('/shared/event-mapping.') },
  { stage: 'PII policy', match: (f) => f.url.includes('/shared/pii.') },
  { stage: 'stitching (identity)', match: (f) => f.url.includes('/shared/identity/') },
  { stage: 'dataset-schema shaping', match: (f) => f.url.includes('/shared/personalize/dataset-schema.') },
  { stage: 'request building / pre-flight (requests.ts)', match: (f) => f.url.includes('/shared/personalize/requests.') },
  { stage: 'grouping / forwarding (forward.ts)', match: (f) => f.url.includes('/shared/personalize/forward.') },
  { stage: 'profile merge (items/users)', match: (f) => f.url.includes('/shared/profile/') },
  { stage: 'canonical schema helpers (dedupeKey...)', match: (f) => f.url.includes('/schemas/canonical.') },
  { stage: 'fake AWS (memory ports)', match: (f) => f.url.includes('memory-ports') },
  { stage: 'processBatch glue', match: (f) => f.url.includes('/shared/process/') },
  { stage: 'p-map / promises / runtime', match: (f) => f.url.includes('p-map') },
];
/** Only when no frame of the stack matched a stage: Node internals called from the bench loop or a microtask. */
const FALLBACK = { stage: 'p-map / promises / runtime', match: (f: CallFrame) => f.url.startsWith('node:') || f.functionName === '(program)' };
const OTHER = '(other: idle, bench loop)';

/** Self time per function (name and file) and the stage it was counted in, for --top: what to look at inside a stage. */
export function selfTimes(profile: Profile): Map<string, number> {
  return attribute(profile, (frame, stage) => `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*\//, '')} [${stage}]`);
}

export function stagesOf(profile: Profile): Map<string, number> {
  return attribute(profile, (_frame, stage) => stage);
}

function attribute(profile: Profile, keyOf: (leaf: CallFrame, stage: string) => string): Map<string, number> {
  const parent = new Map<number, number>();
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const stageOfNode = new Map<number, string>();
  const classify = (id: number): string => {
    const known = stageOfNode.get(id);
    if (known !== undefined) return known;
    let stage: string | undefined;
    let fallback = false;
    for (let at: number | undefined = id; at !== undefined && stage === undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      stage = STAGES.find((s) => s.match(frame))?.stage;
      fallback ||= FALLBACK.match(frame);
    }
    stage ??= fallback ? FALLBACK.stage : OTHER;
    stageOfNode.set(id, stage);
    return stage;
  };
  const micros = new Map<string, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const key = keyOf(byId.get(samples[i]!)!.callFrame, classify(samples[i]!));
    micros.set(key, (micros.get(key) ?? 0) + (deltas[i] ?? 0));
  }
  return micros;
}

function argOf(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
}

async function profileProcessor(batches: readonly (readonly KinesisStreamRecord[])[], records: number, passes: number): Promise<void> {
  const deps = warmDeps();
  // Warm-up, as in bench/cpu.ts: fills the link cache and the profile table, lets V8 optimise.
  await processorPass(batches, deps);
  await processorPass(batches, deps);
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  gcIfExposed();
  const c0 = cpuSeconds();
  await session.post('Profiler.start');
  for (let i = 0; i < passes; i++) await processorPass(batches, deps);
  const { profile } = (await session.post('Profiler.stop')) as { profile: Profile };
  const cpu = cpuSeconds() - c0;
  session.disconnect();
  const events = records * passes;
  const micros = stagesOf(profile);
  const sampled = [...micros.values()].reduce((a, b) => a + b, 0);
  const rows = [...micros.entries()].filter(([s]) => s !== OTHER && s !== PROFILER).sort((a, b) => b[1] - a[1]);
  console.log(`processor: ${records.toLocaleString('en-US')} records x ${passes} passes; ${((cpu * 1e6) / events).toFixed(2)} CPU-µs/event under the profiler (${Math.round(events / cpu).toLocaleString('en-US')} events/CPU-s)`);
  console.log('');
  console.log('| stage | µs/event | share |');
  console.log('| --- | ---: | ---: |');
  const inStages = rows.reduce((n, [, us]) => n + us, 0);
  for (const [stage, us] of rows) console.log(`| ${stage} | ${(us / events).toFixed(2)} | ${((100 * us) / inStages).toFixed(1)}% |`);
  console.log(`| **all stages** | **${(inStages / events).toFixed(2)}** | 100% |`);
  console.log('');
  console.log(`Sampled time outside the stages (idle, the bench loop, the profiler itself): ${((sampled - inStages) / events).toFixed(2)} µs/event.`);
  const top = argOf('--top', 0);
  if (top > 0) {
    console.log('');
    console.log(`Top ${top} functions by self time (µs/event):`);
    for (const [name, us] of [...selfTimes(profile).entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${(us / events).toFixed(2)}  ${name}`);
  }
}

/** gzip levels measured on the processor's own objects; 7 and 8 lie between 6 and 9. */
const LEVELS = [1, 2, 3, 4, 5, 6, 9];

/**
 * gzip CPU and bytes at each level over the objects the processor itself writes in one pass (its
 * archive objects, per kind and hour, and its record of what PutEvents accepted), each object
 * compressed alone as the processor does. Levels alternate across rounds; medians.
 */
async function gzipLevels(batches: readonly (readonly KinesisStreamRecord[])[], records: number, rounds = 7): Promise<void> {
  const texts: { archive: string[]; forwarded: string[] } = { archive: [], forwarded: [] };
  const deps = warmDeps();
  deps.archive = {
    put: (key, body) => {
      (key.startsWith(FORWARDED_PREFIX) ? texts.forwarded : texts.archive).push(gunzipSync(body).toString('utf8'));
      return Promise.resolve();
    },
  };
  await processorPass(batches, deps);
  for (const [what, list] of Object.entries(texts)) {
    const raw = list.reduce((n, t) => n + Buffer.byteLength(t), 0);
    const cpu = new Map<number, number[]>(LEVELS.map((l) => [l, []]));
    const bytes = new Map<number, number>();
    for (let round = 0; round < rounds; round++) {
      // No forced GC here: the sweeping it leaves behind would be timed with the next level.
      for (const level of LEVELS) {
        const c0 = cpuSeconds();
        let n = 0;
        for (const t of list) n += gzipSync(t, { level }).length;
        cpu.get(level)!.push(((cpuSeconds() - c0) * 1e6) / records);
        bytes.set(level, n);
      }
    }
    const base = bytes.get(ARCHIVE_GZIP_LEVEL)!;
    console.log('');
    console.log(`gzip of the processor's ${what} objects: ${list.length} objects, ${records.toLocaleString('en-US')} records, ${(raw / records).toFixed(1)} bytes/record before compression; median of ${rounds} rounds`);
    console.log('');
    console.log(`| level | CPU µs/event | bytes/event | bytes vs level ${ARCHIVE_GZIP_LEVEL} |`);
    console.log('| ---: | ---: | ---: | ---: |');
    for (const level of LEVELS) {
      const b = bytes.get(level)!;
      console.log(`| ${level} | ${median(cpu.get(level)!).toFixed(2)} | ${(b / records).toFixed(1)} | ${b >= base ? '+' : ''}${((100 * (b - base)) / base).toFixed(1)}% |`);
    }
  }
}

if (isMain(import.meta.url)) {
  const passes = argOf('--passes', 10);
  const sessions = argOf('--sessions', 4_000);
  const day = await collectDay({ sessions }, 2);
  const batches = esmBatches(day.shards, BATCH_SIZE).map((b) => b.records);
  const records = batches.reduce((n, b) => n + b.length, 0);
  await profileProcessor(batches, records, passes);
  if (process.argv.includes('--gzip')) await gzipLevels(batches, records);
}
