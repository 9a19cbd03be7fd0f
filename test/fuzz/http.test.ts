import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { segmentSignature } from '../../shared/collect/auth.js';
import { LOCAL_CREDENTIALS, startLocalStack, type LocalStack } from '../../local/stack.js';
import { useEmulators } from '../support/env.js';
import { drainDlq, isDeadLetter, isolatedStack } from '../support/stack.js';
import { assertNoPollution, bodyFor, FUZZ_SEED, itemsFeed, mparticleBatch, segmentBatch, segmentMessage, usersFeed } from './arbitraries.js';

/**
 * A few hundred hostile bodies through the real HTTP port of the local stack: the whole path
 * (API Gateway translation, middy, collector, Kinesis, processor) answers without a 5xx, and the
 * local Personalize endpoint, which checks every request like the real API, refuses none.
 */

useEmulators();

let stack: LocalStack;

beforeAll(async () => {
  stack = await startLocalStack({
    ...isolatedStack('fuzz', 1),
    poller: { batchSize: 500, maxBatchingWindowMs: 100, pollIntervalMs: 50 },
    // The catalog and profile quotas would pace a burst of fuzzed feeds for minutes.
    personalize: { rates: false },
    processorEnv: { PUT_ITEMS_PER_SECOND: '0', PUT_USERS_PER_SECOND: '0' },
  });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

const basic = `Basic ${Buffer.from(`${LOCAL_CREDENTIALS.trackerWriteKey}:`).toString('base64')}`;

const ROUTES: { path: string; body: fc.Arbitrary<string>; headers: (raw: string) => Record<string, string> }[] = [
  { path: '/v1/batch', body: bodyFor(segmentBatch, (i) => `{"batch":${i}}`), headers: () => ({ authorization: basic }) },
  { path: '/v1/track', body: bodyFor(segmentMessage, (i) => `{"properties":${i}}`), headers: () => ({ authorization: basic }) },
  { path: '/v1/identify', body: bodyFor(segmentMessage, (i) => `{"traits":${i}}`), headers: () => ({ authorization: basic }) },
  { path: '/v1/webhooks/segment', body: bodyFor(segmentMessage, (i) => `{"properties":${i}}`), headers: (raw) => ({ 'x-signature': segmentSignature(raw, LOCAL_CREDENTIALS.segmentSharedSecret) }) },
  { path: '/v1/webhooks/mparticle', body: bodyFor(mparticleBatch, (i) => `{"events":${i}}`), headers: () => ({ authorization: LOCAL_CREDENTIALS.mparticleAuthorization }) },
  { path: '/v1/items', body: bodyFor(itemsFeed, (i) => `{"items":${i}}`), headers: () => ({ authorization: `Bearer ${LOCAL_CREDENTIALS.feedApiKey}` }) },
  { path: '/v1/users', body: bodyFor(usersFeed, (i) => `{"users":${i}}`), headers: () => ({ 'x-api-key': LOCAL_CREDENTIALS.feedApiKey }) },
];

const PER_ROUTE = 50;

describe('hostile bodies through the real HTTP port', () => {
  it(`answers ${ROUTES.length * PER_ROUTE} of them with 2xx/4xx and a reason, and nothing they carry is refused by Personalize`, async () => {
    const statuses = new Map<number, number>();
    for (const [r, route] of ROUTES.entries()) {
      const bodies = fc.sample(route.body, { seed: FUZZ_SEED + r, numRuns: PER_ROUTE });
      for (const body of bodies) {
        const res = await fetch(`${stack.http.url}${route.path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...route.headers(body) }, body });
        const text = await res.text();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        expect({ path: route.path, status: res.status < 500 }).toEqual({ path: route.path, status: true });
        const answer = JSON.parse(text) as { rejected?: { index: number; reason: string }[]; message?: string };
        if (res.status >= 400) expect(answer.message ?? answer.rejected?.[0]?.reason ?? '').not.toBe('');
        for (const r of answer.rejected ?? []) expect(r.reason.trim()).not.toBe('');
      }
    }
    // The transport itself: wrong method, empty body, bytes that are not UTF-8.
    expect((await fetch(`${stack.http.url}/v1/batch`, { headers: { authorization: basic } })).status).toBe(405);
    expect((await fetch(`${stack.http.url}/v1/batch`, { method: 'POST', headers: { authorization: basic } })).status).toBe(400);
    const bytes = await fetch(`${stack.http.url}/v1/batch`, { method: 'POST', headers: { authorization: basic }, body: new Uint8Array([0x7b, 0xff, 0xfe, 0x22, 0xc3, 0x28, 0x7d]) });
    expect(bytes.status).toBe(400);

    await stack.poller.idle(30_000);
    const stats = stack.personalize!.stats();
    for (const op of ['PutEvents', 'PutItems', 'PutUsers'] as const) expect({ op, rejected: stats[op].rejected, failed: stats[op].failed }).toEqual({ op, rejected: 0, failed: 0 });
    expect(stats.PutEvents.accepted).toBeGreaterThan(0);
    expect(statuses.get(200) ?? 0).toBeGreaterThan(0);
    for (const d of (await drainDlq(stack)).filter(isDeadLetter)) expect(d.reason.trim()).not.toBe('');
    expect(stack.poller.stats().recordsDiscarded).toBe(0);
    assertNoPollution();
  }, 60_000);
});
