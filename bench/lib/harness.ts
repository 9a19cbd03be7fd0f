import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * What every measurement returns. A figure is only meaningful next to its floor (or minimum, or
 * ideal) measured in the same run on the same data, so every row carries both and their ratio.
 */

/** `<=`: a cost (lower is better); `>=`: a throughput (higher is better); `=`: exactly the floor. */
export interface Target {
  op: '<=' | '>=' | '=';
  value: number;
}

export interface Row {
  /** What is measured, e.g. "PutEvents calls per 1,000 events". */
  name: string;
  figure: number;
  unit: string;
  /** The floor, minimum or ideal, in the same unit; undefined when there is none. */
  floor?: number;
  /** What the floor is: "minimum", "floor", "ideal", ... */
  floorKind?: string;
  /** figure / floor. */
  ratio?: number;
  target?: Target;
  met?: boolean;
  /** The individual runs behind a median, in the figure's unit. */
  runs?: number[];
  floorRuns?: number[];
  /** Listed in BENCHMARKS.md's summary as well as in its measurement's table. */
  headline?: boolean;
  /** A comparison figure in the same unit (e.g. a one-event-per-call forwarder); not a target. */
  reference?: number;
  note?: string;
}

export interface Table {
  title: string;
  /** Column heading for Row.reference. */
  referenceLabel?: string;
  rows: Row[];
  notes?: string[];
}

export interface LoadSample {
  /** Share of the machine's CPU used by processes other than this benchmark, 0–1 (Linux only). */
  otherCpuShare?: number;
  loadAverage1m: number;
}

export interface MeasurementResult {
  id: string;
  title: string;
  quick: boolean;
  command: string;
  startedAt: string;
  durationMs: number;
  params: Record<string, string | number | boolean>;
  tables: Table[];
  notes: string[];
  load: LoadSample;
}

export interface MeasureOptions {
  quick: boolean;
  /** How many times each timed figure is measured (median reported). */
  repeats: number;
}

export type Measure = (options: MeasureOptions) => Promise<Omit<MeasurementResult, 'id' | 'quick' | 'command' | 'startedAt' | 'durationMs' | 'load'>>;

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  // Nearest rank: an actual observed value, never an interpolation.
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1]!;
}

/** Rounds for the table and for the `=` target, so 1.004 counts as 1.00 and 1.006 does not. */
export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export function isMet(ratio: number, target: Target): boolean {
  const r = round(ratio);
  switch (target.op) {
    case '<=':
      return r <= target.value;
    case '>=':
      return r >= target.value;
    case '=':
      return r === round(target.value);
  }
}

/** Builds a row and fills in ratio and met from figure, floor and target. */
export function row(r: Omit<Row, 'ratio' | 'met'>): Row {
  const out: Row = { ...r };
  if (r.floor !== undefined && r.floor > 0) out.ratio = r.figure / r.floor;
  else if (r.floor === 0) out.ratio = r.figure === 0 ? 1 : Number.POSITIVE_INFINITY;
  if (out.ratio !== undefined && r.target) out.met = isMet(out.ratio, r.target);
  return out;
}

/** CPU seconds used by this process (all threads: the GC's helpers are part of the cost). */
export function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Runs fn and returns how many CPU seconds and wall seconds it took. */
export async function timed(fn: () => Promise<void> | void): Promise<{ cpu: number; wall: number }> {
  const c0 = cpuSeconds();
  const t0 = performance.now();
  await fn();
  return { cpu: cpuSeconds() - c0, wall: (performance.now() - t0) / 1000 };
}

export function gcIfExposed(): void {
  // Present when node runs with --expose-gc (run.ts passes it); harmless without.
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) gc();
}

// ------------------------------------------------------------------------------------------------
// The machine, and how busy other processes kept it

export interface Machine {
  cores: number;
  cpuModel: string;
  node: string;
  platform: string;
  totalMemoryMiB: number;
}

export function machine(): Machine {
  const list = cpus();
  return {
    cores: list.length,
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    totalMemoryMiB: Math.round(totalmem() / 2 ** 20),
  };
}

interface ProcStat {
  busy: number;
  total: number;
}

/** Machine-wide CPU jiffies from /proc/stat; undefined where there is no /proc. */
function readProcStat(): ProcStat | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const [, ...fields] = line.trim().split(/\s+/);
    const n = fields.map(Number);
    const idle = (n[3] ?? 0) + (n[4] ?? 0);
    const total = n.reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** Tracks the machine's busy time against this process's own, to tell whether others shared it. */
