import { setTimeout as sleep } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LocalPersonalize } from '../local/personalize-server.js';
import { startLocalStack, LOCAL_CREDENTIALS, type LocalStack } from '../local/stack.js';
import { entry, isMain, median, percentile, row, type Measure } from './lib/harness.js';

/**
 * Measurement 6: end to end on the one-machine stack (`npm start`'s stack, in this process): from
 * the collector request (`POST /v1/batch` on the stack's HTTP port) to the local Personalize
 * endpoint's receipt of the event (its `receivedAt`). A development figure, not an AWS one: the
 * emulators, the stream poller and the handlers share this process and its machine.
 *
 * - Latency: a steady offered load; per event, receipt time minus the time its request was sent.
 *   Set beside the waits the poller is configured to make (it polls the shard tip every
 *   `pollIntervalMs` and then gathers a batch for `maxBatchingWindowMs`), which no code can beat.
 * - Sustained throughput: a burst sent as fast as the collector answers (4 requests in flight);
 *   events per second from the first send to the last receipt, beside the rate the collector alone
 *   accepted them in the same run.
 */

const POLLER = { pollIntervalMs: 250, maxBatchingWindowMs: 200, batchSize: 100 } as const;
const SIZES = {
  full: { warmupSeconds: 2, latencySeconds: 20, latencyRate: 100, burst: 5_000 },
  quick: { warmupSeconds: 0.5, latencySeconds: 1, latencyRate: 50, burst: 200 },
} as const;
const SESSIONS = 500;
const IN_FLIGHT = 4;
const BURST_REQUEST_MESSAGES = 100;
const LATENCY_REQUEST_MESSAGES = 10;

const authorization = `Basic ${Buffer.from(`${LOCAL_CREDENTIALS.trackerWriteKey}:`).toString('base64')}`;

function trackMessages(n: number): { messageId: string; body: Record<string, unknown> }[] {
  return Array.from({ length: n }, () => {
    const messageId = randomUUID();
    const session = Math.floor(Math.random() * SESSIONS);
    return {
      messageId,
      body: {
        type: 'track',
        event: 'Product Viewed',
        messageId,
        anonymousId: `e2e-session-${session}`,
        timestamp: new Date().toISOString(),
        properties: { product_id: `sku-${Math.floor(Math.random() * 1000)}`, price: 19.99 },
        context: { library: { name: 'analytics.js', version: '2.11.1' } },
      },
    };
  });
}

