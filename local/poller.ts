import { randomBytes, randomUUID } from 'node:crypto';
import {
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  ListShardsCommand,
  type GetShardIteratorCommandInput,
  type KinesisClient,
  type Shard,
  type _Record,
} from '@aws-sdk/client-kinesis';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Context, KinesisStreamBatchResponse, KinesisStreamEvent, KinesisStreamRecord } from 'aws-lambda';
import type { KinesisOnFailureRecord, OnFailureCondition } from '../shared/kinesis-on-failure.js';

// Lambda's on-failure record, which the emulated poller writes like the real event source mapping.
export { isKinesisOnFailureRecord, type KinesisOnFailureRecord, type OnFailureCondition } from '../shared/kinesis-on-failure.js';

/**
 * A local stand-in for the Lambda Kinesis event source mapping (ESM), so the one-machine stack runs
 * the real processor handler the way AWS does: batching window, partial batch responses, bisection,
 * bounded retries, record age limit and an SQS on-failure destination (FACTS §5a–5c).
 *
 * Not reproduced: ParallelizationFactor > 1, tumbling windows, AT_TIMESTAMP, enhanced fan-out,
 * function timeouts (the handler is never cut off) and checkpoints surviving a restart.
 */

export type PollerHandler = (
  event: KinesisStreamEvent,
  context: Context,
) => Promise<KinesisStreamBatchResponse | void | undefined>;

export interface OnFailureDestination {
  sqs: SQSClient;
  queueUrl: string;
}

export interface PollerOptions {
  kinesis: KinesisClient;
  /** Kinesis emulators want the stream addressed by name. */
  streamName: string;
  /** Defaults to the ARN DescribeStreamSummary reports. */
  streamArn?: string;
  region?: string;
  handler: PollerHandler;
  /** Records per invocation, 1–10,000 (default 100). */
  batchSize?: number;
  /** How long to gather a partial batch before invoking (default 500 ms). */
  maxBatchingWindowMs?: number;
  /** Pause between reads at the tip of a shard (default 1000 ms, like Lambda). */
  pollIntervalMs?: number;
  startingPosition?: 'TRIM_HORIZON' | 'LATEST';
  bisectBatchOnFunctionError?: boolean;
  /** Retries of a failing batch before it goes to on-failure; -1 retries forever (default 3). */
  maxRetryAttempts?: number;
  /** Records older than this go to on-failure instead of the handler; -1 for no limit (default). */
  maxRecordAgeSeconds?: number;
  reportBatchItemFailures?: boolean;
  onFailure?: OnFailureDestination;
  functionName?: string;
  /** Only what context.getRemainingTimeInMillis() counts down from (default 60 s). */
  functionTimeoutMs?: number;
  /** First pause after a failure, doubled per retry (default 100 ms). */
  retryBaseDelayMs?: number;
  /** Cap on that pause (default 2000 ms). */
  retryMaxDelayMs?: number;
  /** How often to look for new shards after a reshard; 0 looks only at start (default 10 s). */
  shardDiscoveryIntervalMs?: number;
  logger?: (line: object) => void;
}

export interface ShardStats {
  shardId: string;
  /** Highest sequence number that is done with (delivered or sent to on-failure). */
  checkpoint: string | undefined;
  /** Highest sequence number read from the shard. */
  lastReadSequenceNumber: string | undefined;
  /** As GetRecords last reported it. */
  millisBehindLatest: number;
  /** Age of the newest record of the last invoked batch when it was invoked (Lambda's IteratorAge). */
  iteratorAgeMs: number;
  /** Records read but not yet done with. */
  pendingRecords: number;
  /** The shard was closed by a reshard and every record in it is done with. */
  finished: boolean;
}

export interface PollerStats {
  invocations: number;
  /** Records passed to the handler, re-deliveries included. */
  recordsDelivered: number;
  batchesSucceeded: number;
  batchesPartiallyFailed: number;
  /** Invocations that threw or answered with an invalid partial batch response. */
  batchesFailed: number;
  retries: number;
  bisections: number;
  /** On-failure records written to the destination. */
  onFailureRecordsSent: number;
  /** Kinesis records given up on (with or without a destination). */
  recordsDiscarded: number;
  /** Failed Kinesis or SQS calls (logged and retried). */
  errors: number;
  shards: ShardStats[];
}

