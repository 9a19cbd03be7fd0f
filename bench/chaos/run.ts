import { setTimeout as sleep } from 'node:timers/promises';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsCommand } from '@aws-sdk/client-s3';
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import pLimit from 'p-limit';
import { kinesisClient, s3Client, sqsClient } from '../../shared/aws/clients.js';
import { processorDeps, setProcessorDeps } from '../../shared/process/handle.js';
import { putRecords } from '../../shared/aws/kinesis.js';
import { isKinesisOnFailureRecord } from '../../local/poller.js';
import { LOCAL_CREDENTIALS, startLocalStack, type LocalStack } from '../../local/stack.js';
import { kplAggregate } from '../../test/support/kpl.js';
import { ChaosFaults, type FaultCounters } from './faults.js';
import { generateInputs, payloadKeys, type Inputs, type OutgoingRequest } from './inputs.js';
import { formatLedger, reconcile, type DeadLetterSeen, type LedgerResult, type Observations } from './ledger.js';

/**
 * One chaos run: a local stack with faults everywhere, the generated traffic through its front
 * doors, then the ledger. Used by `npm run chaos` (100,000 events) and test/chaos.test.ts (small).
 */

export interface ChaosOptions {
  events: number;
  seed: number;
  /** Hard limit for the whole run; past it the run stops waiting and reports what it has. */
  deadlineMs: number;
  shards: number;
  /** HTTP requests in flight. */
  httpConcurrency: number;
  trackerBatchSize: number;
  rawRecords: number;
  rates: {
    invalid: number;
    duplicate: number;
    throttle: number;
    serverError: number;
    personalizeReject: number;
    crash: number;
    dynamoFault: number;
    s3Fault: number;
  };
  /** Resource names; defaults are unique per run. */
  names?: { streamName: string; identityTable: string; archiveBucket: string; dlqName: string };
  progress?: (line: string) => void;
}

export const DEFAULT_RATES: ChaosOptions['rates'] = {
  invalid: 0.05,
  duplicate: 0.1,
  throttle: 0.2,
  serverError: 0.02,
  personalizeReject: 0.001,
  crash: 0.01,
  dynamoFault: 0.03,
  s3Fault: 0.03,
};

export interface ChaosResult {
  ledger: LedgerResult;
  table: string;
  elapsedMs: number;
  deadlineExceeded: boolean;
  /** Every shard read to its tip with nothing pending. */
  drained: boolean;
  stalledShards: string[];
  faults: FaultCounters;
  personalize: { throttled: number; serverErrors: number; rejected: number; accepted: number };
  poller: { invocations: number; bisections: number; retries: number; batchesFailed: number; batchesPartiallyFailed: number; recordsDiscarded: number };
  http: { requests: number; duplicates: number; clientRetries: number; gaveUp: number; statuses: Record<string, number>; unexpectedStatuses: number };
  piiInArchive: number;
  piiValues: number;
}

interface Answer {
  status: number;
  body: unknown;
}


