import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { TARGET_NAME_PATTERN } from '../../../schemas/canonical.js';
import { forwardedDayPrefix } from '../../archive.js';
import { BULK_MODES, bulkRunRefusal, type BulkMode } from '../../bulk-mode.js';
import { csvHeader, type DatasetSchemas } from '../../personalize/dataset-schema.js';
import { DEFAULT_TARGET } from '../../targets.js';
import { isExportDate, previousUtcDay } from '../../util/dates.js';
import { exportDay, preparePublishing, type ExportDeps } from '../export-day.js';
import { publishKind, type Publication } from '../publish.js';
import { IMPORT_LIMITS } from '../../personalize/import-limits.js';
import { emptyKindReport, fillKindReport, manifestKey, type ExportManifest, type KindReport, type ReportRow } from '../manifest.js';
import type { RequestedMode } from '../plan.js';
import { EXPORT_KINDS, type ExportKind } from '../kinds.js';
import { findExportTarget, undeclaredTarget, type ExportRuntime, type ExportTarget } from '../runtime.js';
import { trinoDialect } from '../sql/dialect.js';
import { exportSql } from '../sql/rules.js';
import { finishKind, readReport, type FinishKindResult, type UnloadOutput } from './finish.js';
import { checkBucket, exportIdOf, forwardedRelation, linksRelation, otherTarget, rawRelation, unloadPrefix, unloadStatement, type AthenaTables } from './relations.js';

/**
 * The Athena path of the nightly export, as the steps of the state machine in
 * serverless/athena-export.cjs (docs/export-at-scale.md):
 *   plan     (Lambda)  per target (the default, then every one of TARGETS_FILE, docs/targets.md):
 *                      the day's archive size under its root -> chooseEngine;
 *   [DynamoDB ExportTableToPointInTime of the identity table, polled until COMPLETED: once per run,
 *    when some target runs on Athena (identity links are shared by every target)]
 *   [Map over the targets, one at a time:
 *     embedded (Lambda)  the target's day on the embedded engine, as the export Lambda runs it; or
 *     prepare  (Lambda)  the run's id, the target's output folders and settings;
 *     [Map over the kinds: query (Lambda) -> the rows UNLOAD text -> Athena startQueryExecution.sync,
 *      then the same for the report] — one query text in the state at a time: a text may be up to
 *      Athena's 262,144 bytes, and a Step Functions state holds at most 256 KiB;
 *     finish   (Lambda)  UNLOAD output -> deleted users left out -> CSV parts -> publishKind, manifest,
 *                        all under the target's root with its schemas, datasets and import role]
 * The Lambda tells these events apart by `athena` (`{"athena":"plan",...}`); the shapes below are
 * the contract with the state machine definition. `target` unset is the default target.
 */

export type ExportEngine = 'duckdb' | 'athena';

export interface EngineChoice {
  /** exportAthena: the stack has the Athena resources. */
  athenaEnabled: boolean;
  /** A day whose archive (gzip bytes, all kinds) is above this runs on Athena. */
  minArchiveBytes: number;
}

/** Athena only when the stack has it and the day is above the configured size; the embedded engine otherwise. */
export function chooseEngine(archiveBytes: number, config: EngineChoice): ExportEngine {
  if (!config.athenaEnabled) return 'duckdb';
  return archiveBytes > config.minArchiveBytes ? 'athena' : 'duckdb';
}

// ------------------------------------------------------------------ event shapes

const date = z.string().refine(isExportDate, 'date must be a UTC day written YYYY-MM-DD');
const mode = z.enum(['auto', 'INCREMENTAL', 'FULL']);
const glueName = z.string().regex(/^[a-z_][a-z0-9_]{0,254}$/, 'a lowercase Glue name');
const kind = z.enum(['interactions', 'items', 'users']);
const bytesScanned = z.number().int().nonnegative();
/** A target's name (shared/targets.ts); unset or `default`: the default target. */
const target = z.string().regex(TARGET_NAME_PATTERN, 'a target name (1-32 of a-z, 0-9 and -)').optional();
const runOptions = z.strictObject({ mode: mode.optional(), import: z.boolean().optional() });