export interface Poller {
  /** Ends every loop, aborting reads and waiting for an invocation in flight. */
  stop(): Promise<void>;
  stats(): PollerStats;
  /**
   * Resolves once every shard has been read up to its tip by a read that began after this call,
   * with nothing in flight and nothing awaiting retry. Rejects after timeoutMs (default 30 s).
   */
  idle(timeoutMs?: number): Promise<void>;
}

/** FACTS §5a: Lambda invokes once the payload reaches the 6 MB synchronous invocation limit. */
const MAX_PAYLOAD_BYTES = 6 * 1024 * 1024;
/** JSON around each record's data in the event (keys, ids, ARNs); an estimate is enough. */
const RECORD_OVERHEAD_BYTES = 400;

export async function startPoller(options: PollerOptions): Promise<Poller> {
  const poller = new StreamPoller(options);
  await poller.start();
  return poller;
}

// ---------------------------------------------------------------------------------------------

type Outcome =
  | { kind: 'success' }
  /** Records before `index` succeeded; retry from it (FACTS §5b). */
  | { kind: 'partial'; index: number }
  | { kind: 'failure'; functionError: string | undefined; thrown: boolean };

/** A batch, or part of one, still to be delivered. */
interface Attempt {
  records: _Record[];
  /** Retry attempts used; bisection does not use any (FACTS §5a). */
  retries: number;
  invokeCount: number;
  lastRequestId: string | undefined;
  lastFunctionError: string | undefined;
}

interface Settings {
  batchSize: number;
  maxBatchingWindowMs: number;
  pollIntervalMs: number;
  startingPosition: 'TRIM_HORIZON' | 'LATEST';
  bisect: boolean;
  maxRetryAttempts: number;
  maxRecordAgeMs: number;
  reportBatchItemFailures: boolean;
  functionName: string;
  functionTimeoutMs: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  shardDiscoveryIntervalMs: number;
}

function settingsFrom(o: PollerOptions): Settings {
  const s: Settings = {
    batchSize: o.batchSize ?? 100,
    maxBatchingWindowMs: o.maxBatchingWindowMs ?? 500,
    pollIntervalMs: o.pollIntervalMs ?? 1000,
    startingPosition: o.startingPosition ?? 'TRIM_HORIZON',
    bisect: o.bisectBatchOnFunctionError ?? true,
    maxRetryAttempts: o.maxRetryAttempts ?? 3,
    maxRecordAgeMs: (o.maxRecordAgeSeconds ?? -1) < 0 ? -1 : (o.maxRecordAgeSeconds ?? 0) * 1000,
    reportBatchItemFailures: o.reportBatchItemFailures ?? true,
    functionName: o.functionName ?? 'process',
    functionTimeoutMs: o.functionTimeoutMs ?? 60_000,
    retryBaseDelayMs: o.retryBaseDelayMs ?? 100,
    retryMaxDelayMs: o.retryMaxDelayMs ?? 2000,
    shardDiscoveryIntervalMs: o.shardDiscoveryIntervalMs ?? 10_000,
  };
  // FACTS §5a ranges; the age limit may go below Lambda's minimum so tests stay fast.
  if (!Number.isInteger(s.batchSize) || s.batchSize < 1 || s.batchSize > 10_000) {
    throw new RangeError(`batchSize must be an integer from 1 to 10000, got ${s.batchSize}`);
  }
  if (!Number.isInteger(s.maxRetryAttempts) || s.maxRetryAttempts < -1 || s.maxRetryAttempts > 10_000) {
    throw new RangeError(`maxRetryAttempts must be an integer from -1 to 10000, got ${s.maxRetryAttempts}`);
  }
  for (const key of ['maxBatchingWindowMs', 'pollIntervalMs', 'retryBaseDelayMs', 'retryMaxDelayMs'] as const) {
    if (!(s[key] >= 0)) throw new RangeError(`${key} must be >= 0, got ${s[key]}`);
  }
  return s;
}

function errorInfo(error: unknown): { errorType: string; errorMessage: string } {
  if (error instanceof Error) return { errorType: error.name, errorMessage: error.message };
  return { errorType: typeof error, errorMessage: String(error) };
}

