import { z } from 'zod';
import { kinesisClient, s3Client, sqsClient } from '../aws/clients.js';
import { consentEnv, parseEnv } from '../config.js';
import { SqsDeadLetterQueue } from '../dlq.js';
import { S3ArchiveStore } from '../archive.js';
import { checkPropertyRenames, loadEventMapping } from '../event-mapping.js';
import { loadDatasetSchemas } from '../personalize/dataset-schema.js';
import { KinesisRangeReader, KinesisStreamSink, S3ObjectReader, SqsRedriveQueue } from './aws-io.js';
import type { RedriveDeps, RedriveSettings } from './redrive.js';

/**
 * The redrive's configuration and adapters, from the environment (the Lambda and the CLI).
 * The checks it re-runs use the processor's bundled dataset schemas and the event mapping
 * (bundled, or EVENT_MAPPING): give it the same EVENT_MAPPING as the processor.
 */

const blankAsUnset = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const positiveInt = (fallback: number) => z.preprocess(blankAsUnset, z.coerce.number().int().positive().default(fallback));
const required = (what: string) => z.string({ error: `is required (${what})` }).trim().min(1, `is required (${what})`);

export const redriveEnvSchema = z.object({
  DLQ_URL: required('the SQS dead-letter queue URL').url('must be the SQS dead-letter queue URL'),
  STREAM_NAME: required('the Kinesis stream records go back to'),
  ARCHIVE_BUCKET: required('the S3 bucket holding dlq-payloads/'),
  /** Messages handled per run unless the caller says otherwise. */
  REDRIVE_MAX_MESSAGES: positiveInt(1_000),
  /** How long a received message stays hidden while this run works on it. */
  REDRIVE_VISIBILITY_TIMEOUT_SECONDS: positiveInt(300),
  REDRIVE_WAIT_SECONDS: z.preprocess(blankAsUnset, z.coerce.number().int().min(0).max(20).default(1)),
  ...consentEnv,
});

export type RedriveEnv = z.infer<typeof redriveEnvSchema>;

export interface RedriveRuntime {
  deps: RedriveDeps;
  settings: RedriveSettings;
  queueUrl: string;
}

/** Fails with an error naming every bad variable, the event mapping entry or the schema field. */
export function redriveRuntimeFromEnv(env: NodeJS.ProcessEnv = process.env): RedriveRuntime {
  const config = parseEnv(redriveEnvSchema, env, 'redrive');
  const sqs = sqsClient();
  const s3 = s3Client();
  const kinesis = kinesisClient();
  const mapping = loadEventMapping(env);
  const schemas = loadDatasetSchemas();
  checkPropertyRenames(mapping, schemas, env.EVENT_MAPPING?.trim() ? 'EVENT_MAPPING' : 'schemas/event-mapping.json');
  return {
    queueUrl: config.DLQ_URL,
    deps: {
      queue: new SqsRedriveQueue(sqs, config.DLQ_URL, {
        visibilityTimeoutSeconds: config.REDRIVE_VISIBILITY_TIMEOUT_SECONDS,
        waitTimeSeconds: config.REDRIVE_WAIT_SECONDS,
      }),
      deadLetters: new SqsDeadLetterQueue(sqs, config.DLQ_URL, new S3ArchiveStore(s3, config.ARCHIVE_BUCKET)),
      stream: new KinesisStreamSink(kinesis, config.STREAM_NAME),
      reader: new KinesisRangeReader(kinesis, config.STREAM_NAME),
      payloads: new S3ObjectReader(s3, config.ARCHIVE_BUCKET),
    },
    settings: {
      streamName: config.STREAM_NAME,
      mapping,
      schemas,
      maxMessages: config.REDRIVE_MAX_MESSAGES,
    },
  };
}
