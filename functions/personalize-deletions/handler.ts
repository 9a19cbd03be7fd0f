import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { logger, metrics } from '../../shared/observability.js';
import { handlePersonalizeDeletions } from '../../shared/personalize-deletion/runtime.js';
import type { DeletionStepReport } from '../../shared/personalize-deletion/step.js';

/** Daily: deleted users -> Personalize data deletion jobs, and their status followed. Wiring only; the work is in shared/personalize-deletion. */
export const handler = middy<unknown, DeletionStepReport>()
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics))
  .handler(() => handlePersonalizeDeletions());
