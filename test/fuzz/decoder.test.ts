import fc from 'fast-check';
import type { KinesisStreamRecord } from 'aws-lambda';
import { beforeAll, describe, expect, it } from 'vitest';
import { canonicalMessageSchema } from '../../schemas/canonical.js';
import { decodeKinesisRecord } from '../../shared/decode.js';
import { processBatch } from '../../shared/process/process-batch.js';
import { seededRandom } from '../support/seeded-random.js';
import { kplAggregate } from '../support/kpl.js';
import { assertNoPollution, deeplyNested, fuzzParams, fuzzTimeout, hostileKey, hostileNumber, hostileString, hostileTime, hostileValue, propertiesArb, toBodyText } from './arbitraries.js';
import { fuzzDeps, kinesisRecords, ValidatingSender } from './fakes.js';

/**
 * Hostile Kinesis records for the processor: the decoder alone, then whole batches through
 * processBatch with in-memory ports and a sender that checks every request like the real API.
 */

const KPL_MAGIC = Buffer.from('f3899ac2', 'hex');
const NOW = Date.now();

const good = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 12, arbitrary: arb }, { weight: 1, arbitrary: hostileValue });
const id = fc.oneof({ weight: 10, arbitrary: fc.stringMatching(/^[a-z0-9-]{1,10}$/) }, { weight: 1, arbitrary: hostileString });

/** Canonical-message-shaped objects, most fields right, any of them hostile. */
const canonicalish: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(
    fc.record(
      {
        kind: good(fc.constantFrom('interaction', 'interaction', 'interaction', 'item', 'user', 'identify', 'alias', 'bogus')),
        eventId: good(id),
        source: good(fc.constantFrom('native', 'segment', 'mparticle', 'feed')),
        timestamp: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: NOW - 86_400_000, max: NOW }) }, { weight: 1, arbitrary: hostileTime }),
        sessionId: good(id),
        userId: good(id),
        previousId: good(id),
        eventType: good(fc.constantFrom('View', 'Purchase', 'Product Viewed', 'Order Completed')),
        itemId: good(id),
        eventValue: good(hostileNumber),
        // Around the limits: 40 characters, 25 impressions, printable ASCII.
        recommendationId: good(fc.string({ minLength: 1, maxLength: 42 })),
        impression: good(fc.array(id, { minLength: 1, maxLength: 26 })),
        eventAttributionSource: good(fc.oneof(fc.stringMatching(/^[a-z ]{0,4}[a-z][a-z ]{0,4}$/), hostileString)),
        // Interaction properties, or what an item or a user needs (so those get past pre-flight too).
        properties: fc.oneof(
          propertiesArb,
          fc.record({ categoryL1: good(fc.constantFrom('shoes', 'bags')), price: good(hostileNumber), creationTimestamp: hostileTime, description: good(hostileString) }, { requiredKeys: ['categoryL1', 'price', 'creationTimestamp'] }),
          fc.record({ membershipType: good(fc.constantFrom('gold', 'silver')), country: good(hostileString), email: fc.constant('u@example.com') }, { requiredKeys: ['membershipType'] }),
        ),
        traits: good(fc.record({ email: fc.constant('t@example.com'), membershipType: hostileString }, { requiredKeys: [] })),
      },
      // Every kind's required fields are usually there (the schema ignores the others).
      { requiredKeys: ['kind', 'timestamp', 'sessionId', 'userId', 'previousId', 'eventType', 'itemId', 'properties'] },
    ),
    fc.dictionary(hostileKey, hostileValue, { maxKeys: 2 }),
  )
  .map(([r, extra]) => {
    const out = { ...r };
    for (const [k, v] of Object.entries(extra)) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    return out;
  });

let kplPool: Buffer[] = [];

beforeAll(async () => {
  // Real KPL aggregates (aws-kinesis-agg) of valid and hostile records, to cut and flip below.
  const sample = fc.sample(canonicalish, { seed: 7, numRuns: 120 });
  const pool: Buffer[] = [];
  for (let i = 0; i < sample.length; i += 4) {
    const records = sample.slice(i, i + 4).map((m, j) => ({ partitionKey: `pk-${i}-${j}`, data: Buffer.from(toBodyText(m)) }));
    for (const aggregate of await kplAggregate(records)) pool.push(aggregate.data);
  }
  kplPool = pool;
});

/** The bytes of one Kinesis record's data. */
const recordData: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 20, arbitrary: canonicalish.map((m) => Buffer.from(toBodyText(m))) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.concat([KPL_MAGIC, b])) },
  // A real aggregate, cut short or with one byte flipped (after the magic, before the checksum, anywhere).
  {
    weight: 3,
    arbitrary: fc.tuple(fc.nat(), fc.double({ min: 0, max: 1, noNaN: true }), fc.boolean(), fc.nat()).map(([which, at, flip, bit]) => {
      const source = kplPool[which % Math.max(1, kplPool.length)] ?? KPL_MAGIC;
      const cut = Math.floor(source.length * at);
      if (!flip) return Buffer.from(source.subarray(0, cut));
      const copy = Buffer.from(source);
      if (copy.length > 0) copy[cut % copy.length]! ^= 1 << (bit % 8);
      return copy;
    }),
  },
  { weight: 1, arbitrary: fc.constantFrom(0, 1).map(() => Buffer.from(kplPool[0] ?? KPL_MAGIC)) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 40, max: 5_000 }), fc.constantFrom<'array' | 'object'>('array', 'object')).map(([d, k]) => Buffer.from(`{"kind":"interaction","properties":${deeplyNested(d, k)}}`)) },
  { weight: 1, arbitrary: fc.json().map((t) => Buffer.from(t)) },
  { weight: 1, arbitrary: fc.constantFrom(Buffer.alloc(0), Buffer.from('null'), Buffer.from('[]'), Buffer.from('"kind"'), Buffer.from('{"__proto__":{"polluted":1},"kind":"interaction"}')) },
);

