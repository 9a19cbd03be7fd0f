import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from 'aws-lambda';
import { logger, metrics } from '../../shared/observability.js';
import { processKinesisEvent } from '../../shared/process/handle.js';

/** Kinesis -> Personalize processor. Wiring only; the work is in shared/process. */
export const handler = middy<KinesisStreamEvent, KinesisStreamBatchResponse>()
  // Never the event: its records carry payloads (POWERTOOLS_LOGGER_LOG_EVENT cannot turn this on).
  .use(injectLambdaContext(logger, { logEvent: false }))
  .use(logMetrics(metrics))
  .handler((event) => processKinesisEvent(event));
