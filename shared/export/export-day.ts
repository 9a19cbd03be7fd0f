import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeletedUsers } from '../deletion.js';
import type { DatasetSchemas } from '../personalize/dataset-schema.js';
import type { CsvPart } from './csv-parts.js';
import { isExportDate } from './dates.js';
import { DuckDbExportEngine, type DuckDbSettings } from './engine/duckdb.js';
import { IMPORT_LIMITS } from './limits.js';
import { emptyKindReport, fillKindReport, manifestKey, type ExportManifest, type KindReport } from './manifest.js';
import type { RequestedMode } from './plan.js';
import type { ArchiveObjectInfo, ArchiveSource, ImportJobs, ImportStore, LinkLookup } from './ports.js';
import { publishKind } from './publish.js';
import { EXPORT_KINDS, type ExportKind } from './kinds.js';

/**
 * The nightly export of one UTC day of archive:
 *   1. list `archive/<kind>/dt=<date>/` and run the day's SQL rules (./sql/rules.ts) on the
 *      embedded engine (./engine/duckdb.ts): validate every line, dedupe by eventId over the whole
 *      day, backfill anonymous interactions from the identity links, keep the latest item/user,
 *      leave deleted users out, shape the CSV records (FACTS §4a–4b) into parts of at most 1 GB;
 *   2. publish the parts and start the import jobs (./publish.ts), then write the manifest.
 * Days too large for one machine run the same rules on Athena (./athena/, docs/export-at-scale.md).
 */

export interface ExportSettings {
  schemas: DatasetSchemas;
  /** A kind without a dataset ARN is exported to its dt= folder without an import job. */
  datasets: Partial<Record<ExportKind, string>>;
  roleArn?: string;
}

export interface ExportDeps {
  archive: ArchiveSource;
  store: ImportStore;
  links: LinkLookup;
  /** The deletion registry (shared/deletion.ts): asked once per row, by userId. */
  deletedUsers(): Promise<DeletedUsers>;
  /** undefined: import jobs cannot be started (no control-plane client). */
  jobs?: ImportJobs;
  settings: ExportSettings;
}

export type ExportProgress =
  | { type: 'listed'; objects: number; bytes: number }
  | { type: 'object'; kind: ExportKind; key: string; bytes: number }
  | { type: 'stage'; kind: ExportKind; stage: 'reading' | 'writing' | 'publishing' };

export interface ExportOptions {
  /** YYYY-MM-DD, a UTC day. */
  date: string;
  mode?: RequestedMode;
  /** false: write the CSVs only (`--no-import`). */
  import?: boolean;
  anonymous?: 'skip' | 'session-as-user';
  /** Parent of the run's scratch folder; default os.tmpdir(). */
  workDir?: string;
  /** Largest CSV part and INCREMENTAL job; default and maximum 1 GB (FACTS §4c). */
  partMaxBytes?: number;
  /** The embedded engine's memory limit and threads; default 512MB and 2. */
  engine?: Partial<DuckDbSettings>;
  /** Archive objects read at once. */
  readConcurrency?: number;
  /** Sessions per identity lookup round (BatchGetItem takes 100 keys; the store splits further). */
  linkLookupBatch?: number;
  onProgress?: (progress: ExportProgress) => void;
  now?: () => Date;
}

export class ExportInputError extends Error {
  override name = 'ExportInputError';
}

