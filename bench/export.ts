import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import pMap from 'p-map';
import type { InteractionMessage } from '../schemas/canonical.js';
import { buildArchiveObjects } from '../shared/archive.js';
import { deletedUsersOf } from '../shared/deletion.js';
import { readGzipLines } from '../shared/export/archive-reader.js';
import { csvLine } from '../shared/util/csv-parts.js';
import { exportDay } from '../shared/export/export-day.js';
import type { LinkLookup } from '../shared/export/ports.js';
import type { Entry } from '../shared/entry.js';
import { loadDatasetSchemas } from '../shared/personalize/dataset-schema.js';
import { FsArchiveSource, FsImportStore } from '../test/support/fs-adapters.js';

/**
 * Export benchmark (not part of npm test):
 *
 *   npx tsx bench/export.ts --events 1000000 --events 10000000 [--dir /tmp/pi-bench-export]
 *
 * For each size: generates one day of archived interactions in the archive's real shape
 * (buildArchiveObjects, gzip NDJSON per batch and hour) into a directory, then runs, each in its
 * own process so peak RSS is its own:
 *   - export: the real exportDay over the filesystem adapters (./fs-adapters.ts) of the same
 *     ArchiveSource/ImportStore ports S3 implements; links come from an in-memory function of the
 *     session id (no DynamoDB latency in the figure); no import jobs;
 *   - floor: gunzip + JSON.parse + one CSV line per archived line into one file, nothing else.
 * Prints one JSON result per run and a markdown table.
 *
 * Traffic model: sessions of 1-19 events (10 on average); 40% anonymous then log in half way (the
 * later events stitched by the processor, the earlier ones left for the export's backfill), 30%
 * logged in throughout, 20% anonymous for good, 10% anonymous with a login only after the day
 * (a late link); 2% of batches archived twice (a retried batch). 80% View, 15% AddToCart, 5% Purchase.
 */

const DATE = '2026-10-01';
const DAY_START = Date.parse(`${DATE}T00:00:00Z`);
const BATCH = 500;

function hash(n: number): number {
  let h = Math.imul(n ^ 0x9e3779b9, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Session n's fate: 0-3 logs in half way, 4-6 logged in, 7-8 anonymous, 9 logs in after the day. */
const fate = (n: number) => n % 10;
const linkedUser = (n: number): string | undefined => (fate(n) <= 3 || fate(n) === 9 ? `u-${n}` : undefined);

/** The identity table, as a function of the session id (see the header comment). */
const links: LinkLookup = {
  getLinks(sessionIds) {
    const found = new Map<string, { userId: string }>();
    for (const s of sessionIds) {
      const userId = linkedUser(Number(s.slice(2)));
      if (userId) found.set(s, { userId });
    }
    return Promise.resolve(found);
  },
};

async function generate(dir: string, events: number): Promise<{ objects: number; lines: number }> {
  await rm(dir, { recursive: true, force: true });
  let written = 0;
  let lines = 0;
  let objects = 0;
  let session = 0;
  let batch: Entry[] = [];
  let batchNo = 0;
  const devices = ['ios', 'android', 'web'];
  const flush = async () => {
    if (batch.length === 0) return;
    batchNo++;
    const first = String(batchNo * 1_000_000);
    const copies: [Entry[], string][] = [[batch, `${first}-${batchNo * 1_000_000 + batch.length}`]];
    // A retried part of a batch: its second half archived again under another range.
    if (batchNo % 50 === 0) copies.push([batch.slice(batch.length / 2), `${first}-${batchNo * 1_000_000 + batch.length / 2}`]);
    for (const [entries, range] of copies) {
      const [firstSeq = '0', lastSeq = '0'] = range.split('-');
      for (const o of buildArchiveObjects(entries, { shardId: `shardId-00000000000${batchNo % 4}`, firstSequenceNumber: firstSeq, lastSequenceNumber: lastSeq })) {
        await mkdir(join(dir, o.key, '..'), { recursive: true });
        await writeFile(join(dir, o.key), o.body);
        objects++;
        lines += o.records;
      }
    }
    batch = [];
  };
  while (written < events) {
    const n = session++;
    const length = Math.min(1 + (hash(n) % 19), events - written);
    const sessionId = `s-${n}`;
    for (let i = 0; i < length; i++) {
      const h = hash(n * 31 + i);
      const kind = h % 100;
      const eventType = kind < 80 ? 'View' : kind < 95 ? 'AddToCart' : 'Purchase';
      const timestamp = DAY_START + Math.floor((written * 86_400_000) / events);
      const message: InteractionMessage = {
        kind: 'interaction',
        source: 'segment',
        eventId: `m-${n}-${i}`,
        sessionId,
        eventType,
        itemId: `sku-${h % 50_000}`,
        timestamp,
        ...(eventType === 'Purchase' && { eventValue: (h % 20_000) / 100 }),
        ...(h % 10 === 0 && { impression: [1, 2, 3, 4, 5].map((k) => `sku-${(h + k) % 50_000}`), recommendationId: `rec-${h % 1000}` }),
        properties: { device: devices[h % 3] },
      };
      const f = fate(n);
      const ref = { shardId: 'shardId-000000000000', sequenceNumber: String(written), partitionKey: sessionId, arrivedAt: timestamp + 300 };
      let entry: Entry = { ref, message };
      if (f >= 4 && f <= 6) entry = { ref, message: { ...message, userId: `u-${n % 100_000}` } };
      else if (f <= 3 && i >= length / 2) entry = { ref, message, userId: `u-${n}`, stitched: true };
      batch.push(entry);
      written++;
      if (batch.length === BATCH) await flush();
    }
  }
  await flush();
  return { objects, lines };
}

interface RunResult {
  run: 'export' | 'floor';
  events: number;
  lines: number;
  seconds: number;
  linesPerSecond: number;
  maxRssMb: number;
  detail?: Record<string, unknown>;
}

const maxRssMb = () => Math.round(process.resourceUsage().maxRSS / 1024);

async function runExport(dir: string, events: number): Promise<RunResult> {
  const out = join(dir, 'out');
  await rm(out, { recursive: true, force: true });
  const started = performance.now();
  const manifest = await exportDay(
    {
      archive: new FsArchiveSource(join(dir, 'archive-root')),
      store: new FsImportStore(out),
      links,
      deletedUsers: () => Promise.resolve(deletedUsersOf(['u-7'])),
      settings: { schemas: loadDatasetSchemas(), datasets: {} },
    },
    { date: DATE, import: false, workDir: dir, engine: { memoryLimit: values['memory-limit'], threads: Number(values.threads) } },
  );
  const seconds = (performance.now() - started) / 1000;
  const r = manifest.kinds.interactions;
  return {
    run: 'export',
    events,
    lines: r.read,
    seconds,
    linesPerSecond: Math.round(r.read / seconds),
    maxRssMb: maxRssMb(),
    detail: {
      objects: r.archive.objects,
      engine: manifest.options.engine,
      exported: r.exported,
      duplicates: r.duplicates,
      backfilled: r.backfilled,
      anonymousWithoutLink: r.anonymousWithoutLink,
      rejected: r.rejected,
      csvBytes: r.files.reduce((n, f) => n + f.bytes, 0),
    },
  };
}

async function runFloor(dir: string, events: number): Promise<RunResult> {
  const source = new FsArchiveSource(join(dir, 'archive-root'));
  const objects = await source.list(`archive/interactions/dt=${DATE}/`);
  const output = createWriteStream(join(dir, 'floor.csv'));
  let lines = 0;
  const started = performance.now();
  await pMap(
    objects,
    async (o) => {
      await readGzipLines(await source.open(o.key), (line) => {
        lines++;
        const m = JSON.parse(line) as InteractionMessage;
        const ok = output.write(csvLine([m.userId ?? m.sessionId, m.itemId ?? '', m.eventType, String(Math.floor(m.timestamp / 1000))]));
        return ok ? undefined : once(output, 'drain').then(() => undefined);
      });
    },
    { concurrency: 8 },
  );
  output.end();
  await once(output, 'finish');
  const seconds = (performance.now() - started) / 1000;
  return { run: 'floor', events, lines, seconds, linesPerSecond: Math.round(lines / seconds), maxRssMb: maxRssMb() };
}

async function child(args: string[]): Promise<RunResult> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'bench/export.ts', ...args], {
    maxBuffer: 16 * 1024 * 1024,
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
  });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as RunResult;
}