export function loadMeter(): { stop(): LoadSample } {
  const start = readProcStat();
  const c0 = cpuSeconds();
  const t0 = performance.now();
  return {
    stop() {
      const end = readProcStat();
      const own = cpuSeconds() - c0;
      const wall = (performance.now() - t0) / 1000;
      const sample: LoadSample = { loadAverage1m: round(loadavg()[0] ?? 0) };
      if (start && end && end.total > start.total && wall > 0) {
        // Jiffies are 1/100 s per core on Linux; the share is of all cores over the wall time.
        const busySeconds = (end.busy - start.busy) / 100;
        const other = Math.max(0, busySeconds - own) / (wall * cpus().length);
        sample.otherCpuShare = round(Math.min(1, other));
      }
      return sample;
    },
  };
}

// ------------------------------------------------------------------------------------------------
// Entry points: every bench/<name>.ts runs alone or under run.ts

export interface EntryArgs {
  quick: boolean;
  out?: string;
  repeats?: number;
}

export function parseArgs(argv: readonly string[]): EntryArgs {
  const args: EntryArgs = { quick: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') args.quick = true;
    else if (a === '--out') args.out = argv[++i];
    else if (a === '--repeats') args.repeats = Number(argv[++i]);
  }
  return args;
}

/** Runs a measurement with the load meter around it and fills in the common fields. */
export async function runMeasurement(id: string, measure: Measure, args: EntryArgs, command: string): Promise<MeasurementResult> {
  const startedAt = new Date().toISOString();
  const meter = loadMeter();
  const t0 = performance.now();
  const repeats = args.repeats ?? (args.quick ? 1 : 5);
  const body = await measure({ quick: args.quick, repeats });
  return {
    id,
    quick: args.quick,
    command,
    startedAt,
    durationMs: Math.round(performance.now() - t0),
    load: meter.stop(),
    ...body,
  };
}

/** True when the module at `moduleUrl` is the script node was started with. */
export function isMain(moduleUrl: string): boolean {
  const script = process.argv[1];
  return script !== undefined && resolve(script) === fileURLToPath(moduleUrl);
}

/**
 * Standalone entry: `tsx bench/<name>.ts [--quick] [--out file.json]`. Prints the tables; with
 * --out, writes the result for run.ts to collect.
 */
export async function entry(id: string, file: string, measure: Measure): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const command = `npx tsx bench/${file}${args.quick ? ' --quick' : ''}`;
  const result = await runMeasurement(id, measure, args, command);
  if (args.out) await writeFile(args.out, `${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(`${formatResultText(result)}\n`);
}

export function fmt(value: number | undefined, digits?: number): string {
  if (value === undefined) return '';
  if (!Number.isFinite(value)) return String(value);
  const d = digits ?? (Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2);
  return value.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

export function formatTarget(t: Target | undefined): string {
  if (!t) return '';
  return `${t.op === '=' ? '=' : t.op === '<=' ? '≤' : '≥'} ${t.value.toFixed(2)}x`;
}

/** A plain-text rendering for a terminal. */
export function formatResultText(result: MeasurementResult): string {
  const lines = [`== ${result.title}${result.quick ? ' (quick)' : ''}`];
  for (const table of result.tables) {
    lines.push(`-- ${table.title}`);
    for (const r of table.rows) {
      const parts = [`${r.name}: ${fmt(r.figure)} ${r.unit}`];
      if (r.floor !== undefined) parts.push(`${r.floorKind ?? 'floor'} ${fmt(r.floor)}`);
      if (r.ratio !== undefined) parts.push(`ratio ${fmt(r.ratio, 2)}x`);
      if (r.target) parts.push(`target ${formatTarget(r.target)} ${r.met ? 'met' : 'MISSED'}`);
      if (r.reference !== undefined) parts.push(`${table.referenceLabel ?? 'reference'} ${fmt(r.reference)}`);
      lines.push(`   ${parts.join(' | ')}`);
      if (r.note) lines.push(`      (${r.note})`);
    }
    for (const note of table.notes ?? []) lines.push(`   note: ${note}`);
  }
  for (const note of result.notes) lines.push(`   note: ${note}`);
  return lines.join('\n');
}