function toBigInt(value: string): bigint | undefined {
  if (!/^\d+$/.test(value)) return undefined;
  return BigInt(value);
}

function arrivalMs(record: _Record): number {
  return record.ApproximateArrivalTimestamp?.getTime() ?? Date.now();
}

function recordBytes(record: _Record): number {
  const data = record.Data?.byteLength ?? 0;
  return Math.ceil(data / 3) * 4 + (record.PartitionKey?.length ?? 0) + RECORD_OVERHEAD_BYTES;
}

class StreamPoller implements Poller {
  readonly settings: Settings;
  readonly kinesis: KinesisClient;
  readonly streamName: string;
  readonly handler: PollerHandler;
  readonly onFailure: OnFailureDestination | undefined;
  readonly log: (level: 'info' | 'warn' | 'error', msg: string, fields?: object) => void;
  streamArn = '';
  region = '';
  functionArn = '';
  invokeIdentityArn = '';
  readonly logStreamName: string;

  stopping = false;
  private readonly abort = new AbortController();
  readonly signal = this.abort.signal;
  private readonly workers = new Map<string, ShardWorker>();
  private shardsListed = false;
  private discoveryLoop: Promise<void> | undefined;
  private stopPromise: Promise<void> | undefined;
  private readonly idleWaiters = new Set<{ check(): void; fail(error: Error): void }>();
  /** Numbers every GetRecords call, so idle() can tell reads that began after it was called. */
  readCounter = 0;
  readonly counters = {
    invocations: 0,
    recordsDelivered: 0,
    batchesSucceeded: 0,
    batchesPartiallyFailed: 0,
    batchesFailed: 0,
    retries: 0,
    bisections: 0,
    onFailureRecordsSent: 0,
    recordsDiscarded: 0,
    errors: 0,
  };

  constructor(options: PollerOptions) {
    this.settings = settingsFrom(options);
    this.kinesis = options.kinesis;
    this.streamName = options.streamName;
    this.handler = options.handler;
    this.onFailure = options.onFailure;
    const sink = options.logger ?? ((line: object) => console.log(JSON.stringify(line)));
    this.log = (level, msg, fields) => {
      try {
        sink({ time: new Date().toISOString(), level, component: 'poller', stream: this.streamName, msg, ...fields });
      } catch {
        // A broken logger must not stop the shard loops.
      }
    };
    if (options.streamArn) this.streamArn = options.streamArn;
    if (options.region) this.region = options.region;
    const day = new Date().toISOString().slice(0, 10).replaceAll('-', '/');
    this.logStreamName = `${day}/[$LATEST]${randomBytes(16).toString('hex')}`;
  }

  async start(): Promise<void> {
    await this.resolveIdentity();
    try {
      await this.discover();
    } catch (error) {
      this.counters.errors++;
      this.log('error', 'listing shards failed; will retry', errorInfo(error));
    }
    this.discoveryLoop = this.runDiscovery();
  }

  private async resolveIdentity(): Promise<void> {
    if (!this.streamArn) {
      try {
        const out = await this.kinesis.send(new DescribeStreamSummaryCommand({ StreamName: this.streamName }), {
          abortSignal: this.signal,
        });
        this.streamArn = out.StreamDescriptionSummary?.StreamARN ?? '';
      } catch (error) {
        this.log('warn', 'could not describe stream; using a made-up ARN', errorInfo(error));
      }
    }
    const arnParts = this.streamArn.split(':');
    if (!this.region) {
      let clientRegion: string | undefined;
      try {
        clientRegion = await this.kinesis.config.region();
      } catch {
        clientRegion = undefined;
      }
      this.region = arnParts[3] || clientRegion || process.env.AWS_REGION || 'us-east-1';
    }
    const account = arnParts[4] || '000000000000';
    if (!this.streamArn) this.streamArn = `arn:aws:kinesis:${this.region}:${account}:stream/${this.streamName}`;
    this.functionArn = `arn:aws:lambda:${this.region}:${account}:function:${this.settings.functionName}`;
    this.invokeIdentityArn = `arn:aws:iam::${account}:role/${this.settings.functionName}-role`;
  }

