import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MEASUREMENTS } from '../bench/registry.js';
import { BEGIN, END, renderBlock, writeBenchmarksMd } from '../bench/report.js';
import type { BenchResults } from '../bench/run.js';

/**
 * `npm run bench -- --quick` end to end: every registered measurement runs on small data in its own
 * process and yields well-formed results. Timings on this data mean nothing and are not checked;
 * call counts are deterministic, so the batching targets are.
 */

const REPO = resolve(import.meta.dirname, '..');
let dir: string;
let results: BenchResults;

function runQuick(resultsPath: string): Promise<{ code: number | null; output: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--results', resultsPath], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.on('error', fail);
    child.on('close', (code) => done({ code, output }));
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bench-harness-'));
  const path = join(dir, 'results.json');
  const { code, output } = await runQuick(path);
  if (code !== 0) throw new Error(`bench/run.ts --quick exited with ${code}:\n${output}`);
  results = JSON.parse(await readFile(path, 'utf8')) as BenchResults;
}, 90_000); // every benchmark in quick mode, in a child process: ~15 s alone, longer beside other test files on 2 cores

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('benchmark harness (quick mode)', () => {
  it('runs every registered measurement and records the machine', () => {
    expect(results.failures).toEqual([]);
    expect(results.quick).toBe(true);
    expect(results.measurements.map((m) => m.id)).toEqual(MEASUREMENTS.map((m) => m.id));
    expect(results.machine.cores).toBeGreaterThan(0);
    expect(results.machine.node).toBe(process.version);
  });

  it('gives every row a finite figure, and a ratio wherever there is a floor', () => {
    for (const m of results.measurements) {
      expect(m.tables.length, m.id).toBeGreaterThan(0);
      for (const table of m.tables) {
        expect(table.rows.length, `${m.id}: ${table.title}`).toBeGreaterThan(0);
        for (const r of table.rows) {
          expect(Number.isFinite(r.figure), `${m.id}: ${r.name}`).toBe(true);
          if (r.floor !== undefined && r.floor > 0) expect(Number.isFinite(r.ratio), `${m.id}: ${r.name}`).toBe(true);
          if (r.target) expect(typeof r.met, `${m.id}: ${r.name}`).toBe('boolean');
        }
      }
    }
  });

  it('meets the call-count targets: Personalize at the minimum, DynamoDB and S3 within 10%', () => {
    const requests = results.measurements.find((m) => m.id === 'requests')!;
    expect(requests.tables.map((t) => t.title)).toEqual([expect.stringContaining('Batch size 100 '), expect.stringContaining('Batch size 1000 ')]);
    for (const table of requests.tables) {
      const byName = new Map(table.rows.map((r) => [r.name, r]));
      expect(byName.get('Personalize, all calls')?.met, table.title).toBe(true);
      expect(byName.get('DynamoDB + S3 calls')?.met, table.title).toBe(true);
      // The reference forwarder makes one call per event: far more than the batched minimum.
      expect(byName.get('Personalize PutEvents')!.reference!).toBeGreaterThan(byName.get('Personalize PutEvents')!.figure);
    }
  });

  it('renders BENCHMARKS.md from the results and keeps the other sections of the file', async () => {
    const block = renderBlock(results);
    for (const m of results.measurements) expect(block).toContain(m.title);
    expect(block).toContain('Quick mode');
    const path = join(dir, 'BENCHMARKS.md');
    await writeFile(path, '# Benchmarks\n\n## Export (issue 4)\n\nkept as written\n');
    await writeBenchmarksMd(results, path);
    await writeBenchmarksMd(results, path);
    const md = await readFile(path, 'utf8');
    expect(md).toContain('## Export (issue 4)\n\nkept as written');
    expect(md.split(BEGIN)).toHaveLength(2);
    expect(md.indexOf(BEGIN)).toBeLessThan(md.indexOf(END));
  });
});
