import { gzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import RudderAnalytics from '@rudderstack/rudder-sdk-node';
import { describe, expect, it } from 'vitest';
import { LOCAL_CREDENTIALS } from '../../local/stack.js';
import { knownUserSessionId } from '../../shared/personalize/put-session.js';
import { useEmulators } from '../support/env.js';
import { useLocalStack } from '../support/stack.js';

/**
 * Server and mobile trackers through the public HTTP interface of the local stack, each request
 * shaped as the published client sends it (docs/trackers.md), asserted at the local Personalize
 * endpoint.
 */

useEmulators();
const stack = useLocalStack('trackers');

const writeKey = LOCAL_CREDENTIALS.trackerWriteKey;

const recent = (offsetSeconds: number) => new Date(Date.now() - 3_600_000 + offsetSeconds * 1000);
const seconds = (d: Date) => Math.floor(d.getTime() / 1000);

async function eventsAtPersonalize() {
  await stack().poller.idle();
  return new Map(stack().personalize!.receivedEvents().map((e) => [e.eventId ?? '', e]));
}

function usersAtPersonalize() {
  return stack().personalize!.received('PutUsers').flatMap((c) => c.request.users);
}

/** A batch as analytics-kotlin and analytics-swift build it: writeKey and sentAt beside the batch. */
function mobileBatch(prefix: string, library: string) {
  const viewedAt = recent(10);
  const batch = [
    {
      type: 'track', event: 'Product Viewed', anonymousId: `${prefix}-anon`, messageId: `${prefix}-view`, timestamp: viewedAt.toISOString(),
      properties: { product_id: `${prefix}-sku-1` }, context: { library: { name: library, version: '1.0' }, device: { type: library.includes('kotlin') ? 'android' : 'ios' } },
    },
    { type: 'identify', anonymousId: `${prefix}-anon`, userId: `${prefix}-user`, messageId: `${prefix}-identify`, timestamp: recent(11).toISOString(), traits: { membershipType: 'silver' } },
    { type: 'track', event: 'Product Clicked', anonymousId: `${prefix}-anon`, userId: `${prefix}-user`, messageId: `${prefix}-click`, timestamp: recent(12).toISOString(), properties: { product_id: `${prefix}-sku-2` } },
  ];
  return { viewedAt, body: { batch, sentAt: new Date().toISOString(), writeKey } };
}

describe('mobile SDK uploads', () => {
  it('takes an analytics-kotlin upload: /v1/b, text/plain, gzip, chunked, write key only inside the compressed body', async () => {
    const { viewedAt, body } = mobileBatch('kotlin', 'analytics-kotlin');
    const gzipped = gzipSync(Buffer.from(JSON.stringify(body)));
    // A stream body goes out chunked, as the Kotlin SDK streams its batch file.
    const res = await fetch(`${stack().http.url}/v1/b`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', 'content-encoding': 'gzip' },
      body: Readable.toWeb(Readable.from([gzipped.subarray(0, 20), gzipped.subarray(20)])) as ReadableStream,
      duplex: 'half',
    });
    expect(res.status).toBe(200);

    const events = await eventsAtPersonalize();
    expect(events.get('kotlin-view')).toMatchObject({ eventType: 'View', itemId: 'kotlin-sku-1', sessionId: knownUserSessionId('kotlin-anon'), userId: 'kotlin-user' });
    expect(Math.abs(events.get('kotlin-view')!.sentAt - seconds(viewedAt))).toBeLessThanOrEqual(2);
    expect(events.get('kotlin-click')).toMatchObject({ eventType: 'Click', itemId: 'kotlin-sku-2', userId: 'kotlin-user' });
    // A mobile write key is public: its identify links the session, but its traits are not profile updates by default.
    expect(usersAtPersonalize()).toEqual([]);
  });

  it('takes an analytics-swift upload: /v1/b, application/json; charset=utf-8, write key in the body', async () => {
    const { viewedAt, body } = mobileBatch('swift', 'analytics-swift');
    const res = await fetch(`${stack().http.url}/v1/b`, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(200);

    const events = await eventsAtPersonalize();
    expect(events.get('swift-view')).toMatchObject({ eventType: 'View', itemId: 'swift-sku-1', sessionId: knownUserSessionId('swift-anon'), userId: 'swift-user' });
    expect(Math.abs(events.get('swift-view')!.sentAt - seconds(viewedAt))).toBeLessThanOrEqual(2);
    expect(events.get('swift-click')).toMatchObject({ eventType: 'Click', itemId: 'swift-sku-2' });
  });
});

describe('@rudderstack/rudder-sdk-node with its defaults', () => {
  it('delivers gzip-compressed, form-urlencoded-labelled batches to /v1/batch', async () => {
    const sent: { headers: Record<string, unknown> }[] = [];
    // A server SDK holds a server key (its traits are profile updates).
    const client = new RudderAnalytics(LOCAL_CREDENTIALS.serverWriteKey, { dataPlaneUrl: stack().http.url, flushAt: 10, flushInterval: 200, logLevel: 'error' });
    // Observe what the SDK really sends, without changing it.
    (client as unknown as { axiosInstance: { interceptors: { request: { use(f: (c: { headers: Record<string, unknown> }) => unknown): void } } } }).axiosInstance.interceptors.request.use((config) => {
      sent.push({ headers: { ...config.headers } });
      return config;
    });
    const viewedAt = recent(20);
    // The SDK may flush these in separate requests: identify first, so the anonymous view after it is stitched in real time.
    client.identify({ anonymousId: 'rs-node-anon', userId: 'rs-node-user', messageId: 'rs-node-identify', timestamp: recent(19), traits: { membershipType: 'gold' } } as never);
    client.track({ anonymousId: 'rs-node-anon', event: 'Product Viewed', messageId: 'rs-node-view', timestamp: viewedAt, properties: { product_id: 'rs-sku-1' } } as never);
    client.track({ userId: 'rs-node-user', anonymousId: 'rs-node-anon', event: 'Product Clicked', messageId: 'rs-node-click', timestamp: recent(22), properties: { product_id: 'rs-sku-2' } } as never);
    await new Promise<void>((resolve, reject) => {
      void client.flush((error?: Error) => (error ? reject(error) : resolve()));
    });

    expect(sent.length).toBeGreaterThan(0);
    const headers = Object.fromEntries(Object.entries(sent[0]!.headers).map(([k, v]) => [k.toLowerCase(), v]));
    expect(headers['content-encoding']).toBe('gzip');
    const events = await eventsAtPersonalize();
    expect(events.get('rs-node-view')).toMatchObject({ eventType: 'View', itemId: 'rs-sku-1', sessionId: knownUserSessionId('rs-node-anon'), userId: 'rs-node-user' });
    expect(Math.abs(events.get('rs-node-view')!.sentAt - seconds(viewedAt))).toBeLessThanOrEqual(2);
    expect(events.get('rs-node-click')).toMatchObject({ eventType: 'Click', itemId: 'rs-sku-2', userId: 'rs-node-user' });
    expect(usersAtPersonalize()).toContainEqual({ userId: 'rs-node-user', properties: JSON.stringify({ membershipType: 'gold' }) });
  });
});

describe('request bodies', () => {
  const track = (id: string) => ({ type: 'track', event: 'Product Viewed', anonymousId: `${id}-anon`, messageId: id, timestamp: recent(30).toISOString(), properties: { product_id: 'b-sku' } });
  const auth = { authorization: `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}` };

  it('reads JSON whatever the Content-Type says', async () => {
    for (const [i, type] of ['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-8', 'application/octet-stream'].entries()) {
      const res = await fetch(`${stack().http.url}/v1/t`, { method: 'POST', headers: { ...auth, 'content-type': type }, body: JSON.stringify(track(`ct-${i}`)) });
      expect(res.status, type).toBe(200);
    }
    const events = await eventsAtPersonalize();
    expect([0, 1, 2, 3].map((i) => events.get(`ct-${i}`)?.itemId)).toEqual(['b-sku', 'b-sku', 'b-sku', 'b-sku']);
  });

  it('inflates deflate bodies too, and refuses an unknown encoding with 415 and a reason', async () => {
    const { deflateSync } = await import('node:zlib');
    const deflated = await fetch(`${stack().http.url}/v1/t`, { method: 'POST', headers: { ...auth, 'content-encoding': 'deflate' }, body: deflateSync(JSON.stringify(track('deflated'))) });
    expect(deflated.status).toBe(200);
    const zstd = await fetch(`${stack().http.url}/v1/t`, { method: 'POST', headers: { ...auth, 'content-encoding': 'zstd' }, body: 'x' });
    expect(zstd.status).toBe(415);
    expect(((await zstd.json()) as { message: string }).message).toMatch(/zstd.*not supported/);
    expect((await eventsAtPersonalize()).has('deflated')).toBe(true);
  });

  it('answers a gzip bomb with 413 after inflating no more than the limit, and corrupt gzip with 400', async () => {
    // 1 GB of zeros compresses to ~1 MB; 200 MB fits under the body limit as ~200 KB.
    const bomb = gzipSync(Buffer.alloc(200 * 1024 * 1024), { level: 9 });
    expect(bomb.length).toBeLessThan(512_000);
    const before = process.memoryUsage().rss;
    const res = await fetch(`${stack().http.url}/v1/b`, { method: 'POST', headers: { 'content-encoding': 'gzip' }, body: bomb });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { message: string }).message).toMatch(/inflates past \d+ bytes/);
    // Bounded memory: nowhere near the 200 MB the bomb expands to.
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);

    const corrupt = await fetch(`${stack().http.url}/v1/b`, { method: 'POST', headers: { 'content-encoding': 'gzip' }, body: Buffer.from('not gzip at all') });
    expect(corrupt.status).toBe(400);
    expect(((await corrupt.json()) as { message: string }).message).toMatch(/not valid gzip/);
  });
});
