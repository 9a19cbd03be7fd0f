import { randomUUID } from 'node:crypto';
import { appendFile, mkdir } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import {
  OPERATIONS,
  VALIDATORS,
  formatValidationErrors,
  type Operation,
  type PutEventsBody,
  type PutItemsBody,
  type PutUsersBody,
  type WireEvent,
} from './personalize-validation.js';

/**
 * A local Amazon Personalize Events endpoint (no emulator exists elsewhere). The unmodified
 * `@aws-sdk/client-personalize-events` client talks to it through `endpoint` or
 * AWS_ENDPOINT_URL_PERSONALIZE_EVENTS: restJson1, `POST /events|/items|/users`, 200 with an empty
 * body on success (FACTS §1), errors named by the `x-amzn-errortype` header with a `{message}` body.
 * It enforces the API's limits (./personalize-validation.ts), the documented request-rate quotas,
 * injects faults on demand, and records every accepted call in memory and, optionally, as NDJSON.
 */

export type {
  Operation,
  PutEventsBody,
  PutItemsBody,
  PutUsersBody,
  WireEvent,
} from './personalize-validation.js';

/** Error codes as they appear in `x-amzn-errortype` (and so as the SDK exception's `name`). */
export const ERROR_TYPES = {
  invalidInput: 'InvalidInputException',
  /**
   * FACTS §2: the real throttling code and status are unconfirmed (none is modeled). 429 +
   * ThrottlingException is what the SDK's standard retry classifies as THROTTLING.
   */
  throttling: 'ThrottlingException',
  /** AWS's common 500 code; any 500 is TRANSIENT (retried) for the SDK's standard retry. */
  serverError: 'InternalFailure',
  serialization: 'SerializationException',
  tooLarge: 'RequestEntityTooLargeException',
  unknownOperation: 'UnknownOperationException',
  missingAuth: 'MissingAuthenticationTokenException',
} as const;

/** Hook for server-side rejections we cannot pre-check: return a reason to reject the event. */
export type RejectEventHook = (event: WireEvent, request: PutEventsBody, index: number) => string | undefined;

export interface LocalPersonalizeFaults {
  /** Share of operation calls answered 429 ThrottlingException (0..1). */
  throttleRate: number;
  /** Share of operation calls answered 500 InternalFailure (0..1). */
  serverErrorRate: number;
  /** Added before every operation response (not the /_local control endpoints). */
  latencyMs: number;
  rejectEvent?: RejectEventHook;
}

/** Requests per second per operation. */
export type RateLimits = Record<Operation, number>;

/** FACTS §3: PutEvents 1000/s, PutItems 10/s, PutUsers 10/s (2023 guide; current values unconfirmed). */
export const DEFAULT_RATES: Readonly<RateLimits> = { PutEvents: 1000, PutItems: 10, PutUsers: 10 };

export interface LocalPersonalizeOptions {
  /** Default 0: the OS picks. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Append-only NDJSON log of accepted calls, one `{operation, receivedAt, request}` per line. */
  recordFile?: string;
  faults?: Partial<LocalPersonalizeFaults>;
  /** Per-operation token buckets (burst = one second's worth); `false` disables rate limiting. */
  rates?: Partial<RateLimits> | false;
  /** Source of randomness for fault injection (default Math.random). */
  random?: () => number;
  /** Milliseconds clock for the rate limiter (default performance.now); tests freeze it. */
  now?: () => number;
  /** Larger bodies are answered 413 (default 6 MB). */
  maxBodyBytes?: number;
  /** Accepted calls kept in memory; the oldest are dropped beyond this (default 100,000). */
  maxRecordedCalls?: number;
}

export type ReceivedCall =
  | { operation: 'PutEvents'; receivedAt: string; request: PutEventsBody }
  | { operation: 'PutItems'; receivedAt: string; request: PutItemsBody }
  | { operation: 'PutUsers'; receivedAt: string; request: PutUsersBody };

/** One accepted event with its call's session, user and tracker. */
export type ReceivedEvent = WireEvent & {
  trackingId: string;
  sessionId: string;
  userId?: string;
  receivedAt: string;
};

export interface OperationStats {
  accepted: number;
  /** 4xx other than throttling: invalid input, bad JSON, too large, no SigV4. */
  rejected: number;
  /** 429: the rate limit or an injected throttle. */
  throttled: number;
  /** 5xx: injected server errors, a failing hook or record file. */
  failed: number;
}

