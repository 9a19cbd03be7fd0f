import { S3Bucket } from '../aws/s3-bucket.js';
import { dynamoDocumentClient, personalizeEventsClient, s3Client, sqsClient } from '../aws/clients.js';
import { consentPolicyFromEnv, readProcessorEnv } from '../config.js';
import { DynamoConsentStore } from '../aws/dynamo-consent.js';
import { hashUserId, recordDeletedSessions, recordDeletion } from '../deletion.js';
import { writePendingDeletion } from '../personalize/deletion-outbox.js';
import { lazyDeletionHasher } from '../deletion-key.js';
import { SqsDeadLetterQueue } from '../aws/sqs.js';
import { loadCheckedEventMapping } from '../event-mapping.js';
import { LinkCache } from '../identity/cache.js';
import { DynamoIdentityStore } from '../aws/dynamo-identity.js';
import { loadDatasetSchemas } from '../personalize/dataset-schema.js';
import { parseAllowFields, parsePiiFields, piiPolicy } from '../pii.js';
import { SdkPersonalizeSender } from '../aws/personalize.js';
import { DynamoProfileStore } from '../aws/dynamo-profiles.js';
import { streamsInteractions, type BulkMode } from '../bulk-mode.js';
import { DEFAULT_TARGET, loadTargetsFile, TargetsError, type TargetDefaults } from '../targets.js';
import type { ProcessorDeps, TargetSettings } from './process-batch.js';

/**
 * Builds the processor's adapters from the environment, once per container. Everything invalid
 * (variables, event mapping, dataset schemas) fails here, at start, with an error naming it.
 */
export function processorDepsFromEnv(env: NodeJS.ProcessEnv = process.env): ProcessorDeps {
  const config = readProcessorEnv(env);
  const archive = new S3Bucket(s3Client(), config.ARCHIVE_BUCKET);
  const schemas = loadDatasetSchemas();
  const mapping = loadCheckedEventMapping(config, schemas);
  const dynamo = dynamoDocumentClient();
  // Read at the first deletion (the key may be in Secrets Manager); a failure fails that batch, which is retried.
  const deletionHasher = lazyDeletionHasher(config);
  const consentPolicy = consentPolicyFromEnv(config);
  return {
    identity: new DynamoIdentityStore(dynamo, config.IDENTITY_TABLE, config.IDENTITY_LINK_TTL_DAYS),
    // Profiles live in the identity table too, under their own key prefix (shared/identity/store.ts).
    profiles: new DynamoProfileStore(dynamo, config.IDENTITY_TABLE),
    deletions: {
      record: async (userId, requestedAt) => {
        const hasher = await deletionHasher();
        await recordDeletion(archive, userId, requestedAt, { hasher });
        // The raw id, until Personalize has deleted the user (shared/personalize-deletion/outbox.ts);
        // only where a dataset group is configured, so no one else's bucket keeps raw ids.
        if (config.PERSONALIZE_DATASET_GROUP_ARN.length > 0) {
          await writePendingDeletion(archive, hashUserId(userId, hasher), { userId, requestedAt });
        }
      },
      recordSessions: async (sessionIds, requestedAt) => {
        await recordDeletedSessions(archive, sessionIds, requestedAt, { hasher: await deletionHasher() });
      },
    },
    consent: {
      policy: consentPolicy,
      store: new DynamoConsentStore(dynamo, config.IDENTITY_TABLE, config.IDENTITY_LINK_TTL_DAYS),
      // An opt-out goes to Personalize's data deletion job (the raw id waits in the outbox until it ran).
      ...(consentPolicy.deleteOnOptOut &&
        config.PERSONALIZE_DATASET_GROUP_ARN.length > 0 && {
          scheduleDeletion: async (userId: string, at: number) => {
            const hasher = await deletionHasher();
            await writePendingDeletion(archive, hashUserId(userId, hasher), { userId, requestedAt: at });
          },
        }),
    },
    linkCache: new LinkCache({
      positiveTtlMs: config.IDENTITY_CACHE_TTL_SECONDS * 1000,
      negativeTtlMs: config.IDENTITY_NEGATIVE_CACHE_TTL_SECONDS * 1000,
      maxEntries: config.IDENTITY_CACHE_MAX_ENTRIES,
    }),
    archive,
    dlq: new SqsDeadLetterQueue(sqsClient(), config.DLQ_URL, archive),
    personalize: new SdkPersonalizeSender(
      personalizeEventsClient({ maxAttempts: config.PERSONALIZE_MAX_ATTEMPTS, retryMode: config.PERSONALIZE_RETRY_MODE }),
      { itemsPerSecond: config.PUT_ITEMS_PER_SECOND, usersPerSecond: config.PUT_USERS_PER_SECOND },
    ),
    settings: {
      trackingId: config.PERSONALIZE_TRACKING_ID ?? '',
      bulkMode: config.BULK_MODE,
      ...(config.PERSONALIZE_ITEMS_DATASET_ARN !== undefined && { itemsDatasetArn: config.PERSONALIZE_ITEMS_DATASET_ARN }),
      ...(config.PERSONALIZE_USERS_DATASET_ARN !== undefined && { usersDatasetArn: config.PERSONALIZE_USERS_DATASET_ARN }),
      forwardConcurrency: config.FORWARD_CONCURRENCY,
      schemas,
      mapping,
      targets: processorTargets(config.TARGETS_FILE, { schemas, mapping }, config.BULK_MODE),
      pii: piiPolicy({
        fields: parsePiiFields(config.PII_FIELDS),
        mode: config.PII_MODE,
        allowFields: parseAllowFields(config.PII_ALLOW_FIELDS),
        ...(config.PII_HASH_KEY !== undefined && { hashKey: config.PII_HASH_KEY }),
      }),
    },
  };
}

/** The targets other than the default (docs/targets.md); each needs a tracker while interactions stream. */
function processorTargets(file: string | undefined, defaults: TargetDefaults, bulkMode: BulkMode): Map<string, TargetSettings> {
  const targets = new Map<string, TargetSettings>();
  for (const t of loadTargetsFile(file, defaults) ?? []) {
    if (t.name === DEFAULT_TARGET) continue;
    const mode = t.bulkMode ?? bulkMode;
    if (t.trackingId === undefined && streamsInteractions(mode)) {
      throw new TargetsError(`TARGETS_FILE ${file ?? ''}: target ${t.name} has no trackingId, and its bulk mode ${mode}${t.bulkMode === undefined ? ' (BULK_MODE)' : ''} streams interactions`);
    }
    targets.set(t.name, { trackingId: t.trackingId ?? '', itemsDatasetArn: t.itemsDatasetArn, usersDatasetArn: t.usersDatasetArn, schemas: t.schemas, mapping: t.mapping, bulkMode: mode });
  }
  return targets;
}
