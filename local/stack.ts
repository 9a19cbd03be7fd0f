import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import variableList from '../serverless/environment.json' with { type: 'json' };
import { kinesisClient, s3Client, sqsClient } from '../shared/aws/clients.js';
import type { BatchReport } from '../shared/process/process-batch.js';
import { invokeHttpLambda } from './apigw.js';
import { startEmulators, servicesWithEndpoints, EMULATED_SERVICES, type Emulators } from './emulators.js';
import { startLocalPersonalize, type LocalPersonalize, type LocalPersonalizeOptions } from './personalize-server.js';
import { startLocalPersonalizeControl, type LocalPersonalizeControl, type LocalPersonalizeControlOptions } from './personalize-control.js';
import { startPoller, type Poller, type PollerHandler } from './poller.js';
import { serveReadiness } from './readiness-page.js';
import { declaredTargetNames } from '../shared/targets.js';
import { createResources } from './resources.js';

/**
 * The one-machine stack: emulators, resources, the local Personalize endpoint, and the real
 * processor handler fed by a poller that behaves like the Lambda event source mapping.
 * Any part whose standard endpoint variable is already set is used as it is, not started.
 */

export interface LocalStackOptions {
  /** Ports; 0 lets the OS pick (tests). */
  ports?: { http?: number; kinesis?: number; dynamodb?: number; s3?: number; sqs?: number; personalize?: number; personalizeControl?: number };
  names?: { streamName?: string; shardCount?: number; identityTable?: string; archiveBucket?: string; dlqName?: string };
  /** Where the local Personalize endpoint appends what it receives and the stack writes stack.json. */
  stateDir?: string;
  personalize?: Omit<LocalPersonalizeOptions, 'port' | 'recordFile'>;
  /** The local control plane's timing (tests pass a clock and how long jobs stay pending). */
  personalizeControl?: Pick<LocalPersonalizeControlOptions, 'activateAfterMs' | 'now' | 'deletionInputMaxBytes'>;
  poller?: { batchSize?: number; maxBatchingWindowMs?: number; pollIntervalMs?: number; maxRetryAttempts?: number; maxRecordAgeSeconds?: number };
  /** Extra processor environment (overrides the local defaults). */
  processorEnv?: Record<string, string>;
  /** Wraps each processor invocation the poller makes (chaos runs inject crashes here). */
  wrapProcessor?: (handler: PollerHandler) => PollerHandler;
  log?: (line: string) => void;
}

export interface StackSummary {
  received: number;
  forwarded: number;
  archived: number;
  deadLettered: number;
  stitched: number;
  duplicates: number;
  retried: number;
  batches: number;
  /** Merged item/user records sent whole, and held (a field the dataset schema requires still missing). */
  profilesSent: number;
  profilesHeld: number;
  /** Messages kept from Personalize for want of consent, by reason (README "Consent"). */
  consentDenied: Record<string, number>;
}

export interface LocalStack {
  http: { url: string; port: number };
  endpoints: Record<string, string>;
  names: { streamName: string; streamArn: string; identityTable: string; archiveBucket: string; dlqUrl: string };
  /** The local Personalize endpoint, when this stack started it. */
  personalize?: LocalPersonalize;
  /** The local Personalize control plane (dataset import jobs, for the export), when this stack started it. */
  personalizeControl?: LocalPersonalizeControl;
  poller: Poller;
  summary(): StackSummary;
  /** Lets a later issue mount more routes (the collector) on the stack's HTTP port. */
  route(method: string, path: string, handler: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>): void;
  stop(): Promise<void>;
}

type ListedVariables = (typeof variableList)['variables'];

/**
 * Names of the variables serverless/environment.json (the one list the template uses too) marks
 * with `flag`: `localStack` (set by startLocalStack) or `invokeLocal` (printed by invoke-env.ts).
 * A value table typed with it must give exactly those names, so the list decides the set.
 */
export type LocalVariable<Flag extends 'localStack' | 'invokeLocal'> = {
  [Name in keyof ListedVariables]: ListedVariables[Name] extends Record<Flag, boolean> ? Name : never;
}[keyof ListedVariables];

