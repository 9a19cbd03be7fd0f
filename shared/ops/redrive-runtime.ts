import { kinesisClient, s3Client, sqsClient } from '../aws/clients.js';
import { parseEnv, redriveEnvSchema } from '../config.js';
import { SqsDeadLetterQueue } from '../aws/sqs.js';
import { S3Bucket } from '../aws/s3-bucket.js';
import { loadCheckedEventMapping } from '../event-mapping.js';
import { loadDatasetSchemas } from '../personalize/dataset-schema.js';
import { KinesisRangeReader, KinesisStreamSink } from '../aws/kinesis.js';
import { SqsRedriveQueue } from '../aws/sqs.js';
import type { RedriveDeps, RedriveSettings } from './redrive.js';
import { DEFAULT_TARGET, loadTargetsFile } from '../targets.js';

/**
 * The redrive's configuration and adapters, from the environment (the Lambda and the CLI).
 * The checks it re-runs use the processor's bundled dataset schemas and the event mapping
 * (bundled, or EVENT_MAPPING), and each target's of TARGETS_FILE: give it the processor's.
 */

export { redriveEnvSchema, type RedriveEnv } from '../config.js';

export interface RedriveRuntime {
  deps: RedriveDeps;
  settings: RedriveSettings;
  queueUrl: string;
}

/** Fails with an error naming every bad variable, the event mapping entry or the schema field. */
export function redriveRuntimeFromEnv(env: NodeJS.ProcessEnv = process.env): RedriveRuntime {
  const config = parseEnv(redriveEnvSchema, env, 'redrive');
  const sqs = sqsClient();
  const bucket = new S3Bucket(s3Client(), config.ARCHIVE_BUCKET);
  const kinesis = kinesisClient();
  const schemas = loadDatasetSchemas();
  const mapping = loadCheckedEventMapping(config, schemas);
  const targets = loadTargetsFile(config.TARGETS_FILE, { schemas, mapping });
  return {
    queueUrl: config.DLQ_URL,
    deps: {
      queue: new SqsRedriveQueue(sqs, config.DLQ_URL, {
        visibilityTimeoutSeconds: config.REDRIVE_VISIBILITY_TIMEOUT_SECONDS,
        waitTimeSeconds: config.REDRIVE_WAIT_SECONDS,
      }),
      deadLetters: new SqsDeadLetterQueue(sqs, config.DLQ_URL, bucket),
      stream: new KinesisStreamSink(kinesis, config.STREAM_NAME),
      reader: new KinesisRangeReader(kinesis, config.STREAM_NAME),
      payloads: bucket,
    },
    settings: {
      streamName: config.STREAM_NAME,
      mapping,
      schemas,
      maxMessages: config.REDRIVE_MAX_MESSAGES,
      ...(targets && { targets: new Map(targets.filter((t) => t.name !== DEFAULT_TARGET).map((t) => [t.name, { mapping: t.mapping, schemas: t.schemas }])) }),
    },
  };
}
