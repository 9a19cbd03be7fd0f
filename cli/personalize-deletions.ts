import { deletionStepDepsFromEnv } from '../shared/personalize-deletion/runtime.js';
import { runDeletionStep } from '../shared/personalize-deletion/step.js';
import { CliError, defaultIo, isMain, parseArgs, runCli, useLocalStackFile, type CliIo } from './cli-env.js';

/**
 * `npm run personalize-deletions [-- --aws] [--json]`: one run of the daily deletion step (deleted
 * users -> Personalize data deletion jobs; earlier jobs followed), against the local stack from
 * .local/stack.json, or with --aws against the resources named in the environment.
 */

const USAGE = 'usage: npm run personalize-deletions -- [--aws] [--json]';

export async function main(argv: string[], io: CliIo = defaultIo): Promise<number> {
  const args = parseArgs(argv, ['aws', 'json', 'help'], []);
  if (args.flags.has('help')) {
    io.out(USAGE);
    return 0;
  }
  if (args.positional.length > 0) throw new CliError(USAGE);
  if (!args.flags.has('aws')) {
    await useLocalStackFile(io.env);
  }
  const report = await runDeletionStep(deletionStepDepsFromEnv(io.env));
  if (args.flags.has('json')) {
    io.out(JSON.stringify(report, null, 2));
    return report.failed.length > 0 ? 1 : 0;
  }
  io.out(`outbox: ${report.pendingBefore} user(s) pending before, ${report.pendingAfter} after (${report.outboxRemoved} removed: deleted in Personalize)`);
  for (const j of report.completed) io.out(`  COMPLETED ${j.jobName}: numDeleted ${j.numDeleted} of ${j.users} user(s), ${j.completedAt}`);
  for (const j of report.failed) io.out(`  FAILED    ${j.jobName}: ${j.failureReason} (its ${j.users} user(s) stay pending for a new job)`);
  for (const j of report.inProgress) io.out(`  running   ${j.jobName} (${j.users} user(s))`);
  for (const j of report.created) io.out(`  created   ${j.jobName}: ${j.users} user(s), ${j.bytes} bytes, ${j.dataLocation}`);
  for (const [reason, n] of Object.entries(report.deferred)) io.out(`  deferred  ${n} user(s): ${reason}`);
  if (report.importsInProgress.length > 0) io.out(`  import jobs in progress: ${report.importsInProgress.join(', ')}`);
  if (report.abandoned > 0) io.out(`  ${report.abandoned} job record(s) of a job never created were dropped (their users stay pending)`);
  io.out('Personalize deletes within up to a day of COMPLETED jobs starting; train a new solution version afterwards (README "Deletion reaches Personalize").');
  return report.failed.length > 0 ? 1 : 0;
}

if (isMain(import.meta.url)) runCli(main);