export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const started = Date.now();
  const deadline = started + options.deadlineMs;
  const progress = options.progress ?? (() => undefined);
  const left = () => deadline - Date.now();
  const suffix = `${options.seed}-${started.toString(36)}`;
  const names = options.names ?? {
    streamName: `chaos-events-${suffix}`,
    identityTable: `chaos-identity-${suffix}`,
    archiveBucket: `chaos-archive-${suffix}`,
    dlqName: `chaos-dlq-${suffix}`,
  };

  const inputs = generateInputs({
    events: options.events,
    seed: options.seed,
    invalidRate: options.rates.invalid,
    duplicateRate: options.rates.duplicate,
    personalizeRejectRate: options.rates.personalizeReject,
    trackerBatchSize: options.trackerBatchSize,
    rawRecords: options.rawRecords,
    now: Date.now(),
    credentials: LOCAL_CREDENTIALS,
  });
  const every = (rate: number) => (rate > 0 ? Math.max(2, Math.round(1 / rate)) : 0);
  const faults = new ChaosFaults({ dynamoEvery: every(options.rates.dynamoFault), s3Every: every(options.rates.s3Fault), crashEvery: every(options.rates.crash) });
  const rejectReason = 'itemId is not in the catalog (chaos: refused by the endpoint)';
  const pollerWarnings = new Map<string, number>();

  const stack = await startLocalStack({
    ports: { http: 0, personalize: 0 },
    names: { ...names, shardCount: options.shards },
    personalize: {
      faults: {
        throttleRate: options.rates.throttle,
        serverErrorRate: options.rates.serverError,
        rejectEvent: (event) => (inputs.personalizeRejects.has(event.eventId ?? '') ? rejectReason : undefined),
      },
      maxRecordedCalls: 5_000_000,
    },
    // The deployed event source mapping's settings (serverless.yml).
    poller: { batchSize: 100, maxBatchingWindowMs: 1_000, pollIntervalMs: 100, maxRetryAttempts: 5, maxRecordAgeSeconds: 3_600 },
    // Chaos traffic sends identify traits with the tracker key: take them, to exercise the profile path.
    processorEnv: { FORWARD_CONCURRENCY: '16', COLLECTOR_PUBLIC_PROFILE_UPDATES: 'accept' },
    wrapProcessor: faults.wrapHandler,
    log: (line) => {
      let key = line.slice(0, 80);
      try {
        const parsed = JSON.parse(line) as { msg?: string };
        key = parsed.msg ?? key;
      } catch {
        // not JSON: keep the prefix
      }
      pollerWarnings.set(key, (pollerWarnings.get(key) ?? 0) + 1);
    },
  });
  setProcessorDeps(faults.wrapDeps(processorDeps()));

  try {
    const http = await sendAll(stack, inputs, options, deadline, progress);
    progress(`sent ${http.requests} requests in ${((Date.now() - started) / 1000).toFixed(1)} s; waiting for the stream to drain`);

    let drained = false;
    try {
      await stack.poller.idle(Math.max(1_000, left()));
      drained = true;
    } catch {
      drained = false;
    }
    const pollerStats = stack.poller.stats();
    const stalledShards = pollerStats.shards.filter((s) => s.pendingRecords > 0 || s.checkpoint !== s.lastReadSequenceNumber).map((s) => s.shardId);
    progress(`stream ${drained ? 'drained' : 'NOT drained'} after ${((Date.now() - started) / 1000).toFixed(1)} s; reading the stores`);

    const personalize = stack.personalize!;
    const receivedEvents = new Map<string, number>();
    for (const e of personalize.receivedEvents()) bump(receivedEvents, e.eventId ?? '');
    const receivedItems = new Map<string, number>();
    for (const call of personalize.received('PutItems')) for (const item of call.request.items) bump(receivedItems, item.itemId);
    const receivedUsers = new Map<string, number>();
    for (const call of personalize.received('PutUsers')) for (const user of call.request.users) bump(receivedUsers, user.userId);

    const archive = await readArchive(names.archiveBucket, inputs.piiValues);
    const letters = await drainQueue(stack.names.dlqUrl);
    const deadLetters: DeadLetterSeen[] = [];
    let onFailureRecords = 0;
    for (const body of letters) {
      if (isKinesisOnFailureRecord(body)) {
        onFailureRecords += body.KinesisBatchInfo.batchSize;
        continue;
      }
      const d = body as Partial<DeadLetterSeen>;
      deadLetters.push({ ...(typeof d.eventId === 'string' && { eventId: d.eventId }), stage: String(d.stage), reason: String(d.reason ?? ''), payload: String(d.payload ?? '') });
    }

    const observations: Observations = {
      doorReasons: http.doorReasons,
      sends: http.sends,
      archive: archive.copies,
      receivedEvents,
      receivedItems,
      receivedUsers,
      deadLetters,
      discardedRecords: pollerStats.recordsDiscarded,
    };
    const ledger = reconcile(inputs.ledger, observations);
    const stats = personalize.stats();
    const sum = (f: 'throttled' | 'failed' | 'rejected' | 'accepted') => stats.PutEvents[f] + stats.PutItems[f] + stats.PutUsers[f];
    const elapsedMs = Date.now() - started;
    const f = faults.counters;
    const result: ChaosResult = {
      ledger,
      table: '',
      elapsedMs,
      deadlineExceeded: Date.now() > deadline,
      drained,
      stalledShards,
      faults: { ...f },
      personalize: { throttled: sum('throttled'), serverErrors: sum('failed'), rejected: sum('rejected'), accepted: sum('accepted') },
      poller: {
        invocations: pollerStats.invocations,
        bisections: pollerStats.bisections,
        retries: pollerStats.retries,
        batchesFailed: pollerStats.batchesFailed,
        batchesPartiallyFailed: pollerStats.batchesPartiallyFailed,
        recordsDiscarded: pollerStats.recordsDiscarded,
      },
      http: { requests: http.requests, duplicates: http.duplicates, clientRetries: http.clientRetries, gaveUp: http.gaveUp, statuses: http.statuses, unexpectedStatuses: http.unexpectedStatuses },
      piiInArchive: archive.piiHits,
      piiValues: inputs.piiValues.length,
    };
    const s = inputs.sourceMessages;
    result.table = formatLedger(ledger, {
      title: `Chaos ledger: seed ${options.seed}, ${options.events.toLocaleString('en-US')} messages through the front doors, ${options.shards} shards`,
      inputs: [
        ['source messages through the front doors', options.events],
        ['  tracker batches (/v1/batch, /v1/import)', s['tracker-batch']],
        ['  tracker single calls (/v1/track)', s.track],
        ['  Segment webhook (signed, one per request)', s['segment-webhook']],
        ['  mParticle webhook batches (events)', s.mparticle],
        ['  catalog feed (/v1/items)', s['items-feed']],
        ['  profile feed (/v1/users)', s['users-feed']],
        ['raw records straight onto the stream (misbehaving producer)', s['raw-producer']],
        ['ledger ids (canonical eventIds incl. identify traits and mParticle links, + raw records)', ledger.ids],
        ['HTTP requests answered (incl. duplicates)', http.requests],
        ['  duplicate deliveries (same request re-sent)', http.duplicates],
        ['  client retries after a 5xx or network error', http.clientRetries],
        ['  HTTP statuses', Object.entries(http.statuses).map(([k, v]) => `${k}: ${v}`).join(', ')],
      ],
      faults: [
        ['Personalize calls throttled (429)', result.personalize.throttled],
        ['Personalize calls failed (5xx)', result.personalize.serverErrors],
        ['Personalize calls refused as invalid (400, incl. isolation splits)', result.personalize.rejected],
        ['Personalize calls accepted', result.personalize.accepted],
        ['processor invocations', f.invocations],
        ['processor crashes (uncaught, mid-forward / before returning)', `${f.crashes} (${f.crashedMidForward} / ${f.crashedBeforeReturn})`],
        ['effects suppressed after a crash (calls a dead process would not make)', f.suppressedAfterCrash],
        ['DynamoDB calls failed (of all identity calls)', `${f.dynamoFaults} of ${f.dynamoCalls}`],
        ['S3 calls failed (of all archive puts)', `${f.s3Faults} of ${f.s3Calls}`],
        ['poller bisections / retries', `${result.poller.bisections} / ${result.poller.retries}`],
        ['batches failed / partially failed', `${result.poller.batchesFailed} / ${result.poller.batchesPartiallyFailed}`],
        ['poller warnings by message', [...pollerWarnings.entries()].map(([k, v]) => `${k}: ${v}`).join('; ') || '0'],
      ],
      checks: [
        ['stream drained, no shard stalled', drained && stalledShards.length === 0 ? 'yes' : `NO (${stalledShards.join(', ') || 'idle timed out'})`],
        ['records given up by the event source mapping (on-failure)', `${pollerStats.recordsDiscarded} (on-failure records in the DLQ: ${onFailureRecords})`],
        ['HTTP answers that were neither 2xx/4xx nor a retried 503', http.unexpectedStatuses],
        ['requests the client gave up on', http.gaveUp],
        ['PII values (trait e-mails) found in the archive', `${archive.piiHits} (of ${inputs.piiValues.length} sent)`],
        ['elapsed', `${(elapsedMs / 1000).toFixed(1)} s (deadline ${(options.deadlineMs / 1000).toFixed(0)} s${result.deadlineExceeded ? ', EXCEEDED' : ''})`],
      ],
    });
    return result;
  } finally {
    setProcessorDeps(undefined);
    await stack.stop();
  }
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

