import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { daysBetween, REPLAY_KINDS, replayArchive, ReplayError, type ReplayKind, type ReplaySummary } from '../shared/ops/replay.js';
import { replayRuntimeFromEnv } from '../shared/ops/replay-runtime.js';
import { CliError, defaultIo, isMain, parseArgs, runCli, useLocalStackFile, type CliIo } from './cli-env.js';
import { LOCAL_ITEMS_DATASET_ARN, LOCAL_TRACKING_ID, LOCAL_USERS_DATASET_ARN } from '../local/stack.js';

/**
 * `npm run replay -- --from 2026-11-20 --to 2026-11-22 [--kind interactions|items|users]
 *  [--checkpoint <file>] [--report <file>] [--rate <PutEvents calls/s>] [--aws]`
 *
 * Re-sends archived events to Personalize with their original eventIds. Interrupted (Ctrl-C, a
 * crash, throttling that outlasts the SDK's retries), the same command resumes after the last
 * archive object fully sent. Reads the archive only: the stream and the archive are untouched.
 */

const USAGE =
  'usage: npm run replay -- --from YYYY-MM-DD --to YYYY-MM-DD [--kind interactions|items|users] [--target <name>] [--checkpoint <file>] [--report <file>] [--rate <PutEvents calls/s>] [--aws]';

/** Half the PutEvents quota (FACTS §3: 1000/s per dataset group): the live tracker keeps the rest. */
export const DEFAULT_PUT_EVENTS_PER_SECOND = 500;

export function formatReplaySummary(s: ReplaySummary, files: { checkpoint: string; report: string }): string[] {
  const lines = [
    `replay: ${s.objectsDone} archive objects sent this run, ${s.objectsSkipped} already sent before (checkpoint), ${s.objectsListed} in the range`,
    `  events ${s.eventsSent} in ${s.putEventsCalls} PutEvents calls; items ${s.itemsSent} in ${s.putItemsCalls} PutItems calls; users ${s.usersSent} in ${s.putUsersCalls} PutUsers calls`,
  ];
  if (s.rejected > 0 || s.malformedLines > 0) lines.push(`  refused ${s.rejected}, unreadable archive lines ${s.malformedLines}: see ${files.report}`);
  if (s.deletedUserRecords > 0) lines.push(`  left out: ${s.deletedUserRecords} records of deleted users`);
  if (s.consentDeniedRecords > 0) lines.push(`  left out: ${s.consentDeniedRecords} records without the consent Personalize needs`);
  if (s.notConfigured > 0) lines.push(`  not sent: ${s.notConfigured} items/users (no dataset ARN configured)`);
  if (s.superseded > 0) lines.push(`  ${s.superseded} item/user versions replaced by a later one in the same object`);
  lines.push(
    s.finished
      ? `done; checkpoint ${files.checkpoint} (running the same command again sends only objects archived since)`
      : `interrupted; checkpoint ${files.checkpoint}: run the same command again to resume`,
  );
  return lines;
}

export async function main(argv: string[], io: CliIo = defaultIo): Promise<number> {
  const args = parseArgs(argv, ['aws', 'help'], ['from', 'to', 'kind', 'checkpoint', 'report', 'rate', 'target']);
  if (args.flags.has('help')) {
    io.out(USAGE);
    return 0;
  }
  const from = args.options.get('from');
  const to = args.options.get('to');
  if (!from || !to || args.positional.length > 0) throw new CliError(USAGE);
  try {
    daysBetween(from, to);
  } catch (error) {
    if (error instanceof ReplayError) throw new CliError(error.message);
    throw error;
  }
  const kindOption = args.options.get('kind');
  if (kindOption !== undefined && !REPLAY_KINDS.includes(kindOption as ReplayKind)) throw new CliError(`--kind must be one of ${REPLAY_KINDS.join(', ')}, got ${kindOption}`);
  const kinds: ReplayKind[] = kindOption ? [kindOption as ReplayKind] : [...REPLAY_KINDS];
  const rateText = args.options.get('rate');
  const rate = rateText === undefined ? DEFAULT_PUT_EVENTS_PER_SECOND : Number(rateText);
  if (!(Number.isFinite(rate) && rate >= 0 && rate <= 1000)) throw new CliError(`--rate must be 0-1000 PutEvents calls per second (FACTS §3 quota), got ${rateText}`);

  const env = io.env;
  if (!args.flags.has('aws')) {
    await useLocalStackFile(env);
    env.PERSONALIZE_TRACKING_ID ??= LOCAL_TRACKING_ID;
    env.PERSONALIZE_ITEMS_DATASET_ARN ??= LOCAL_ITEMS_DATASET_ARN;
    env.PERSONALIZE_USERS_DATASET_ARN ??= LOCAL_USERS_DATASET_ARN;
  }
  const target = args.options.get('target');
  const name = `replay-${target ? `${target}-` : ''}${from}_${to}_${kinds.join('+')}`;
  const stateDir = env.LOCAL_STATE_DIR ?? '.local';
  const checkpoint = resolve(args.options.get('checkpoint') ?? `${stateDir}/${name}.checkpoint.json`);
  const report = resolve(args.options.get('report') ?? `${stateDir}/${name}.rejections.ndjson`);

  const bar = process.stderr.isTTY ? new cliProgress.SingleBar({ format: 'replay [{bar}] {value}/{total} objects | {events} events', stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined;
  const runtime = replayRuntimeFromEnv(env, {
    from,
    to,
    kinds,
    checkpointPath: checkpoint,
    reportPath: report,
    putEventsPerSecond: rate,
    ...(target !== undefined && { target }),
    ...(io.signal && { signal: io.signal }),
    warn: (message) => io.err(`warning: ${message}`),
    onProgress: (p) => {
      if (!bar) return;
      if (p.objectsDone === 1) bar.start(p.objectsPending, 0, { events: 0 });
      bar.update(p.objectsDone, { events: p.eventsSent });
    },
  });
  let summary: ReplaySummary;
  try {
    summary = await replayArchive(runtime.deps, runtime.settings);
  } finally {
    bar?.stop();
  }
  for (const line of formatReplaySummary(summary, { checkpoint, report })) io.out(line);
  return summary.finished ? 0 : 130;
}

if (isMain(import.meta.url)) runCli(main);
