import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConsentPolicy } from '../consent/policy.js';
import type { ConsentStore } from '../consent/store.js';
import type { DeletedUsers } from '../deletion.js';
import type { DatasetSchemas } from '../personalize/dataset-schema.js';
import { forwardedDayPrefix } from '../archive.js';
import { bulkRunRefusal, type BulkMode } from '../bulk-mode.js';
import { daysFrom, isExportDate } from '../util/dates.js';
import { DuckDbExportEngine, type DuckDbSettings } from './engine/duckdb.js';
import { IMPORT_LIMITS } from '../personalize/import-limits.js';
import { emptyKindReport, fillKindReport, manifestKey, type ExportManifest, type KindReport } from './manifest.js';
import type { RequestedMode } from './plan.js';
import type { ArchiveObjectInfo, ArchiveSource, ImportJobs, ImportStore, LinkLookup } from './ports.js';
import { preparePublication, publishKind, type Publication } from './publish.js';
import { writeReadiness, type ReadinessSummary } from './readiness.js';
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
  /** The consent rule and the latest consent per user (README "Consent"): users who opted out are left out. */
  consent?: { policy: ConsentPolicy; store: ConsentStore };
  /** undefined: import jobs cannot be started (no control-plane client). */
  jobs?: ImportJobs;
  settings: ExportSettings;
}

export type ExportProgress =
  | { type: 'listed'; objects: number; bytes: number }
  | { type: 'object'; kind: ExportKind; key: string; bytes: number }
  | { type: 'stage'; kind: ExportKind; stage: 'reading' | 'writing' | 'publishing' };

export interface ExportOptions {
  /** YYYY-MM-DD, a UTC day: the day exported, or the last day of a bootstrap range. */
  date: string;
  /** Bootstrap only: the first day of the range (default `date`). */
  from?: string;
  /** What the import is for (shared/bulk-mode.ts); default complement. */
  bulkMode?: BulkMode;
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
  const bulkMode = options.bulkMode ?? 'complement';
  // A bootstrap replaces the dataset's bulk data with the whole history: FULL even after earlier imports.
  const requestedMode = options.mode ?? 'auto';
  const mode = bulkMode === 'bootstrap' && requestedMode === 'auto' ? 'FULL' : requestedMode;
  const doImport = options.import ?? true;
  const anonymous = options.anonymous ?? 'skip';
  const partMaxBytes = options.partMaxBytes ?? IMPORT_LIMITS.incrementalJobBytes;
  if (partMaxBytes > IMPORT_LIMITS.incrementalJobBytes) {
    throw new ExportInputError(`partMaxBytes ${partMaxBytes} is over the ${IMPORT_LIMITS.incrementalJobBytes}-byte INCREMENTAL import limit (FACTS §4c)`);
  }
  const from = options.from ?? date;
  if (!isExportDate(from) || from > date) throw new ExportInputError(`from must be a UTC day written YYYY-MM-DD, not after ${date}; got ${JSON.stringify(from)}`);
  const days = daysFrom(from, date);
  // The record of what PutEvents accepted in these days: left out in complement, a refusal otherwise.
  const forwarded: ArchiveObjectInfo[] = [];
  for (const day of days) forwarded.push(...(await deps.archive.list(forwardedDayPrefix(day))));
  const refusal = bulkRunRefusal({ bulkMode, mode, anonymous, days: days.length, forwardedObjects: forwarded.length });
  if (refusal !== undefined) throw new ExportInputError(refusal);
  const progress = options.onProgress ?? (() => undefined);
  const startedAt = now().toISOString();

  const deleted = await deps.deletedUsers();
  const listings = {} as Record<ExportKind, ArchiveObjectInfo[]>;
  for (const kind of EXPORT_KINDS) {
    listings[kind] = [];
    for (const day of days) listings[kind].push(...(await deps.archive.list(`archive/${kind}/dt=${day}/`)));
  }
  const all = EXPORT_KINDS.flatMap((k) => listings[k]);
  progress({ type: 'listed', objects: all.length, bytes: all.reduce((n, o) => n + o.bytes, 0) });