/** What starts an execution: the nightly schedule's event, or a hand-written input. */
const executionInputSchema = z.union([
  z.looseObject({ 'detail-type': z.literal('Scheduled Event'), time: z.iso.datetime({ offset: true }) }),
  z.strictObject({
    date: date.optional(),
    mode: mode.optional(),
    import: z.boolean().optional(),
    /** Force an engine (e.g. try Athena on a small day). */
    engine: z.enum(['duckdb', 'athena']).optional(),
  }),
]);

export const athenaPlanEventSchema = z.strictObject({
  athena: z.literal('plan'),
  /** The execution's input ($ of the state machine). */
  input: z.unknown(),
  minArchiveBytes: z.number().int().nonnegative(),
});

/** Where the queries read and write (the state machine definition fills these in). */
const placesShape = {
  bucket: z.string(),
  database: glueName,
  archiveTable: glueName,
  linksTable: glueName,
  forwardedTable: glueName,
  /** The non-default targets' tables (injected partition `target`). */
  targetArchiveTable: glueName,
  targetForwardedTable: glueName,
};

export const athenaPrepareEventSchema = z.strictObject({
  athena: z.literal('prepare'),
  target,
  date,
  /** ExportDescription.ExportArn of this run's identity table export. */
  identityExportArn: z.string(),
  ...placesShape,
});

export const athenaQueryEventSchema = z.strictObject({
  athena: z.literal('query'),
  statement: z.enum(['rows', 'report']),
  kind,
  target,
  date,
  identityExportArn: z.string(),
  /** From prepare: the same expired-link cut-off and anonymous rule for both statements. */
  nowSeconds: z.number().int().nonnegative(),
  anonymous: z.enum(['skip', 'session-as-user']),
  bulkMode: z.enum(BULK_MODES),
  ...placesShape,
});

const kindQueriesSchema = z.strictObject({
  kind,
  rowsPrefix: z.string(),
  reportPrefix: z.string(),
  rowsQueryId: z.string(),
  rowsBytesScanned: bytesScanned,
  reportQueryId: z.string(),
  reportBytesScanned: bytesScanned,
});

export const athenaFinishEventSchema = z.strictObject({
  athena: z.literal('finish'),
  target,
  date,
  options: runOptions,
  anonymous: z.enum(['skip', 'session-as-user']),
  bulkMode: z.enum(BULK_MODES),
  /** $$.Execution.StartTime */
  startedAt: z.iso.datetime({ offset: true }).optional(),
  kinds: z.array(kindQueriesSchema).refine(
    (kinds) => kinds.length === EXPORT_KINDS.length && EXPORT_KINDS.every((k) => kinds.some((q) => q.kind === k)),
    `one entry for each of ${EXPORT_KINDS.join(', ')}`,
  ),
});

/** One target's day on the embedded engine, in the export Lambda (a day at or below the size). */
export const athenaEmbeddedEventSchema = z.strictObject({
  athena: z.literal('embedded'),
  target,
  date,
  options: runOptions,
});

export const athenaEventSchema = z.discriminatedUnion('athena', [
  athenaPlanEventSchema,
  athenaEmbeddedEventSchema,
  athenaPrepareEventSchema,
  athenaQueryEventSchema,
  athenaFinishEventSchema,
]);
export type AthenaEvent = z.input<typeof athenaEventSchema>;
export type AthenaPlanEvent = z.infer<typeof athenaPlanEventSchema>;
export type AthenaPrepareEvent = z.infer<typeof athenaPrepareEventSchema>;
export type AthenaQueryEvent = z.infer<typeof athenaQueryEventSchema>;
export type AthenaFinishEvent = z.infer<typeof athenaFinishEventSchema>;
export type AthenaEmbeddedEvent = z.infer<typeof athenaEmbeddedEventSchema>;
export type KindQueries = z.infer<typeof kindQueriesSchema>;