async function post(stack: LocalStack, batch: readonly Record<string, unknown>[]): Promise<void> {
  const response = await fetch(`${stack.http.url}/v1/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization },
    body: JSON.stringify({ batch }),
  });
  if (response.status !== 200) throw new Error(`collector answered ${response.status}: ${await response.text()}`);
  await response.arrayBuffer();
}

/** Waits until every id has reached the local Personalize endpoint; returns receipt times by id. */
async function awaitReceipts(personalize: LocalPersonalize, ids: ReadonlySet<string>, timeoutMs: number): Promise<Map<string, number>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const receipts = new Map<string, number>();
    for (const event of personalize.receivedEvents()) {
      if (event.eventId !== undefined && ids.has(event.eventId)) receipts.set(event.eventId, Date.parse(event.receivedAt));
    }
    if (receipts.size >= ids.size) return receipts;
    if (Date.now() > deadline) throw new Error(`end to end: ${receipts.size} of ${ids.size} events reached Personalize within ${timeoutMs} ms`);
    await sleep(20);
  }
}

async function latencyPhase(stack: LocalStack, personalize: LocalPersonalize, seconds: number, rate: number): Promise<number[]> {
  const sentAt = new Map<string, number>();
  const requests = Math.round((seconds * rate) / LATENCY_REQUEST_MESSAGES);
  const intervalMs = (1000 * LATENCY_REQUEST_MESSAGES) / rate;
  const start = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < requests; i++) {
    // A fixed schedule, not back-to-back: the offered load stays steady whatever the latency.
    const wait = start + i * intervalMs - performance.now();
    if (wait > 0) await sleep(wait);
    const messages = trackMessages(LATENCY_REQUEST_MESSAGES);
    const t = Date.now();
    for (const m of messages) sentAt.set(m.messageId, t);
    pending.push(post(stack, messages.map((m) => m.body)));
  }
  await Promise.all(pending);
  const receipts = await awaitReceipts(personalize, new Set(sentAt.keys()), 60_000);
  return [...sentAt].map(([id, t]) => receipts.get(id)! - t);
}

async function burstPhase(
  stack: LocalStack,
  personalize: LocalPersonalize,
  total: number,
): Promise<{ eventsPerSecond: number; acceptedPerSecond: number; putEventsCalls: number }> {
  personalize.reset();
  const messages = trackMessages(total);
  const ids = new Set(messages.map((m) => m.messageId));
  const chunks: Record<string, unknown>[][] = [];
  for (let i = 0; i < messages.length; i += BURST_REQUEST_MESSAGES) chunks.push(messages.slice(i, i + BURST_REQUEST_MESSAGES).map((m) => m.body));
  const t0 = performance.now();
  let next = 0;
  const sender = async () => {
    while (next < chunks.length) await post(stack, chunks[next++]!);
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, sender));
  const acceptedMs = performance.now() - t0;
  await awaitReceipts(personalize, ids, 300_000);
  const doneMs = performance.now() - t0;
  return { eventsPerSecond: (total * 1000) / doneMs, acceptedPerSecond: (total * 1000) / acceptedMs, putEventsCalls: personalize.stats().PutEvents.accepted };
}

export const measure: Measure = async ({ quick, repeats }) => {
  const size = quick ? SIZES.quick : SIZES.full;
  // Always the embedded stack: endpoint overrides from the caller's shell would send elsewhere.
  for (const name of Object.keys(process.env)) if (name.startsWith('AWS_ENDPOINT_URL')) delete process.env[name];
  const stateDir = await mkdtemp(join(tmpdir(), 'bench-e2e-'));
  const stack = await startLocalStack({
    ports: { http: 0, kinesis: 0, dynamodb: 0, s3: 0, sqs: 0, personalize: 0 },
    stateDir,
    poller: POLLER,
  });
  try {
    const personalize = stack.personalize;
    if (!personalize) throw new Error('end to end: the local Personalize endpoint did not start');
    // Warm-up: containers, connections, JIT.
    await latencyPhase(stack, personalize, size.warmupSeconds, 50);
    const latencies = await latencyPhase(stack, personalize, size.latencySeconds, size.latencyRate);
    const bursts = [];
    for (let i = 0; i < Math.min(repeats, 3); i++) bursts.push(await burstPhase(stack, personalize, size.burst));
    const throttled = personalize.stats().PutEvents.throttled;
    const eventsPerCall = size.burst / median(bursts.map((b) => b.putEventsCalls));
    const p50Floor = POLLER.pollIntervalMs / 2 + POLLER.maxBatchingWindowMs;
    const p99Floor = 0.99 * POLLER.pollIntervalMs + POLLER.maxBatchingWindowMs;
    const eps = bursts.map((b) => b.eventsPerSecond);
    const accepted = bursts.map((b) => b.acceptedPerSecond);
    return {
      title: 'End to end on the local stack (development figure, not AWS)',
      params: {
        ...POLLER,
        shards: 2,
        latencyEvents: latencies.length,
        offeredRatePerSecond: size.latencyRate,
        burstEvents: size.burst,
        requestsInFlight: IN_FLIGHT,
        sessions: SESSIONS,
        putEventsThrottled: throttled,
        burstEventsPerPutEventsCall: Number(eventsPerCall.toFixed(2)),
      },
      tables: [
        {
          title: `Collector request -> local Personalize receipt (poller: poll every ${POLLER.pollIntervalMs} ms, window ${POLLER.maxBatchingWindowMs} ms, batch ${POLLER.batchSize})`,
          rows: [
            row({
              name: `Latency p50 at ${size.latencyRate} events/s`,
              headline: true,
              figure: median(latencies),
              unit: 'ms',
              floor: p50Floor,
              floorKind: 'configured waits',
              note: `poll interval / 2 + batching window; ${latencies.length} events`,
            }),
            row({
              name: `Latency p99 at ${size.latencyRate} events/s`,
              headline: true,
              figure: percentile(latencies, 99),
              unit: 'ms',
              floor: p99Floor,
              floorKind: 'configured waits',
              note: '0.99 x poll interval + batching window',
            }),
            row({
              name: 'Sustained events/s (burst, first send to last receipt)',
              headline: true,
              figure: median(eps),
              unit: 'events/s',
              floor: median(accepted),
              floorKind: 'collector accept rate',
              runs: eps,
              floorRuns: accepted,
              note: `${size.burst} events per burst in requests of ${BURST_REQUEST_MESSAGES}, ${IN_FLIGHT} in flight`,
            }),
          ],
        },
      ],
      notes: [
        'A development figure, not an AWS one: kinesalite, dynalite, s3rver, the SQS emulator, the local Personalize endpoint, the stream poller, both handlers and the load generator all run in one Node process on this machine.',
        `The stream poller reads each shard's tip every ${POLLER.pollIntervalMs} ms (LOCAL_POLL_INTERVAL_MS; Lambda polls once per second) and gathers a batch for up to ${POLLER.maxBatchingWindowMs} ms: a record waits on average half an interval plus the window before the processor sees it. Those "configured waits" are a modelled floor, not a measurement.`,
        `The local Personalize endpoint enforces the PutEvents quota (1,000 requests/s); ${throttled} PutEvents calls were throttled and retried in the last burst.`,
        `In a burst, ${SESSIONS} sessions interleave, so a 100-record batch holds about one event per session: ${eventsPerCall.toFixed(2)} events per PutEvents call. Each call goes through the AWS SDK (SigV4 signing, HTTP) to the local endpoint in this same process, alongside the emulators; that per-call work, not the processor's batching, bounds the sustained rate here.`,
      ],
    };
  } finally {
    await stack.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
};

if (isMain(import.meta.url)) await entry('e2e', 'e2e.ts', measure);
