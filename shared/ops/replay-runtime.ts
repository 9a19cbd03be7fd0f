import { dynamoDocumentClient, personalizeEventsClient, s3Client } from '../aws/clients.js';
import { consentPolicyFromEnv, parseEnv, replayEnvSchema } from '../config.js';
import { policyRequiresConsent } from '../consent/policy.js';
import { DynamoConsentStore } from '../aws/dynamo-consent.js';
import { loadDeletedUsers } from '../deletion.js';
import { loadDeletionHasher, type DeletionHasherOptions } from '../deletion-key.js';
import { loadDatasetSchemas } from '../personalize/dataset-schema.js';
import { SdkPersonalizeSender } from '../aws/personalize.js';
import { S3Bucket } from '../aws/s3-bucket.js';
import { pacedSender, type ReplayDeps, type ReplayKind, type ReplaySettings } from './replay.js';
import { FileCheckpointStore, FileRejectionSink } from './replay-files.js';
import { TARGETS_PREFIX } from '../archive.js';
import { loadEventMapping } from '../event-mapping.js';
import { DEFAULT_TARGET, loadTargetsFile, type Target } from '../targets.js';

/** The replay's configuration and adapters, from the environment (the CLI). */

export { replayEnvSchema } from '../config.js';

export interface ReplayRunOptions {
  from: string;
  to: string;
  kinds: readonly ReplayKind[];
  checkpointPath: string;
  reportPath: string;
  /** PutEvents calls per second; 0 disables pacing. */
  putEventsPerSecond: number;
  signal?: AbortSignal;
  onProgress?: ReplayDeps['onProgress'];
  /** A target of TARGETS_FILE (docs/targets.md): its archive (targets/<name>/), tracker, datasets and schemas. */
  target?: string;
  /** Where a missing deletion hash key is reported; default the logger. */
  warn?: DeletionHasherOptions['warn'];
}

export function replayRuntimeFromEnv(env: NodeJS.ProcessEnv, options: ReplayRunOptions): { deps: ReplayDeps; settings: ReplaySettings } {
  const config = parseEnv(replayEnvSchema, env, 'replay');
  const target = targetOf(config.TARGETS_FILE, options.target);
  const trackingId = target ? target.trackingId : config.PERSONALIZE_TRACKING_ID;
  if (options.kinds.includes('interactions') && trackingId === undefined) {
    throw new Error('replay configuration is invalid: PERSONALIZE_TRACKING_ID is required to replay interactions (the event tracker to send them to)');
  }
  const consentPolicy = consentPolicyFromEnv(config);
  if (policyRequiresConsent(consentPolicy) && config.IDENTITY_TABLE === undefined) {
    throw new Error('replay configuration is invalid: IDENTITY_TABLE is required when CONSENT_REQUIRED_* is set (the latest consent of each user is read from it)');
  }
  const archive = new S3Bucket(s3Client(), config.ARCHIVE_BUCKET);
  const sender = new SdkPersonalizeSender(personalizeEventsClient({ maxAttempts: config.PERSONALIZE_MAX_ATTEMPTS }), {
    itemsPerSecond: config.PUT_ITEMS_PER_SECOND,
    usersPerSecond: config.PUT_USERS_PER_SECOND,
  });
  return {
    deps: {
      // A target's own archive; the deletion registry below is the bucket's, shared by every target.
      archive: target ? new S3Bucket(s3Client(), config.ARCHIVE_BUCKET, `${TARGETS_PREFIX}${target.name}/`) : archive,
      sender: pacedSender(sender, options.putEventsPerSecond),
      checkpoint: new FileCheckpointStore(options.checkpointPath),
      rejections: new FileRejectionSink(options.reportPath),
      // Read only: the replay never compacts the registry (the export does).
      ...(config.IDENTITY_TABLE !== undefined && {
        consent: { policy: consentPolicy, store: new DynamoConsentStore(dynamoDocumentClient(), config.IDENTITY_TABLE) },
      }),
      deletedUsers: async () => loadDeletedUsers(archive, { hasher: await loadDeletionHasher(config, options.warn ? { warn: options.warn } : {}) }),
      ...(options.signal && { signal: options.signal }),
      ...(options.onProgress && { onProgress: options.onProgress }),
    },
    settings: {
      from: options.from,
      to: options.to,
      kinds: options.kinds,
      trackingId: trackingId ?? '',
      ...(target
        ? { itemsDatasetArn: target.itemsDatasetArn, usersDatasetArn: target.usersDatasetArn, schemas: target.schemas }
        : {
            ...(config.PERSONALIZE_ITEMS_DATASET_ARN !== undefined && { itemsDatasetArn: config.PERSONALIZE_ITEMS_DATASET_ARN }),
            ...(config.PERSONALIZE_USERS_DATASET_ARN !== undefined && { usersDatasetArn: config.PERSONALIZE_USERS_DATASET_ARN }),
            schemas: loadDatasetSchemas(),
          }),
      forwardConcurrency: config.FORWARD_CONCURRENCY,
    },
  };
}

/** The named target of TARGETS_FILE; undefined for the default (the variables). */
function targetOf(file: string | undefined, name: string | undefined): Target | undefined {
  if (name === undefined || name === DEFAULT_TARGET) return undefined;
  const target = loadTargetsFile(file, { schemas: loadDatasetSchemas(), mapping: loadEventMapping({}) })?.find((t) => t.name === name);
  if (!target) throw new Error(`replay configuration is invalid: --target ${name} is not declared in TARGETS_FILE${file ? ` (${file})` : ' (unset)'}`);
  return target;
}
