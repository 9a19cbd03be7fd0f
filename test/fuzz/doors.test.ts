import fc from 'fast-check';
import { collectorTestSettings } from '../support/collector.js';
import { describe, expect, it } from 'vitest';
import { canonicalMessageSchema } from '../../schemas/canonical.js';
import { segmentSignature } from '../../shared/collect/auth.js';
import { collect, type CollectorDeps, type StreamWriter } from '../../shared/collect/collector.js';
import type { HttpRequest } from '../../shared/collect/http.js';
import type { CollectorSecrets } from '../../shared/collect/secrets.js';
import { processBatch } from '../../shared/process/process-batch.js';
import type { PutOutcome, StreamRecord } from '../../shared/stream-producer.js';
import { LOCAL_CREDENTIALS } from '../../local/stack.js';
import { assertNoPollution, bodyFor, fuzzParams, fuzzTimeout, itemsFeed, mparticleBatch, segmentBatch, segmentMessage, usersFeed } from './arbitraries.js';
import { fuzzDeps, kinesisRecords, ValidatingSender } from './fakes.js';

/**
 * Hostile input at every front door, through the collector core with the real credentials (so the
 * bodies get past authentication) and an in-memory stream. What the doors store is then run
 * through the processor with a Personalize sender that checks every request like the real API.
 */

const secrets: CollectorSecrets = {
  trackerWriteKeys: [LOCAL_CREDENTIALS.trackerWriteKey],
  serverWriteKeys: [LOCAL_CREDENTIALS.serverWriteKey],
  privacyApiKeys: [LOCAL_CREDENTIALS.privacyApiKey],
  segmentSharedSecret: LOCAL_CREDENTIALS.segmentSharedSecret,
  mparticleAuthorization: LOCAL_CREDENTIALS.mparticleAuthorization,
  feedApiKeys: [LOCAL_CREDENTIALS.feedApiKey],
};
const settings = collectorTestSettings({ publicProfileUpdates: 'accept' });
const basic = `Basic ${Buffer.from(`${LOCAL_CREDENTIALS.trackerWriteKey}:`).toString('base64')}`;

/** Stores everything, or (failing) refuses every third record as a throttled Kinesis shard would. */
class MemoryStream implements StreamWriter {
  stored: StreamRecord[] = [];
  refused = 0;
  constructor(private readonly failing = false) {}
  put(records: readonly StreamRecord[]): Promise<PutOutcome> {
    const outcome: PutOutcome = { stored: [], failed: [], calls: 1 };
    records.forEach((record, index) => {
      if (this.failing && index % 3 === 1) {
        this.refused++;
        outcome.failed.push({ index, error: 'ProvisionedThroughputExceededException' });
      } else {
        outcome.stored.push(index);
        this.stored.push(record);
      }
    });
    return Promise.resolve(outcome);
  }
}

interface Door {
  name: string;
  paths: readonly string[];
  body: fc.Arbitrary<string>;
  headers: (raw: Buffer) => Record<string, string>;
}

const DOORS: Door[] = [
  { name: 'tracker batch', paths: ['/v1/batch', '/v1/import'], body: bodyFor(segmentBatch, (inner) => `{"batch":${inner}}`), headers: () => ({ authorization: basic }) },
  {
    name: 'tracker calls',
    paths: ['/v1/track', '/v1/page', '/v1/screen', '/v1/identify', '/v1/alias', '/v1/group'],
    body: bodyFor(segmentMessage, (inner) => `{"type":"track","properties":${inner}}`),
    headers: () => ({ authorization: basic }),
  },
  {
    name: 'Segment webhook',
    paths: ['/v1/webhooks/segment'],
    body: bodyFor(fc.oneof(segmentMessage, segmentBatch, fc.array(segmentMessage, { maxLength: 5 })), (inner) => `{"properties":${inner}}`),
    headers: (raw) => ({ 'x-signature': segmentSignature(raw, LOCAL_CREDENTIALS.segmentSharedSecret) }),
  },
  { name: 'mParticle webhook', paths: ['/v1/webhooks/mparticle'], body: bodyFor(mparticleBatch, (inner) => `{"events":${inner}}`), headers: () => ({ authorization: LOCAL_CREDENTIALS.mparticleAuthorization }) },
  { name: 'items feed', paths: ['/v1/items'], body: bodyFor(itemsFeed, (inner) => `{"items":${inner}}`), headers: () => ({ authorization: `Bearer ${LOCAL_CREDENTIALS.feedApiKey}` }) },
  { name: 'users feed', paths: ['/v1/users'], body: bodyFor(usersFeed, (inner) => `{"users":${inner}}`), headers: () => ({ 'x-api-key': LOCAL_CREDENTIALS.feedApiKey }) },
];

/** Generated inputs per door (the tracker door has two entries: batch and single calls). */
const RUNS: Record<string, number> = {
  'tracker batch': 6_000,
  'tracker calls': 4_000,
  'Segment webhook': 10_000,
  'mParticle webhook': 10_000,
  'items feed': 10_000,
  'users feed': 10_000,
};

function request(path: string, raw: Buffer, headers: Record<string, string>): HttpRequest {
  return { method: 'POST', path, headers: { 'content-type': 'application/json', ...headers }, rawBody: raw, receivedAt: Date.now() };
}

