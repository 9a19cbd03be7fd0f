import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { logger, metrics } from '../../shared/observability.js';
import { handleExportEvent, type ExportEvent, type ExportResult } from '../../shared/export/handle.js';

/** Nightly export (EventBridge schedule, or `{date}`, or a step of the Athena state machine). Wiring only; the work is in shared/export. */
export const handler = middy<ExportEvent, ExportResult>()
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics))
  .handler((event) => handleExportEvent(event));