/** A Kinesis record, sometimes with base64 garbage in place of its data. */
const kinesisRecord: fc.Arbitrary<KinesisStreamRecord> = fc
  .tuple(
    recordData,
    fc.oneof({ weight: 10, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.oneof(fc.base64String({ maxLength: 60 }), fc.string({ unit: 'binary', maxLength: 30 })) }),
    fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: hostileString }),
  )
  .map(([data, garbage, partitionKey]) => {
    const [record] = kinesisRecords([{ data, ...(partitionKey !== null && { partitionKey }) }]);
    if (garbage !== null) record!.kinesis.data = garbage;
    return record!;
  });

/** Mostly canonical-shaped records: whole batches of garbage would never reach the forwarder. */
const batchRecord: fc.Arbitrary<KinesisStreamRecord> = fc.oneof(
  { weight: 3, arbitrary: canonicalish.map((m) => kinesisRecords([{ data: Buffer.from(toBodyText(m)), partitionKey: typeof m.sessionId === 'string' && m.sessionId !== '' ? m.sessionId.slice(0, 256) : 'pk' }])[0]!) },
  { weight: 1, arbitrary: kinesisRecord },
);

/** One record past the 1 MiB limit, built once. */
const huge = kinesisRecords([{ data: Buffer.from(`{"kind":"interaction","x":"${'y'.repeat(1_100_000)}"}`) }])[0]!;

let decodedOk = 0;

function checkDecoded(record: KinesisStreamRecord): number {
  const results = decodeKinesisRecord(record);
  decodedOk += results.filter((r) => r.ok).length;
  if (results.length === 0) throw new Error('a record vanished: no result');
  for (const r of results) {
    if (r.ok) {
      if (!canonicalMessageSchema.safeParse(r.message).success) throw new Error('decoded an invalid message');
    } else {
      if (r.reason.trim() === '') throw new Error('rejection without a reason');
      if (r.stage !== 'decode' && r.stage !== 'validate') throw new Error(`unknown stage ${String(r.stage)}`);
      if (typeof r.payload !== 'string') throw new Error('rejection without its payload');
    }
  }
  return results.length;
}

describe('hostile Kinesis records', () => {
  it('the decoder never throws, never drops a record, and rejects with a reason whatever it cannot use', () => {
    let results = 0;
    fc.assert(
      fc.property(kinesisRecord, (record) => {
        results += checkDecoded(record);
        assertNoPollution();
      }),
      fuzzParams(10_000),
    );
    expect(checkDecoded(huge)).toBe(1);
    expect(decodeKinesisRecord(huge)[0]).toMatchObject({ ok: false, reason: expect.stringMatching(/limit/) as unknown });
    expect(results).toBeGreaterThanOrEqual(fuzzParams(10_000).numRuns);
    // Deep enough: a good share decodes into valid messages, the rest is refused with reasons.
    expect(decodedOk).toBeGreaterThan(results / 5);
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  }, fuzzTimeout(10_000, 1));

  it('processBatch answers every batch, sends Personalize only requests its API accepts, and dead-letters with reasons', async () => {
    let decoded = 0;
    let forwarded = 0;
    let deadLettered = 0;
    const sender = new ValidatingSender();
    await fc.assert(
      fc.asyncProperty(fc.array(batchRecord, { minLength: 1, maxLength: 12 }), fc.integer(), async (records, seed) => {
        const random = seededRandom(seed);
        const batchSender = new ValidatingSender(random);
        const deps = fuzzDeps(batchSender);
        const sequences = new Set(records.map((r) => r.kinesis.sequenceNumber));
        const { response, report } = await processBatch(records, deps);
        decoded += report.messages;
        forwarded += report.forwardedEvents + report.forwardedItems + report.forwardedUsers;
        deadLettered += deps.dlq.records.length;
        sender.violations.push(...batchSender.violations);
        if (report.messages < records.length) throw new Error('fewer messages than records');
        for (const failure of response.batchItemFailures) if (!sequences.has(failure.itemIdentifier)) throw new Error('failure names a record not in the batch');
        for (const d of deps.dlq.records) {
          if (d.reason.trim() === '' || !['decode', 'validate', 'preflight', 'personalize'].includes(d.stage)) throw new Error(`bad dead letter ${JSON.stringify(d).slice(0, 200)}`);
        }
        if (report.invalid > 0 && deps.dlq.records.length === 0 && response.batchItemFailures.length === 0) throw new Error('invalid input neither dead-lettered nor retried');
        assertNoPollution();
      }),
      fuzzParams(1_200),
    );
    expect(sender.violations).toEqual([]);
    const runs = fuzzParams(1_200).numRuns;
    expect(decoded).toBeGreaterThan(runs * 4);
    expect(forwarded).toBeGreaterThan(runs / 2);
    expect(deadLettered).toBeGreaterThan(runs);
  }, fuzzTimeout(1_200, 5));
});