  const kinds = {} as Record<ExportKind, KindReport>;
  const engineSettings: DuckDbSettings = { memoryLimit: options.engine?.memoryLimit ?? '512MB', threads: options.engine?.threads ?? 2 };
  const scratch = await mkdtemp(join(options.workDir ?? tmpdir(), 'pi-export-'));
  let engine: DuckDbExportEngine | undefined;
  let readiness: ReadinessSummary | undefined;
  try {
    engine = await DuckDbExportEngine.open(
      scratch,
      { archive: deps.archive, links: deps.links, deleted, schemas: deps.settings.schemas, ...(deps.consent && { consent: deps.consent }) },
      { ...engineSettings, readConcurrency: options.readConcurrency ?? 8, linkLookupBatch: options.linkLookupBatch ?? 1000 },
    );
    for (const kind of EXPORT_KINDS) {
      const objects = listings[kind];
      const report = emptyKindReport(kind);
      report.archive.objects = objects.length;
      report.archive.bytes = objects.reduce((n, o) => n + o.bytes, 0);

      progress({ type: 'stage', kind, stage: 'reading' });
      // What the day's live import jobs already hold is read first: only the rest is written.
      const publication = await preparePublishing(deps, { kind, date, mode, doImport, partMaxBytes, ...(bulkMode === 'bootstrap' && { wholeHistory: { from } }) });
      const published = { keys: publication.published.map((f) => f.key), download: (key: string, path: string) => deps.store.download(key, path) };
      const outcome = await engine.runKind({ kind, objects, anonymous, partMaxBytes, baseName: publication.baseName, published, bulkMode, forwarded });
      fillKindReport(report, outcome.report, outcome);
      for (const object of objects) progress({ type: 'object', kind, key: object.key, bytes: object.bytes });

      progress({ type: 'stage', kind, stage: 'publishing' });
      await publishKind(outcome.parts, publication, report);
      kinds[kind] = report;
    }
    readiness = await writeReadiness({ engine, store: deps.store, deleted, date, from, scratch, now });
  } finally {
    engine?.close();
    await rm(scratch, { recursive: true, force: true });
  }

  const manifest: ExportManifest = {
    date,
    startedAt,
    finishedAt: now().toISOString(),
    options: { bulkMode, ...(days.length > 1 && { from }), mode, import: doImport, anonymous, partMaxBytes, engine: { name: 'duckdb', ...engineSettings } },
    kinds,
    importJobs: EXPORT_KINDS.flatMap((k) => kinds[k].importJobs),
    ...(readiness && { readiness }),
  };
  await deps.store.putJson(manifestKey(date), manifest);
  return manifest;
}

/**
 * How one kind's parts will be published (./publish.ts), read before they are written: into job
 * folders with import jobs when the kind's dataset, the import role and a control-plane client are
 * all there (with the day's publication so far and this run's revision), else to the dt= folder
 * with the reason. Whichever engine writes the parts; publishKind carries it out.
 */
export async function preparePublishing(
  deps: Pick<ExportDeps, 'store' | 'jobs' | 'settings'>,
  run: { kind: ExportKind; date: string; mode: RequestedMode; doImport: boolean; partMaxBytes: number; wholeHistory?: { from: string } },
): Promise<Publication> {
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
  return preparePublication({
    kind,
    date,
    store: deps.store,
    ...(noImportReason === undefined && datasetArn && roleArn && deps.jobs
      ? { importer: { jobs: deps.jobs, datasetArn, roleArn, mode } }
      : { noImportReason: noImportReason ?? 'no import' }),
    incrementalJobBytes: run.partMaxBytes,
    ...(run.wholeHistory && { wholeHistory: run.wholeHistory }),
  });
}

