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
  // Counts and status only: bodies, keys and ids stay out of logs.
  logger.info('request collected', { ...report });
  collectReports.emit(report);
  return toApiGatewayResult(response);
}
