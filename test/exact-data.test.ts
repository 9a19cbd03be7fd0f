import { describe, expect, it } from 'vitest';
import { LOCAL_CREDENTIALS } from '../local/stack.js';
import { useEmulators } from './support/env.js';
import { readArchive, useLocalStack } from './support/stack.js';

/**
 * Real payloads reach Personalize exactly as they were meant: ids past 2^53, event times, caller
 * eventIds shared by different entities, expansion limits, values Personalize refuses. Each case
 * goes through a door of the local stack and is asserted at the local Personalize endpoint and in
 * the archive.
 */

useEmulators();
const stack = useLocalStack('exact', { processorEnv: { PERSONALIZE_ITEMS_DATASET_ARN: 'arn:aws:personalize:us-east-1:000000000000:dataset/local/ITEMS' } });

const trackerAuth = { authorization: `Basic ${Buffer.from(`${LOCAL_CREDENTIALS.trackerWriteKey}:`).toString('base64')}` };
const DAY = 86_400_000;

async function post(path: string, body: string | object, headers: Record<string, string>) {
  const res = await fetch(`${stack().http.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as { accepted?: number; rejected?: { index: number; reason: string }[]; message?: string } };
}

async function eventsAtPersonalize() {
  await stack().poller.idle();
  return stack().personalize!.receivedEvents();
}

describe('ids past 2^53', () => {
  it('keeps two mParticle users whose mpids differ only past 2^53 apart, with their exact int64 event ids', async () => {
    const at = Date.now() - 3_600_000;
    // Written by hand: JSON.stringify cannot produce these numbers exactly.
    const batch = (mpid: string, eventId: string, session: string) =>
      `{"mpid":${mpid},"events":[{"event_type":"custom_event","data":{"event_name":"Product Viewed","event_id":${eventId},"session_uuid":"${session}","timestamp_unixtime_ms":${at},"custom_attributes":{"product_id":"mp-sku"}}}]}`;
    for (const [mpid, eventId, session] of [
      ['8880000000000000123', '-6000000000000000001', 'mp-s-1'],
      ['8880000000000000124', '-6000000000000000002', 'mp-s-2'],
    ] as const) {
      const res = await post('/v1/webhooks/mparticle', batch(mpid, eventId, session), { authorization: LOCAL_CREDENTIALS.mparticleAuthorization });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
    }
    const events = await eventsAtPersonalize();
    expect(events.map((e) => [e.userId, e.eventId]).sort()).toEqual([
      ['8880000000000000123', '-6000000000000000001'],
      ['8880000000000000124', '-6000000000000000002'],
    ]);
  });
});

describe('event time', () => {
  it('keeps the times of a 9-day-old /v1/import batch, and of a late tracker batch whose sentAt is as old', async () => {
    const happened = Date.now() - 9 * DAY;
    const message = (id: string) => ({ type: 'track', anonymousId: `old-${id}`, event: 'Product Viewed', messageId: id, timestamp: new Date(happened).toISOString(), properties: { product_id: 'old-sku' } });
    const sentAt = new Date(happened + 1000).toISOString();
    expect((await post('/v1/import', { batch: [message('import-old')], sentAt }, trackerAuth)).status).toBe(200);
    expect((await post('/v1/batch', { batch: [message('batch-old')], sentAt }, trackerAuth)).status).toBe(200);
    const events = await eventsAtPersonalize();
    for (const id of ['import-old', 'batch-old']) {
      expect(events.find((e) => e.eventId === id)?.sentAt, id).toBe(Math.floor(happened / 1000));
    }
  });

  it('corrects a tracker whose clock runs two hours ahead', async () => {
    const happened = Date.now() - 60_000;
    const skew = 2 * 3_600_000;
    const ahead = { type: 'track', anonymousId: 'ahead-1', event: 'Product Viewed', messageId: 'ahead-1', timestamp: new Date(happened + skew).toISOString(), properties: { product_id: 'a-sku' } };
    expect((await post('/v1/batch', { batch: [ahead], sentAt: new Date(Date.now() + skew).toISOString() }, trackerAuth)).status).toBe(200);
    const event = (await eventsAtPersonalize()).find((e) => e.eventId === 'ahead-1');
    expect(Math.abs(event!.sentAt - happened / 1000)).toBeLessThanOrEqual(2);
  });
});

describe('"accepted" means stored', () => {
  it('keeps ten catalog items that share one caller eventId', async () => {
    const items = Array.from({ length: 10 }, (_, i) => ({
      itemId: `shared-evt-${i}`,
      eventId: 'one-upload',
      properties: { categoryL1: 'shoes', price: 10 + i, creationTimestamp: Date.now() - DAY },
    }));
    const res = await post('/v1/items', { items }, { authorization: `Bearer ${LOCAL_CREDENTIALS.feedApiKey}` });
    expect(res.body).toMatchObject({ accepted: 10 });
    await stack().poller.idle();
    const sent = stack().personalize!.received('PutItems').flatMap((c) => c.request.items.map((i) => i.itemId));
    expect(sent.sort()).toEqual(items.map((i) => i.itemId).sort());
    const archived = [...(await readArchive(stack().names.archiveBucket)).values()].flatMap((o) => o.records);
    expect(archived.filter((r) => r.kind === 'item' && r.itemId.startsWith('shared-evt-'))).toHaveLength(10);
  });

  it('refuses, in the 207, a second interaction that reuses an eventId for another session', async () => {
    const t = new Date(Date.now() - 3_600_000).toISOString();
    const batch = [
      { type: 'track', anonymousId: 'reuse-a', event: 'Product Viewed', messageId: 'reused-id', timestamp: t, properties: { product_id: 'r1' } },
      { type: 'track', anonymousId: 'reuse-b', event: 'Product Viewed', messageId: 'reused-id', timestamp: t, properties: { product_id: 'r2' } },
    ];
    const res = await post('/v1/batch', { batch }, trackerAuth);
    expect(res.status).toBe(207);
    expect(res.body.rejected).toEqual([{ index: 1, reason: expect.stringMatching(/eventId: already used by message 0/) as unknown }]);
    expect((await eventsAtPersonalize()).map((e) => e.sessionId)).toEqual(['reuse-a']);
  });
});

describe('one request cannot flood a shard', () => {
  it('rejects an order of 30,000 products with the limit, and takes the other messages of the request', async () => {
    const t = new Date(Date.now() - 3_600_000).toISOString();
    // ~450 KB: under the body limit, as such an order arrives.
    const products = Array.from({ length: 30_000 }, (_, i) => ({ id: `p${i}` }));
    const batch = [
      { type: 'track', anonymousId: 'flood', event: 'Order Completed', messageId: 'huge-order', timestamp: t, properties: { order_id: 'o', products } },
      { type: 'track', anonymousId: 'flood', event: 'Product Viewed', messageId: 'small-view', timestamp: t, properties: { product_id: 'p1' } },
    ];
    const res = await post('/v1/batch', { batch }, trackerAuth);
    expect(res.status).toBe(207);
    expect(res.body.rejected).toEqual([{ index: 0, reason: expect.stringMatching(/expands to 30000 interactions.*limit 250 per message/) as unknown }]);
    expect((await eventsAtPersonalize()).map((e) => e.eventId)).toEqual(['small-view']);
  });
});

describe('values Personalize refuses never reach it', () => {
  it('refuses eventValue 1e300 and ids or event names carrying NUL, a lone surrogate or U+FFFE, each with its field', async () => {
    const t = new Date(Date.now() - 3_600_000).toISOString();
    const track = (over: object) => ({ type: 'track', anonymousId: 'v-anon', event: 'Product Added', timestamp: t, properties: { product_id: 'v-sku', price: 5 }, ...over });
    const batch = [
      track({ messageId: 'v-huge', properties: { product_id: 'v-sku', price: 1e300 } }),
      track({ messageId: 'v-nul', anonymousId: 'v\u0000anon' }),
      track({ messageId: 'v-surrogate', properties: { product_id: 'v\ud800sku' } }),
      track({ messageId: 'v-nonchar', event: 'Product\uFFFE Added' }),
      track({ messageId: 'v-fine' }),
    ];
    const res = await post('/v1/batch', { batch }, trackerAuth);
    expect(res.status).toBe(207);
    const reasons = new Map(res.body.rejected!.map((r) => [r.index, r.reason]));
    expect(reasons.get(0)).toMatch(/eventValue.*float/);
    expect(reasons.get(1)).toMatch(/sessionId contains U\+0000/);
    expect(reasons.get(2)).toMatch(/itemId contains U\+D800/);
    expect(reasons.get(3)).toMatch(/eventType contains U\+FFFE/);
    expect((await eventsAtPersonalize()).map((e) => e.eventId)).toEqual(['v-fine']);
  });
});
