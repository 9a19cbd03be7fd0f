import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { entry, isMain, row, type Measure, type Row } from './lib/harness.js';

/**
 * Measurement 5: the nightly export, through the export benchmark's own script (bench/export.ts,
 * issue 4), which generates a day of archive at each size and runs the real exportDay and its floor
 * (gunzip + JSON.parse + CSV write of the same lines) each in its own process. This adapter runs it
 * and turns the JSON lines it prints into the harness's rows.
 */

const SIZES = { full: [1_000_000, 10_000_000], quick: [1_000, 2_000] } as const;
const REPO_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** One line of bench/export.ts's output. */
interface ExportRun {
  run: 'export' | 'floor';
  events: number;
  lines: number;
  seconds: number;
  linesPerSecond: number;
  maxRssMb: number;
}

function isExportRun(value: unknown): value is ExportRun {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (v.run === 'export' || v.run === 'floor') && ['events', 'lines', 'seconds', 'linesPerSecond', 'maxRssMb'].every((k) => typeof v[k] === 'number');
}

function runExportBench(sizes: readonly number[], dir: string): Promise<ExportRun[]> {
  const args = ['--import', 'tsx', 'bench/export.ts', ...sizes.flatMap((n) => ['--events', String(n)]), '--dir', dir];
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, args, { cwd: REPO_DIR, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_NO_WARNINGS: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString('utf8')).slice(-4_000)));
    child.on('error', fail);
    child.on('close', (code) => {
      if (code !== 0) return fail(new Error(`bench/export.ts exited with ${code}: ${stderr.trim()}`));
      const runs = stdout.split('\n').flatMap((line) => {
        if (!line.startsWith('{')) return [];
        try {
          const parsed: unknown = JSON.parse(line);
          return isExportRun(parsed) ? [parsed] : [];
        } catch {
          return [];
        }
      });
      done(runs);
    });
  });
}

export const measure: Measure = async ({ quick }) => {
  const sizes = quick ? SIZES.quick : SIZES.full;
  const dir = await mkdtemp(join(tmpdir(), 'bench-export-'));
  let runs: ExportRun[];
  try {
    runs = await runExportBench(sizes, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const rows: Row[] = [];
  const exports = new Map<number, ExportRun>();
  for (const events of sizes) {
    const exported = runs.find((r) => r.run === 'export' && r.events === events);
    const floor = runs.find((r) => r.run === 'floor' && r.events === events);
    if (!exported || !floor) throw new Error(`bench/export.ts printed no export/floor result for ${events} events`);
    exports.set(events, exported);
    const label = `${events.toLocaleString('en-US')} events`;
    rows.push(
      row({
        name: `Export throughput, ${label}`,
        headline: true,
        figure: exported.linesPerSecond,
        unit: 'lines/s',
        floor: floor.linesPerSecond,
        floorKind: 'floor',
        target: { op: '>=', value: 0.5 },
        note: `${exported.lines.toLocaleString('en-US')} archived lines in ${exported.seconds.toFixed(1)} s; floor ${floor.seconds.toFixed(1)} s`,
      }),
      row({ name: `Export peak RSS, ${label}`, figure: exported.maxRssMb, unit: 'MB', note: `floor process: ${floor.maxRssMb} MB` }),
    );
  }
  const first = sizes[0];
  const last = sizes[sizes.length - 1]!;
  const small = exports.get(first);
  const large = exports.get(last);
  if (small && large && last !== first) {
    rows.push(
      row({
        name: `Export peak RSS at ${last.toLocaleString('en-US')} events against ${first.toLocaleString('en-US')}`,
        headline: true,
        figure: large.maxRssMb,
        unit: 'MB',
        floor: small.maxRssMb,
        floorKind: `RSS at ${first.toLocaleString('en-US')}`,
        target: { op: '<=', value: 1.2 },
      }),
    );
  }
  return {
    title: 'Nightly export (bench/export.ts, issue 4)',
    params: { sizes: sizes.join(' and ') },
    tables: [{ title: `exportDay over one generated day of archive, at ${sizes.map((n) => n.toLocaleString('en-US')).join(' and ')} events`, rows }],
    notes: [
      'Run by bench/export.ts, the export benchmark of issue 4, which documents its traffic model; one run per size (a 10M-event day takes minutes to generate and export). Throughput is wall-clock lines per second, export and floor each in a fresh process, peak RSS from process.resourceUsage().',
      'Floor: gunzip + JSON.parse + one CSV line per archived line, written to one file.',
    ],
  };
};

if (isMain(import.meta.url)) await entry('export', 'export-measure.ts', measure);