const { values } = parseArgs({
  options: {
    events: { type: 'string', multiple: true, default: ['1000000'] },
    dir: { type: 'string', default: join(tmpdir(), 'pi-bench-export') },
    run: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'memory-limit': { type: 'string', default: '512MB' },
    threads: { type: 'string', default: '2' },
  },
});
const dirFor = (events: number) => join(values.dir, String(events));

if (values.run === 'export' || values.run === 'floor') {
  const events = Number(values.events[0]);
  const result = values.run === 'export' ? await runExport(dirFor(events), events) : await runFloor(dirFor(events), events);
  console.log(JSON.stringify(result));
} else {
  const rows: string[] = [];
  for (const text of values.events) {
    const events = Number(text);
    const genStarted = performance.now();
    const generated = await generate(join(dirFor(events), 'archive-root'), events);
    console.error(`generated ${events} events (${generated.lines} archived lines, ${generated.objects} objects) in ${((performance.now() - genStarted) / 1000).toFixed(0)} s`);
    const floor = await child(['--run', 'floor', '--events', text, '--dir', values.dir]);
    console.log(JSON.stringify(floor));
    const engineArgs = ['--memory-limit', values['memory-limit'], '--threads', values.threads];
    const exported = await child(['--run', 'export', '--events', text, '--dir', values.dir, ...engineArgs]);
    console.log(JSON.stringify(exported));
    rows.push(
      `| ${events.toLocaleString('en-US')} events (${exported.lines.toLocaleString('en-US')} archived lines) | ` +
        `${exported.linesPerSecond.toLocaleString('en-US')} lines/s, ${exported.seconds.toFixed(1)} s, peak RSS ${exported.maxRssMb} MB | ` +
        `${floor.linesPerSecond.toLocaleString('en-US')} lines/s, ${floor.seconds.toFixed(1)} s, peak RSS ${floor.maxRssMb} MB | ` +
        `${(exported.linesPerSecond / floor.linesPerSecond).toFixed(2)}x the floor's speed, ${(exported.maxRssMb / floor.maxRssMb).toFixed(1)}x its RSS |`,
    );
    if (!values.keep) await rm(dirFor(events), { recursive: true, force: true });
  }
  console.log(`\nmachine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}\n`);
  console.log('| size | export | floor (gunzip + JSON.parse + CSV write) | ratio |\n| --- | --- | --- | --- |');
  for (const row of rows) console.log(row);
}