export interface LocalPersonalize {
  url: string;
  port: number;
  /** AWS_ENDPOINT_URL_PERSONALIZE_EVENTS pointing at this server. */
  env: Record<string, string>;
  received(): ReceivedCall[];
  received<O extends Operation>(operation: O): Extract<ReceivedCall, { operation: O }>[];
  receivedEvents(): ReceivedEvent[];
  stats(): Record<Operation, OperationStats>;
  faults(): LocalPersonalizeFaults;
  /** Merges into the current faults; pass `rejectEvent: undefined` to remove the hook. */
  setFaults(faults: Partial<LocalPersonalizeFaults>): void;
  setRates(rates: Partial<RateLimits> | false): void;
  /** Forgets received calls, stats and rate-limit state; keeps faults and the record file. */
  reset(): void;
  close(): Promise<void>;
}

const ROUTES: Record<string, Operation> = { '/events': 'PutEvents', '/items': 'PutItems', '/users': 'PutUsers' };
const DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024;
/** Past this much discarded input the connection is cut instead of drained. */
const DRAIN_FACTOR = 4;

const numericFaultsSchema = z.strictObject({
  throttleRate: z.number().min(0).max(1),
  serverErrorRate: z.number().min(0).max(1),
  latencyMs: z.number().min(0).max(600_000),
});

const ratesSchema = z.strictObject({
  PutEvents: z.number().positive(),
  PutItems: z.number().positive(),
  PutUsers: z.number().positive(),
});

class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly capacity: number;

  constructor(
    private readonly perSecond: number,
    private readonly now: () => number,
  ) {
    this.capacity = Math.max(1, perSecond);
    this.tokens = this.capacity;
    this.last = now();
  }

  take(): boolean {
    const now = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

interface Outcome {
  status: number;
  /** Error code; absent on success. */
  type?: string;
  message?: string;
}

type BodyRead = { kind: 'ok'; bytes: Buffer } | { kind: 'too-large'; size: number };

function readBody(req: IncomingMessage, max: number): Promise<BodyRead> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= max) chunks.push(chunk);
      else if (size > max * DRAIN_FACTOR) req.destroy(new Error('request body far over the limit'));
      else chunks.length = 0;
    });
    req.on('end', () => resolve(size > max ? { kind: 'too-large', size } : { kind: 'ok', bytes: Buffer.concat(chunks, size) }));
    req.on('error', reject);
    // A client that hangs up mid-body must not leave the handler waiting forever.
    req.on('close', () => {
      if (!req.complete) reject(new Error('client closed the connection before the body ended'));
    });
  });
}

function sendJson(res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  const body = payload === undefined ? '' : JSON.stringify(payload);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    'x-amzn-requestid': randomUUID(),
    ...headers,
  });
  res.end(body);
}

function sendOutcome(res: ServerResponse, o: Outcome): void {
  if (o.type === undefined) {
    sendJson(res, o.status, undefined);
    return;
  }
  sendJson(res, o.status, { message: o.message ?? o.type }, { 'x-amzn-errortype': o.type });
}

function emptyStats(): Record<Operation, OperationStats> {
  const zero = (): OperationStats => ({ accepted: 0, rejected: 0, throttled: 0, failed: 0 });
  return { PutEvents: zero(), PutItems: zero(), PutUsers: zero() };
}

function checkFaults(partial: Partial<LocalPersonalizeFaults>): void {
  const { rejectEvent, ...numeric } = partial;
  const parsed = numericFaultsSchema.partial().safeParse(numeric);
  if (!parsed.success) throw new RangeError(`invalid faults: ${z.prettifyError(parsed.error)}`);
  if (rejectEvent !== undefined && typeof rejectEvent !== 'function') {
    throw new TypeError('invalid faults: rejectEvent must be a function');
  }
}

