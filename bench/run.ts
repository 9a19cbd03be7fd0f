import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMain, machine, round, type Machine, type MeasurementResult } from './lib/harness.js';
import { MEASUREMENTS, type RegisteredMeasurement } from './registry.js';
import { writeBenchmarksMd } from './report.js';

/**
 * `npm run bench`: every registered measurement, each in its own Node process (so one's heap, JIT
 * state and peak RSS do not colour the next), then bench/results.json and BENCHMARKS.md.
 *
 *   --quick          small data, to check the harness works (CI); timings mean nothing. Writes the
 *                    results to a temporary file (or --results) and leaves BENCHMARKS.md alone.
 *   --only a,b       run these measurement ids only (results.json then holds only those)
 *   --repeats n      timed repeats per figure (default 5; 1 in quick mode)
 *   --parallel n     measurements run at once (default 1; 3 in quick mode)
 *   --results path   where to write the results JSON
 */

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const REPO_DIR = resolve(BENCH_DIR, '..');
export const RESULTS_PATH = join(BENCH_DIR, 'results.json');

export interface BenchResults {
  schemaVersion: 1;
  generatedAt: string;
  quick: boolean;
  command: string;
  machine: Machine;
  /** Largest share of the machine's CPU that other processes used during any measurement. */
  otherCpuShareMax?: number;
  shared: boolean;
  measurements: (MeasurementResult & { item: number })[];
  failures: { id: string; error: string }[];
}

export interface RunOptions {
  quick: boolean;
  only?: readonly string[];
  repeats?: number;
  parallel?: number;
  resultsPath?: string;
  log?: (line: string) => void;
}

/** Above this share of the CPU used by others, BENCHMARKS.md says the machine was shared. */
const SHARED_THRESHOLD = 0.05;

function runChild(m: RegisteredMeasurement, options: RunOptions, out: string): Promise<void> {
  const args = ['--expose-gc', '--import', 'tsx', join(BENCH_DIR, m.file), '--out', out];
  if (options.quick) args.push('--quick');
  if (options.repeats !== undefined) args.push('--repeats', String(options.repeats));
  const limit = (options.quick ? m.timeoutSeconds.quick : m.timeoutSeconds.full) * 1000;
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, args, { cwd: REPO_DIR, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, POWERTOOLS_LOG_LEVEL: 'ERROR', POWERTOOLS_METRICS_DISABLED: 'true' } });
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-8_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), limit);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolveRun();
      else reject(new Error(`${m.file} ${signal ? `killed (${signal}, limit ${limit / 1000} s)` : `exited with ${code}`}\n${output.trim()}`));
    });
  });
}

const parallelOf = (options: RunOptions) => Math.max(1, options.parallel ?? (options.quick ? 3 : 1));

export async function runBench(options: RunOptions): Promise<BenchResults> {
  const log = options.log ?? ((line: string) => console.error(line));
  const selected = MEASUREMENTS.filter((m) => !options.only || options.only.includes(m.id));
  const unknown = (options.only ?? []).filter((id) => !MEASUREMENTS.some((m) => m.id === id));
  if (unknown.length > 0) throw new Error(`unknown measurement ids: ${unknown.join(', ')} (known: ${MEASUREMENTS.map((m) => m.id).join(', ')})`);
  const work = await mkdtemp(join(tmpdir(), 'bench-'));
  const results: BenchResults['measurements'] = [];
  const failures: BenchResults['failures'] = [];
  try {
    const queue = [...selected];
    const worker = async () => {
      for (let m = queue.shift(); m; m = queue.shift()) {
        const out = join(work, `${m.id}.json`);
        const t0 = performance.now();
        log(`bench: ${m.id} (${m.file}) ...`);
        try {
          await runChild(m, options, out);
          const result = JSON.parse(await readFile(out, 'utf8')) as MeasurementResult;
          results.push({ ...result, item: m.item });
          log(`bench: ${m.id} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        } catch (error) {
          failures.push({ id: m.id, error: (error as Error).message });
          log(`bench: ${m.id} FAILED: ${(error as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: parallelOf(options) }, worker));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const order = (id: string) => MEASUREMENTS.findIndex((m) => m.id === id);
  results.sort((a, b) => order(a.id) - order(b.id));
  const shares = results.flatMap((r) => (r.load.otherCpuShare === undefined ? [] : [r.load.otherCpuShare]));
  const otherMax = shares.length > 0 ? round(Math.max(...shares)) : undefined;
  const argv = process.argv.slice(2).join(' ');
  return {
    schemaVersion: 1,
    generatedAt: new Date().toISOString(),
    quick: options.quick,
    command: `npx tsx bench/run.ts${argv ? ` ${argv}` : ''}`,
    machine: machine(),
    ...(otherMax !== undefined && { otherCpuShareMax: otherMax }),
    // Measurements running side by side share the machine too.
    shared: (otherMax ?? 0) > SHARED_THRESHOLD || parallelOf(options) > 1,
    measurements: results,
    failures,
  };
}

function parseRunArgs(argv: readonly string[]): RunOptions {
  const options: RunOptions = { quick: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') options.quick = true;
    else if (a === '--only') options.only = next().split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '--repeats') options.repeats = Number(next());
    else if (a === '--parallel') options.parallel = Number(next());
    else if (a === '--results') options.resultsPath = resolve(next());
    else throw new Error(`unknown argument ${a}; see the header of bench/run.ts`);
  }
  return options;
}

/** With --only, the other measurements of the previous full run are kept (each has its own date). */
async function mergeInto(path: string, fresh: BenchResults): Promise<BenchResults> {
  let previous: BenchResults;
  try {
    previous = JSON.parse(await readFile(path, 'utf8')) as BenchResults;
  } catch {
    return fresh;
  }
  if (previous.schemaVersion !== 1 || previous.quick) return fresh;
  const ran = new Set(fresh.measurements.map((m) => m.id));
  const kept = previous.measurements.filter((m) => !ran.has(m.id) && MEASUREMENTS.some((r) => r.id === m.id));
  const order = (id: string) => MEASUREMENTS.findIndex((m) => m.id === id);
  const measurements = [...kept, ...fresh.measurements].sort((a, b) => order(a.id) - order(b.id));
  const shares = measurements.flatMap((r) => (r.load.otherCpuShare === undefined ? [] : [r.load.otherCpuShare]));
  const otherMax = shares.length > 0 ? round(Math.max(...shares)) : undefined;
  return {
    ...fresh,
    measurements,
    ...(otherMax !== undefined && { otherCpuShareMax: otherMax }),
    shared: fresh.shared || previous.shared,
  };
}

async function main(): Promise<void> {
  const options = parseRunArgs(process.argv.slice(2));
  let results = await runBench(options);
  const path = options.resultsPath ?? (options.quick ? join(tmpdir(), 'bench-results-quick.json') : RESULTS_PATH);
  if (options.only && !options.quick) results = await mergeInto(path, results);
  await writeFile(path, `${JSON.stringify(results, null, 2)}\n`);
  console.error(`bench: results written to ${relative(process.cwd(), path) || path}`);
  if (!options.quick) {
    const md = await writeBenchmarksMd(results);
    console.error(`bench: ${relative(process.cwd(), md)} updated`);
  }
  if (results.failures.length > 0) process.exitCode = 1;
}

if (isMain(import.meta.url)) await main();
