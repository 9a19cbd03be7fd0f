import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChaosResult } from '../bench/chaos/run.js';
import { useEmulators } from './support/env.js';

useEmulators();

/**
 * The chaos ledger of `npm run chaos`, small: 2,000 messages through the front doors with the same
 * fault mix (invalid and duplicate input, Personalize throttling, 5xx and refusals, processor
 * crashes, DynamoDB and S3 failures). Every input must be accounted for.
 */

const saved = { level: process.env.POWERTOOLS_LOG_LEVEL, metrics: process.env.POWERTOOLS_METRICS_DISABLED };
let result: ChaosResult;

beforeAll(async () => {
  // Read once by the pipeline's logger when its module loads: expected fault chatter stays out of the test output.
  process.env.POWERTOOLS_LOG_LEVEL = 'ERROR';
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  const { DEFAULT_RATES, runChaos } = await import('../bench/chaos/run.js');
  result = await runChaos({
    events: 2_000,
    seed: 7,
    deadlineMs: 50_000,
    shards: 4,
    httpConcurrency: 6,
    trackerBatchSize: 100,
    rawRecords: 10,
    rates: DEFAULT_RATES,
  });
}, 60_000);

afterAll(() => {
  for (const [name, value] of [['POWERTOOLS_LOG_LEVEL', saved.level], ['POWERTOOLS_METRICS_DISABLED', saved.metrics]] as const) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

describe('the chaos ledger (2,000 messages, full fault mix)', () => {
  it('loses nothing: every input is delivered, dead-lettered or refused at the door with a reason', () => {
    const { ledger } = result;
    expect({ lost: ledger.lost, mismatched: ledger.mismatched, examples: [...ledger.lostExamples, ...ledger.mismatchExamples] }).toEqual({
      lost: 0,
      mismatched: 0,
      examples: [],
    });
    for (const [expectation, row] of Object.entries(ledger.byExpectation)) {
      expect({ expectation, ok: row.ok }).toEqual({ expectation, ok: row.expected });
    }
    expect(ledger.byExpectation.deliver.expected).toBeGreaterThan(1_500);
    expect(ledger.rejectionsWithoutReason).toBe(0);
    expect(ledger.unattributed).toEqual({ archive: 0, received: 0, deadLetters: 0 });
  });

  it('meets every kind of outcome: refusals at each stage, duplicates delivered and archived more than once', () => {
    const rows = result.ledger.byExpectation;
    for (const kind of ['link', 'held', 'personalize-reject', 'preflight', 'door', 'decode'] as const) expect({ kind, ids: rows[kind].expected > 0 }).toEqual({ kind, ids: true });
    expect(result.ledger.duplicatesDelivered).toBeGreaterThan(0);
    expect(result.ledger.archiveExtraCopies).toBeGreaterThan(0);
    expect(result.http.duplicates).toBeGreaterThan(0);
  });

  it('injected every fault and recovered from it: no shard stalled, nothing given up, ended by itself', () => {
    expect(result.faults.crashes).toBeGreaterThan(0);
    expect(result.faults.dynamoFaults).toBeGreaterThan(0);
    expect(result.faults.s3Faults).toBeGreaterThan(0);
    expect(result.personalize.throttled).toBeGreaterThan(0);
    expect(result.personalize.serverErrors).toBeGreaterThan(0);
    expect(result.poller.bisections).toBeGreaterThan(0);
    expect(result.drained).toBe(true);
    expect(result.stalledShards).toEqual([]);
    expect(result.poller.recordsDiscarded).toBe(0);
    expect(result.deadlineExceeded).toBe(false);
    expect(result.http.unexpectedStatuses).toBe(0);
    expect(result.http.gaveUp).toBe(0);
  });

  it('keeps the trait e-mails out of the archive', () => {
    expect(result.piiValues).toBeGreaterThan(0);
    expect(result.piiInArchive).toBe(0);
  });
});