interface HttpOutcome {
  requests: number;
  duplicates: number;
  clientRetries: number;
  gaveUp: number;
  statuses: Record<string, number>;
  unexpectedStatuses: number;
  doorReasons: Map<string, string[]>;
  sends: Map<string, number>;
}

/** Raw records first (they are few), then every request with bounded concurrency and tracker-like retries. */
async function sendAll(stack: LocalStack, inputs: Inputs, options: ChaosOptions, deadline: number, progress: (line: string) => void): Promise<HttpOutcome> {
  const raw = [...inputs.raw];
  for (const source of inputs.kplSources) {
    const [aggregate] = await kplAggregate(source.records);
    if (!aggregate) throw new Error('KPL aggregation produced nothing');
    const cut = aggregate.data.subarray(0, Math.max(5, Math.floor(aggregate.data.length * source.cutAt)));
    raw.push({ partitionKey: aggregate.partitionKey, data: Buffer.from(cut), id: source.id });
    const entry = inputs.ledger.get(source.id);
    if (entry) entry.payloadKeys = payloadKeys(Buffer.from(cut));
  }
  if (raw.length > 0) {
    const put = await putRecords(kinesisClient(), raw, { streamName: stack.names.streamName });
    if (put.failed.length > 0) throw new Error(`raw records not stored: ${put.failed.length}`);
  }

  const outcome: HttpOutcome = { requests: 0, duplicates: 0, clientRetries: 0, gaveUp: 0, statuses: {}, unexpectedStatuses: 0, doorReasons: new Map(), sends: new Map() };
  const limit = pLimit(options.httpConcurrency);
  let done = 0;
  let lastReport = Date.now();
  await Promise.all(
    inputs.requests.map((request) =>
      limit(async () => {
        if (Date.now() > deadline) return;
        const answer = await sendWithRetries(stack.http.url, request, outcome, deadline);
        done++;
        if (Date.now() - lastReport > 10_000) {
          lastReport = Date.now();
          progress(`  ${done} / ${inputs.requests.length} requests answered`);
        }
        if (!answer) {
          outcome.gaveUp++;
          return;
        }
        record(request, answer, outcome);
      }),
    ),
  );
  return outcome;
}

