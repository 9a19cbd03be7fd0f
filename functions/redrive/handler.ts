import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { RedriveSummary } from '../../shared/ops/redrive.js';
import { redriveFromLambda } from '../../shared/ops/redrive-handle.js';
import { logger, metrics } from '../../shared/observability.js';

/** DLQ -> re-validate -> back onto the stream; by hand or on a schedule. Wiring only; the work is in shared/ops. */
export const handler = middy<unknown, RedriveSummary>()
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics))
  .handler((event, context) => redriveFromLambda(event, context));
