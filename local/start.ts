import { resolve } from 'node:path';
import { z } from 'zod';
import { parseEnv } from '../shared/config.js';
import { declaredTargetNames } from '../shared/targets.js';
import { DEFAULT_NAMES, DEFAULT_PORTS, LOCAL_CREDENTIALS, startLocalStack } from './stack.js';

/** `npm start`: the whole pipeline on this machine, no AWS account. */

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
const env = parseEnv(
  z.object({
    LOCAL_HTTP_PORT: port(DEFAULT_PORTS.http),
    LOCAL_KINESIS_PORT: port(DEFAULT_PORTS.kinesis),
    LOCAL_DYNAMODB_PORT: port(DEFAULT_PORTS.dynamodb),
    LOCAL_S3_PORT: port(DEFAULT_PORTS.s3),
    LOCAL_SQS_PORT: port(DEFAULT_PORTS.sqs),
    LOCAL_PERSONALIZE_PORT: port(DEFAULT_PORTS.personalize),
    LOCAL_PERSONALIZE_CONTROL_PORT: port(DEFAULT_PORTS.personalizeControl),
    LOCAL_STATE_DIR: z.string().default('.local'),
    LOCAL_SUMMARY_SECONDS: z.coerce.number().min(0).default(10),
    STREAM_NAME: z.string().min(1).default(DEFAULT_NAMES.streamName),
    STREAM_SHARDS: z.coerce.number().int().min(1).max(100).default(DEFAULT_NAMES.shardCount),
    LOCAL_POLL_INTERVAL_MS: z.coerce.number().int().min(10).default(250),
  }),
  process.env,
  'local stack',
);

const stateDir = resolve(env.LOCAL_STATE_DIR);
const stack = await startLocalStack({
  ports: {
    http: env.LOCAL_HTTP_PORT,
    kinesis: env.LOCAL_KINESIS_PORT,
    dynamodb: env.LOCAL_DYNAMODB_PORT,
    s3: env.LOCAL_S3_PORT,
    sqs: env.LOCAL_SQS_PORT,
    personalize: env.LOCAL_PERSONALIZE_PORT,
    personalizeControl: env.LOCAL_PERSONALIZE_CONTROL_PORT,
  },
  names: { streamName: env.STREAM_NAME, shardCount: env.STREAM_SHARDS, identityTable: process.env.IDENTITY_TABLE ?? DEFAULT_NAMES.identityTable, archiveBucket: process.env.ARCHIVE_BUCKET ?? DEFAULT_NAMES.archiveBucket },
  stateDir,
  poller: { pollIntervalMs: env.LOCAL_POLL_INTERVAL_MS },
  log: (line) => console.error(line),
});

const e = stack.endpoints;
console.log(
  [
    'personalize-ingest local stack is ready',
    `  health + routes   ${stack.http.url}/health   (stats: ${stack.http.url}/stats, readiness report: ${stack.http.url}/readiness)`,
    `  kinesis           ${e.kinesis}   stream ${stack.names.streamName}`,
    `  dynamodb          ${e.dynamodb}   table ${stack.names.identityTable}`,
    `  s3                ${e.s3}   bucket ${stack.names.archiveBucket}`,
    `  sqs (DLQ)         ${stack.names.dlqUrl}`,
    `  personalize       ${e.personalizeEvents}${stack.personalize ? `   (local; received: ${stack.personalize.url}/_local/received)` : ''}`,
    `  import jobs       ${e.personalize}${stack.personalizeControl ? `   (local control plane; jobs: ${stack.personalizeControl.url}/_local/jobs, deletion jobs: /_local/deletion-jobs)` : ''}`,
    `  state             ${stateDir}`,
    ...(process.env.TARGETS_FILE ? [`  targets           ${declaredTargetNames(process.env.TARGETS_FILE).join(', ')} (TARGETS_FILE ${process.env.TARGETS_FILE}; /readiness?target=<name>)`] : []),
    // Only the built-in development defaults are printed; credentials a user set stay unprinted.
    process.env.TRACKER_WRITE_KEYS === LOCAL_CREDENTIALS.trackerWriteKey
      ? `  door credentials  write key ${LOCAL_CREDENTIALS.trackerWriteKey}, feed key ${LOCAL_CREDENTIALS.feedApiKey} (local defaults, see README)`
      : '  door credentials  from TRACKER_WRITE_KEYS / FEED_API_KEYS / SEGMENT_SHARED_SECRET / MPARTICLE_AUTHORIZATION',
    'Send events:  npm run send -- events/sample.ndjson      Export a day:  npm run export -- --date YYYY-MM-DD      Stop: Ctrl-C',
  ].join('\n'),
);

let last = '';
const timer =
  env.LOCAL_SUMMARY_SECONDS > 0
    ? setInterval(() => {
        const s = stack.summary();
        const line = `received ${s.received}  forwarded ${s.forwarded}  archived ${s.archived}  dlq ${s.deadLettered}  stitched ${s.stitched}  duplicates ${s.duplicates}  retried ${s.retried}  profiles held ${s.profilesHeld}`;
        if (line !== last) console.log(`[${new Date().toISOString()}] ${line}`);
        last = line;
      }, env.LOCAL_SUMMARY_SECONDS * 1000)
    : undefined;

let stopping = false;
const shutdown = (signal: string) => {
  if (stopping) return;
  stopping = true;
  if (timer) clearInterval(timer);
  console.log(`${signal}: stopping`);
  stack.stop().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
};
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
