import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import pMap from 'p-map';
import type { InteractionMessage } from '../schemas/canonical.js';
import { buildArchiveObjects } from '../shared/archive.js';
import { s3Client } from '../shared/aws/clients.js';
import { S3Bucket } from '../shared/aws/s3-bucket.js';
import {
  decodeSnapshot,
  DELETIONS_SNAPSHOT_KEY,
  HashList,
  keyedHasher,
  loadDeletedUsers,
  recordDeletion,
  utcDay,
  writeSnapshot,
  type DeletedUsers,
  type RegistrySnapshot,
} from '../shared/deletion.js';
import { exportDay } from '../shared/export/export-day.js';
import type { LinkLookup } from '../shared/export/ports.js';
import { loadDatasetSchemas } from '../shared/personalize/dataset-schema.js';
import type { Entry } from '../shared/entry.js';
import { startEmulators } from '../local/emulators.js';
import { FsArchiveSource, FsImportStore } from '../test/support/fs-adapters.js';

/**
 * Deletion registry benchmark (issue 12; not part of npm test):
 *
 *   npx tsx bench/deletion-registry.ts [--entries 1000000] [--rows 1000000] [--old-sample 10000] [--quick]
 *
 * Against s3rver (started here, in a temporary directory):
 *   - the old design (one object per user, raw id in the body, loaded by listing and GETting every
 *     entry into a Set of ids) measured at --old-sample entries and extrapolated linearly to
 *     --entries: an ESTIMATE, labelled as such (1M objects are not PUT to s3rver);
 *   - the new design at --entries: the snapshot is written directly (one PUT of the sorted hashes),
 *     plus entries of the last three days as the processor writes them; load time with and without
 *     compaction (the export compacts at its start), the loaded registry's memory;
 *   - per-row isDeleted for an export of --rows rows, against a Set of raw ids (the old lookup);
 *   - exportDay over a generated day of --rows interactions (every row has a userId, so every row
 *     asks the registry), with an empty registry and with the --entries registry loaded from s3rver.
 * Prints a markdown summary (BENCHMARKS.md, "Deletion registry") and one JSON line.
 */

const { values } = parseArgs({
  options: {
    entries: { type: 'string', default: '1000000' },
    rows: { type: 'string', default: '1000000' },
    users: { type: 'string', default: '100000' },
    'old-sample': { type: 'string', default: '10000' },
    repeats: { type: 'string', default: '5' },
    quick: { type: 'boolean', default: false },
    'no-export': { type: 'boolean', default: false },
  },
});
const quick = values.quick;
const ENTRIES = quick ? 100_000 : Number(values.entries);
const ROWS = quick ? 100_000 : Number(values.rows);
const USERS = Number(values.users);
const OLD_SAMPLE = quick ? 2_000 : Number(values['old-sample']);
const REPEATS = quick ? 3 : Number(values.repeats);
const KEY = 'bench-deletion-hash-key-0123456789abcdef0123';
const hasher = keyedHasher(KEY);
const DAY_MS = 86_400_000;
const NOW = Date.now();
/** Users of the exported day that are in the registry: 1 in 100. */
const isDeletedUser = (u: number) => u % 100 === 7;
/** Recent entries per day (today, yesterday, 2 days ago): what the processor wrote since the last compaction. */
const RECENT_PER_DAY = 50;

setFlagsFromString('--expose_gc');
const gc = runInNewContext('gc') as () => void;
/** Heap and ArrayBuffer memory once garbage is collected (backing stores are freed a moment after a GC, hence the waits). */
const heapMb = async () => {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const m = process.memoryUsage();
  return (m.heapUsed + m.arrayBuffers) / 1024 / 1024;
};
const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const log = (line: string) => console.error(line);

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await fn();
  return { ms: performance.now() - started, value };
}

// ---------------------------------------------------------------------------------------------
// The old design, as shared/deletion.ts had it before issue 12 (list + GET every entry, 16 at a time)

