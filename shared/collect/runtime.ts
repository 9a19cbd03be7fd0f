import { kinesisClient } from '../aws/clients.js';
import { readCollectorEnv, type CollectorEnv } from '../config.js';
import { loadEventMapping } from '../event-mapping.js';
import { loadDatasetSchemas } from '../personalize/dataset-schema.js';
import { doorMapping, loadTargetsFile } from '../targets.js';
import { putRecords } from '../aws/kinesis.js';
import type { CollectorDeps } from './collector.js';
import { loadCollectorSecrets } from './secrets.js';

/** The collector's adapters, built once per container from the environment. */
export function collectorDepsFromEnv(env: NodeJS.ProcessEnv = process.env): CollectorDeps & { config: CollectorEnv } {
  const config = readCollectorEnv(env);
  const mapping = loadEventMapping(config);
  const targets = loadTargetsFile(config.TARGETS_FILE, { schemas: loadDatasetSchemas(), mapping });
  const kinesis = kinesisClient();
  const target = config.STREAM_ARN ? { streamArn: config.STREAM_ARN } : { streamName: config.STREAM_NAME! };
  return {
    config,
    stream: { put: (records) => putRecords(kinesis, records, { ...target, maxAttempts: config.KINESIS_PUT_ATTEMPTS }) },
    // Cached by Powertools in AWS (refreshed every few minutes for rotation); env locally.
    secrets: () => loadCollectorSecrets(env),
    settings: {
      maxBodyBytes: config.COLLECTOR_MAX_BODY_BYTES,
      maxMessageBytes: config.COLLECTOR_MAX_MESSAGE_BYTES,
      maxMessages: config.COLLECTOR_MAX_MESSAGES,
      maxExpandedPerMessage: config.COLLECTOR_MAX_EXPANDED_PER_MESSAGE,
      maxRecordsPerRequest: config.COLLECTOR_MAX_RECORDS_PER_REQUEST,
      clockSkewToleranceMs: config.COLLECTOR_CLOCK_SKEW_TOLERANCE_SECONDS * 1000,
      publicProfileUpdates: config.COLLECTOR_PUBLIC_PROFILE_UPDATES,
      // Every target's entries when there are several: the doors split product lists once, for all.
      mapping: doorMapping(mapping, targets),
      // Routes only: the collector stamps messages, the processor reads each target's settings.
      ...(targets && { targets }),
    },
  };
}
