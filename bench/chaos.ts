import { writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { parseEnv } from '../shared/config.js';

/**
 * `npm run chaos`: 100,000 events through the local stack's front doors with faults everywhere,
 * then the ledger. Loopback only; ends by itself (a hard deadline), exit code 0 only when
 * lost = 0, nothing mismatched, and the stream drained.
 *
 *   CHAOS_EVENTS (100000)  CHAOS_SEED (1)  CHAOS_DEADLINE_SECONDS (600)  CHAOS_SHARDS (8)
 *   CHAOS_OUT: also write the table (markdown) to this file
 */

const env = parseEnv(
  z.object({
    CHAOS_EVENTS: z.coerce.number().int().min(100).max(1_000_000).default(100_000),
    CHAOS_SEED: z.coerce.number().int().min(0).default(1),
    CHAOS_DEADLINE_SECONDS: z.coerce.number().int().min(30).max(3_600).default(600),
    CHAOS_SHARDS: z.coerce.number().int().min(1).max(16).default(8),
    CHAOS_OUT: z.string().optional(),
  }),
  process.env,
  'chaos run',
);

const deadlineMs = env.CHAOS_DEADLINE_SECONDS * 1000;
// The run stops waiting at its deadline and reports; this is the backstop if anything hangs past it.
const backstop = setTimeout(() => {
  console.error(`chaos run: hard deadline of ${env.CHAOS_DEADLINE_SECONDS + 60} s passed; exiting`);
  process.exit(2);
}, deadlineMs + 60_000);
backstop.unref();

// Before the pipeline's modules load: their logger and metrics read these once. Expected chatter
// (partial failures under injected faults) is counted in the table, not printed.
process.env.POWERTOOLS_LOG_LEVEL ??= 'ERROR';
process.env.POWERTOOLS_METRICS_DISABLED ??= 'true';
const { DEFAULT_RATES, runChaos } = await import('./chaos/run.js');

const log = (line: string) => console.error(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}`);
log(`${env.CHAOS_EVENTS} events, seed ${env.CHAOS_SEED}, ${env.CHAOS_SHARDS} shards, deadline ${env.CHAOS_DEADLINE_SECONDS} s`);

const result = await runChaos({
  events: env.CHAOS_EVENTS,
  seed: env.CHAOS_SEED,
  deadlineMs,
  shards: env.CHAOS_SHARDS,
  httpConcurrency: 8,
  trackerBatchSize: 100,
  rawRecords: Math.max(10, Math.round(env.CHAOS_EVENTS * 0.002)),
  rates: DEFAULT_RATES,
  progress: log,
});

console.log(result.table);
if (env.CHAOS_OUT) await writeFile(env.CHAOS_OUT, `${result.table}\n`);
const passed = result.ledger.lost === 0 && result.ledger.mismatched === 0 && result.drained && result.stalledShards.length === 0 && !result.deadlineExceeded;
log(passed ? 'PASS: lost = 0, every input accounted for' : 'FAIL: see the table');
clearTimeout(backstop);
process.exit(passed ? 0 : 1);