async function sendWithRetries(url: string, request: OutgoingRequest, outcome: HttpOutcome, deadline: number): Promise<Answer | undefined> {
  for (let attempt = 0; attempt < 8 && Date.now() < deadline; attempt++) {
    if (attempt > 0) {
      outcome.clientRetries++;
      await sleep(Math.min(5_000, 200 * 2 ** attempt));
    }
    try {
      const res = await fetch(`${url}${request.path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...request.headers },
        body: request.body,
      });
      const text = await res.text();
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
      // Trackers retry a 5xx; the stable ids make the retry harmless.
      if (res.status >= 500) {
        outcome.statuses[String(res.status)] = (outcome.statuses[String(res.status)] ?? 0) + 1;
        if (res.status !== 503) outcome.unexpectedStatuses++;
        continue;
      }
      return { status: res.status, body };
    } catch {
      // connection refused or reset: retry
    }
  }
  return undefined;
}

function record(request: OutgoingRequest, answer: Answer, outcome: HttpOutcome): void {
  outcome.requests++;
  if (request.duplicateOf !== undefined) outcome.duplicates++;
  outcome.statuses[String(answer.status)] = (outcome.statuses[String(answer.status)] ?? 0) + 1;
  const ids = request.idsByIndex;
  for (const list of ids) for (const id of list) outcome.sends.set(id, (outcome.sends.get(id) ?? 0) + 1);
  const body = (typeof answer.body === 'object' && answer.body !== null ? answer.body : {}) as { rejected?: unknown; message?: unknown };
  const reject = (id: string, reason: string) => {
    const list = outcome.doorReasons.get(id);
    if (list) list.push(reason);
    else outcome.doorReasons.set(id, [reason]);
  };
  if (![200, 207, 400, 413].includes(answer.status)) outcome.unexpectedStatuses++;
  if (Array.isArray(body.rejected)) {
    for (const r of body.rejected as { index?: unknown; reason?: unknown }[]) {
      const index = typeof r.index === 'number' ? r.index : -2;
      const reason = typeof r.reason === 'string' ? r.reason : '';
      const targets = index === -1 ? ids.flat() : (ids[index] ?? []);
      for (const id of targets) reject(id, reason);
    }
  } else if (answer.status === 400 || answer.status === 413) {
    // The whole request refused (malformed JSON, too large): every message in it, with the request's reason.
    const reason = typeof body.message === 'string' ? body.message : '';
    for (const id of ids.flat()) reject(id, reason);
  }
}

/** Every archive line's eventId (copies counted), read with bounded concurrency; counts PII values found. */
async function readArchive(bucket: string, piiValues: readonly string[]): Promise<{ copies: Map<string, number>; piiHits: number }> {
  const s3 = s3Client();
  const keys: string[] = [];
  // ListObjects (v1) with markers: works even against an s3rver without the DES workaround in local/emulators.ts.
  let marker: string | undefined;
  for (;;) {
    const page = await s3.send(new ListObjectsCommand({ Bucket: bucket, Prefix: 'archive/', ...(marker !== undefined && { Marker: marker }) }));
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    const last = page.Contents?.at(-1)?.Key;
    if (!page.IsTruncated || last === undefined) break;
    marker = last;
  }
  const copies = new Map<string, number>();
  let piiHits = 0;
  const pii = new Set(piiValues);
  const limit = pLimit(8);
  await Promise.all(
    keys.map((key) =>
      limit(async () => {
        const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        const text = gunzipSync(Buffer.from(await got.Body!.transformToByteArray())).toString('utf8');
        for (const line of text.split('\n')) {
          if (line === '') continue;
          const record = JSON.parse(line) as { eventId: string };
          bump(copies, record.eventId);
          if (pii.size > 0 && /@example\.com/.test(line)) {
            for (const value of line.match(/[\w.+-]+@example\.com/g) ?? []) if (pii.has(value)) piiHits++;
          }
        }
      }),
    ),
  );
  return { copies, piiHits };
}

/** Receives and deletes everything in the queue. */
async function drainQueue(queueUrl: string): Promise<unknown[]> {
  const sqs = sqsClient();
  const bodies: unknown[] = [];
  for (;;) {
    const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, VisibilityTimeout: 300 }));
    const messages = out.Messages ?? [];
    if (messages.length === 0) return bodies;
    for (const m of messages) bodies.push(JSON.parse(m.Body ?? 'null'));
    await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })) }));
  }
}