function buildBuckets(
  rates: Partial<RateLimits> | false | undefined,
  now: () => number,
): Map<Operation, TokenBucket> | undefined {
  if (rates === false) return undefined;
  const merged = { ...DEFAULT_RATES, ...rates };
  const parsed = ratesSchema.safeParse(merged);
  if (!parsed.success) throw new RangeError(`invalid rates: ${z.prettifyError(parsed.error)}`);
  return new Map(OPERATIONS.map((op) => [op, new TokenBucket(parsed.data[op], now)]));
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export async function startLocalPersonalize(options: LocalPersonalizeOptions = {}): Promise<LocalPersonalize> {
  const host = options.host ?? '127.0.0.1';
  const random = options.random ?? Math.random;
  const now = options.now ?? (() => performance.now());
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const maxRecorded = options.maxRecordedCalls ?? 100_000;
  const recordFile = options.recordFile;

  checkFaults(options.faults ?? {});
  let faults: LocalPersonalizeFaults = { throttleRate: 0, serverErrorRate: 0, latencyMs: 0, ...options.faults };
  let rateOption = options.rates;
  let buckets = buildBuckets(rateOption, now);
  let calls: ReceivedCall[] = [];
  let stats = emptyStats();
  // Appends are chained so the file keeps the order in which calls were accepted.
  let writeChain: Promise<void> = Promise.resolve();

  if (recordFile) await mkdir(dirname(recordFile), { recursive: true });

  async function record(call: ReceivedCall): Promise<void> {
    if (recordFile) {
      const line = `${JSON.stringify(call)}\n`;
      const write = writeChain.then(() => appendFile(recordFile, line, 'utf8'));
      writeChain = write.catch(() => undefined);
      await write;
    }
    calls.push(call);
    // Trim in chunks: shifting one at a time is O(n) per call on large arrays.
    if (calls.length > maxRecorded * 1.1) calls = calls.slice(calls.length - maxRecorded);
  }

  function count(op: Operation, o: Outcome): void {
    const s = stats[op];
    if (o.status === 200) s.accepted++;
    else if (o.status === 429) s.throttled++;
    else if (o.status >= 500) s.failed++;
    else s.rejected++;
  }

  async function decide(op: Operation, req: IncomingMessage, read: BodyRead): Promise<Outcome> {
    const auth = req.headers.authorization;
    if (typeof auth !== 'string' || !auth.startsWith('AWS4-HMAC-SHA256')) {
      // The real service requires SigV4; the signature itself is not verified here.
      return { status: 403, type: ERROR_TYPES.missingAuth, message: 'Missing Authentication Token' };
    }
    if (read.kind === 'too-large') {
      return { status: 413, type: ERROR_TYPES.tooLarge, message: `request body of ${read.size} bytes exceeds ${maxBodyBytes}` };
    }
    if (buckets && !buckets.get(op)?.take()) {
      return { status: 429, type: ERROR_TYPES.throttling, message: 'Rate exceeded' };
    }
    if (faults.throttleRate > 0 && random() < faults.throttleRate) {
      return { status: 429, type: ERROR_TYPES.throttling, message: 'Rate exceeded' };
    }
    if (faults.serverErrorRate > 0 && random() < faults.serverErrorRate) {
      return { status: 500, type: ERROR_TYPES.serverError, message: 'Internal failure (injected)' };
    }

    let body: unknown;
    const text = read.bytes.toString('utf8');
    try {
      // restJson1: an empty body is a request with no members.
      body = text.trim() === '' ? {} : JSON.parse(text);
    } catch (err) {
      return { status: 400, type: ERROR_TYPES.serialization, message: `request body is not valid JSON: ${errorMessage(err)}` };
    }

    const errors = VALIDATORS[op](body);
    if (errors.length > 0) {
      return { status: 400, type: ERROR_TYPES.invalidInput, message: formatValidationErrors(errors) };
    }

    const receivedAt = new Date().toISOString();
    let call: ReceivedCall;
    if (op === 'PutEvents') {
      const request = body as PutEventsBody; // shape proven by validatePutEvents
      const hook = faults.rejectEvent;
      if (hook) {
        const rejected: { path: string; reason: string }[] = [];
        try {
          request.eventList.forEach((event, i) => {
            const reason = hook(event, request, i);
            if (reason !== undefined) rejected.push({ path: `eventList.${i}`, reason });
          });
        } catch (err) {
          return { status: 500, type: ERROR_TYPES.serverError, message: `rejectEvent hook failed: ${errorMessage(err)}` };
        }
        if (rejected.length > 0) {
          return { status: 400, type: ERROR_TYPES.invalidInput, message: formatValidationErrors(rejected) };
        }
      }
      call = { operation: op, receivedAt, request };
    } else if (op === 'PutItems') {
      call = { operation: op, receivedAt, request: body as PutItemsBody };
    } else {
      call = { operation: op, receivedAt, request: body as PutUsersBody };
    }

    try {
      await record(call);
    } catch (err) {
      return { status: 500, type: ERROR_TYPES.serverError, message: `could not record the call: ${errorMessage(err)}` };
    }
    return { status: 200 };
  }

  function received(operation?: Operation): ReceivedCall[] {
    return operation ? calls.filter((c) => c.operation === operation) : [...calls];
  }

  function receivedEvents(): ReceivedEvent[] {
    const out: ReceivedEvent[] = [];
    for (const call of calls) {
      if (call.operation !== 'PutEvents') continue;
      const { trackingId, sessionId, userId, eventList } = call.request;
      for (const event of eventList) {
        out.push({ ...event, trackingId, sessionId, ...(userId === undefined ? {} : { userId }), receivedAt: call.receivedAt });
      }
    }
    return out;
  }

  function setFaults(partial: Partial<LocalPersonalizeFaults>): void {
    checkFaults(partial);
    faults = { ...faults, ...partial };
  }

  function numericFaults(): Omit<LocalPersonalizeFaults, 'rejectEvent'> {
    return { throttleRate: faults.throttleRate, serverErrorRate: faults.serverErrorRate, latencyMs: faults.latencyMs };
  }

  function reset(): void {
    calls = [];
    stats = emptyStats();
    buckets = buildBuckets(rateOption, now);
  }

  function control(req: IncomingMessage, res: ServerResponse, url: URL, read: BodyRead): void {
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case 'GET /_local/received': {
        const op = url.searchParams.get('operation');
        if (op !== null && !OPERATIONS.includes(op as Operation)) {
          sendJson(res, 400, { message: `operation must be one of ${OPERATIONS.join(', ')}` });
          return;
        }
        sendJson(res, 200, received((op ?? undefined) as Operation | undefined));
        return;
      }
      case 'GET /_local/events':
        sendJson(res, 200, receivedEvents());
        return;
      case 'GET /_local/stats':
        sendJson(res, 200, stats);
        return;
      case 'GET /_local/faults':
        sendJson(res, 200, numericFaults());
        return;
      case 'POST /_local/faults': {
        if (read.kind === 'too-large') {
          sendJson(res, 413, { message: 'body too large' });
          return;
        }
        let body: unknown;
        try {
          body = JSON.parse(read.bytes.toString('utf8'));
        } catch (err) {
          sendJson(res, 400, { message: `body is not valid JSON: ${errorMessage(err)}` });
          return;
        }
        // Replaces every numeric fault: omitted ones go back to 0. The hook is kept.
        const parsed = numericFaultsSchema.partial().safeParse(body);
        if (!parsed.success) {
          sendJson(res, 400, { message: z.prettifyError(parsed.error) });
          return;
        }
        faults = { ...faults, throttleRate: 0, serverErrorRate: 0, latencyMs: 0, ...parsed.data };
        sendJson(res, 200, numericFaults());
        return;
      }
      case 'POST /_local/reset':
        reset();
        sendJson(res, 200, {});
        return;
      default:
        sendJson(res, 404, { message: `no such control endpoint: ${route}` });
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://local');
    // Read (or drain) every body first so keep-alive connections stay usable.
    const read = await readBody(req, maxBodyBytes);
    if (url.pathname.startsWith('/_local/')) {
      control(req, res, url, read);
      return;
    }
    const op = ROUTES[url.pathname];
    if (op === undefined || req.method !== 'POST') {
      sendOutcome(res, {
        status: 404,
        type: ERROR_TYPES.unknownOperation,
        message: `no operation at ${req.method} ${url.pathname} (served: POST /events, /items, /users)`,
      });
      return;
    }
    const outcome = await decide(op, req, read);
    count(op, outcome);
    if (faults.latencyMs > 0) await sleep(faults.latencyMs);
    sendOutcome(res, outcome);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // Nothing a request does may take the server down.
      if (!res.headersSent && !res.destroyed) {
        sendOutcome(res, { status: 500, type: ERROR_TYPES.serverError, message: errorMessage(err) });
      } else {
        res.destroy();
      }
    });
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  return {
    url,
    port,
    env: { AWS_ENDPOINT_URL_PERSONALIZE_EVENTS: url },
    received,
    receivedEvents,
    stats: () => structuredClone(stats),
    faults: () => ({ ...faults }),
    setFaults,
    setRates(rates) {
      const next = buildBuckets(rates, now);
      rateOption = rates;
      buckets = next;
    },
    reset,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await writeChain;
    },
  };
}
