import { z } from 'zod';
import { handleAthenaEvent, isAthenaEvent } from './athena/orchestrate.js';
import { logger, metrics, MetricUnit } from '../observability.js';
import { isExportDate, previousUtcDay } from './dates.js';
import { exportDay, ExportInputError } from './export-day.js';
import { manifestKey, type ExportManifest, type ManifestJob } from './manifest.js';
import { EXPORT_KINDS, type ExportKind } from './kinds.js';
import { exportRuntimeFromEnv, type ExportRuntime } from './runtime.js';

/**
 * The export Lambda's core. An EventBridge schedule exports the UTC day before the event's time;
 * a direct invocation may name the day and override the mode: `{"date":"2026-11-22","mode":"FULL"}`.
 */

const modeSchema = z.enum(['auto', 'INCREMENTAL', 'FULL']);
export const exportEventSchema = z.union([
  z.looseObject({ 'detail-type': z.literal('Scheduled Event'), time: z.iso.datetime({ offset: true }) }),
  z.strictObject({
    date: z.string().refine(isExportDate, 'date must be a UTC day written YYYY-MM-DD').optional(),
    mode: modeSchema.optional(),
    import: z.boolean().optional(),
  }),
]);
export type ExportEvent = z.input<typeof exportEventSchema>;

export interface KindSummary {
  read: number;
  rejected: number;
  duplicates: number;
  backfilled: number;
  anonymousWithoutLink: number;
  deletedUserRows: number;
  exported: number;
  heldRows: number;
}

export interface ExportSummary {
  date: string;
  manifestKey: string;
  kinds: Record<ExportKind, KindSummary>;
  importJobs: Pick<ManifestJob, 'kind' | 'jobName' | 'jobArn' | 'importMode' | 'status' | 'reason' | 'rows'>[];
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
      anonymousWithoutLink: r.anonymousWithoutLink,
      deletedUserRows: r.deletedUserRows,
      exported: r.exported,
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
    return handleAthenaEvent(event, runtime, now);
  }
  const parsed = exportEventSchema.safeParse(event ?? {});
  if (!parsed.success) throw new ExportInputError(`export event not understood: ${z.prettifyError(parsed.error)}`);
  const input = parsed.data;
  const scheduled = 'time' in input;
  const date = scheduled ? previousUtcDay(new Date(input.time)) : (input.date ?? previousUtcDay(now));
  runtime ??= exportRuntimeFromEnv();
  const { deps, defaults } = runtime;
  const manifest = await exportDay(deps, {
    date,
    mode: (!scheduled && input.mode) || defaults.mode,
    import: scheduled || input.import !== false,
    anonymous: defaults.anonymous,
    partMaxBytes: defaults.partMaxBytes,
    readConcurrency: defaults.readConcurrency,
    engine: defaults.engine,
    ...(defaults.workDir !== undefined && { workDir: defaults.workDir }),
  });
  const summary = summarize(manifest);
  for (const kind of EXPORT_KINDS) {
    const k = summary.kinds[kind];
    // One EMF blob per invocation (logMetrics publishes it): the kind is part of the metric name.
    metrics.addMetric(`${kind}Exported`, MetricUnit.Count, k.exported);
    metrics.addMetric(`${kind}Backfilled`, MetricUnit.Count, k.backfilled);
    metrics.addMetric(`${kind}Duplicates`, MetricUnit.Count, k.duplicates);
    metrics.addMetric(`${kind}Rejected`, MetricUnit.Count, k.rejected);
    metrics.addMetric(`${kind}HeldRows`, MetricUnit.Count, k.heldRows);
  }
  metrics.addMetric('importJobsStarted', MetricUnit.Count, summary.importJobs.filter((j) => j.status === 'started').length);
  // Counts, job names and reasons only: no ids from the data.
  logger.info('export finished', { ...summary });
  return summary;
}