export const DEFAULT_PORTS = { http: 4000, kinesis: 4567, dynamodb: 4568, s3: 4569, sqs: 4570, personalize: 4571, personalizeControl: 4572 } as const;
export const DEFAULT_NAMES = {
  streamName: 'personalize-ingest-events',
  shardCount: 2,
  identityTable: 'personalize-ingest-identity',
  archiveBucket: 'personalize-ingest-archive',
  dlqName: 'personalize-ingest-dlq',
} as const;
export const LOCAL_TRACKING_ID = 'local-tracking-id';
/** Front-door credentials of the local stack (printed at start; never used in AWS). */
export const LOCAL_CREDENTIALS = {
  trackerWriteKey: 'local-write-key',
  serverWriteKey: 'local-server-key',
  privacyApiKey: 'local-privacy-key',
  segmentSharedSecret: 'local-segment-secret',
  mparticleAuthorization: 'Basic bG9jYWw6bG9jYWw=',
  feedApiKey: 'local-feed-key',
} as const;
export const LOCAL_ITEMS_DATASET_ARN = 'arn:aws:personalize:us-east-1:000000000000:dataset/local/ITEMS';
export const LOCAL_USERS_DATASET_ARN = 'arn:aws:personalize:us-east-1:000000000000:dataset/local/USERS';
export const LOCAL_INTERACTIONS_DATASET_ARN = 'arn:aws:personalize:us-east-1:000000000000:dataset/local/INTERACTIONS';
/** The dataset group deletion jobs name (CreateDataDeletionJob). */
export const LOCAL_DATASET_GROUP_ARN = 'arn:aws:personalize:us-east-1:000000000000:dataset-group/local';
/** The role the export names in CreateDatasetImportJob; locally only its form is checked. */
export const LOCAL_IMPORT_ROLE_ARN = 'arn:aws:iam::000000000000:role/personalize-ingest-local-import';

/** What `npm run export` needs besides endpoints and names: the datasets and role this stack configured. */
function exportSettings(): Record<string, string | undefined> {
  return {
    interactionsDatasetArn: process.env.PERSONALIZE_INTERACTIONS_DATASET_ARN,
    itemsDatasetArn: process.env.PERSONALIZE_ITEMS_DATASET_ARN,
    usersDatasetArn: process.env.PERSONALIZE_USERS_DATASET_ARN,
    importRoleArn: process.env.PERSONALIZE_IMPORT_ROLE_ARN,
    datasetGroupArn: process.env.PERSONALIZE_DATASET_GROUP_ARN,
  };
}

function emptySummary(): StackSummary {
  return { received: 0, forwarded: 0, archived: 0, deadLettered: 0, stitched: 0, duplicates: 0, retried: 0, batches: 0, profilesSent: 0, profilesHeld: 0, consentDenied: {} };
}