  private async listShards(): Promise<Shard[]> {
    const shards: Shard[] = [];
    let nextToken: string | undefined;
    do {
      const out = await this.kinesis.send(
        new ListShardsCommand(nextToken ? { NextToken: nextToken } : { StreamName: this.streamName }),
        { abortSignal: this.signal },
      );
      shards.push(...(out.Shards ?? []));
      nextToken = out.NextToken;
    } while (nextToken);
    return shards;
  }

  /** Starts a loop for every shard not seen yet; a child shard waits for its parents (in-order per key). */
  private async discover(): Promise<void> {
    const shards = await this.listShards();
    if (this.stopping) return;
    const initial = !this.shardsListed;
    const fresh: { worker: ShardWorker; shard: Shard }[] = [];
    for (const shard of shards) {
      if (!shard.ShardId || this.workers.has(shard.ShardId)) continue;
      // Shards born after start are read from the beginning, or their first records would be skipped.
      const position = initial ? this.settings.startingPosition : 'TRIM_HORIZON';
      const worker = new ShardWorker(this, shard.ShardId, position);
      this.workers.set(shard.ShardId, worker);
      fresh.push({ worker, shard });
    }
    for (const { worker, shard } of fresh) {
      for (const parentId of [shard.ParentShardId, shard.AdjacentParentShardId]) {
        const parent = parentId ? this.workers.get(parentId) : undefined;
        if (parent) worker.parents.push(parent);
      }
    }
    this.shardsListed = true;
    // LATEST means "from now": take the iterators before startPoller resolves.
    if (initial) await Promise.all(fresh.map(({ worker }) => worker.prepare()));
    for (const { worker } of fresh) {
      this.log('info', 'polling shard', { shardId: worker.shardId, position: worker.initialPosition });
      worker.start();
    }
    this.notify();
  }

  private async runDiscovery(): Promise<void> {
    let delay = this.settings.retryBaseDelayMs;
    while (!this.stopping) {
      if (this.shardsListed && this.settings.shardDiscoveryIntervalMs <= 0) return;
      await this.sleep(this.shardsListed ? this.settings.shardDiscoveryIntervalMs : delay);
      if (this.stopping) return;
      try {
        await this.discover();
        delay = this.settings.retryBaseDelayMs;
      } catch (error) {
        if (this.stopping) return;
        this.counters.errors++;
        this.log('error', 'listing shards failed; will retry', errorInfo(error));
        delay = this.nextDelay(delay);
      }
    }
  }

  nextDelay(delay: number): number {
    return Math.min(Math.max(delay * 2, 1), this.settings.retryMaxDelayMs);
  }

  /** Resolves early (never rejects) when the poller stops, and leaves no timer behind. */
  sleep(ms: number): Promise<void> {
    if (this.stopping || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.signal.addEventListener('abort', done, { once: true });
    });
  }

  notify(): void {
    for (const waiter of [...this.idleWaiters]) waiter.check();
  }

  stop(): Promise<void> {
    this.stopPromise ??= (async () => {
      this.stopping = true;
      this.abort.abort();
      await Promise.allSettled([this.discoveryLoop, ...[...this.workers.values()].map((w) => w.done)]);
      for (const waiter of [...this.idleWaiters]) waiter.fail(new Error('poller stopped'));
      this.log('info', 'stopped');
    })();
    return this.stopPromise;
  }

  private isIdleSince(mark: number): boolean {
    if (!this.shardsListed) return false;
    for (const worker of this.workers.values()) {
      if (!worker.idleSince(mark)) return false;
    }
    return true;
  }

  idle(timeoutMs = 30_000): Promise<void> {
    if (this.stopping) return Promise.reject(new Error('poller stopped'));
    const mark = this.readCounter;
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        check: () => {
          if (!this.isIdleSince(mark)) return;
          cleanup();
          resolve();
        },
        fail: (error: Error) => {
          cleanup();
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        const busy = [...this.workers.values()].filter((w) => !w.idleSince(mark)).map((w) => w.shardId);
        waiter.fail(new Error(`poller not idle after ${timeoutMs} ms (shards still busy: ${busy.join(', ') || 'none listed'})`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.idleWaiters.delete(waiter);
      };
      this.idleWaiters.add(waiter);
      waiter.check();
    });
  }

  stats(): PollerStats {
    return { ...this.counters, shards: [...this.workers.values()].map((w) => w.stats()) };
  }

  buildContext(requestId: string): Context {
    const deadline = Date.now() + this.settings.functionTimeoutMs;
    return {
      callbackWaitsForEmptyEventLoop: true,
      functionName: this.settings.functionName,
      functionVersion: '$LATEST',
      invokedFunctionArn: this.functionArn,
      memoryLimitInMB: '1024',
      awsRequestId: requestId,
      logGroupName: `/aws/lambda/${this.settings.functionName}`,
      logStreamName: this.logStreamName,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      done: () => undefined,
      fail: () => undefined,
      succeed: () => undefined,
    };
  }
}

