import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { sqsClient } from '../shared/aws/clients.js';
import { parseEnv } from '../shared/config.js';
import { SqsRedriveQueue } from '../shared/aws/sqs.js';
import { formatJsonLines, formatTable, LISTED_STAGES, listDeadLetters, type ListedStage, type Listing, type PeekQueue } from '../shared/ops/dlq-list.js';
import { redriveEnvSchema } from '../shared/ops/redrive-runtime.js';
import { CliError, defaultIo, isMain, parseArgs, runCli, type CliIo, useLocalStackFile } from './cli-env.js';

/**
 * `npm run dlq [-- --reason <text>] [--stage <stage>] [--limit N] [--json] [--aws]`: lists the
 * dead-letter queue without consuming it (the queue redrive reads: DLQ_URL, or the local stack's).
 */

const USAGE = `usage: npm run dlq [-- --reason <text>] [--stage ${LISTED_STAGES.join('|')}] [--limit N] [--json] [--aws]`;

/** Messages read stay hidden this long if the listing cannot hand them back (it normally does at once). */
export const LIST_VISIBILITY_TIMEOUT_SECONDS = 30;
const DEFAULT_LIMIT = 1_000;

export function sqsPeekQueue(sqs: SQSClient, queueUrl: string, waitTimeSeconds: number): PeekQueue {
  const queue = new SqsRedriveQueue(sqs, queueUrl, { visibilityTimeoutSeconds: LIST_VISIBILITY_TIMEOUT_SECONDS, waitTimeSeconds });
  return {
    async counts() {
      const out = await sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
      );
      const count = (value: string | undefined) => Number(value ?? 0) || 0;
      return { visible: count(out.Attributes?.ApproximateNumberOfMessages), inFlight: count(out.Attributes?.ApproximateNumberOfMessagesNotVisible) };
    },
    receive: (max) => queue.receive(max),
    release: (handles) => queue.release(handles),
  };
}

export function formatFooter(listing: Listing, queueUrl: string, limit: number): string[] {
  const stopped = {
    empty: 'queue read to its end',
    count: 'read as many messages as the queue reported',
    limit: `reached --limit ${limit}`,
    'no-new-messages': 'receives brought only messages already read',
    interrupted: 'interrupted',
  }[listing.stoppedBecause];
  const lines = [
    `${listing.entries.length} listed of ${listing.scanned} read from ${queueUrl} (about ${listing.approximate.visible} visible` +
      `${listing.approximate.inFlight > 0 ? `, ${listing.approximate.inFlight} in flight and not listed: a redrive or another reader holds them` : ''}); ${stopped}`,
  ];
  if (listing.notReleased > 0) {
    lines.push(`${listing.notReleased} messages could not be made visible again: they reappear within ${LIST_VISIBILITY_TIMEOUT_SECONDS} s`);
  }
  return lines;
}

export async function main(argv: string[], io: CliIo = defaultIo): Promise<number> {
  const args = parseArgs(argv, ['json', 'aws', 'help'], ['reason', 'stage', 'limit']);
  if (args.flags.has('help')) {
    io.out(USAGE);
    return 0;
  }
  if (args.positional.length > 0) throw new CliError(USAGE);
  const stage = args.options.get('stage');
  if (stage !== undefined && !(LISTED_STAGES as readonly string[]).includes(stage)) {
    throw new CliError(`--stage must be one of ${LISTED_STAGES.join(', ')}, got ${stage}`);
  }
  const limitText = args.options.get('limit');
  const limit = limitText === undefined ? DEFAULT_LIMIT : Number(limitText);
  if (!(Number.isInteger(limit) && limit > 0)) throw new CliError(`--limit must be a positive whole number, got ${limitText}`);
  const reason = args.options.get('reason');

  if (!args.flags.has('aws')) await useLocalStackFile(io.env);
  const config = parseEnv(redriveEnvSchema.pick({ DLQ_URL: true, REDRIVE_WAIT_SECONDS: true }), io.env, 'dlq');
  const queue = sqsPeekQueue(sqsClient(), config.DLQ_URL, config.REDRIVE_WAIT_SECONDS);
  const listing = await listDeadLetters(queue, {
    limit,
    ...(stage !== undefined && { stage: stage as ListedStage }),
    ...(reason !== undefined && { reason }),
    ...(io.signal && { signal: io.signal }),
  });

  const footer = formatFooter(listing, config.DLQ_URL, limit);
  if (args.flags.has('json')) {
    // Standard output stays one JSON record per line.
    for (const line of formatJsonLines(listing.entries)) io.out(line);
    for (const line of footer) io.err(line);
  } else {
    if (listing.entries.length > 0) for (const line of formatTable(listing.entries)) io.out(line);
    for (const line of footer) io.out(line);
  }
  return 0;
}

if (isMain(import.meta.url)) runCli(main);
