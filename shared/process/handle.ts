import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { logger, metrics, MetricUnit, Observers } from '../observability.js';
import { processBatch, type BatchReport, type ProcessorDeps } from './process-batch.js';
import { processorDepsFromEnv } from './runtime.js';

let deps: ProcessorDeps | undefined;

/** The container's adapters, built on first use from the environment. */
export function processorDeps(): ProcessorDeps {
  deps ??= processorDepsFromEnv();
  return deps;
}

/** Replaces the adapters (fault injection in the local stack and chaos runs). */
export function setProcessorDeps(next: ProcessorDeps | undefined): void {
  deps = next;
}

/** Every batch's report, for in-process observers such as the local stack's summary line. */
export const batchReports = new Observers<BatchReport>();

const COUNTED: (keyof BatchReport)[] = [
  'kinesisRecords', 'messages', 'invalid', 'duplicates', 'linksRecorded', 'linkConflicts', 'stitched', 'anonymous',
  'archivedRecords', 'forwardedEvents', 'forwardedItems', 'forwardedUsers', 'putEventsCalls', 'putItemsCalls',
  'putUsersCalls', 'superseded', 'notConfigured', 'propertiesDropped', 'rejectedByPersonalize', 'deadLettered', 'retried',
  'deletions', 'linksDeleted', 'profilesHeld', 'profilesSent', 'propertiesNotAllowed', 'notStreamed', 'consents', 'consentOptOuts',
];

function publish(report: BatchReport): void {
  for (const name of COUNTED) {
    const value = report[name];
    if (typeof value === 'number' && value > 0) metrics.addMetric(name, MetricUnit.Count, value);
  }
  // The total; the reasons (our own words, naming the category) go to the log line.
  const consentDenied = Object.values(report.consentDenied).reduce((n, v) => n + v, 0);
  if (consentDenied > 0) metrics.addMetric('consentDenied', MetricUnit.Count, consentDenied);
  // Per target other than the default, with a `target` dimension (docs/targets.md).
  for (const [target, counts] of Object.entries(report.byTarget ?? {})) {
    for (const [name, value] of Object.entries(counts) as [string, number][]) {
      if (value <= 0) continue;
      // A single metric is published as it is added: one per value, each with the dimension.
      const single = metrics.singleMetric();
      single.addDimension('target', target);
      single.addMetric(name, MetricUnit.Count, value);
    }
  }
  const attributable = report.stitched + report.anonymous;
  if (attributable > 0) metrics.addMetric('stitchedRatio', MetricUnit.Percent, (100 * report.stitched) / attributable);
  // Counts and reasons only: ids and payloads may carry PII and stay out of logs. The property
  // reasons are summaries (dataset, schema field, rule), never a payload's keys or values; the
  // failure names the dependency that failed and its error.
  const { droppedPropertyReasons, deadLetterByStage, consentDenied: consentDeniedReasons, failure, byTarget, ...counts } = report;
  const log = report.retried > 0 || failure ? logger.warn.bind(logger) : logger.info.bind(logger);
  log('batch processed', { counts, droppedPropertyReasons, deadLetterByStage, consentDeniedReasons, ...(byTarget && { byTarget }), ...(failure && { failure }) });
}

export async function processKinesisEvent(event: KinesisStreamEvent): Promise<KinesisStreamBatchResponse> {
  const started = Date.now();
  const { response, report } = await processBatch(event.Records ?? [], processorDeps());
  metrics.addMetric('batchMillis', MetricUnit.Milliseconds, Date.now() - started);
  publish(report);
  batchReports.emit(report);
  return response;
}
