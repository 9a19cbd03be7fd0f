import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';

/**
 * `npm run fuzz`: the fuzz suite with many more generated inputs and, unless FUZZ_SEED is given, a
 * new seed each time (printed, so a failure can be replayed with FUZZ_SEED=<seed>).
 *   FUZZ_NUM_RUNS (default 50000): runs per property; FUZZ_SEED: replay a seed.
 */
const env = {
  ...process.env,
  FUZZ_NUM_RUNS: process.env.FUZZ_NUM_RUNS ?? '50000',
  FUZZ_SEED: process.env.FUZZ_SEED ?? String(randomInt(1, 2 ** 31 - 1)),
};
console.error(`fuzz: FUZZ_NUM_RUNS=${env.FUZZ_NUM_RUNS} FUZZ_SEED=${env.FUZZ_SEED}`);
const child = spawn(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', 'test/fuzz', ...process.argv.slice(2)], { env, stdio: 'inherit' });
child.on('exit', (code, signal) => {
  if (signal) console.error(`fuzz: vitest ended by ${signal}; replay with FUZZ_SEED=${env.FUZZ_SEED}`);
  else if (code !== 0) console.error(`fuzz: failed; replay with FUZZ_SEED=${env.FUZZ_SEED} FUZZ_NUM_RUNS=${env.FUZZ_NUM_RUNS}`);
  process.exit(code ?? 1);
});