class ShardWorker {
  readonly parents: ShardWorker[] = [];
  /** Settles when the loop ends; exists before start() so children started first still wait. */
  readonly done: Promise<void>;
  private markDone: () => void = () => undefined;
  private iterator: string | undefined;
  /** Kinesis returned no next iterator: the shard is closed and read to its end. */
  private ended = false;
  private finished = false;
  private processing = false;
  private buffer: _Record[] = [];
  private windowStartedAt: number | undefined;
  private lastReadSeq: string | undefined;
  private checkpoint: string | undefined;
  private millisBehindLatest = 0;
  private iteratorAgeMs = 0;
  private inFlight = 0;
  /** Number of the last read that found the shard drained at its tip while nothing was pending. */
  private tipReadId = 0;
  private errorDelay = 0;

  constructor(
    private readonly p: StreamPoller,
    readonly shardId: string,
    readonly initialPosition: 'TRIM_HORIZON' | 'LATEST',
  ) {
    this.done = new Promise((resolve) => {
      this.markDone = resolve;
    });
  }

  private get s(): Settings {
    return this.p.settings;
  }

  private log(level: 'info' | 'warn' | 'error', msg: string, fields?: object): void {
    this.p.log(level, msg, { shardId: this.shardId, ...fields });
  }

  /** Takes the first iterator now; a failure is logged and retried by the loop. */
  async prepare(): Promise<void> {
    try {
      await this.acquireIterator();
    } catch (error) {
      this.p.counters.errors++;
      this.log('error', 'GetShardIterator failed; will retry', errorInfo(error));
    }
  }

  start(): void {
    this.run().then(this.markDone, (error: unknown) => {
      this.log('error', 'shard loop crashed', errorInfo(error));
      this.markDone();
    });
  }

  idleSince(mark: number): boolean {
    if (this.finished) return true;
    return this.tipReadId > mark && !this.processing && this.buffer.length === 0;
  }

  stats(): ShardStats {
    return {
      shardId: this.shardId,
      checkpoint: this.checkpoint,
      lastReadSequenceNumber: this.lastReadSeq,
      millisBehindLatest: this.millisBehindLatest,
      iteratorAgeMs: this.iteratorAgeMs,
      pendingRecords: this.buffer.length + this.inFlight,
      finished: this.finished,
    };
  }

  private async run(): Promise<void> {
    // A child shard's records follow its parents' (FACTS §5c ordering).
    for (const parent of this.parents) await parent.done;
    while (!this.p.stopping) {
      try {
        await this.fill();
        if (this.p.stopping) break;
        if (this.buffer.length === 0) {
          if (this.ended) {
            this.finished = true;
            this.log('info', 'shard closed and fully processed');
            this.p.notify();
            break;
          }
          await this.p.sleep(this.s.pollIntervalMs);
          continue;
        }
        this.errorDelay = 0;
        await this.processBatch(this.takeBatch());
      } catch (error) {
        if (this.p.stopping) break;
        if ((error as Error).name === 'ExpiredIteratorException') {
          this.log('warn', 'shard iterator expired; taking a new one after the last record read');
          this.iterator = undefined;
          continue;
        }
        this.p.counters.errors++;
        this.errorDelay = this.errorDelay === 0 ? this.s.retryBaseDelayMs : this.p.nextDelay(this.errorDelay);
        this.log('error', 'Kinesis call failed; backing off', { ...errorInfo(error), delayMs: this.errorDelay });
        await this.p.sleep(this.errorDelay);
      }
    }
  }

