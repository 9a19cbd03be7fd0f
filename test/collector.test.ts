import { Analytics } from '@segment/analytics-node';
import { type PutRecordsCommandOutput } from '@aws-sdk/client-kinesis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { kinesisClient } from '../shared/aws/clients.js';
import { segmentSignature } from '../shared/collect/auth.js';
import { collectorDeps, setCollectorDeps } from '../shared/collect/handle.js';
import { putRecords } from '../shared/aws/kinesis.js';
import { LOCAL_CREDENTIALS, startLocalStack, type LocalStack } from '../local/stack.js';
import { useEmulators } from './support/env.js';
import { drainDlq, isolatedStack } from './support/stack.js';

useEmulators();

let stack: LocalStack;
const basic = (user: string) => `Basic ${Buffer.from(`${user}:`).toString('base64')}`;

beforeAll(async () => {
  stack = await startLocalStack({
    ...isolatedStack('collect', 1),
    poller: { batchSize: 500, maxBatchingWindowMs: 100, pollIntervalMs: 50 },
    processorEnv: { COLLECTOR_MAX_MESSAGES: '50' },
  });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

beforeEach(async () => {
  await stack.poller.idle();
  stack.personalize!.reset();
  await drainDlq(stack);
});

async function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const raw = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const res = await fetch(`${stack.http.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: raw });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function delivered(): Promise<Map<string, { eventType: string; itemId?: string; userId?: string; sentAt: number }>> {
  await stack.poller.idle();
  return new Map(
    stack.personalize!.receivedEvents().map((e) => [e.eventId ?? '', { eventType: e.eventType, itemId: e.itemId, userId: e.userId, sentAt: e.sentAt }]),
  );
}

const recent = (offsetSeconds: number) => new Date(Date.now() - 3_600_000 + offsetSeconds * 1000);

describe('the tracker door with a real Segment client', () => {
  it('takes track, page, screen, identify and alias from @segment/analytics-node and they reach Personalize', async () => {
    // A server-side SDK: it holds a secret server key, so its identify traits become profile updates.
    const analytics = new Analytics({ writeKey: LOCAL_CREDENTIALS.serverWriteKey, host: stack.http.url, flushAt: 20, maxRetries: 2 });
    const errors: unknown[] = [];
    analytics.on('error', (e) => errors.push(e));
    const viewedAt = recent(1);
    analytics.track({ anonymousId: 'seg-anon-1', event: 'Product Viewed', messageId: 'seg-view-1', timestamp: viewedAt, properties: { product_id: 'sku-7', price: 20 } });
    analytics.page({ anonymousId: 'seg-anon-1', name: 'Product', messageId: 'seg-page-1', timestamp: recent(2), properties: { product_id: 'sku-8' } });
    analytics.identify({ anonymousId: 'seg-anon-1', userId: 'seg-user-1', messageId: 'seg-identify-1', timestamp: recent(3), traits: { membershipType: 'gold' } });
    analytics.track({ anonymousId: 'seg-anon-1', event: 'Order Completed', messageId: 'seg-order-1', timestamp: recent(4), properties: { order_id: 'o-1', products: [{ product_id: 'sku-7', price: 20, quantity: 2 }, { product_id: 'sku-9', price: 5 }] } });
    analytics.screen({ userId: 'seg-user-2', name: 'Item', messageId: 'seg-screen-1', timestamp: recent(5), properties: { item_id: 'sku-10' } });
    analytics.alias({ previousId: 'seg-anon-2', userId: 'seg-user-2', messageId: 'seg-alias-1', timestamp: recent(6) });
    analytics.track({ anonymousId: 'seg-anon-2', event: 'Product Clicked', messageId: 'seg-click-1', timestamp: recent(7), properties: { product_id: 'sku-11' } });
    await analytics.closeAndFlush();
    expect(errors).toEqual([]);

    const events = await delivered();
    expect(events.get('seg-view-1')).toMatchObject({ eventType: 'View', itemId: 'sku-7', userId: 'seg-user-1' });
    expect(Math.abs(events.get('seg-view-1')!.sentAt - Math.floor(viewedAt.getTime() / 1000))).toBeLessThanOrEqual(1);
    expect(events.get('seg-page-1')).toMatchObject({ itemId: 'sku-8', userId: 'seg-user-1' });
    expect(events.get('seg-order-1:0')).toMatchObject({ eventType: 'Purchase', itemId: 'sku-7', userId: 'seg-user-1' });
    expect(events.get('seg-order-1:1')).toMatchObject({ eventType: 'Purchase', itemId: 'sku-9' });
    expect(events.get('seg-screen-1')).toMatchObject({ itemId: 'sku-10', userId: 'seg-user-2' });
    expect(events.get('seg-click-1')).toMatchObject({ eventType: 'Click', itemId: 'sku-11', userId: 'seg-user-2' });
    const profile = stack.personalize!.received('PutUsers').flatMap((c) => c.request.users);
    expect(profile).toContainEqual({ userId: 'seg-user-1', properties: JSON.stringify({ membershipType: 'gold' }) });
  });

  it('answers a partial batch per message with index and field, and an all-good batch with success', async () => {
    const good = { type: 'track', anonymousId: 'pb-1', event: 'Product Viewed', messageId: 'pb-good', timestamp: recent(1).toISOString(), properties: { product_id: 'p1' } };
    const noIds = { type: 'track', event: 'Product Viewed', messageId: 'pb-noid', timestamp: recent(2).toISOString() };
    const noTime = { type: 'track', anonymousId: 'pb-1', event: 'Product Viewed', messageId: 'pb-notime' };
    const partial = await post('/v1/batch', { batch: [good, noIds, noTime] }, { authorization: basic(LOCAL_CREDENTIALS.trackerWriteKey) });
    expect(partial.status).toBe(207);
    const rejected = partial.body.rejected as { index: number; reason: string }[];
    expect(rejected.map((r) => r.index)).toEqual([1, 2]);
    expect(rejected[0]!.reason).toMatch(/anonymousId|userId/);
    expect(rejected[1]!.reason).toMatch(/timestamp/);
    expect((await delivered()).has('pb-good')).toBe(true);

    const ok = await post('/v1/batch', { batch: [{ ...good, messageId: 'pb-good-2' }] }, { authorization: basic(LOCAL_CREDENTIALS.trackerWriteKey) });
    expect(ok).toMatchObject({ status: 200, body: { success: true } });
  });

  it('answers 400 to malformed JSON and to more messages than the limit, and 413 to an oversized body', async () => {
    const auth = { authorization: basic(LOCAL_CREDENTIALS.trackerWriteKey) };
    const malformed = await post('/v1/batch', '{"batch": [', auth);
    expect(malformed.status).toBe(400);
    expect(malformed.body.message).toMatch(/not valid JSON/);

    const many = Array.from({ length: 51 }, (_, i) => ({ type: 'track', anonymousId: 'x', event: 'E', messageId: `m${i}`, timestamp: recent(i).toISOString() }));
    const tooMany = await post('/v1/batch', { batch: many }, auth);
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.message).toMatch(/51 messages, limit 50/);

    const huge = await post('/v1/batch', { batch: [{ type: 'track', anonymousId: 'x', event: 'E', properties: { blob: 'x'.repeat(600_000) } }] }, auth);
    expect(huge.status).toBe(413);

    const bigMessage = { type: 'track', anonymousId: 'big-1', event: 'Product Viewed', messageId: 'big-one', timestamp: recent(1).toISOString(), properties: { product_id: 'p', note: 'y'.repeat(40_000) } };
    const small = { type: 'track', anonymousId: 'big-1', event: 'Product Viewed', messageId: 'big-small', timestamp: recent(2).toISOString(), properties: { product_id: 'p' } };
    const perMessage = await post('/v1/batch', { batch: [bigMessage, small] }, auth);
    expect(perMessage.status).toBe(207);
    expect(perMessage.body.rejected).toEqual([{ index: 0, reason: expect.stringMatching(/bytes, limit 32768 per message/) as unknown }]);
    const events = await delivered();
    expect(events.has('big-small')).toBe(true);
    expect(events.has('big-one')).toBe(false);
  });
});

describe('the Segment webhook door', () => {
  const message = { type: 'track', anonymousId: 'wh-anon', event: 'Product Viewed', messageId: 'wh-1', timestamp: recent(1).toISOString(), properties: { product_id: 'w1' } };
  const raw = JSON.stringify(message);

  it('accepts a request signed over its raw body and refuses unsigned, wrongly signed and altered ones', async () => {
    const secret = LOCAL_CREDENTIALS.segmentSharedSecret;
    const altered = JSON.stringify({ ...message, messageId: 'wh-altered' });
    const cases: [string, string | Buffer, Record<string, string>, number][] = [
      ['unsigned', JSON.stringify({ ...message, messageId: 'wh-unsigned' }), {}, 401],
      ['wrong secret', JSON.stringify({ ...message, messageId: 'wh-wrong' }), { 'x-signature': segmentSignature(raw, 'not-the-secret') }, 401],
      ['signature of another body', altered, { 'x-signature': segmentSignature(raw, secret) }, 401],
      // Same JSON, other bytes: the signature covers the bytes as sent, not a re-serialisation.
      ['re-serialised body', ` ${raw}`, { 'x-signature': segmentSignature(raw, secret) }, 401],
      ['signed', raw, { 'x-signature': segmentSignature(raw, secret) }, 200],
    ];
    for (const [name, body, headers, status] of cases) {
      const res = await post('/v1/webhooks/segment', body, headers);
      expect({ name, status: res.status }).toEqual({ name, status });
    }
    const events = await delivered();
    expect([...events.keys()].filter((id) => id.startsWith('wh-'))).toEqual(['wh-1']);
  });
});

describe('the mParticle webhook door', () => {
  const batch = {
    batch_id: 8_001,
    mpid: 555,
    user_identities: [{ identity_type: 'customer_id', identity: 'mp-user-1' }],
    user_attributes: { membership_type: 'silver' },
    events: [
      { event_type: 'custom_event', data: { event_name: 'Product Viewed', source_message_id: 'mp-1', session_uuid: 'mp-session', timestamp_unixtime_ms: recent(1).getTime(), custom_attributes: { product_id: 'mp-sku-1' } } },
      {
        event_type: 'commerce_event',
        data: {
          source_message_id: 'mp-2',
          session_uuid: 'mp-session',
          timestamp_unixtime_ms: recent(2).getTime(),
          product_action: { action: 'purchase', products: [{ id: 'mp-sku-2', price: 9.5, quantity: 1 }] },
        },
      },
      { event_type: 'session_start', data: { session_uuid: 'mp-session', timestamp_unixtime_ms: recent(0).getTime() } },
    ],
  };

  it('turns an authorized batch into interactions, a link and a profile, and refuses a wrong or missing header', async () => {
    expect((await post('/v1/webhooks/mparticle', batch)).status).toBe(401);
    expect((await post('/v1/webhooks/mparticle', batch, { authorization: 'Basic d3Jvbmc6d3Jvbmc=' })).status).toBe(401);
    const ok = await post('/v1/webhooks/mparticle', batch, { authorization: LOCAL_CREDENTIALS.mparticleAuthorization });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ success: true, accepted: 2, filtered: 1 });

    const events = await delivered();
    expect(events.get('mp-1')).toMatchObject({ eventType: 'View', itemId: 'mp-sku-1', userId: 'mp-user-1' });
    expect(events.get('mp-2:0')).toMatchObject({ eventType: 'Purchase', itemId: 'mp-sku-2', userId: 'mp-user-1' });
    expect(stack.personalize!.received('PutUsers').flatMap((c) => c.request.users)).toContainEqual({
      userId: 'mp-user-1',
      properties: JSON.stringify({ membershipType: 'silver' }),
    });
  });
});

describe('the catalog and profile feeds', () => {
  it('send items and users with their own key, and refuse a tracker key', async () => {
    const items = { items: [{ itemId: 'feed-sku-1', timestamp: recent(1).getTime(), properties: { categoryL1: 'bags', price: 30, creationTimestamp: '2026-01-01T00:00:00Z' } }] };
    expect((await post('/v1/items', items, { authorization: `Bearer ${LOCAL_CREDENTIALS.trackerWriteKey}` })).status).toBe(401);
    expect((await post('/v1/items', items, { authorization: `Bearer ${LOCAL_CREDENTIALS.feedApiKey}` })).status).toBe(200);
    const users = { users: [{ userId: 'feed-user-1', properties: { membershipType: 'gold' } }] };
    expect((await post('/v1/users', users, { 'x-api-key': LOCAL_CREDENTIALS.feedApiKey })).status).toBe(200);
    await stack.poller.idle();
    expect(stack.personalize!.received('PutItems').flatMap((c) => c.request.items.map((i) => i.itemId))).toEqual(['feed-sku-1']);
    expect(stack.personalize!.received('PutUsers').flatMap((c) => c.request.users.map((u) => u.userId))).toEqual(['feed-user-1']);
  });
});

describe('Kinesis throttling at the collector', () => {
  afterEach(() => setCollectorDeps(undefined));

  /** A Kinesis client whose PutRecords answers ProvisionedThroughputExceeded for chosen entries. */
  function throttlingStream(shouldFail: (partitionKey: string, attempt: number) => boolean) {
    const base = collectorDeps();
    const kinesis = kinesisClient();
    const attempts = new Map<string, number>();
    kinesis.middlewareStack.add(
      (next, context) => async (args) => {
        const result = await next(args);
        if (context.commandName !== 'PutRecordsCommand') return result;
        const input = (args.input as { Records: { PartitionKey: string }[] }).Records;
        const output = result.output as PutRecordsCommandOutput;
        // The records were stored by the emulator; pretend some were not (a real throttle stores none of those).
        output.Records = (output.Records ?? []).map((r, i) => {
          const key = input[i]!.PartitionKey;
          const attempt = (attempts.get(key) ?? 0) + 1;
          attempts.set(key, attempt);
          return shouldFail(key, attempt) ? { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'Rate exceeded for shard' } : r;
        });
        return result;
      },
      { step: 'initialize', name: 'injectThrottle' },
    );
    setCollectorDeps({ ...base, stream: { put: (records) => putRecords(kinesis, records, { streamName: stack.names.streamName, baseDelayMs: 5 }) } });
  }

  it('retries throttled entries and acknowledges only after every message is stored', async () => {
    throttlingStream((key, attempt) => key.endsWith('-odd') && attempt < 3);
    const batch = Array.from({ length: 6 }, (_, i) => ({
      type: 'track', anonymousId: `kt-${i}-${i % 2 ? 'odd' : 'even'}`, event: 'Product Viewed', messageId: `kt-${i}`, timestamp: recent(i).toISOString(), properties: { product_id: 'k' },
    }));
    const res = await post('/v1/batch', { batch }, { authorization: basic(LOCAL_CREDENTIALS.trackerWriteKey) });
    expect(res.body).toMatchObject({ success: true, accepted: 6 });
    expect(res.status).toBe(200);
  });

  it('answers 503 naming exactly the messages that could not be stored', async () => {
    throttlingStream((key) => key === 'kt-stuck');
    const batch = [
      { type: 'track', anonymousId: 'kt-fine', event: 'Product Viewed', messageId: 'kt-fine-1', timestamp: recent(1).toISOString(), properties: { product_id: 'k' } },
      { type: 'track', anonymousId: 'kt-stuck', event: 'Product Viewed', messageId: 'kt-stuck-1', timestamp: recent(2).toISOString(), properties: { product_id: 'k' } },
    ];
    const res = await post('/v1/batch', { batch }, { authorization: basic(LOCAL_CREDENTIALS.trackerWriteKey) });
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ success: false, notStored: [1], accepted: 1 });
  });
});

describe('CORS for browser trackers', () => {
  it('answers a preflight with the configured origin', async () => {
    const res = await fetch(`${stack.http.url}/v1/batch`, {
      method: 'OPTIONS',
      headers: { origin: 'https://shop.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,authorization' },
    });
    expect(res.status).toBeLessThan(300);
    expect(res.headers.get('access-control-allow-origin')).toMatch(/^(\*|https:\/\/shop\.example)$/);
    expect(res.headers.get('access-control-allow-methods')).toMatch(/POST/);
  });
});
