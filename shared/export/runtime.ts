import { dynamoDocumentClient, personalizeClient, s3Client } from '../aws/clients.js';
import { consentPolicyFromEnv, readExportEnv } from '../config.js';
import { DynamoConsentStore } from '../aws/dynamo-consent.js';
import { loadDeletedUsers } from '../deletion.js';
import { loadDeletionHasher, type DeletionHasherOptions } from '../deletion-key.js';
import { DynamoIdentityStore } from '../aws/dynamo-identity.js';
import { loadDatasetSchemas } from '../personalize/dataset-schema.js';
import type { DuckDbSettings } from './engine/duckdb.js';
import type { ExportDeps, ExportOptions } from './export-day.js';
import { SdkImportJobs } from '../aws/personalize.js';
import { S3Bucket } from '../aws/s3-bucket.js';
import { TARGETS_PREFIX } from '../archive.js';
import { loadEventMapping } from '../event-mapping.js';
import { DEFAULT_TARGET, loadTargetsFile } from '../targets.js';
import type { BulkMode } from '../bulk-mode.js';

/** One target's export: its adapters (rooted at targets/<name>/ but for the default) and its own bulk mode. */
export interface ExportTarget {
  name: string;
  deps: ExportDeps;
  /** Unset: the deployment's (defaults.bulkMode). */
  bulkMode?: BulkMode | undefined;
}

export interface ExportRuntime {
  deps: ExportDeps;
  /** The other targets (docs/targets.md): the same export over targets/<name>/, with their schemas and datasets. */
  targets: ExportTarget[];
  /** The options the environment sets; the CLI's flags and the handler's event override them. */
  defaults: Required<Pick<ExportOptions, 'bulkMode' | 'mode' | 'anonymous' | 'partMaxBytes' | 'readConcurrency'>> & {
    workDir?: string;
    engine: DuckDbSettings;
    /** Days before yesterday the nightly run exports again (EXPORT_REEXPORT_DAYS). */
    reexportDays: number;
  };
}

/** The target of that name (unset or `default`: the default), or undefined when TARGETS_FILE does not declare it. */
export function findExportTarget(runtime: Pick<ExportRuntime, 'deps' | 'targets'>, name: string | undefined): ExportTarget | undefined {
  if (name === undefined || name === DEFAULT_TARGET) return { name: DEFAULT_TARGET, deps: runtime.deps };
  return runtime.targets.find((t) => t.name === name);
}

/** Why a name found no target, naming the declared ones. */
export function undeclaredTarget(runtime: Pick<ExportRuntime, 'targets'>, name: string): string {
  return `target ${name} is not declared in TARGETS_FILE (declared: ${[DEFAULT_TARGET, ...runtime.targets.map((t) => t.name)].join(', ')})`;
}

/**
 * Builds the export's adapters from the environment; a bad variable fails here, named.
 * `warn`: where a missing deletion hash key is reported (the CLI passes stderr: stdout may be JSON).
 */
export function exportRuntimeFromEnv(env: NodeJS.ProcessEnv = process.env, options: DeletionHasherOptions = {}): ExportRuntime {
  const config = readExportEnv(env);
  const archiveBucket = new S3Bucket(s3Client(), config.ARCHIVE_BUCKET);
  const deps: ExportDeps = {
    archive: archiveBucket,
    store: archiveBucket,
    links: new DynamoIdentityStore(dynamoDocumentClient(), config.IDENTITY_TABLE),
    consent: { policy: consentPolicyFromEnv(config), store: new DynamoConsentStore(dynamoDocumentClient(), config.IDENTITY_TABLE) },
    // The export compacts the registry at its start (a new snapshot when there is something to fold in).
    deletedUsers: async () => loadDeletedUsers(archiveBucket, { hasher: await loadDeletionHasher(config, options), compact: true }),
    jobs: new SdkImportJobs(personalizeClient()),
    settings: {
      schemas: loadDatasetSchemas(),
      datasets: {
        ...(config.PERSONALIZE_INTERACTIONS_DATASET_ARN !== undefined && { interactions: config.PERSONALIZE_INTERACTIONS_DATASET_ARN }),
        ...(config.PERSONALIZE_ITEMS_DATASET_ARN !== undefined && { items: config.PERSONALIZE_ITEMS_DATASET_ARN }),
        ...(config.PERSONALIZE_USERS_DATASET_ARN !== undefined && { users: config.PERSONALIZE_USERS_DATASET_ARN }),
      },
      ...(config.PERSONALIZE_IMPORT_ROLE_ARN !== undefined && { roleArn: config.PERSONALIZE_IMPORT_ROLE_ARN }),
    },
  };
  const targets = (loadTargetsFile(config.TARGETS_FILE, { schemas: deps.settings.schemas, mapping: loadEventMapping({}) }) ?? [])
    .filter((t) => t.name !== DEFAULT_TARGET)
    .map((t) => {
      const root = `${TARGETS_PREFIX}${t.name}/`;
      const roleArn = t.importRoleArn ?? config.PERSONALIZE_IMPORT_ROLE_ARN;
      const settings: ExportDeps['settings'] = {
        schemas: t.schemas,
        datasets: {
          ...(t.interactionsDatasetArn !== undefined && { interactions: t.interactionsDatasetArn }),
          ...(t.itemsDatasetArn !== undefined && { items: t.itemsDatasetArn }),
          ...(t.usersDatasetArn !== undefined && { users: t.usersDatasetArn }),
        },
        ...(roleArn !== undefined && { roleArn }),
      };
      const targetBucket = new S3Bucket(s3Client(), config.ARCHIVE_BUCKET, root);
      // The registry is the bucket's, shared by every target; the default's run has compacted it already.
      const deletedUsers = async () => loadDeletedUsers(archiveBucket, { hasher: await loadDeletionHasher(config, options) });
      return { name: t.name, deps: { ...deps, archive: targetBucket, store: targetBucket, deletedUsers, settings }, bulkMode: t.bulkMode };
    });
  return {
    deps,
    targets,
    defaults: {
      bulkMode: config.BULK_MODE,
      mode: config.EXPORT_IMPORT_MODE,
      anonymous: config.EXPORT_ANONYMOUS,
      partMaxBytes: config.EXPORT_PART_MAX_BYTES,
      reexportDays: config.EXPORT_REEXPORT_DAYS,
      // S3 GETs are latency-bound and a day holds one object per batch and hour: read many at once.
      readConcurrency: 32,
      engine: { memoryLimit: `${engineMemoryMb(config.EXPORT_ENGINE_MEMORY_MB, env)}MB`, threads: config.EXPORT_ENGINE_THREADS },
      ...(config.EXPORT_WORK_DIR !== undefined && { workDir: config.EXPORT_WORK_DIR }),
    },
  };
}

/** The configured engine memory, else half the Lambda's memory (the rest is Node, buffers, the OS), else 512 MB. */
function engineMemoryMb(configured: number | undefined, env: NodeJS.ProcessEnv): number {
  if (configured !== undefined) return configured;
  const lambdaMb = Number(env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE);
  return Number.isInteger(lambdaMb) && lambdaMb > 0 ? Math.max(64, Math.floor(lambdaMb / 2)) : 512;
}