/** True for an event of the Athena state machine (it carries `athena`). */
export function isAthenaEvent(event: unknown): boolean {
  return typeof event === 'object' && event !== null && Object.hasOwn(event, 'athena');
}

export class AthenaEventError extends Error {
  override name = 'AthenaEventError';
}

function parse<S extends z.ZodType>(schema: S, event: unknown, what: string): z.infer<S> {
  const parsed = schema.safeParse(event);
  if (!parsed.success) throw new AthenaEventError(`${what} not understood: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

// ------------------------------------------------------------------ plan

/** One target's plan: its archive of the day, the engine that exports it. */
export interface ExportPlan {
  engine: ExportEngine;
  date: string;
  archiveBytes: number;
  minArchiveBytes: number;
  /** Passed on to the embedded run or to finish. */
  options: { mode?: RequestedMode; import?: boolean };
}

export async function planExport(
  archive: ExportDeps['archive'],
  event: AthenaPlanEvent,
  settings: { bulkMode: BulkMode; anonymous: 'skip' | 'session-as-user' },
  now: Date = new Date(),
): Promise<ExportPlan> {
  const input = parse(executionInputSchema, event.input ?? {}, 'execution input');
  const scheduled = 'time' in input;
  const day = scheduled ? previousUtcDay(new Date(input.time)) : (input.date ?? previousUtcDay(now));
  const options: ExportPlan['options'] = scheduled
    ? {}
    : { ...(input.mode !== undefined && { mode: input.mode }), ...(input.import !== undefined && { import: input.import }) };
  // The same refusals as the embedded engine's run (shared/bulk-mode.ts), before any query is paid for.
  const forwarded = await archive.list(forwardedDayPrefix(day));
  const refusal = bulkRunRefusal({ bulkMode: settings.bulkMode, mode: options.mode ?? 'auto', anonymous: settings.anonymous, days: 1, forwardedObjects: forwarded.length });
  if (refusal !== undefined) throw new AthenaEventError(refusal);
  let archiveBytes = 0;
  for (const k of EXPORT_KINDS) archiveBytes += (await archive.list(`archive/${k}/dt=${day}/`)).reduce((n, o) => n + o.bytes, 0);
  const chosen = chooseEngine(archiveBytes, { athenaEnabled: true, minArchiveBytes: event.minArchiveBytes });
  return {
    engine: !scheduled && input.engine !== undefined ? input.engine : chosen,
    date: day,
    archiveBytes,
    minArchiveBytes: event.minArchiveBytes,
    options,
  };
}

/** The run's plan: every target's, the default first (its run compacts the deletion registry, as in handle.ts). */
export interface TargetsPlan {
  date: string;
  minArchiveBytes: number;
  options: ExportPlan['options'];
  /** Some target runs on Athena: the run exports the identity table, once for all of them. */
  athena: boolean;
  targets: { target: string; engine: ExportEngine; archiveBytes: number }[];
}

/** Each target planned on its own archive (the default's at the root, the others' under targets/<name>/). */
export async function planTargets(runtime: Pick<ExportRuntime, 'deps' | 'targets'>, event: AthenaPlanEvent, settings: { bulkMode: BulkMode; anonymous: 'skip' | 'session-as-user' }, now: Date = new Date()): Promise<TargetsPlan> {
  const all: ExportTarget[] = [{ name: DEFAULT_TARGET, deps: runtime.deps }, ...runtime.targets];
  const plans: (ExportPlan & { target: string })[] = [];
  // Each target in its own bulk mode (docs/targets.md): its refusals are its own.
  for (const t of all) plans.push({ target: t.name, ...(await planExport(t.deps.archive, event, { ...settings, bulkMode: t.bulkMode ?? settings.bulkMode }, now)) });
  const first = plans[0]!;
  return {
    date: first.date,
    minArchiveBytes: first.minArchiveBytes,
    options: first.options,
    athena: plans.some((p) => p.engine === 'athena'),
    targets: plans.map((p) => ({ target: p.target, engine: p.engine, archiveBytes: p.archiveBytes })),
  };
}

// ------------------------------------------------------------------ prepare, query

/** Athena refuses a query text longer than this (bytes; Athena service quotas). */
export const ATHENA_QUERY_MAX_BYTES = 262_144;
/**
 * The longest text this path runs: Athena's limit, less room for the rest of the Map iteration's
 * state (the item's few fields, the Lambda result's metadata: about 2 KB), which Step Functions
 * caps at 256 KiB (262,144 bytes) as well.
 */
export const QUERY_TEXT_MAX_BYTES = ATHENA_QUERY_MAX_BYTES - 4_096;

export interface PreparedKind {
  kind: ExportKind;
  /** The rows UNLOAD folder (user_id, csv_line). */
  rowsPrefix: string;
  /** The report UNLOAD folder (metric, reason, n). */
  reportPrefix: string;
}

export interface PreparedExport {
  date: string;
  runId: string;
  anonymous: 'skip' | 'session-as-user';
  bulkMode: BulkMode;
  /** Links expired at this time (epoch seconds) are left out, by every statement of the run. */
  nowSeconds: number;
  kinds: PreparedKind[];
}

export interface PrepareSettings {
  anonymous: 'skip' | 'session-as-user';
  bulkMode: BulkMode;
  /** Expired-link cut-off (epoch ms). */
  now: number;
}

export interface StatementTarget {
  bucket: string;
  date: string;
  runId: string;
  tables: AthenaTables;
  exportId: string;
  nowSeconds: number;
}

/** The statements of one kind: the rules (../sql/rules.ts) in Trino over the Glue tables, each as an UNLOAD. */
export function athenaStatements(
  k: ExportKind,
  target: StatementTarget,
  settings: { schemas: DatasetSchemas; anonymous: 'skip' | 'session-as-user'; bulkMode: BulkMode },
): PreparedKind & { rowsQuery: string; reportQuery: string } {
  const relations = {
    raw: rawRelation(target.tables, k, target.date),
    links: linksRelation(target.tables, { exportId: target.exportId, nowSeconds: target.nowSeconds }),
    ...(settings.bulkMode === 'complement' && { forwarded: forwardedRelation(target.tables, target.date) }),
  };
  const sql = exportSql(k, { schemas: settings.schemas, dialect: trinoDialect, anonymous: settings.anonymous, bulkMode: settings.bulkMode, relations });
  const rowsPrefix = unloadPrefix(target.date, target.runId, k, 'rows', target.tables.target);
  const reportPrefix = unloadPrefix(target.date, target.runId, k, 'report', target.tables.target);
  return {
    kind: k,
    rowsQuery: unloadStatement(sql.rows, { bucket: target.bucket, prefix: rowsPrefix }),
    reportQuery: unloadStatement(sql.report, { bucket: target.bucket, prefix: reportPrefix }),
    rowsPrefix,
    reportPrefix,
  };
}

export function prepareExport(event: AthenaPrepareEvent, settings: PrepareSettings): PreparedExport {
  checkBucket(event.bucket);
  // The export id is unique per run: a re-run of the date UNLOADs into fresh folders.
  const runId = exportIdOf(event.identityExportArn);
  return {
    date: event.date,
    runId,
    anonymous: settings.anonymous,
    bulkMode: settings.bulkMode,
    nowSeconds: Math.floor(settings.now / 1000),
    kinds: EXPORT_KINDS.map((k) => ({
      kind: k,
      rowsPrefix: unloadPrefix(event.date, runId, k, 'rows', event.target),
      reportPrefix: unloadPrefix(event.date, runId, k, 'report', event.target),
    })),
  };
}

/** The tables a target's statements read: the default's own, or the target tables with its name. */
export function tablesOf(event: Pick<AthenaQueryEvent, 'target' | 'database' | 'archiveTable' | 'linksTable' | 'forwardedTable' | 'targetArchiveTable' | 'targetForwardedTable'>): AthenaTables {
  const other = otherTarget(event.target);
  if (other === undefined) return { database: event.database, archiveTable: event.archiveTable, linksTable: event.linksTable, forwardedTable: event.forwardedTable };
  // Identity links are shared by every target: the one export of the run.
  return { database: event.database, archiveTable: event.targetArchiveTable, linksTable: event.linksTable, forwardedTable: event.targetForwardedTable, target: other };
}

/** One UNLOAD text, for the Map's next query; refused here, named, when Athena would refuse it. */
export function queryText(event: AthenaQueryEvent, schemas: DatasetSchemas): { query: string; bytes: number } {
  const exportId = exportIdOf(event.identityExportArn);
  const statements = athenaStatements(
    event.kind,
    {
      bucket: checkBucket(event.bucket),
      date: event.date,
      runId: exportId,
      tables: tablesOf(event),
      exportId,
      nowSeconds: event.nowSeconds,
    },
    { schemas, anonymous: event.anonymous, bulkMode: event.bulkMode },
  );
  const query = event.statement === 'rows' ? statements.rowsQuery : statements.reportQuery;
  const bytes = Buffer.byteLength(query, 'utf8');
  if (bytes > QUERY_TEXT_MAX_BYTES) {
    throw new AthenaEventError(
      `the ${event.kind} ${event.statement} query is ${bytes} bytes, over the ${QUERY_TEXT_MAX_BYTES} this path runs ` +
        `(Athena takes at most ${ATHENA_QUERY_MAX_BYTES} bytes of query text, a Step Functions state at most 256 KiB)`,
    );
  }
  return { query, bytes };
}

// ------------------------------------------------------------------ finish

const UNDERSTOOD_METRICS = new Set(['read', 'rejected', 'rowRejected', 'duplicates', 'superseded', 'backfilled', 'sessionAsUser', 'streamed', 'consentDenied', 'anonymousWithoutLink', 'propertiesDropped', 'rows']);

/**
 * The report query's counts and the finish step's own -> the manifest's kind report
 * (fillKindReport, as for the embedded engine), noting metrics it does not know. Returns the
 * `rows` count (records before the deletion filter), to check against what the rows UNLOAD held.
 */
export function fillAthenaReport(report: KindReport, rows: readonly ReportRow[], finished: FinishKindResult): number {
  const counted = fillKindReport(report, rows, finished);
  const unknown = [...new Set(rows.map((r) => r.metric).filter((m) => !UNDERSTOOD_METRICS.has(m)))];
  if (unknown.length > 0) report.notes.push(`report metrics not understood (not counted): ${unknown.join(', ')}`);
  return counted;
}

export interface FinishSettings {
  /** Largest CSV part and INCREMENTAL job. */
  partMaxBytes: number;
  /** Run default when the execution input names no mode. */
  mode: RequestedMode;
  workDir?: string;
  now?: () => Date;
}

/**
 * `output`: where the UNLOAD folders are read (the bucket's root: a target's deps are rooted at
 * targets/<name>/, its UNLOAD output is under athena/); default `deps.archive`.
 */
export async function finishExport(deps: ExportDeps, event: AthenaFinishEvent, settings: FinishSettings, output: UnloadOutput = deps.archive): Promise<ExportManifest> {
  const now = settings.now ?? (() => new Date());
  const { date } = event;
  const mode = event.options.mode ?? settings.mode;
  const doImport = event.options.import !== false;
  if (settings.partMaxBytes > IMPORT_LIMITS.incrementalJobBytes) {
    throw new AthenaEventError(`partMaxBytes ${settings.partMaxBytes} is over the ${IMPORT_LIMITS.incrementalJobBytes}-byte INCREMENTAL import limit (FACTS §4c)`);
  }
  const startedAt = event.startedAt ?? now().toISOString();
  // This path does not compare with what is published (the day may not fit one machine): a day
  // already published is refused before anything is written, every kind alike.
  const publications = {} as Record<ExportKind, Publication>;
  for (const k of EXPORT_KINDS) {
    publications[k] = await preparePublishing(deps, { kind: k, date, mode, doImport, partMaxBytes: settings.partMaxBytes });
    const jobNames = [...new Set(publications[k].published.map((f) => f.jobName))];
    if (jobNames.length > 0) {
      throw new AthenaEventError(
        `${date} is already published (${k}: ${jobNames.join(', ')}): the Athena path exports a day once and cannot tell what changed since; ` +
          'export it again with the embedded engine (execution input {"date": ..., "engine": "duckdb"}, or npm run export -- --date), which publishes only the changes',
      );
    }
  }
  const deleted = await deps.deletedUsers();
  const kinds = {} as Record<ExportKind, KindReport>;
  const scratch = await mkdtemp(join(settings.workDir ?? tmpdir(), 'pi-athena-'));
  try {
    for (const k of EXPORT_KINDS) {
      const queries = event.kinds.find((q) => q.kind === k)!;
      const report = emptyKindReport(k);
      const archived = await deps.archive.list(`archive/${k}/dt=${date}/`);
      report.archive.objects = archived.length;
      report.archive.bytes = archived.reduce((n, o) => n + o.bytes, 0);

      const dir = join(scratch, k);
      await mkdir(dir, { recursive: true });
      const reportRows = await readReport(output, queries.reportPrefix);
      const finished = await finishKind(output, {
        prefix: queries.rowsPrefix,
        dir,
        baseName: publications[k].baseName,
        header: csvHeader(deps.settings.schemas[k]),
        partMaxBytes: settings.partMaxBytes,
        deleted,
      });
      const counted = fillAthenaReport(report, reportRows, finished);
      report.notes.push(
        `exported with Athena: rows query ${queries.rowsQueryId} scanned ${queries.rowsBytesScanned} bytes, ` +
          `report query ${queries.reportQueryId} scanned ${queries.reportBytesScanned} bytes; ${finished.objects} UNLOAD objects`,
      );
      if (counted !== finished.records) {
        // Two queries over the same day: an object archived between them (a late event) shows here.
        report.notes.push(`the report query counted ${counted} rows, the rows query wrote ${finished.records}`);
      }

      await publishKind(finished.parts, publications[k], report);
      kinds[k] = report;
      // One kind's parts on local disk at a time.
      await rm(dir, { recursive: true, force: true });
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }

  const manifest: ExportManifest = {
    date,
    startedAt,
    finishedAt: now().toISOString(),
    options: { bulkMode: event.bulkMode, mode, import: doImport, anonymous: event.anonymous, partMaxBytes: settings.partMaxBytes, engine: { name: 'athena' } },
    kinds,
    importJobs: EXPORT_KINDS.flatMap((k) => kinds[k].importJobs),
  };
  await deps.store.putJson(manifestKey(date), manifest);
  return manifest;
}

/** What finish (and an embedded run) hands back to the state machine: counts and job states, no ids from the data. */
export interface AthenaFinishSummary {
  target: string;
  date: string;
  manifestKey: string;
  kinds: Record<ExportKind, { read: number; rejected: number; exported: number; deletedUserRows: number; heldRows: number }>;
  importJobs: { kind: ExportKind; jobName: string; status: string }[];
}

export function summarizeAthena(manifest: ExportManifest, target: string = DEFAULT_TARGET): AthenaFinishSummary {
  const kinds = {} as AthenaFinishSummary['kinds'];
  for (const k of EXPORT_KINDS) {
    const r = manifest.kinds[k];
    kinds[k] = { read: r.read, rejected: r.rejected, exported: r.exported, deletedUserRows: r.deletedUserRows, heldRows: r.held.rows };
  }
  return {
    target,
    date: manifest.date,
    manifestKey: manifestKey(manifest.date),
    kinds,
    importJobs: manifest.importJobs.map(({ kind: k, jobName, status }) => ({ kind: k, jobName, status })),
  };
}

// ------------------------------------------------------------------ the Lambda's entry

/** A target's adapters: the default's, or a TARGETS_FILE target's (rooted at targets/<name>/). */
export function targetDeps(runtime: Pick<ExportRuntime, 'deps' | 'targets'>, name: string | undefined): ExportDeps {
  const found = findExportTarget(runtime, name);
  if (found === undefined) throw new AthenaEventError(undeclaredTarget(runtime, name!));
  return found.deps;
}

/** A target's bulk mode: its own (TARGETS_FILE), else the deployment's. */
function bulkModeOf(runtime: Pick<ExportRuntime, 'deps' | 'targets' | 'defaults'>, target: string | undefined): BulkMode {
  return findExportTarget(runtime, target)?.bulkMode ?? runtime.defaults.bulkMode;
}

/** One target's day on the embedded engine, with the options the export Lambda's `{date}` run uses (handle.ts). */
export function exportEmbedded(deps: ExportDeps, event: AthenaEmbeddedEvent, defaults: ExportRuntime['defaults'], bulkMode: BulkMode = defaults.bulkMode): Promise<ExportManifest> {
  return exportDay(deps, {
    date: event.date,
    mode: event.options.mode ?? defaults.mode,
    bulkMode,
    import: event.options.import !== false,
    anonymous: defaults.anonymous,
    partMaxBytes: defaults.partMaxBytes,
    readConcurrency: defaults.readConcurrency,
    engine: defaults.engine,
    ...(defaults.workDir !== undefined && { workDir: defaults.workDir }),
  });
}

/**
 * The export Lambda's handling of a state machine event (shared/export/handle.ts dispatches here
 * when `isAthenaEvent(event)`): plan, embedded, prepare, query or finish.
 */
export async function handleAthenaEvent(
  event: unknown,
  runtime: ExportRuntime,
  now: Date = new Date(),
  /** Told of each target's finished run (the embedded engine's or Athena's), for its metrics. */
  onExported: (manifest: ExportManifest, target: string) => void = () => undefined,
): Promise<TargetsPlan | PreparedExport | { query: string; bytes: number } | AthenaFinishSummary> {
  const parsed = parse(athenaEventSchema, event, 'Athena export event');
  const { defaults } = runtime;
  switch (parsed.athena) {
    case 'plan':
      return planTargets(runtime, parsed, { bulkMode: defaults.bulkMode, anonymous: defaults.anonymous }, now);
    case 'embedded': {
      const manifest = await exportEmbedded(targetDeps(runtime, parsed.target), parsed, defaults, bulkModeOf(runtime, parsed.target));
      onExported(manifest, parsed.target ?? DEFAULT_TARGET);
      return summarizeAthena(manifest, parsed.target ?? DEFAULT_TARGET);
    }
    case 'prepare':
      // An undeclared target fails here, before any query is paid for.
      targetDeps(runtime, parsed.target);
      return prepareExport(parsed, { anonymous: defaults.anonymous, bulkMode: bulkModeOf(runtime, parsed.target), now: now.getTime() });
    case 'query':
      return queryText(parsed, targetDeps(runtime, parsed.target).settings.schemas);
    case 'finish': {
      const manifest = await finishExport(
        targetDeps(runtime, parsed.target),
        parsed,
        {
          partMaxBytes: defaults.partMaxBytes,
          mode: defaults.mode,
          ...(defaults.workDir !== undefined && { workDir: defaults.workDir }),
        },
        // The UNLOAD output is under the bucket's athena/, whichever target it is for.
        runtime.deps.archive,
      );
      onExported(manifest, parsed.target ?? DEFAULT_TARGET);
      return summarizeAthena(manifest, parsed.target ?? DEFAULT_TARGET);
    }
  }
}
