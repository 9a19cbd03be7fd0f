import middy from '@middy/core';
import httpCors from '@middy/http-cors';
import httpErrorHandler from '@middy/http-error-handler';
import httpHeaderNormalizer from '@middy/http-header-normalizer';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { collectHttp } from '../../shared/collect/handle.js';
import { logger, metrics } from '../../shared/observability.js';

/** HTTP front doors (trackers, Segment and mParticle webhooks, catalog and profile feeds). Wiring only. */
const origins = (process.env.CORS_ALLOWED_ORIGINS ?? '')
  .split(',')
  .map((o) => o.trim())
  .filter(Boolean);

export const handler = middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
  .use(injectLambdaContext(logger))
  .use(logMetrics(metrics))
  .use(httpHeaderNormalizer())
  .use(httpCors({ origins, disableBeforePreflightResponse: false, methods: 'POST,OPTIONS', headers: 'content-type,authorization,x-api-key,x-signature', maxAge: 600 }))
  // Anything unexpected becomes a plain 500 without internals; client errors are answered by the core.
  .use(httpErrorHandler({ fallbackMessage: JSON.stringify({ success: false, message: 'internal error' }) }))
  .handler((event) => collectHttp(event));
