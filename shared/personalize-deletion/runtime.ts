import { personalizeClient, s3Client } from '../aws/clients.js';
import { SdkDeletionJobs } from '../aws/personalize.js';
import { S3Bucket } from '../aws/s3-bucket.js';
import { readPersonalizeDeletionEnv, type PersonalizeDeletionEnv } from '../config.js';
import { loadEventMapping } from '../event-mapping.js';
import { loadDatasetSchemas } from '../personalize/dataset-schema.js';
import { loadTargetsFile } from '../targets.js';
import { logger, metrics, MetricUnit } from '../observability.js';
import { emptyDeletionReport, runDeletionStep, type DeletionStepDeps, type DeletionStepReport } from './step.js';

/** The deletion step's adapters from the environment; a bad variable fails here, named (ConfigError). */
export function deletionStepDepsFromEnv(env: NodeJS.ProcessEnv = process.env): DeletionStepDeps {
  const config: PersonalizeDeletionEnv = readPersonalizeDeletionEnv(env);
  // Every target's dataset group and datasets too (docs/targets.md): a deleted person is deleted everywhere.
  const targets = loadTargetsFile(config.TARGETS_FILE, { schemas: loadDatasetSchemas(), mapping: loadEventMapping({}) }) ?? [];
  const unique = (arns: readonly (string | undefined)[]) => [...new Set(arns.filter((arn): arn is string => arn !== undefined))];
  return {
    store: new S3Bucket(s3Client(), config.ARCHIVE_BUCKET),
    personalize: new SdkDeletionJobs(personalizeClient()),
    datasetGroupArns: unique([...config.PERSONALIZE_DATASET_GROUP_ARN, ...targets.map((t) => t.datasetGroupArn)]),
    roleArn: config.PERSONALIZE_IMPORT_ROLE_ARN,
    datasetArns: unique([
      config.PERSONALIZE_INTERACTIONS_DATASET_ARN,
      config.PERSONALIZE_ITEMS_DATASET_ARN,
      config.PERSONALIZE_USERS_DATASET_ARN,
      ...targets.flatMap((t) => [t.interactionsDatasetArn, t.itemsDatasetArn, t.usersDatasetArn]),
    ]),
    passes: config.PERSONALIZE_DELETION_PASSES,
    maxInputBytes: config.PERSONALIZE_DELETION_MAX_INPUT_BYTES,
  };
}

/** The metric the FAILED-job alarm watches (serverless/alarms.cjs PersonalizeDeletionFailedAlarm). */
export const FAILED_JOBS_METRIC = 'personalize_deletion_jobs_failed';

let deps: DeletionStepDeps | undefined;

/** The Lambda's core: one run, its counts as metrics and one log line. */
export async function handlePersonalizeDeletions(env: NodeJS.ProcessEnv = process.env): Promise<DeletionStepReport> {
  if ((env.PERSONALIZE_DATASET_GROUP_ARN ?? '').trim() === '') {
    // Not configured: the processor keeps no raw ids then, so there is nothing to send.
    logger.warn('personalize deletion step: PERSONALIZE_DATASET_GROUP_ARN is not set; nothing to do (README "Deletion reaches Personalize")');
    return emptyDeletionReport();
  }
  deps ??= deletionStepDepsFromEnv(env);
  const report = await runDeletionStep(deps);
  // Always emitted (0 too), so the alarm sees data every day.
  metrics.addMetric(FAILED_JOBS_METRIC, MetricUnit.Count, report.failed.length);
  metrics.addMetric('personalize_deletion_jobs_created', MetricUnit.Count, report.created.length);
  metrics.addMetric('personalize_deletion_jobs_completed', MetricUnit.Count, report.completed.length);
  metrics.addMetric('personalize_deletion_users_pending', MetricUnit.Count, report.pendingAfter);
  const deferred = Object.values(report.deferred).reduce((n, v) => n + v, 0);
  metrics.addMetric('personalize_deletion_users_deferred', MetricUnit.Count, deferred);
  const summary = {
    pendingBefore: report.pendingBefore,
    pendingAfter: report.pendingAfter,
    created: report.created.map((j) => ({ jobName: j.jobName, users: j.users, datasetGroupArn: j.datasetGroupArn })),
    completed: report.completed.map((j) => ({ jobName: j.jobName, numDeleted: j.numDeleted })),
    failed: report.failed.map((j) => ({ jobName: j.jobName, failureReason: j.failureReason })),
    inProgress: report.inProgress.length,
    deferred: report.deferred,
    importsInProgress: report.importsInProgress,
  };
  if (report.failed.length > 0) logger.error('personalize deletion jobs failed; their users stay pending for a new job', summary);
  else logger.info('personalize deletion step', summary);
  return report;
}