export async function exportDay(deps: ExportDeps, options: ExportOptions): Promise<ExportManifest> {
  const { date } = options;
  if (!isExportDate(date)) throw new ExportInputError(`date must be a UTC day written YYYY-MM-DD, got ${JSON.stringify(date)}`);
  const now = options.now ?? (() => new Date());
  const mode = options.mode ?? 'auto';
  const doImport = options.import ?? true;
  const anonymous = options.anonymous ?? 'skip';
  const partMaxBytes = options.partMaxBytes ?? IMPORT_LIMITS.incrementalJobBytes;
  if (partMaxBytes > IMPORT_LIMITS.incrementalJobBytes) {
    throw new ExportInputError(`partMaxBytes ${partMaxBytes} is over the ${IMPORT_LIMITS.incrementalJobBytes}-byte INCREMENTAL import limit (FACTS §4c)`);
  }
  const progress = options.onProgress ?? (() => undefined);
  const startedAt = now().toISOString();

  const deleted = await deps.deletedUsers();
  const listings = {} as Record<ExportKind, ArchiveObjectInfo[]>;
  for (const kind of EXPORT_KINDS) listings[kind] = await deps.archive.list(`archive/${kind}/dt=${date}/`);
  const all = EXPORT_KINDS.flatMap((k) => listings[k]);
  progress({ type: 'listed', objects: all.length, bytes: all.reduce((n, o) => n + o.bytes, 0) });

  const kinds = {} as Record<ExportKind, KindReport>;
  const engineSettings: DuckDbSettings = { memoryLimit: options.engine?.memoryLimit ?? '512MB', threads: options.engine?.threads ?? 2 };
  const scratch = await mkdtemp(join(options.workDir ?? tmpdir(), 'pi-export-'));
  let engine: DuckDbExportEngine | undefined;
  try {
    engine = await DuckDbExportEngine.open(
      scratch,
      { archive: deps.archive, links: deps.links, deleted, schemas: deps.settings.schemas },
      { ...engineSettings, readConcurrency: options.readConcurrency ?? 8, linkLookupBatch: options.linkLookupBatch ?? 1000 },
    );
    for (const kind of EXPORT_KINDS) {
      const objects = listings[kind];
      const report = emptyKindReport(kind);
      report.archive.objects = objects.length;
      report.archive.bytes = objects.reduce((n, o) => n + o.bytes, 0);

      progress({ type: 'stage', kind, stage: 'reading' });
      const outcome = await engine.runKind({ kind, objects, anonymous, partMaxBytes, baseName: `${kind}-${date}` });
      fillKindReport(report, outcome.report, outcome);
      for (const object of objects) progress({ type: 'object', kind, key: object.key, bytes: object.bytes });

      progress({ type: 'stage', kind, stage: 'publishing' });
      await publishExportedKind(deps, { kind, date, mode, doImport, partMaxBytes }, outcome.parts, report);
      kinds[kind] = report;
    }
  } finally {
    engine?.close();
    await rm(scratch, { recursive: true, force: true });
  }

  const manifest: ExportManifest = {
    date,
    startedAt,
    finishedAt: now().toISOString(),
    options: { mode, import: doImport, anonymous, partMaxBytes, engine: { name: 'duckdb', ...engineSettings } },
    kinds,
    importJobs: EXPORT_KINDS.flatMap((k) => kinds[k].importJobs),
  };
  await deps.store.putJson(manifestKey(date), manifest);
  return manifest;
}

/**
 * Publishes one kind's parts (./publish.ts): into a job folder with an import job when the
 * kind's dataset, the import role and a control-plane client are all there, else to the dt=
 * folder with the reason. Whichever engine wrote the parts.
 */
export async function publishExportedKind(
  deps: Pick<ExportDeps, 'store' | 'jobs' | 'settings'>,
  run: { kind: ExportKind; date: string; mode: RequestedMode; doImport: boolean; partMaxBytes: number },
  parts: readonly CsvPart[],
  report: KindReport,
): Promise<void> {
  const { kind, date, mode } = run;
  const datasetArn = deps.settings.datasets[kind];
  const roleArn = deps.settings.roleArn;
  const noImportReason = !run.doImport
    ? 'import jobs not requested (--no-import): import the dt= folder yourself'
    : !datasetArn
      ? `no ${kind} dataset ARN configured: no import job; import the dt= folder yourself`
      : !roleArn || !deps.jobs
        ? 'PERSONALIZE_IMPORT_ROLE_ARN not configured: no import job; import the dt= folder yourself'
        : undefined;
  await publishKind(
    parts,
    {
      kind,
      date,
      store: deps.store,
      ...(noImportReason === undefined && datasetArn && roleArn && deps.jobs
        ? { importer: { jobs: deps.jobs, datasetArn, roleArn, mode } }
        : { noImportReason: noImportReason ?? 'no import' }),
      incrementalJobBytes: run.partMaxBytes,
    },
    report,
  );
}