  private async acquireIterator(): Promise<void> {
    // Everything up to the last record read is in memory and will be finished, so resume after it.
    const position: Pick<GetShardIteratorCommandInput, 'ShardIteratorType' | 'StartingSequenceNumber'> = this
      .lastReadSeq
      ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: this.lastReadSeq }
      : { ShardIteratorType: this.initialPosition };
    const out = await this.p.kinesis.send(
      new GetShardIteratorCommand({ StreamName: this.p.streamName, ShardId: this.shardId, ...position }),
      { abortSignal: this.p.signal },
    );
    this.iterator = out.ShardIterator;
    if (!this.iterator) this.ended = true;
  }

  /** One GetRecords call; the records go to the buffer. */
  private async read(limit: number): Promise<{ count: number; readId: number; atTip: boolean }> {
    if (!this.iterator) await this.acquireIterator();
    if (!this.iterator) return { count: 0, readId: ++this.p.readCounter, atTip: true };
    const readId = ++this.p.readCounter;
    const out = await this.p.kinesis.send(new GetRecordsCommand({ ShardIterator: this.iterator, Limit: limit }), {
      abortSignal: this.p.signal,
    });
    this.iterator = out.NextShardIterator ?? undefined;
    if (!this.iterator) this.ended = true;
    this.millisBehindLatest = out.MillisBehindLatest ?? 0;
    const records = out.Records ?? [];
    for (const record of records) {
      this.buffer.push(record);
      this.lastReadSeq = record.SequenceNumber;
    }
    if (records.length > 0 && this.windowStartedAt === undefined) this.windowStartedAt = Date.now();
    return { count: records.length, readId, atTip: records.length < limit && this.millisBehindLatest === 0 };
  }

  private bufferBytes(): number {
    let total = 0;
    for (const record of this.buffer) total += recordBytes(record);
    return total;
  }

  /**
   * Reads until a batch is full (count or 6 MB), the batching window since the first buffered
   * record has passed, or the shard is drained with nothing buffered (FACTS §5a).
   */
  private async fill(): Promise<void> {
    while (!this.p.stopping) {
      if (this.buffer.length >= this.s.batchSize || this.ended) return;
      if (this.bufferBytes() >= MAX_PAYLOAD_BYTES) return;
      if (this.windowStartedAt !== undefined && Date.now() - this.windowStartedAt >= this.s.maxBatchingWindowMs) return;
      const read = await this.read(this.s.batchSize - this.buffer.length);
      if (this.buffer.length === 0) {
        // An empty read while behind the tip just means "keep reading".
        if (!read.atTip && !this.ended) continue;
        this.tipReadId = read.readId;
        this.p.notify();
        return;
      }
      if (read.atTip && this.windowStartedAt !== undefined) {
        const remaining = this.s.maxBatchingWindowMs - (Date.now() - this.windowStartedAt);
        if (remaining <= 0) return;
        await this.p.sleep(Math.min(this.s.pollIntervalMs, remaining));
      }
    }
  }

  private takeBatch(): _Record[] {
    let count = 0;
    let bytes = 0;
    while (count < this.buffer.length && count < this.s.batchSize) {
      const size = recordBytes(this.buffer[count]!);
      if (count > 0 && bytes + size > MAX_PAYLOAD_BYTES) break;
      bytes += size;
      count++;
    }
    const batch = this.buffer.splice(0, count);
    this.windowStartedAt = this.buffer.length > 0 ? Date.now() : undefined;
    return batch;
  }

  private advance(sequenceNumber: string | undefined): void {
    // Sequence numbers are up to 128-bit decimals: compare as BigInt.
    const next = toBigInt(sequenceNumber ?? '');
    if (next === undefined) return;
    const current = toBigInt(this.checkpoint ?? '');
    if (current === undefined || next > current) {
      this.checkpoint = sequenceNumber;
    }
  }

  /** Delivers one batch: every record ends delivered or sent to on-failure, unless the poller stops. */
  private async processBatch(batch: _Record[]): Promise<void> {
    this.processing = true;
    this.inFlight = batch.length;
    try {
      const queue: Attempt[] = [
        { records: batch, retries: 0, invokeCount: 0, lastRequestId: undefined, lastFunctionError: undefined },
      ];
      while (queue.length > 0 && !this.p.stopping) {
        const attempt = queue[0]!;
        if (this.s.maxRecordAgeMs >= 0) {
          const cutoff = Date.now() - this.s.maxRecordAgeMs;
          let expired = 0;
          while (expired < attempt.records.length && arrivalMs(attempt.records[expired]!) < cutoff) expired++;
          if (expired > 0) {
            if (!(await this.discard(attempt, attempt.records.slice(0, expired), 'RecordAgeExceeded'))) return;
            attempt.records = attempt.records.slice(expired);
            this.inFlight -= expired;
            if (attempt.records.length === 0) {
              queue.shift();
              continue;
            }
          }
        }

        const outcome = await this.invoke(attempt);
        if (outcome.kind === 'success') {
          this.advance(attempt.records.at(-1)?.SequenceNumber);
          this.inFlight -= attempt.records.length;
          queue.shift();
          continue;
        }
        if (outcome.kind === 'partial') {
          // FACTS §5b: checkpoint just before the lowest failed record; only the tail is retried.
          if (outcome.index > 0) {
            this.advance(attempt.records[outcome.index - 1]?.SequenceNumber);
            this.inFlight -= outcome.index;
            attempt.records = attempt.records.slice(outcome.index);
          }
        } else if (outcome.thrown && this.s.bisect && attempt.records.length > 1) {
          // FACTS §5a: halves are tried in order, and splitting uses no retry attempt.
          const middle = Math.ceil(attempt.records.length / 2);
          const half = (records: _Record[]): Attempt => ({ ...attempt, records });
          queue.splice(0, 1, half(attempt.records.slice(0, middle)), half(attempt.records.slice(middle)));
          this.p.counters.bisections++;
          this.log('warn', 'function error; bisecting batch', { batchSize: attempt.records.length, into: middle });
          continue;
        }

        attempt.retries++;
        const max = this.s.maxRetryAttempts;
        if (max >= 0 && attempt.retries > max) {
          if (!(await this.discard(attempt, attempt.records, 'RetryAttemptsExhausted'))) return;
          this.inFlight -= attempt.records.length;
          queue.shift();
          continue;
        }
        this.p.counters.retries++;
        const delay = Math.min(this.s.retryBaseDelayMs * 2 ** (attempt.retries - 1), this.s.retryMaxDelayMs);
        await this.p.sleep(delay);
      }
    } finally {
      this.processing = false;
      this.inFlight = 0;
    }
  }

  private buildEvent(records: _Record[]): KinesisStreamEvent {
    return {
      Records: records.map(
        (record): KinesisStreamRecord => ({
          kinesis: {
            kinesisSchemaVersion: '1.0',
            partitionKey: record.PartitionKey ?? '',
            sequenceNumber: record.SequenceNumber ?? '',
            data: Buffer.from(record.Data ?? new Uint8Array()).toString('base64'),
            approximateArrivalTimestamp: arrivalMs(record) / 1000,
          },
          eventSource: 'aws:kinesis',
          eventVersion: '1.0',
          eventID: `${this.shardId}:${record.SequenceNumber ?? ''}`,
          eventName: 'aws:kinesis:record',
          invokeIdentityArn: this.p.invokeIdentityArn,
          awsRegion: this.p.region,
          eventSourceARN: this.p.streamArn,
        }),
      ),
    };
  }

  private async invoke(attempt: Attempt): Promise<Outcome> {
    const records = attempt.records;
    const requestId = randomUUID();
    attempt.invokeCount++;
    attempt.lastRequestId = requestId;
    const counters = this.p.counters;
    counters.invocations++;
    counters.recordsDelivered += records.length;
    const last = records.at(-1);
    this.iteratorAgeMs = last ? Math.max(0, Date.now() - arrivalMs(last)) : 0;

    let response: unknown;
    try {
      // A fresh event each time: the handler may mutate what it is given.
      response = await this.p.handler(this.buildEvent(records), this.p.buildContext(requestId));
    } catch (error) {
      counters.batchesFailed++;
      attempt.lastFunctionError = 'Unhandled';
      this.log('warn', 'function error', { requestId, batchSize: records.length, ...errorInfo(error) });
      return { kind: 'failure', functionError: 'Unhandled', thrown: true };
    }
    attempt.lastFunctionError = undefined;
    const outcome = this.interpret(response, records);
    if (outcome.kind === 'success') counters.batchesSucceeded++;
    else if (outcome.kind === 'partial') counters.batchesPartiallyFailed++;
    else {
      counters.batchesFailed++;
      this.log('warn', 'invalid partial batch response; treating the whole batch as failed', {
        requestId,
        batchSize: records.length,
      });
    }
    return outcome;
  }

  /** FACTS §5b: how Lambda reads a partial batch response. */
  private interpret(response: unknown, records: _Record[]): Outcome {
    if (!this.s.reportBatchItemFailures) return { kind: 'success' };
    if (typeof response !== 'object' || response === null) return { kind: 'success' };
    const failures = (response as { batchItemFailures?: unknown }).batchItemFailures;
    if (failures === undefined || failures === null) return { kind: 'success' };
    const invalid: Outcome = { kind: 'failure', functionError: undefined, thrown: false };
    if (!Array.isArray(failures)) return invalid;
    if (failures.length === 0) return { kind: 'success' };
    const positions = new Map<bigint, number>();
    records.forEach((record, index) => {
      const seq = toBigInt(record.SequenceNumber ?? '');
      if (seq !== undefined) positions.set(seq, index);
    });
    let lowest: number | undefined;
    for (const failure of failures as unknown[]) {
      const id = (failure as { itemIdentifier?: unknown } | null)?.itemIdentifier;
      if (typeof id !== 'string' || id === '') return invalid;
      const seq = toBigInt(id);
      const index = seq === undefined ? undefined : positions.get(seq);
      if (index === undefined) return invalid;
      if (lowest === undefined || index < lowest) lowest = index;
    }
    return { kind: 'partial', index: lowest ?? 0 };
  }

  /**
   * Gives up on records: writes the on-failure record (FACTS §5c) and moves the checkpoint past
   * them. Retries the write until it lands; false only when the poller stopped first.
   */
  private async discard(attempt: Attempt, records: _Record[], condition: OnFailureCondition): Promise<boolean> {
    const first = records[0]!;
    const last = records.at(-1)!;
    const message: KinesisOnFailureRecord = {
      requestContext: {
        requestId: attempt.lastRequestId ?? randomUUID(),
        functionArn: this.p.functionArn,
        condition,
        approximateInvokeCount: attempt.invokeCount,
      },
      responseContext: {
        statusCode: 200,
        executedVersion: '$LATEST',
        ...(attempt.lastFunctionError ? { functionError: attempt.lastFunctionError } : {}),
      },
      version: '1.0',
      timestamp: new Date().toISOString(),
      KinesisBatchInfo: {
        shardId: this.shardId,
        startSequenceNumber: first.SequenceNumber ?? '',
        endSequenceNumber: last.SequenceNumber ?? '',
        approximateArrivalOfFirstRecord: new Date(arrivalMs(first)).toISOString(),
        approximateArrivalOfLastRecord: new Date(arrivalMs(last)).toISOString(),
        batchSize: records.length,
        streamArn: this.p.streamArn,
      },
    };
    const summary = { condition, ...message.KinesisBatchInfo, approximateInvokeCount: attempt.invokeCount };
    const destination = this.p.onFailure;
    if (!destination) {
      this.log('error', 'records discarded (no on-failure destination)', summary);
    } else {
      let delay = this.s.retryBaseDelayMs;
      for (;;) {
        if (this.p.stopping) return false;
        try {
          await destination.sqs.send(
            new SendMessageCommand({ QueueUrl: destination.queueUrl, MessageBody: JSON.stringify(message) }),
            { abortSignal: this.p.signal },
          );
          break;
        } catch (error) {
          if (this.p.stopping) return false;
          this.p.counters.errors++;
          this.log('error', 'sending the on-failure record failed; will retry', { ...errorInfo(error), delayMs: delay });
          await this.p.sleep(delay);
          delay = this.p.nextDelay(delay);
        }
      }
      this.p.counters.onFailureRecordsSent++;
      this.log('warn', 'records sent to the on-failure destination', summary);
    }
    this.p.counters.recordsDiscarded += records.length;
    this.advance(last.SequenceNumber);
    return true;
  }
}
