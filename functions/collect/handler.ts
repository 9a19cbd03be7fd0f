import middy from '@middy/core';
import httpCors from '@middy/http-cors';
import httpErrorHandler from '@middy/http-error-handler';
import httpHeaderNormalizer from '@middy/http-header-normalizer';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { collectHttp } from '../../shared/collect/handle.js';
import { cors } from '../../shared/collect/http-contract.js';
import { readCorsOrigins } from '../../shared/config.js';
import { logger, metrics } from '../../shared/observability.js';

/** HTTP front doors (trackers, Segment and mParticle webhooks, catalog and profile feeds). Wiring only. */
const origins = readCorsOrigins();

export const handler = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
  // Never the event: it carries bodies and credentials (POWERTOOLS_LOGGER_LOG_EVENT cannot turn this on).
  .use(injectLambdaContext(logger, { logEvent: false }))
  .use(logMetrics(metrics))
  .use(httpHeaderNormalizer())
  // Preflights answered here locally; in AWS, API Gateway answers them with the same contract (serverless.yml).
  .use(
    httpCors({
      origins,
      disableBeforePreflightResponse: false,
      methods: cors.allowMethods.join(','),
      headers: cors.allowHeaders.join(','),
      exposeHeaders: cors.exposeHeaders.join(','),
      maxAge: cors.maxAgeSeconds,
    }),
  )
  // Anything unexpected becomes a plain 500 without internals; client errors are answered by the core.
  .use(httpErrorHandler({ fallbackMessage: JSON.stringify({ success: false, message: 'internal error' }) }))
  .handler((event) => collectHttp(event));