export async function startLocalStack(options: LocalStackOptions = {}): Promise<LocalStack> {
  const log = options.log ?? (() => undefined);
  const ports = options.ports ?? {};
  const names = { ...DEFAULT_NAMES, ...options.names };
  // Dummy credentials (s3rver accepts only S3RVER/S3RVER) and a region, unless the user brought real ones.
  process.env.AWS_REGION ??= 'us-east-1';
  process.env.AWS_ACCESS_KEY_ID ??= 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'S3RVER';

  const preset = new Set(servicesWithEndpoints());
  const toStart = EMULATED_SERVICES.filter((s) => !preset.has(s));
  let emulators: Emulators | undefined;
  let personalize: LocalPersonalize | undefined;
  let personalizeControl: LocalPersonalizeControl | undefined;
  let poller: Poller | undefined;
  let http: Server | undefined;
  const stopAll = async () => {
    await poller?.stop();
    await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
    await personalize?.close();
    await personalizeControl?.close();
    await emulators?.close();
  };

  try {
    emulators = await startEmulators(ports, { only: toStart, ...(options.stateDir && { dataDir: options.stateDir }) });
    Object.assign(process.env, emulators.env);

    if (!process.env.AWS_ENDPOINT_URL_PERSONALIZE_EVENTS && !process.env.AWS_ENDPOINT_URL) {
      personalize = await startLocalPersonalize({
        port: ports.personalize ?? 0,
        ...(options.stateDir && { recordFile: join(options.stateDir, 'personalize-received.ndjson') }),
        ...options.personalize,
      });
      Object.assign(process.env, personalize.env);
    }
    if (!process.env.AWS_ENDPOINT_URL_PERSONALIZE && !process.env.AWS_ENDPOINT_URL) {
      personalizeControl = await startLocalPersonalizeControl({ port: ports.personalizeControl ?? 0, s3: s3Client(), ...options.personalizeControl });
      Object.assign(process.env, personalizeControl.env);
    }

    const kinesis = kinesisClient();
    const sqs = sqsClient();
    const created = await createResources({ kinesis, s3: s3Client(), sqs }, names);

    // The local values of the variables the list marks `localStack`; the caller's processorEnv wins.
    const localEnvironment: Record<LocalVariable<'localStack'>, string> = {
      PERSONALIZE_TRACKING_ID: process.env.PERSONALIZE_TRACKING_ID ?? LOCAL_TRACKING_ID,
      PERSONALIZE_ITEMS_DATASET_ARN: process.env.PERSONALIZE_ITEMS_DATASET_ARN ?? LOCAL_ITEMS_DATASET_ARN,
      PERSONALIZE_USERS_DATASET_ARN: process.env.PERSONALIZE_USERS_DATASET_ARN ?? LOCAL_USERS_DATASET_ARN,
      PERSONALIZE_INTERACTIONS_DATASET_ARN: process.env.PERSONALIZE_INTERACTIONS_DATASET_ARN ?? LOCAL_INTERACTIONS_DATASET_ARN,
      PERSONALIZE_IMPORT_ROLE_ARN: process.env.PERSONALIZE_IMPORT_ROLE_ARN ?? LOCAL_IMPORT_ROLE_ARN,
      // Also tells the processor to keep deleted users' ids in the outbox the deletion step reads.
      PERSONALIZE_DATASET_GROUP_ARN: process.env.PERSONALIZE_DATASET_GROUP_ARN ?? LOCAL_DATASET_GROUP_ARN,
      IDENTITY_TABLE: names.identityTable,
      ARCHIVE_BUCKET: names.archiveBucket,
      DLQ_URL: created.dlqUrl,
      STREAM_NAME: names.streamName,
      // Local credentials for the front doors; in AWS they come from the secret store.
      TRACKER_WRITE_KEYS: process.env.TRACKER_WRITE_KEYS ?? LOCAL_CREDENTIALS.trackerWriteKey,
      SERVER_WRITE_KEYS: process.env.SERVER_WRITE_KEYS ?? LOCAL_CREDENTIALS.serverWriteKey,
      PRIVACY_API_KEYS: process.env.PRIVACY_API_KEYS ?? LOCAL_CREDENTIALS.privacyApiKey,
      SEGMENT_SHARED_SECRET: process.env.SEGMENT_SHARED_SECRET ?? LOCAL_CREDENTIALS.segmentSharedSecret,
      MPARTICLE_AUTHORIZATION: process.env.MPARTICLE_AUTHORIZATION ?? LOCAL_CREDENTIALS.mparticleAuthorization,
      FEED_API_KEYS: process.env.FEED_API_KEYS ?? LOCAL_CREDENTIALS.feedApiKey,
      CORS_ALLOWED_ORIGINS: process.env.CORS_ALLOWED_ORIGINS ?? '*',
      POWERTOOLS_METRICS_DISABLED: process.env.POWERTOOLS_METRICS_DISABLED ?? 'true',
      POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? 'WARN',
    };
    Object.assign(process.env, localEnvironment, options.processorEnv);

    // Imported after the environment is set: the handler reads it once, like a Lambda container.
    const { handler } = await import('../functions/process/handler.js');
    const { batchReports } = await import('../shared/process/handle.js');
    const collector = await import('../functions/collect/handler.js');
    const { COLLECTOR_PATHS } = await import('../shared/collect/collector.js');
    const totals = emptySummary();
    const unsubscribe = batchReports.subscribe((r: BatchReport) => {
      totals.batches++;
      totals.received += r.messages;
      totals.forwarded += r.forwardedEvents + r.forwardedItems + r.forwardedUsers;
      totals.archived += r.archivedRecords;
      totals.deadLettered += r.deadLettered;
      totals.stitched += r.stitched;
      totals.duplicates += r.duplicates;
      totals.retried += r.retried;
      totals.profilesSent += r.profilesSent;
      totals.profilesHeld += r.profilesHeld;
      for (const [reason, n] of Object.entries(r.consentDenied)) totals.consentDenied[reason] = (totals.consentDenied[reason] ?? 0) + n;
    });

    poller = await startPoller({
      kinesis,
      streamName: names.streamName,
      streamArn: created.streamArn,
      // The poller passes a plain Lambda context; middy's types want its own request shape.
      handler: (options.wrapProcessor ?? ((h: PollerHandler) => h))((event, context) => handler(event, context)),
      batchSize: options.poller?.batchSize ?? 100,
      maxBatchingWindowMs: options.poller?.maxBatchingWindowMs ?? 200,
      pollIntervalMs: options.poller?.pollIntervalMs ?? 250,
      maxRetryAttempts: options.poller?.maxRetryAttempts ?? 5,
      maxRecordAgeSeconds: options.poller?.maxRecordAgeSeconds ?? 3600,
      bisectBatchOnFunctionError: true,
      reportBatchItemFailures: true,
      onFailure: { sqs, queueUrl: created.dlqUrl },
      functionName: 'personalize-ingest-local-process',
      // Routine shard chatter stays quiet; warnings and errors reach the console.
      logger: (line) => {
        const level = (line as { level?: string }).level;
        if (level !== 'info' && level !== 'debug') log(JSON.stringify(line));
      },
    });

    const routes = new Map<string, (req: IncomingMessage, res: ServerResponse) => void | Promise<void>>();
    const endpoints: Record<string, string> = {
      kinesis: process.env.AWS_ENDPOINT_URL_KINESIS ?? process.env.AWS_ENDPOINT_URL ?? 'aws',
      dynamodb: process.env.AWS_ENDPOINT_URL_DYNAMODB ?? process.env.AWS_ENDPOINT_URL ?? 'aws',
      s3: process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL ?? 'aws',
      sqs: process.env.AWS_ENDPOINT_URL_SQS ?? process.env.AWS_ENDPOINT_URL ?? 'aws',
      personalizeEvents: process.env.AWS_ENDPOINT_URL_PERSONALIZE_EVENTS ?? process.env.AWS_ENDPOINT_URL ?? 'aws',
      personalize: process.env.AWS_ENDPOINT_URL_PERSONALIZE ?? process.env.AWS_ENDPOINT_URL ?? 'aws',
    };
    const sendJson = (res: ServerResponse, status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    const activePoller = poller;
    routes.set('GET /health', (_req, res) => sendJson(res, 200, { status: 'ok', endpoints, stream: names.streamName }));
    routes.set('GET /stats', (_req, res) => sendJson(res, 200, { summary: totals, poller: activePoller.stats() }));
    // The latest export's readiness report (local/readiness-page.ts), per target with ?target=<name>.
    const targetNames = declaredTargetNames(process.env.TARGETS_FILE);
    const readinessOf = (req: IncomingMessage) => ({ names: targetNames, requested: new URL(req.url ?? '/', 'http://local').searchParams.get('target') ?? undefined });
    routes.set('GET /readiness', (req, res) => serveReadiness(res, names.archiveBucket, 'html', readinessOf(req)));
    routes.set('GET /readiness.json', (req, res) => serveReadiness(res, names.archiveBucket, 'json', readinessOf(req)));
    const collectorPaths = new Set(COLLECTOR_PATHS);
    http = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      const route = collectorPaths.has(path)
        ? () => invokeHttpLambda(req, res, (event, context) => collector.handler(event, context), 'personalize-ingest-local-collect')
        : routes.get(`${req.method ?? 'GET'} ${path}`);
      if (!route) return sendJson(res, 404, { message: `no route ${req.method} ${path}` });
      Promise.resolve(route(req, res)).catch((error: unknown) => {
        log(`route ${req.method} ${path} failed: ${(error as Error).message}`);
        if (!res.headersSent) sendJson(res, 500, { message: 'internal error' });
      });
    });
    const httpServer = http;
    const httpPort = await new Promise<number>((resolve, reject) => {
      httpServer.once('error', reject);
      httpServer.listen(ports.http ?? 0, '127.0.0.1', () => resolve((httpServer.address() as AddressInfo).port));
    });
    endpoints.http = `http://127.0.0.1:${httpPort}`;

    const stack: LocalStack = {
      http: { url: `http://127.0.0.1:${httpPort}`, port: httpPort },
      endpoints,
      names: { streamName: names.streamName, streamArn: created.streamArn, identityTable: names.identityTable, archiveBucket: names.archiveBucket, dlqUrl: created.dlqUrl },
      ...(personalize && { personalize }),
      ...(personalizeControl && { personalizeControl }),
      poller,
      summary: () => ({ ...totals }),
      route: (method, path, handler) => void routes.set(`${method.toUpperCase()} ${path}`, handler),
      stop: async () => {
        unsubscribe();
        await stopAll();
      },
    };
    if (options.stateDir) {
      await mkdir(options.stateDir, { recursive: true });
      await writeFile(join(options.stateDir, 'stack.json'), `${JSON.stringify({ endpoints, names: stack.names, region: process.env.AWS_REGION, export: exportSettings() }, null, 2)}\n`);
    }
    return stack;
  } catch (error) {
    await stopAll().catch(() => undefined);
    throw error;
  }
}
