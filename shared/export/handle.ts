import { z } from 'zod';
import { BULK_MODES, type BulkMode } from '../bulk-mode.js';
import { DEFAULT_TARGET } from '../targets.js';
import { handleAthenaEvent, isAthenaEvent } from './athena/orchestrate.js';
import { logger, metrics, MetricUnit } from '../observability.js';
import { addUtcDays, isExportDate, previousUtcDay } from '../util/dates.js';
import { exportDay, ExportInputError } from './export-day.js';
import { manifestKey, type ExportManifest, type ManifestJob } from './manifest.js';
import { EXPORT_KINDS, type ExportKind } from './kinds.js';
import { exportRuntimeFromEnv, findExportTarget, undeclaredTarget, type ExportRuntime } from './runtime.js';

/**
 * The export Lambda's core. An EventBridge schedule exports the UTC day before the event's time and
 * the EXPORT_REEXPORT_DAYS days before it, oldest first, one manifest each; a direct invocation
 * exports one day and may name the day and override the mode: `{"date":"2026-11-22","mode":"FULL"}`,
 * or bootstrap a new dataset group: `{"bulkMode":"bootstrap","from":"2026-01-01","date":"2026-11-30"}`;
 * `"target":"<name>"` runs only that target of TARGETS_FILE (docs/targets.md), as `npm run export -- --target`.
 */

const modeSchema = z.enum(['auto', 'INCREMENTAL', 'FULL']);
export const exportEventSchema = z.union([
  z.looseObject({ 'detail-type': z.literal('Scheduled Event'), time: z.iso.datetime({ offset: true }) }),
  z.strictObject({
    date: z.string().refine(isExportDate, 'date must be a UTC day written YYYY-MM-DD').optional(),
    mode: modeSchema.optional(),
    import: z.boolean().optional(),
    bulkMode: z.enum(BULK_MODES).optional(),
    from: z.string().refine(isExportDate, 'from must be a UTC day written YYYY-MM-DD').optional(),
    target: z.string().min(1).optional(),
  }),
]);
export type ExportEvent = z.input<typeof exportEventSchema>;

export interface KindSummary {
  read: number;
  rejected: number;
  duplicates: number;
  backfilled: number;
  streamed: number;
  anonymousWithoutLink: number;
  deletedUserRows: number;
  /** Rows written by this run (what changed since the day's last publication). */
  exported: number;
  /** The day's rows already in a live import job's file: not written again. */
  alreadyPublished: number;
  /** The revision this run's files carry (undefined without import). */
  revision?: number;
  heldRows: number;
}

export interface ExportSummary {
  date: string;
  manifestKey: string;
  kinds: Record<ExportKind, KindSummary>;
  importJobs: Pick<ManifestJob, 'kind' | 'jobName' | 'jobArn' | 'importMode' | 'status' | 'reason' | 'rows'>[];
  /** A scheduled pass: every day it exported, oldest first (the fields above are yesterday's). */
  days?: ExportSummary[];
  /** The other targets' runs of the last day (docs/targets.md), by target. */
  targets?: Record<string, ExportSummary>;
}

let runtime: ExportRuntime | undefined;

/** Replaces the adapters (tests point a fresh environment at other resources). */
export function setExportRuntime(next: ExportRuntime | undefined): void {
  runtime = next;
}

export function summarize(manifest: ExportManifest): ExportSummary {
  const kinds = {} as Record<ExportKind, KindSummary>;
  for (const kind of EXPORT_KINDS) {
    const r = manifest.kinds[kind];
    kinds[kind] = {
      read: r.read,
      rejected: r.rejected,
      duplicates: r.duplicates,
      backfilled: r.backfilled,
      streamed: r.streamed,
      anonymousWithoutLink: r.anonymousWithoutLink,
      deletedUserRows: r.deletedUserRows,
      exported: r.exported,
      alreadyPublished: r.alreadyPublished,
      ...(r.revision !== undefined && { revision: r.revision }),
      heldRows: r.held.rows,
    };
  }
  return {
    date: manifest.date,
    manifestKey: manifestKey(manifest.date),
    kinds,
    importJobs: manifest.importJobs.map(({ kind, jobName, jobArn, importMode, status, reason, rows }) => ({
      kind,
      jobName,
      importMode,
      status,
      rows,
      ...(jobArn !== undefined && { jobArn }),
      ...(reason !== undefined && { reason }),
    })),
  };
}

/** What the function returns: the run's summary, or a state machine step's output. */
export type ExportResult = ExportSummary | Awaited<ReturnType<typeof handleAthenaEvent>>;

