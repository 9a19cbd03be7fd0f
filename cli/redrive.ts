import { OUTCOMES, runRedrive, type RedriveOutcome, type RedriveSummary } from '../shared/ops/redrive.js';
import { redriveRuntimeFromEnv } from '../shared/ops/redrive-runtime.js';
import { CliError, defaultIo, isMain, parseArgs, runCli, useLocalStackFile, type CliIo } from './cli-env.js';

/**
 * `npm run redrive [-- --max N] [--dry-run] [--aws]`: the dead-letter queue, re-validated with the
 * current code and configuration (EVENT_MAPPING as the processor has it), back onto the stream.
 */

const USAGE = 'usage: npm run redrive [-- --max N] [--dry-run] [--aws]';

const MEANING: Record<RedriveOutcome, string> = {
  redriven: 'fixed: back on the stream, removed from the queue',
  reread: 'on-failure ranges re-read from the stream and put back',
  stillBad: 'still failing: kept with the new reason',
  expired: 'on-failure ranges no longer on the stream: kept with that reason',
  otherStream: 'on-failure records of another stream: left as they are',
  unrecognised: 'not ours, not an on-failure record: left as they are',
  failed: 'an AWS call failed: left for the next run',
};

export function formatSummary(summary: RedriveSummary, queueUrl: string): string[] {
  const lines = [`redrive of ${queueUrl}: ${summary.messages} messages${summary.dryRun ? ' (dry run: nothing was changed)' : ''}`];
  const width = Math.max(...OUTCOMES.map((o) => o.length));
  for (const outcome of OUTCOMES) {
    const n = summary.outcomes[outcome];
    if (n > 0) lines.push(`  ${outcome.padEnd(width)} ${String(n).padStart(6)}  ${MEANING[outcome]}`);
  }
  lines.push(`  records put back on the stream: ${summary.recordsPut}`);
  if (summary.partiallyExpired > 0) lines.push(`  on-failure ranges that had partly expired: ${summary.partiallyExpired}`);
  if (summary.deleteFailures > 0) lines.push(`  originals not deleted (they will show up once more): ${summary.deleteFailures}`);
  const reasons = Object.entries(summary.byReason).sort(([, a], [, b]) => total(b) - total(a));
  if (reasons.length > 0) lines.push('by reason (as read):');
  for (const [reason, outcomes] of reasons) {
    const parts = Object.entries(outcomes).map(([o, n]) => `${o} ${n}`);
    lines.push(`  ${String(total(outcomes)).padStart(6)}  ${reason}  -> ${parts.join(', ')}`);
  }
  const kept = Object.entries(summary.newReasons).sort(([, a], [, b]) => b - a);
  if (kept.length > 0) lines.push('kept, with the reason they carry now:');
  for (const [reason, n] of kept) lines.push(`  ${String(n).padStart(6)}  ${reason}`);
  const stopped = { max: 'reached --max', empty: 'queue empty', deadline: 'out of time', 'no-new-messages': 'only messages this run already handled are left' }[summary.stoppedBecause];
  lines.push(`stopped: ${stopped}`);
  return lines;
}

function total(outcomes: Partial<Record<RedriveOutcome, number>>): number {
  return Object.values(outcomes).reduce((a, b) => a + b, 0);
}

export async function main(argv: string[], io: CliIo = defaultIo): Promise<number> {
  const args = parseArgs(argv, ['dry-run', 'aws', 'help'], ['max']);
  if (args.flags.has('help')) {
    io.out(USAGE);
    return 0;
  }
  if (args.positional.length > 0) throw new CliError(USAGE);
  const maxText = args.options.get('max');
  const max = maxText === undefined ? undefined : Number(maxText);
  if (max !== undefined && !(Number.isInteger(max) && max > 0)) throw new CliError(`--max must be a positive whole number, got ${maxText}`);
  if (!args.flags.has('aws')) await useLocalStackFile(io.env);
  const runtime = redriveRuntimeFromEnv(io.env);
  const summary = await runRedrive(runtime.deps, {
    ...runtime.settings,
    ...(max !== undefined && { maxMessages: max }),
    dryRun: args.flags.has('dry-run'),
  });
  for (const line of formatSummary(summary, runtime.queueUrl)) io.out(line);
  return summary.outcomes.failed > 0 ? 1 : 0;
}

if (isMain(import.meta.url)) runCli(main);
