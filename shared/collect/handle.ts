import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { logger, metrics, MetricUnit, Observers } from '../observability.js';
import { collect, type CollectorDeps, type CollectReport } from './collector.js';
import { fromApiGatewayEvent, toApiGatewayResult } from './http.js';
import { collectorDepsFromEnv } from './runtime.js';

let deps: CollectorDeps | undefined;

export function collectorDeps(): CollectorDeps {
  deps ??= collectorDepsFromEnv();
  return deps;
}

/** Replaces the adapters (fault injection in tests and chaos runs). */
export function setCollectorDeps(next: CollectorDeps | undefined): void {
  deps = next;
}

export const collectReports = new Observers<CollectReport>();

export async function collectHttp(event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> {
  const { response, report } = await collect(fromApiGatewayEvent(event), collectorDeps());
  metrics.addDimension('door', report.door ?? 'unknown');
  for (const name of ['accepted', 'rejected', 'filtered', 'notStored'] as const) {
    if (report[name] > 0) metrics.addMetric(`collect_${name}`, MetricUnit.Count, report[name]);
  }
  metrics.addMetric(`collect_status_${Math.floor(report.status / 100)}xx`, MetricUnit.Count, 1);
  // Counts, status and the credential class only: bodies, keys and ids stay out of logs.
  const { deletedUserHashes, userHashKeyed, ...counts } = report;
  logger.info('request collected', { ...counts });
  if (deletedUserHashes && deletedUserHashes.length > 0) {
    // The deletion audit trail: who (credential class), when (the log line), which users (keyed hashes).
    logger.info('deletion requested', { audit: true, credential: report.credential, users: deletedUserHashes, userHashKeyed });
    metrics.addMetric('deletions_requested', MetricUnit.Count, deletedUserHashes.length);
  }
  collectReports.emit(report);
  return toApiGatewayResult(response);
}