export async function handleExportEvent(event: unknown, now: Date = new Date()): Promise<ExportResult> {
  // The Athena path's state machine steps (docs/export-at-scale.md) come to the same function.
  if (isAthenaEvent(event)) {
    runtime ??= exportRuntimeFromEnv();
    // A finished target's day (embedded or Athena) publishes the same metrics as the {date} run.
    return handleAthenaEvent(event, runtime, now, (manifest, target) => recordMetrics([summarize(manifest)], target));
  }
  const parsed = exportEventSchema.safeParse(event ?? {});
  if (!parsed.success) throw new ExportInputError(`export event not understood: ${z.prettifyError(parsed.error)}`);
  const input = parsed.data;
  const scheduled = 'time' in input;
  const yesterday = scheduled ? previousUtcDay(new Date(input.time)) : (input.date ?? previousUtcDay(now));
  runtime ??= exportRuntimeFromEnv();
  const { defaults } = runtime;
  // A direct invocation may name one target; the schedule runs the default, then every other one.
  const only = !scheduled && input.target !== undefined ? input.target : undefined;
  const chosen = findExportTarget(runtime, only);
  if (chosen === undefined) throw new ExportInputError(undeclaredTarget(runtime, only!));
  const { deps } = chosen;
  const targets = only === undefined ? runtime.targets : [];
  // The schedule exports yesterday and the days before it again, oldest first: late data of those
  // days becomes their next revision (README "Revisions"). A direct invocation: the one named day.
  const dates = scheduled ? reexportDates(yesterday, defaults.reexportDays) : [yesterday];
  const summaries: ExportSummary[] = [];
  const targetSummaries: Record<string, ExportSummary> = {};
  const targetDays = new Map<string, ExportSummary[]>();
  const failures: string[] = [];
  for (const date of dates) {
    const exportFor = (targetDeps: typeof deps, targetBulkMode: BulkMode | undefined) =>
      exportDay(targetDeps, {
        date,
        mode: (!scheduled && input.mode) || defaults.mode,
        // A target's own bulk mode (docs/targets.md), unless the invocation names one.
        bulkMode: (!scheduled && input.bulkMode) || targetBulkMode || defaults.bulkMode,
        ...(!scheduled && input.from !== undefined && { from: input.from }),
        import: scheduled || input.import !== false,
        anonymous: defaults.anonymous,
        partMaxBytes: defaults.partMaxBytes,
        readConcurrency: defaults.readConcurrency,
        engine: defaults.engine,
        ...(defaults.workDir !== undefined && { workDir: defaults.workDir }),
      });
    try {
      const summary = summarize(await exportFor(deps, chosen?.bulkMode));
      summaries.push(summary);
      // Counts, job names and reasons only: no ids from the data.
      logger.info('export finished', { ...summary });
      // Every other target over its own prefix, with its schemas and datasets (docs/targets.md).
      for (const target of targets) {
        targetSummaries[target.name] = summarize(await exportFor(target.deps, target.bulkMode));
        targetDays.set(target.name, [...(targetDays.get(target.name) ?? []), targetSummaries[target.name]!]);
        logger.info('export of a target finished', { target: target.name, ...targetSummaries[target.name] });
      }
    } catch (error) {
      if (!scheduled) throw error;
      // One day's failure does not keep the others from running; the invocation still fails.
      failures.push(`${date}: ${(error as Error).name}: ${(error as Error).message}`);
      logger.error('export of a day failed', { date, error: error as Error });
    }
  }
  recordMetrics(summaries, chosen?.name);
  for (const [name, days] of targetDays) recordMetrics(days, name);
  if (failures.length > 0) throw new ExportPassError(`the nightly export failed for ${failures.length} of ${dates.length} days: ${failures.join('; ')}`);
  const last = { ...summaries.at(-1)!, ...(targets.length > 0 && { targets: targetSummaries }) };
  return scheduled ? { ...last, days: summaries } : last;
}

export class ExportPassError extends Error {
  override name = 'ExportPassError';
}

/** Yesterday and the `days` before it, oldest first. */
export function reexportDates(yesterday: string, days: number): string[] {
  return Array.from({ length: days + 1 }, (_, i) => addUtcDays(yesterday, i - days));
}

/**
 * One EMF blob per invocation (logMetrics publishes it): the kind is part of the metric name; days
 * are summed. A target other than the default (docs/targets.md) publishes the same names with a
 * `target` dimension, as the processor does.
 */
function recordMetrics(summaries: readonly ExportSummary[], target?: string): void {
  const add = (name: string, value: number) => {
    if (target === undefined || target === DEFAULT_TARGET) return void metrics.addMetric(name, MetricUnit.Count, value);
    const single = metrics.singleMetric();
    single.addDimension('target', target);
    single.addMetric(name, MetricUnit.Count, value);
  };
  for (const kind of EXPORT_KINDS) {
    const sum = (field: 'exported' | 'backfilled' | 'duplicates' | 'rejected') => summaries.reduce((n, s) => n + s.kinds[kind][field], 0);
    add(`${kind}Exported`, sum('exported'));
    add(`${kind}Backfilled`, sum('backfilled'));
    add(`${kind}Duplicates`, sum('duplicates'));
    add(`${kind}Rejected`, sum('rejected'));
    // What waits in pending after the pass (one folder for all days).
    add(`${kind}HeldRows`, summaries.at(-1)?.kinds[kind].heldRows ?? 0);
  }
  add('importJobsStarted', summaries.reduce((n, s) => n + s.importJobs.filter((j) => j.status === 'started').length, 0));
}