/** The answer's contract: a status for a client error is 4xx, and every rejection names its index and reason. */
function checkAnswer(status: number, body: unknown, stream: MemoryStream, failing: boolean): void {
  const allowed = failing ? [200, 207, 400, 413, 503] : [200, 207, 400, 413];
  if (!allowed.includes(status)) throw new Error(`status ${status}: ${JSON.stringify(body).slice(0, 300)}`);
  const b = body as { rejected?: unknown; message?: unknown; notStored?: unknown; accepted?: unknown };
  if (status === 400 || status === 413) {
    if (!(typeof b.message === 'string' && b.message.trim() !== '') && !Array.isArray(b.rejected)) throw new Error(`${status} without a reason`);
  }
  if (status === 503 && !(Array.isArray(b.notStored) && b.notStored.length > 0)) throw new Error('503 without notStored');
  if (b.rejected !== undefined) {
    if (!Array.isArray(b.rejected)) throw new Error('rejected is not a list');
    for (const r of b.rejected as { index?: unknown; reason?: unknown }[]) {
      if (!Number.isInteger(r.index) || (r.index as number) < -1) throw new Error(`rejection without a valid index: ${JSON.stringify(r)}`);
      if (typeof r.reason !== 'string' || r.reason.trim() === '') throw new Error(`rejection without a reason: ${JSON.stringify(r)}`);
    }
  }
  if (typeof b.accepted === 'number' && b.accepted > stream.stored.length) throw new Error('accepted more than was stored');
}

/** Everything on the stream is a valid canonical message within the per-message limit and a usable partition key. */
function checkStored(records: readonly StreamRecord[]): void {
  for (const record of records) {
    if (record.data.byteLength > settings.maxMessageBytes) throw new Error(`stored ${record.data.byteLength} bytes`);
    if (record.partitionKey.length < 1 || record.partitionKey.length > 256) throw new Error(`partition key of ${record.partitionKey.length} characters`);
    const parsed = canonicalMessageSchema.safeParse(JSON.parse(Buffer.from(record.data).toString('utf8')));
    if (!parsed.success) throw new Error(`stored an invalid message: ${parsed.error.message.slice(0, 300)}`);
  }
}

/** Runs what the doors stored through the processor; no request may fail the Personalize API's checks. */
async function processStored(records: StreamRecord[], sender: ValidatingSender): Promise<void> {
  for (let i = 0; i < records.length; i += 100) {
    const deps = fuzzDeps(sender);
    const outcome = await processBatch(kinesisRecords(records.slice(i, i + 100)), deps);
    for (const d of deps.dlq.records) if (d.reason.trim() === '') throw new Error('dead letter without a reason');
    if (outcome.report.invalid > 0 && deps.dlq.records.length === 0) throw new Error('invalid messages but no dead letters');
  }
}

describe('hostile input at the front doors (collector core, real credentials)', () => {
  for (const door of DOORS) {
    it(`${door.name}: answers 2xx/4xx with a reason for every rejection, stores only valid messages, and nothing it stores fails Personalize's checks`, async () => {
      const sender = new ValidatingSender();
      let pending: StreamRecord[] = [];
      let processed = 0;
      const statuses = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(door.body, fc.constantFrom(...door.paths), fc.boolean(), async (text, path, asBytes) => {
          // Sometimes the exact bytes (lone surrogates and all), usually UTF-8 text as a client sends it.
          const raw = asBytes ? Buffer.from(text, 'latin1') : Buffer.from(text, 'utf8');
          const stream = new MemoryStream();
          const deps: CollectorDeps = { stream, secrets: () => Promise.resolve(secrets), settings };
          const { response } = await collect(request(path, raw, door.headers(raw)), deps);
          checkAnswer(response.status, response.body, stream, false);
          statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
          checkStored(stream.stored);
          assertNoPollution();
          pending.push(...stream.stored);
          if (pending.length >= 300) {
            processed += pending.length;
            await processStored(pending, sender);
            pending = [];
            assertNoPollution();
          }
        }),
        fuzzParams(RUNS[door.name] ?? 1_000),
      );
      processed += pending.length;
      await processStored(pending, sender);
      expect(sender.violations).toEqual([]);
      // The generators must reach the deep paths, not only bounce off the first check.
      const runs = fuzzParams(RUNS[door.name] ?? 1_000).numRuns;
      expect(processed).toBeGreaterThan(runs / 40);
      expect(statuses.get(200) ?? 0).toBeGreaterThan(runs / 40);
      expect(statuses.get(400) ?? 0).toBeGreaterThan(runs / 40);
      assertNoPollution();
      expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    }, fuzzTimeout(RUNS[door.name] ?? 1_000));
  }

  it('answers 503 naming what was not stored when the stream refuses records, never a false 200', async () => {
    await fc.assert(
      fc.asyncProperty(segmentBatch, async (value) => {
        const raw = Buffer.from(JSON.stringify(value) ?? 'null');
        const stream = new MemoryStream(true);
        const { response } = await collect(request('/v1/batch', raw, { authorization: basic }), { stream, secrets: () => Promise.resolve(secrets), settings });
        checkAnswer(response.status, response.body, stream, true);
        if (stream.refused > 0 && response.status !== 503) throw new Error(`${response.status} although ${stream.refused} records were not stored`);
        assertNoPollution();
      }),
      fuzzParams(1_000),
    );
  }, fuzzTimeout(1_000));
});
