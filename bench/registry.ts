/**
 * The measurements `npm run bench` runs, in order. Each is a script under bench/ that runs alone
 * (`npx tsx bench/<file> [--quick]` prints its tables) and, under run.ts, is started as its own
 * process with `--out <file.json>` (and `--quick`, `--repeats n` when given) and writes one
 * MeasurementResult there: use `entry(id, file, measure)` from bench/lib/harness.ts.
 * To add a measurement, add its line here; BENCHMARKS.md picks it up on the next run.
 */
export interface RegisteredMeasurement {
  id: string;
  file: string;
  /** The item of issue 6 it answers (the section number in BENCHMARKS.md). */
  item: number;
  title: string;
  /** Wall-clock limit for the child process. */
  timeoutSeconds: { full: number; quick: number };
}

export const MEASUREMENTS: readonly RegisteredMeasurement[] = [
  { id: 'requests', file: 'requests.ts', item: 1, title: 'AWS requests per 1,000 events', timeoutSeconds: { full: 600, quick: 60 } },
  { id: 'cpu', file: 'cpu.ts', item: 2, title: 'Processor CPU throughput', timeoutSeconds: { full: 600, quick: 60 } },
  { id: 'latency', file: 'latency.ts', item: 3, title: 'Batch wall time under service latency, and memory', timeoutSeconds: { full: 600, quick: 60 } },
  { id: 'collector', file: 'collector.ts', item: 4, title: 'Collector throughput', timeoutSeconds: { full: 600, quick: 60 } },
  { id: 'export', file: 'export-measure.ts', item: 5, title: 'Nightly export (runs bench/export.ts)', timeoutSeconds: { full: 5_400, quick: 90 } },
  { id: 'e2e', file: 'e2e.ts', item: 6, title: 'End to end on the local stack', timeoutSeconds: { full: 900, quick: 90 } },
];
