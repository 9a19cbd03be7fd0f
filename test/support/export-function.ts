import type { Context } from 'aws-lambda';
import { afterAll, beforeAll } from 'vitest';
import { kinesisClient, s3Client, sqsClient } from '../../shared/aws/clients.js';
import type { ExportSummary } from '../../shared/export/handle.js';
import type { ExportManifest } from '../../shared/export/manifest.js';
import { startLocalPersonalizeControl, type LocalPersonalizeControl } from '../../local/personalize-control.js';
import { createResources } from '../../local/resources.js';
import { uniqueName } from './env.js';
import { lambdaContext, readText } from './export.js';

/**
 * The export function as deployed, for tests: the local control plane, the handler imported once
 * the environment is set (as a Lambda container reads it), and a fresh bucket, identity table and
 * dataset group per scenario.
 */

export const IMPORT_ROLE_ARN = 'arn:aws:iam::000000000000:role/personalize-import';
/** Variables a scenario resets, so one test's setting never leaks into the next. */
const SCENARIO_VARIABLES = ['EXPORT_ANONYMOUS', 'EXPORT_PART_MAX_BYTES', 'EXPORT_IMPORT_MODE', 'EXPORT_REEXPORT_DAYS', 'BULK_MODE'];

type Handler = (event: unknown, context: Context) => Promise<ExportSummary>;

export interface ExportFunction {
  control: LocalPersonalizeControl;
  invoke(event: unknown): Promise<ExportSummary>;
}

export interface ExportScenario {
  bucket: string;
  table: string;
  datasets: { interactions: string; items: string; users: string };
}

/** Starts the control plane (jobs "run" on the first describe/list after creation) and loads the handler. */
export function useExportFunction(): () => ExportFunction {
  let control: LocalPersonalizeControl | undefined;
  let handler: Handler | undefined;
  beforeAll(async () => {
    control = await startLocalPersonalizeControl({ s3: s3Client(), activateAfterMs: 0 });
    Object.assign(process.env, control.env, { POWERTOOLS_METRICS_DISABLED: 'true', POWERTOOLS_LOG_LEVEL: 'ERROR' });
    ({ handler } = (await import('../../functions/export/handler.js')) as unknown as { handler: Handler });
  });
  afterAll(async () => {
    await control?.close();
  });
  return () => {
    if (!control || !handler) throw new Error('the export function is not started (useExportFunction runs in beforeAll)');
    const invoke = handler;
    return { control, invoke: (event) => invoke(event, lambdaContext('personalize-ingest-export')) };
  };
}

/** Points the export's environment at `s` (the runtime is rebuilt on the next invocation). */
export async function configureExport(s: ExportScenario, env: Record<string, string> = {}): Promise<void> {
  const { setExportRuntime } = await import('../../shared/export/handle.js');
  for (const key of SCENARIO_VARIABLES) delete process.env[key];
  Object.assign(process.env, {
    ARCHIVE_BUCKET: s.bucket,
    IDENTITY_TABLE: s.table,
    PERSONALIZE_INTERACTIONS_DATASET_ARN: s.datasets.interactions,
    PERSONALIZE_ITEMS_DATASET_ARN: s.datasets.items,
    PERSONALIZE_USERS_DATASET_ARN: s.datasets.users,
    PERSONALIZE_IMPORT_ROLE_ARN: IMPORT_ROLE_ARN,
    ...env,
  });
  setExportRuntime(undefined);
}

/** A fresh bucket, identity table and dataset group, with the export configured for them. */
export async function exportScenario(prefix: string, env: Record<string, string> = {}): Promise<ExportScenario> {
  const name = uniqueName(prefix);
  const names = { streamName: `${name}-s`, shardCount: 1, identityTable: `${name}-identity`, archiveBucket: `${name}-archive`, dlqName: `${name}-dlq` };
  await createResources({ kinesis: kinesisClient(), s3: s3Client(), sqs: sqsClient() }, names);
  const group = `arn:aws:personalize:us-east-1:000000000000:dataset/${name}`;
  const s: ExportScenario = {
    bucket: names.archiveBucket,
    table: names.identityTable,
    datasets: { interactions: `${group}/INTERACTIONS`, items: `${group}/ITEMS`, users: `${group}/USERS` },
  };
  await configureExport(s, env);
  return s;
}

/** The manifest a summary points to. */
export async function manifestOf(s: ExportScenario, summary: ExportSummary): Promise<ExportManifest> {
  return JSON.parse(await readText(s.bucket, summary.manifestKey)) as ExportManifest;
}