async function oldLoadDeletedUsers(s3: S3Client, bucket: string): Promise<Set<string>> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'control/deletions/', ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key?.endsWith('.json')) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const records = await pMap(
    keys,
    async (key) => {
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const record = JSON.parse((await got.Body?.transformToString('utf8')) ?? '') as { userId: string; requestedAt: number };
      if (`control/deletions/${createHash('sha256').update(record.userId, 'utf8').digest('hex')}.json` !== key) throw new Error(`bad entry ${key}`);
      return record;
    },
    { concurrency: 16 },
  );
  return new Set(records.map((r) => r.userId));
}

const registryUserId = (i: number) => `deleted-user-${i}@example.com`;
const exportUserId = (u: number) => `u-${u}`;

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), 'pi-bench-deletions-'));
  const emulators = await startEmulators({}, { only: ['s3'], dataDir: stateDir });
  Object.assign(process.env, emulators.env, { AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
  const s3 = s3Client();
  /** The registry's port over a bucket, as the runtimes build it. */
  const registry = (name: string) => new S3Bucket(s3, name);
  const load0 = loadavg()[0]!;
  const results: Record<string, unknown> = { entries: ENTRIES, rows: ROWS, users: USERS, oldSample: OLD_SAMPLE, repeats: REPEATS };
  try {
    // ------------------------------------------------------------------ old design, measured small
    const oldBucket = 'old-registry';
    await s3.send(new CreateBucketCommand({ Bucket: oldBucket }));
    const put = await timed(() =>
      pMap(
        Array.from({ length: OLD_SAMPLE }, (_, i) => i),
        (i) => {
          const userId = registryUserId(i);
          const key = `control/deletions/${createHash('sha256').update(userId).digest('hex')}.json`;
          return s3.send(new PutObjectCommand({ Bucket: oldBucket, Key: key, Body: JSON.stringify({ userId, requestedAt: NOW }) }));
        },
        { concurrency: 32 },
      ),
    );
    log(`old design: ${OLD_SAMPLE} entries PUT in ${fmt(put.ms)} ms`);
    const oldRuns: number[] = [];
    for (let r = 0; r < Math.min(REPEATS, 3); r++) {
      const run = await timed(() => oldLoadDeletedUsers(s3, oldBucket));
      if (run.value.size !== OLD_SAMPLE) throw new Error('old load lost entries');
      oldRuns.push(run.ms);
    }
    const oldMs = median(oldRuns);
    const oldPerEntryMs = oldMs / OLD_SAMPLE;
    const oldEstimateMs = oldPerEntryMs * ENTRIES;
    results.old = { sample: OLD_SAMPLE, loadMsRuns: oldRuns, loadMs: oldMs, perEntryMs: oldPerEntryMs, estimatedLoadMsAtEntries: oldEstimateMs, listCallsAtEntries: Math.ceil(ENTRIES / 1000), getCallsAtEntries: ENTRIES };
    log(`old design: load of ${OLD_SAMPLE} entries ${fmt(oldMs)} ms (${fmt(oldPerEntryMs, 3)} ms/entry) -> estimated ${fmt(oldEstimateMs / 1000)} s at ${fmt(ENTRIES)}`);

    // The old lookup: a Set of raw ids, in memory.
    let before = await heapMb();
    const rawIds = new Set<string>();
    for (let i = 0; i < ENTRIES; i++) rawIds.add(registryUserId(i));
    for (let u = 0; u < USERS; u++) if (isDeletedUser(u)) rawIds.add(exportUserId(u));
    const oldHeapMb = (await heapMb()) - before;
    results.oldSetHeapMb = oldHeapMb;
    log(`old design: Set of ${fmt(rawIds.size)} raw ids holds ${fmt(oldHeapMb)} MB`);

    // ------------------------------------------------------------------ new design at ENTRIES
    const bucket = 'new-registry';
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const build = await timed(() => {
      const hashes: Buffer[] = [];
      for (let i = 0; i < ENTRIES - 3 * RECENT_PER_DAY; i++) hashes.push(hasher.digest(registryUserId(i)));
      for (let u = 0; u < USERS; u++) if (isDeletedUser(u)) hashes.push(hasher.digest(exportUserId(u)));
      return Promise.resolve(HashList.from(hashes));
    });
    const hashes = build.value;
    // The state at an export: compacted two nights ago, so the entries of the day before yesterday wait to be folded in.
    const snapshot: RegistrySnapshot = { coveredBefore: utcDay(NOW - 2 * DAY_MS), keyed: { keyId: hasher.keyId!, hashes }, unkeyed: HashList.EMPTY };
    const snapshotBytes = await writeSnapshot(registry(bucket), snapshot);
    await pMap(
      Array.from({ length: 3 * RECENT_PER_DAY }, (_, i) => i),
      (i) => recordDeletion(registry(bucket), registryUserId(ENTRIES - 3 * RECENT_PER_DAY + i), NOW, { hasher, now: () => NOW - Math.floor(i / RECENT_PER_DAY) * DAY_MS }),
      { concurrency: 16 },
    );
    const total = hashes.count + 3 * RECENT_PER_DAY;
    results.new = { snapshotEntries: hashes.count, recentEntries: 3 * RECENT_PER_DAY, snapshotBytes, buildMs: build.ms };
    log(`new design: ${fmt(total)} entries (${fmt(hashes.count)} in a ${fmt(snapshotBytes / 1e6, 1)} MB snapshot written with one PUT, built in ${fmt(build.ms)} ms; ${3 * RECENT_PER_DAY} entries over 3 days)`);

    // Load without compaction (the replay; or the export on a night with nothing to fold).
    const loadRuns: number[] = [];
    for (let r = 0; r < REPEATS; r++) {
      const run = await timed(() => loadDeletedUsers(registry(bucket), { hasher, now: () => NOW }));
      if (run.value.size !== total) throw new Error(`loaded ${run.value.size} of ${total}`);
      loadRuns.push(run.ms);
    }
    before = await heapMb();
    const loaded: DeletedUsers = await loadDeletedUsers(registry(bucket), { hasher, now: () => NOW });
    const newHeapMb = (await heapMb()) - before;
    if (!loaded.isDeleted(registryUserId(0))) throw new Error('a registry user is not deleted');
    // Of which: the snapshot's bytes alone (one GET through the SDK), and its decoding (checksum, order, index).
    const getRuns: number[] = [];
    const decodeRuns: number[] = [];
    for (let r = 0; r < REPEATS; r++) {
      const got = await timed(async () => {
        const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: DELETIONS_SNAPSHOT_KEY }));
        return response.Body!.transformToByteArray();
      });
      getRuns.push(got.ms);
      decodeRuns.push((await timed(() => Promise.resolve(decodeSnapshot(got.value)))).ms);
    }
    // Load with compaction (the export, every night there were deletions two days before): reset the snapshot between runs.
    const compactRuns: number[] = [];
    for (let r = 0; r < Math.min(REPEATS, 3); r++) {
      await writeSnapshot(registry(bucket), snapshot);
      const run = await timed(() => loadDeletedUsers(registry(bucket), { hasher, compact: true, now: () => NOW }));
      if (!run.value.stats.compacted) throw new Error('nothing was compacted');
      compactRuns.push(run.ms);
    }
    await writeSnapshot(registry(bucket), snapshot);
    // Scale: snapshots alone (no newer entries), of growing size.
    const scale: { entries: number; ms: number }[] = [];
    for (const n of [0, 10_000, 100_000, hashes.count].filter((x, i, all) => x <= hashes.count && all.indexOf(x) === i)) {
      const small = 'scale-' + String(n);
      await s3.send(new CreateBucketCommand({ Bucket: small }));
      await writeSnapshot(registry(small), { ...snapshot, keyed: { keyId: hasher.keyId!, hashes: new HashList(hashes.bytes.subarray(0, n * 32)) } });
      const runs: number[] = [];
      for (let r = 0; r < REPEATS; r++) runs.push((await timed(() => loadDeletedUsers(registry(small), { hasher, now: () => NOW }))).ms);
      scale.push({ entries: n, ms: median(runs) });
    }
    results.newLoad = { snapshotGetMs: median(getRuns), snapshotDecodeMs: median(decodeRuns), loadMsRuns: loadRuns, loadMs: median(loadRuns), compactMsRuns: compactRuns, compactMs: median(compactRuns), heapMb: newHeapMb, requests: 'GET snapshot + 1 LIST + 3 day LISTs + 150 GETs', scale };
    log(`new design: load ${fmt(median(loadRuns))} ms (runs ${loadRuns.map((x) => fmt(x)).join(', ')}; of which snapshot GET ${fmt(median(getRuns))} ms, decode ${fmt(median(decodeRuns))} ms), with compaction ${fmt(median(compactRuns))} ms; registry in memory ${fmt(newHeapMb, 1)} MB`);
    log(`new design: load of a snapshot alone, by size: ${scale.map((s) => `${fmt(s.entries)}: ${fmt(s.ms)} ms`).join('; ')}`);

    // ------------------------------------------------------------------ per row
    let seed = 1;
    const rand = () => ((seed = Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32;
    const rows = Array.from({ length: ROWS }, () => exportUserId(Math.floor(rand() * USERS)));
    const distinct = Array.from({ length: ROWS }, (_, i) => `distinct-${i}`);
    const perRow = (fn: (id: string) => boolean, ids: readonly string[]) => {
      const started = performance.now();
      let n = 0;
      for (const id of ids) if (fn(id)) n++;
      return { nsPerRow: ((performance.now() - started) * 1e6) / ids.length, deleted: n };
    };
    const rowRuns = { newTypical: [] as number[], newDistinct: [] as number[], old: [] as number[] };
    let deletedRows = 0;
    for (let r = 0; r < REPEATS; r++) {
      // A fresh registry each run: the cache starts cold, as in an export.
      const fresh = await loadDeletedUsers(registry(bucket), { hasher, now: () => NOW });
      const typical = perRow((id) => fresh.isDeleted(id), rows);
      deletedRows = typical.deleted;
      rowRuns.newTypical.push(typical.nsPerRow);
      const fresh2 = await loadDeletedUsers(registry(bucket), { hasher, now: () => NOW });
      rowRuns.newDistinct.push(perRow((id) => fresh2.isDeleted(id), distinct).nsPerRow);
      rowRuns.old.push(perRow((id) => rawIds.has(id), rows).nsPerRow);
    }
    results.perRow = {
      rows: ROWS,
      distinctUsers: new Set(rows).size,
      deletedRows,
      newTypicalNs: median(rowRuns.newTypical),
      newAllDistinctNs: median(rowRuns.newDistinct),
      oldSetNs: median(rowRuns.old),
      runs: rowRuns,
    };
    log(`per row over ${fmt(ROWS)} rows (${fmt(new Set(rows).size)} distinct users, ${fmt(deletedRows)} rows of deleted users): isDeleted ${fmt(median(rowRuns.newTypical), 0)} ns, every row a new user ${fmt(median(rowRuns.newDistinct), 0)} ns; old Set.has ${fmt(median(rowRuns.old), 0)} ns`);
    rawIds.clear();

    // ------------------------------------------------------------------ the export itself
    if (!values['no-export']) {
      const dir = join(stateDir, 'export');
      const generated = await generateDay(join(dir, 'archive-root'), ROWS);
      log(`export: generated ${fmt(generated.lines)} archived interactions in ${generated.objects} objects`);
      const emptyBucket = 'empty-registry';
      await s3.send(new CreateBucketCommand({ Bucket: emptyBucket }));
      const links: LinkLookup = { getLinks: () => Promise.resolve(new Map()) };
      const runExport = async (registryBucket: string) => {
        if (registryBucket === bucket) await writeSnapshot(registry(bucket), snapshot);
        await rm(join(dir, 'out'), { recursive: true, force: true });
        let registryMs = 0;
        const run = await timed(() =>
          exportDay(
            {
              archive: new FsArchiveSource(join(dir, 'archive-root')),
              store: new FsImportStore(join(dir, 'out')),
              links,
              // As shared/export/runtime.ts: loaded and compacted at the start.
              deletedUsers: async () => {
                const t = await timed(() => loadDeletedUsers(registry(registryBucket), { hasher, compact: true, now: () => NOW }));
                registryMs = t.ms;
                return t.value;
              },
              settings: { schemas: loadDatasetSchemas(), datasets: {} },
            },
            { date: EXPORT_DATE, import: false, workDir: dir },
          ),
        );
        return { ms: run.ms, registryMs, deletedUserRows: run.value.kinds.interactions.deletedUserRows, exported: run.value.kinds.interactions.exported };
      };
      const empty: Awaited<ReturnType<typeof runExport>>[] = [];
      const full: Awaited<ReturnType<typeof runExport>>[] = [];
      const exportRepeats = quick ? 1 : 2;
      // A first run warms the JIT and the page cache; not counted.
      await runExport(emptyBucket);
      for (let r = 0; r < exportRepeats; r++) {
        full.push(await runExport(bucket));
        empty.push(await runExport(emptyBucket));
      }
      const expectDeleted = generated.deletedRows;
      if (full.some((f) => f.deletedUserRows !== expectDeleted)) throw new Error(`export left out ${full[0]!.deletedUserRows} rows, expected ${expectDeleted}`);
      results.export = { lines: generated.lines, expectedDeletedRows: expectDeleted, empty, full, emptyMs: median(empty.map((e) => e.ms)), fullMs: median(full.map((e) => e.ms)) };
      log(`export of ${fmt(generated.lines)} rows: empty registry ${fmt(median(empty.map((e) => e.ms)) / 1000, 1)} s; ${fmt(total)}-entry registry ${fmt(median(full.map((e) => e.ms)) / 1000, 1)} s (registry load + compaction ${fmt(median(full.map((e) => e.registryMs)))} ms; ${fmt(full[0]!.deletedUserRows)} rows left out)`);
    }

    results.machine = { cores: cpus().length, cpu: cpus()[0]?.model, node: process.version, loadAverage1mAtStart: load0, loadAverage1mAtEnd: loadavg()[0] };
    printSummary(results);
    console.log(JSON.stringify(results));
  } finally {
    await emulators.close();
    await rm(stateDir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// One day of logged-in interactions (every row asks the registry), in the archive's real shape

const EXPORT_DATE = '2026-10-01';

async function generateDay(root: string, events: number): Promise<{ objects: number; lines: number; deletedRows: number }> {
  await mkdir(root, { recursive: true });
  const start = Date.parse(`${EXPORT_DATE}T00:00:00Z`);
  let objects = 0;
  let lines = 0;
  let deletedRows = 0;
  let seed = 7;
  const rand = () => ((seed = Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32;
  for (let batchStart = 0, batchNo = 0; batchStart < events; batchStart += 500, batchNo++) {
    const entries: Entry[] = [];
    for (let i = batchStart; i < Math.min(events, batchStart + 500); i++) {
      const user = Math.floor(rand() * USERS);
      if (isDeletedUser(user)) deletedRows++;
      const timestamp = start + Math.floor((i * DAY_MS) / events);
      const message: InteractionMessage = {
        kind: 'interaction',
        source: 'segment',
        eventId: `e-${i}`,
        sessionId: `s-${user}-${Math.floor(i / 5000)}`,
        userId: exportUserId(user),
        eventType: 'View',
        itemId: `sku-${i % 50_000}`,
        timestamp,
      };
      entries.push({ ref: { shardId: 'shardId-000000000000', sequenceNumber: String(i), partitionKey: message.sessionId, arrivedAt: timestamp + 300 }, message });
    }
    const first = String(batchNo * 1_000_000);
    for (const o of buildArchiveObjects(entries, { shardId: `shardId-00000000000${batchNo % 4}`, firstSequenceNumber: first, lastSequenceNumber: String(batchNo * 1_000_000 + entries.length) })) {
      await mkdir(join(root, o.key, '..'), { recursive: true });
      await writeFile(join(root, o.key), o.body);
      objects++;
      lines += o.records;
    }
  }
  return { objects, lines, deletedRows };
}

// ---------------------------------------------------------------------------------------------

function printSummary(r: Record<string, unknown>): void {
  const old = r.old as { loadMs: number; perEntryMs: number; estimatedLoadMsAtEntries: number; listCallsAtEntries: number };
  const load = r.newLoad as { loadMs: number; snapshotGetMs: number; snapshotDecodeMs: number; compactMs: number; heapMb: number; scale: { entries: number; ms: number }[] };
  const row = r.perRow as { newTypicalNs: number; newAllDistinctNs: number; oldSetNs: number; distinctUsers: number; deletedRows: number };
  const fresh = r.new as { snapshotBytes: number };
  const exp = r.export as { lines: number; emptyMs: number; fullMs: number; full: { registryMs: number; deletedUserRows: number }[] } | undefined;
  const lines = [
    '',
    `| measured (${fmt(ENTRIES)} registry entries) | new design | old design |`,
    '| --- | ---: | ---: |',
    `| registry load (no compaction) | ${fmt(load.loadMs)} ms (1 GET of a ${fmt(fresh.snapshotBytes / 1e6, 1)} MB snapshot: ${fmt(load.snapshotGetMs)} ms, its decoding: ${fmt(load.snapshotDecodeMs)} ms; 4 LISTs, ${3 * RECENT_PER_DAY} entry GETs) | **estimated** ${fmt(old.estimatedLoadMsAtEntries / 1000)} s (${fmt(old.loadMs)} ms measured at ${fmt(OLD_SAMPLE)} entries x ${fmt(ENTRIES / OLD_SAMPLE)}; ${fmt(old.listCallsAtEntries)} LISTs + ${fmt(ENTRIES)} GETs) |`,
    `| registry load with compaction (export start) | ${fmt(load.compactMs)} ms (+1 PUT of the new snapshot) | – |`,
    `| registry in memory | ${fmt(load.heapMb, 1)} MB | ${fmt(r.oldSetHeapMb as number, 1)} MB (Set of raw ids) |`,
    `| isDeleted per row, ${fmt(ROWS)} rows of ${fmt(row.distinctUsers)} users | ${fmt(row.newTypicalNs)} ns | ${fmt(row.oldSetNs)} ns (Set.has) |`,
    `| isDeleted per row, every row a new user (no cache hit) | ${fmt(row.newAllDistinctNs)} ns | – |`,
    ...(exp
      ? [`| export of ${fmt(exp.lines)} rows: empty registry -> ${fmt(ENTRIES)} entries | ${fmt(exp.emptyMs / 1000, 1)} s -> ${fmt(exp.fullMs / 1000, 1)} s (registry ${fmt(median(exp.full.map((f) => f.registryMs)))} ms) | **estimated** ${fmt((exp.emptyMs + old.estimatedLoadMsAtEntries) / 1000)} s |`]
      : []),
    '',
    `Load of a snapshot alone (no newer entries), by size: ${load.scale.map((s) => `${fmt(s.entries)} entries ${fmt(s.ms)} ms`).join(', ')}.`,
  ];
  console.error(lines.join('\n'));
}

await main();
