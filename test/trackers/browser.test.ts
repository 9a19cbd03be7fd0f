import { randomUUID } from 'node:crypto';
import type { Page } from 'puppeteer-core';
import { describe, expect, it } from 'vitest';
import { collectorDeps, setCollectorDeps } from '../../shared/collect/handle.js';
import type { ReceivedEvent } from '../../local/personalize-server.js';
import { LOCAL_CREDENTIALS } from '../../local/stack.js';
import { knownUserSessionId } from '../../shared/personalize/put-session.js';
import { useEmulators } from '../support/env.js';
import {
  headersNeedingPermission,
  openTabBeside,
  waitFor,
  type CallResult,
  type Exchange,
  type HarnessGlobals,
  type RudderPageConfig,
  type SegmentPageConfig,
  type TrackerTab,
} from './support/browser.js';
import { useTrackerStack } from './support/harness.js';

/**
 * Real browser SDKs (@segment/analytics-next, @rudderstack/analytics-js) in headless Chromium,
 * loaded from a page on its own origin, delivering through the collector's public HTTP interface of
 * the local stack (CORS preflights included) to the local Personalize endpoint. Every test asserts
 * what reached Personalize, and what the SDK put on the wire.
 */

useEmulators();

const WRITE_KEY = LOCAL_CREDENTIALS.trackerWriteKey;
const BASIC_AUTH = `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`;
/** How far Personalize's sentAt (seconds) may be from the event time the SDK stamped. */
const SENT_AT_TOLERANCE_S = 3;

const { running, open } = useTrackerStack('browser', { segment: 'Segment analytics-next', rudder: 'RudderStack analytics-js' }, {
  // Identify traits from a browser (public) write key reach Personalize only where the deployment
  // accepts them (the default drops them: anyone holding the page's key could send them).
  processorEnv: { COLLECTOR_PUBLIC_PROFILE_UPDATES: 'accept' },
});

/** The stack's collector origin, as the pages call it (cross-origin to the page server). */
const collectorOrigin = () => running().stack.http.url;

const harness = (page: Page) => ({
  segment: {
    load: (config: SegmentPageConfig) => page.evaluate((c) => (globalThis as unknown as HarnessGlobals).segmentHarness.load(c), config),
    track: (event: string, properties: Record<string, unknown>, messageId: string) =>
      page.evaluate((e, p, m) => (globalThis as unknown as HarnessGlobals).segmentHarness.track(e, p, m), event, properties, messageId),
    page: (name: string, properties: Record<string, unknown>, messageId: string) =>
      page.evaluate((n, p, m) => (globalThis as unknown as HarnessGlobals).segmentHarness.page(n, p, m), name, properties, messageId),
    identify: (userId: string, traits: Record<string, unknown>, messageId: string) =>
      page.evaluate((u, t, m) => (globalThis as unknown as HarnessGlobals).segmentHarness.identify(u, t, m), userId, traits, messageId),
  },
  rudder: {
    load: (config: RudderPageConfig) => page.evaluate((c) => (globalThis as unknown as HarnessGlobals).rudderHarness.load(c), config),
    track: (event: string, properties: Record<string, unknown>) =>
      page.evaluate((e, p) => (globalThis as unknown as HarnessGlobals).rudderHarness.track(e, p), event, properties),
    page: (category: string, name: string, properties: Record<string, unknown>) =>
      page.evaluate((c, n, p) => (globalThis as unknown as HarnessGlobals).rudderHarness.page(c, n, p), category, name, properties),
    identify: (userId: string, traits: Record<string, unknown>) =>
      page.evaluate((u, t) => (globalThis as unknown as HarnessGlobals).rudderHarness.identify(u, t), userId, traits),
  },
});

/** What the browser exchanged with the collector, for failure messages. */
const wire = (t: TrackerTab) => () => `requests other than the page's own (collector: ${collectorOrigin()}):\n${t.network.describe((e) => e.origin !== running().pages.origin)}`;

/** Waits until Personalize holds an event for each id; answers them by id. */
async function atPersonalize(t: TrackerTab, eventIds: readonly string[], timeoutMs = 10_000): Promise<Map<string, ReceivedEvent>> {
  const personalize = running().stack.personalize!;
  return waitFor(
    `events ${eventIds.join(', ')} at Personalize`,
    () => {
      const byId = new Map(personalize.receivedEvents().filter((e) => e.eventId !== undefined && eventIds.includes(e.eventId)).map((e) => [e.eventId!, e]));
      return eventIds.every((id) => byId.has(id)) ? byId : undefined;
    },
    { timeoutMs, context: () => `${wire(t)()}\nreceived so far: ${personalize.receivedEvents().map((e) => e.eventId).join(', ') || '(none)'}` },
  );
}

/** Waits for the PutUsers upsert of a user; answers its properties, parsed. */
async function profileAtPersonalize(t: TrackerTab, userId: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const personalize = running().stack.personalize!;
  const user = await waitFor(
    `PutUsers for ${userId} at Personalize`,
    () => personalize.received('PutUsers').flatMap((c) => c.request.users).find((u) => u.userId === userId),
    { timeoutMs, context: wire(t) },
  );
  return JSON.parse(user.properties ?? '{}') as Record<string, unknown>;
}

/** Personalize's sentAt (epoch seconds) is the event time the SDK stamped, within a few seconds. */
function expectEventTime(event: ReceivedEvent | undefined, call: CallResult): void {
  expect(event, `event ${call.messageId}`).toBeDefined();
  const stamped = Date.parse(call.timestamp) / 1000;
  expect(Number.isFinite(stamped), `SDK timestamp ${call.timestamp}`).toBe(true);
  expect(Math.abs(event!.sentAt - stamped)).toBeLessThanOrEqual(SENT_AT_TOLERANCE_S);
}

/**
 * The request succeeded, and the CORS preflight that let it out (its own, or the one Chrome cached
 * for the collector's max-age) passed, for the page's origin, allowing every header the SDK set.
 */
function expectDeliveredThroughCors(t: TrackerTab, request: Exchange): void {
  const context = `${request.method} ${request.path}\n${wire(t)()}`;
  expect(request.failure, `failed: ${context}`).toBeUndefined();
  expect(request.status, context).toBeGreaterThanOrEqual(200);
  expect(request.status, context).toBeLessThan(300);
  expect([running().pages.origin, '*'], context).toContain(request.responseHeaders['access-control-allow-origin']);
  const preflight = t.network.authorizingPreflight(request);
  expect(preflight, `no preflight before ${context}`).toBeDefined();
  expect(preflight!.failure, context).toBeUndefined();
  expect(preflight!.status! >= 200 && preflight!.status! < 300, `preflight answered ${preflight!.status}: ${context}`).toBe(true);
  expect([running().pages.origin, '*'], context).toContain(preflight!.responseHeaders['access-control-allow-origin']);
  const allowed = (preflight!.responseHeaders['access-control-allow-headers'] ?? '').split(',').map((h) => h.trim().toLowerCase());
  const own = t.network.preflightsFor(request).includes(preflight!) ? preflight : undefined;
  expect(headersNeedingPermission(request, own).filter((h) => !allowed.includes(h)), `headers the preflight did not allow: ${context}`).toEqual([]);
}

/**
 * Makes the collector's stream puts chosen by call number store nothing and report every record
 * failed (a throttled Kinesis), so the collector answers 503; the others go to the stream.
 */
function failStreamPuts(fails: (call: number) => boolean): { puts: () => number; restore: () => void } {
  const base = collectorDeps();
  let puts = 0;
  setCollectorDeps({
    ...base,
    stream: {
      put: async (records) => {
        puts += 1;
        if (fails(puts)) return { stored: [], failed: records.map((_, index) => ({ index, error: 'ProvisionedThroughputExceededException: injected' })), calls: 1 };
        return base.stream.put(records);
      },
    },
  });
  return { puts: () => puts, restore: () => setCollectorDeps(base) };
}

/** The first attempt got the injected 503 naming the message, the next one got through. */
function expectFirstAttempt503(t: TrackerTab, posts: Exchange[]): [Exchange, Exchange] {
  expect(posts.length, wire(t)()).toBeGreaterThanOrEqual(2);
  const [first, retry] = posts as [Exchange, Exchange];
  expect(first.status, wire(t)()).toBe(503);
  expect(first.responseHeaders['retry-after']).toBe('1');
  expect(JSON.parse(first.responseBody ?? '{}')).toMatchObject({ success: false, notStored: [0] });
  expectDeliveredThroughCors(t, retry);
  return [first, retry];
}

const parseBody = (request: Exchange): Record<string, unknown> => JSON.parse(request.postData ?? 'null') as Record<string, unknown>;

describe('@segment/analytics-next in Chromium', () => {
  const segmentConfig = (batching?: SegmentPageConfig['batching']): SegmentPageConfig => ({
    writeKey: WRITE_KEY,
    apiHost: `${collectorOrigin().replace(/^http:\/\//, '')}/v1`,
    ...(batching && { batching }),
  });

  it('delivers track, page and identify one request each (/v1/t, /v1/p, /v1/i) and they reach Personalize with session, user, item, type and time', async () => {
    const t = await open('/segment.html');
    const sdk = harness(t.page).segment;
    const { anonymousId } = await sdk.load(segmentConfig());
    expect(anonymousId).not.toBe('');
    const run = `ajs-${randomUUID().slice(0, 8)}`;
    const userId = `${run}-user`;

    // Before identify: anonymous; waited for, so no later identify in the same poller batch can stitch them.
    const viewed = await sdk.track('Product Viewed', { product_id: `${run}-sku-1`, price: 20 }, `${run}-view`);
    const paged = await sdk.page('Product', { product_id: `${run}-sku-2` }, `${run}-page`);
    const anonymous = await atPersonalize(t, [viewed.messageId, paged.messageId]);
    const identified = await sdk.identify(userId, { membershipType: 'gold' }, `${run}-identify`);
    const clicked = await sdk.track('Product Clicked', { product_id: `${run}-sku-3` }, `${run}-click`);
    const after = await atPersonalize(t, [clicked.messageId]);

    expect(anonymous.get(viewed.messageId)).toMatchObject({ eventType: 'View', itemId: `${run}-sku-1`, sessionId: anonymousId });
    expect(anonymous.get(viewed.messageId)!.userId).toBeUndefined();
    expect(anonymous.get(paged.messageId)).toMatchObject({ eventType: 'Page Viewed', itemId: `${run}-sku-2`, sessionId: anonymousId });
    expect(after.get(clicked.messageId)).toMatchObject({ eventType: 'Click', itemId: `${run}-sku-3`, sessionId: knownUserSessionId(anonymousId), userId });
    expectEventTime(anonymous.get(viewed.messageId), viewed);
    expectEventTime(anonymous.get(paged.messageId), paged);
    expectEventTime(after.get(clicked.messageId), clicked);
    expect(await profileAtPersonalize(t, userId)).toMatchObject({ membershipType: 'gold' });
    expect(identified).toMatchObject({ userId, anonymousId });

    // The wire: one POST per call to the type's initial, text/plain JSON, the write key as Basic auth.
    const posts = t.network.requestsTo(collectorOrigin(), 'POST');
    expect(posts.map((p) => p.path)).toEqual(['/v1/t', '/v1/p', '/v1/i', '/v1/t']);
    for (const post of posts) {
      expect(post.requestHeaders['content-type']).toBe('text/plain');
      expect(post.requestHeaders.authorization).toBe(BASIC_AUTH);
      expect(post.requestHeaders['x-retry-count']).toBeUndefined();
      expectDeliveredThroughCors(t, post);
    }
    expect(posts.map((p) => parseBody(p).messageId)).toEqual([viewed.messageId, paged.messageId, identified.messageId, clicked.messageId]);
    expect(parseBody(posts[2]!)).toMatchObject({ type: 'identify', userId, anonymousId, traits: { membershipType: 'gold' }, writeKey: WRITE_KEY });
    expect(t.network.external()).toEqual([]);
  }, 30_000);

  it('delivers a batch in one POST /v1/b and every message in it reaches Personalize', async () => {
    const t = await open('/segment.html');
    const sdk = harness(t.page).segment;
    const { anonymousId } = await sdk.load(segmentConfig({ size: 4, timeout: 5_000 }));
    const run = `ajsb-${randomUUID().slice(0, 8)}`;
    const userId = `${run}-user`;

    const viewed = await sdk.track('Product Viewed', { product_id: `${run}-sku-1` }, `${run}-view`);
    const paged = await sdk.page('Product', { product_id: `${run}-sku-2` }, `${run}-page`);
    await sdk.identify(userId, { membershipType: 'gold' }, `${run}-identify`);
    // The fourth message fills the batch (size 4): sent at once, not after the 5 s timeout.
    const clicked = await sdk.track('Product Clicked', { product_id: `${run}-sku-3` }, `${run}-click`);
    const events = await atPersonalize(t, [viewed.messageId, paged.messageId, clicked.messageId], 4_000);

    // One batch: the login stitches the events before it too, so all three go with the user.
    expect(events.get(viewed.messageId)).toMatchObject({ eventType: 'View', itemId: `${run}-sku-1`, sessionId: knownUserSessionId(anonymousId), userId });
    expect(events.get(paged.messageId)).toMatchObject({ eventType: 'Page Viewed', itemId: `${run}-sku-2`, sessionId: knownUserSessionId(anonymousId), userId });
    expect(events.get(clicked.messageId)).toMatchObject({ eventType: 'Click', itemId: `${run}-sku-3`, sessionId: knownUserSessionId(anonymousId), userId });
    for (const [call, id] of [[viewed, viewed.messageId], [paged, paged.messageId], [clicked, clicked.messageId]] as const) expectEventTime(events.get(id), call);
    expect(await profileAtPersonalize(t, userId)).toMatchObject({ membershipType: 'gold' });

    const posts = t.network.requestsTo(collectorOrigin(), 'POST');
    expect(posts.map((p) => p.path)).toEqual(['/v1/b']);
    const batch = parseBody(posts[0]!);
    expect(batch).toMatchObject({ writeKey: WRITE_KEY, sentAt: expect.any(String) as unknown });
    expect((batch.batch as { type: string }[]).map((m) => m.type)).toEqual(['track', 'page', 'identify', 'track']);
    expect(posts[0]!.requestHeaders['content-type']).toBe('text/plain');
    expect(posts[0]!.requestHeaders.authorization).toBe(BASIC_AUTH);
    expectDeliveredThroughCors(t, posts[0]!);
    expect(t.network.external()).toEqual([]);
  }, 30_000);

  it('retries a message the collector answered 503, with X-Retry-Count through its own passing preflight, and Personalize gets it exactly once', async () => {
    const fault = failStreamPuts((call) => call === 1);
    try {
      const t = await open('/segment.html');
      // Every request then shows its own preflight: the retry's must ask for, and be allowed, X-Retry-Count.
      await t.network.disableCache();
      const sdk = harness(t.page).segment;
      const { anonymousId } = await sdk.load(segmentConfig());
      const run = `ajsr-${randomUUID().slice(0, 8)}`;

      const viewed = await sdk.track('Product Viewed', { product_id: `${run}-sku-1` }, `${run}-view`);
      const events = await atPersonalize(t, [viewed.messageId], 12_000);
      expect(events.get(viewed.messageId)).toMatchObject({ eventType: 'View', itemId: `${run}-sku-1`, sessionId: anonymousId });
      expectEventTime(events.get(viewed.messageId), viewed);

      const posts = t.network.requestsTo(collectorOrigin(), 'POST');
      expect(posts.every((p) => p.path === '/v1/t')).toBe(true);
      const [first, retry] = expectFirstAttempt503(t, posts);
      expect(first.requestHeaders['x-retry-count']).toBeUndefined();
      expect(retry.requestHeaders['x-retry-count']).toBe('1');
      expect(parseBody(retry).messageId).toBe(viewed.messageId);
      const preflights = t.network.preflightsFor(retry);
      expect(preflights.map((p) => p.requestHeaders['access-control-request-headers']), wire(t)()).toEqual([expect.stringContaining('x-retry-count')]);

      await running().stack.poller.idle();
      expect(running().stack.personalize!.receivedEvents().filter((e) => e.eventId === viewed.messageId)).toHaveLength(1);
      expect(fault.puts()).toBe(posts.length);
      expect(t.network.external()).toEqual([]);
    } finally {
      fault.restore();
    }
  }, 30_000);
});

describe('@rudderstack/analytics-js in Chromium', () => {
  /** The smallest source config the SDK accepts (what its control plane would answer): no destinations. */
  const sourceConfig = {
    source: {
      id: 'local-browser-source',
      name: 'local browser source',
      workspaceId: 'local-workspace',
      enabled: true,
      config: { statsCollection: { errors: { enabled: false }, metrics: { enabled: false } } },
      destinations: [],
    },
  };

  it('delivers track, identify (traits in context.traits) and page to /v1/track, /v1/identify, /v1/page and they reach Personalize', async () => {
    const t = await open('/rudder.html');
    const sdk = harness(t.page).rudder;
    const { anonymousId } = await sdk.load({ writeKey: WRITE_KEY, dataPlaneUrl: collectorOrigin(), sourceConfig });
    expect(anonymousId).not.toBe('');
    const run = `rs-${randomUUID().slice(0, 8)}`;
    const userId = `${run}-user`;

    const viewed = await sdk.track('Product Viewed', { product_id: `${run}-sku-1`, price: 20 });
    const anonymous = await atPersonalize(t, [viewed.messageId]);
    const identified = await sdk.identify(userId, { membershipType: 'gold' });
    const paged = await sdk.page('Catalog', 'Product', { product_id: `${run}-sku-2` });
    const after = await atPersonalize(t, [paged.messageId]);

    expect(anonymous.get(viewed.messageId)).toMatchObject({ eventType: 'View', itemId: `${run}-sku-1`, sessionId: anonymousId });
    expect(anonymous.get(viewed.messageId)!.userId).toBeUndefined();
    expect(after.get(paged.messageId)).toMatchObject({ eventType: 'Page Viewed', itemId: `${run}-sku-2`, sessionId: knownUserSessionId(anonymousId), userId });
    expectEventTime(anonymous.get(viewed.messageId), viewed);
    expectEventTime(after.get(paged.messageId), paged);
    expect(await profileAtPersonalize(t, userId)).toMatchObject({ membershipType: 'gold' });

    // The wire: one POST per call to /v1/<type>, JSON, Basic auth, and the SDK's own AnonymousId/SentAt headers.
    const posts = t.network.requestsTo(collectorOrigin(), 'POST');
    expect(posts.map((p) => p.path)).toEqual(['/v1/track', '/v1/identify', '/v1/page']);
    for (const post of posts) {
      expect(post.requestHeaders['content-type']).toBe('application/json;charset=UTF-8');
      expect(post.requestHeaders.authorization).toBe(BASIC_AUTH);
      expect(post.requestHeaders.anonymousid).toBe(Buffer.from(anonymousId).toString('base64'));
      expect(post.requestHeaders.sentat).toBe(parseBody(post).sentAt);
      expectDeliveredThroughCors(t, post);
    }
    expect(posts.map((p) => parseBody(p).messageId)).toEqual([viewed.messageId, identified.messageId, paged.messageId]);
    const identifyBody = parseBody(posts[1]!);
    expect(identifyBody).toMatchObject({ type: 'identify', userId, anonymousId, context: { traits: { membershipType: 'gold' } } });
    expect(identifyBody.traits).toBeUndefined();
    expect(t.network.external()).toEqual([]);
  }, 30_000);

  it('retries a message the collector answered 503 with its Rsa-Retry-* headers through their own passing preflight, and Personalize gets it exactly once', async () => {
    const fault = failStreamPuts((call) => call === 1);
    try {
      const t = await open('/rudder.html');
      await t.network.disableCache();
      const sdk = harness(t.page).rudder;
      // Shorter first backoff than the SDK's 1 s x 2: the same retry, sooner.
      const { anonymousId } = await sdk.load({ writeKey: WRITE_KEY, dataPlaneUrl: collectorOrigin(), sourceConfig, queueOptions: { minRetryDelay: 200 } });
      const run = `rsr-${randomUUID().slice(0, 8)}`;

      const viewed = await sdk.track('Product Viewed', { product_id: `${run}-sku-1` });
      const events = await atPersonalize(t, [viewed.messageId], 12_000);
      expect(events.get(viewed.messageId)).toMatchObject({ eventType: 'View', itemId: `${run}-sku-1`, sessionId: anonymousId });
      expectEventTime(events.get(viewed.messageId), viewed);

      const posts = t.network.requestsTo(collectorOrigin(), 'POST');
      expect(posts.every((p) => p.path === '/v1/track')).toBe(true);
      const [first, retry] = expectFirstAttempt503(t, posts);
      expect(Object.keys(first.requestHeaders).filter((h) => h.startsWith('rsa-'))).toEqual([]);
      expect(retry.requestHeaders['rsa-retry-attempt']).toBe('1');
      // 3.34.1 computes "server-503" for the failed attempt but sends the reason stored with the
      // in-progress entry, which a requeued item does not carry: "client-network" on the wire.
      expect(retry.requestHeaders['rsa-retry-reason']).toMatch(/^(server-503|client-network)$/);
      expect(Number(retry.requestHeaders['rsa-since-last-attempt'])).toBeGreaterThanOrEqual(0);
      expect(Number(retry.requestHeaders['rsa-since-first-attempt'])).toBeGreaterThanOrEqual(0);
      expect(parseBody(retry).messageId).toBe(viewed.messageId);
      const asked = t.network.preflightsFor(retry).map((p) => p.requestHeaders['access-control-request-headers'] ?? '');
      expect(asked, wire(t)()).toHaveLength(1);
      expect(asked[0]!.split(',')).toEqual(expect.arrayContaining(['rsa-retry-attempt', 'rsa-retry-reason', 'rsa-since-first-attempt', 'rsa-since-last-attempt']));

      await running().stack.poller.idle();
      expect(running().stack.personalize!.receivedEvents().filter((e) => e.eventId === viewed.messageId)).toHaveLength(1);
      expect(fault.puts()).toBe(posts.length);
      expect(t.network.external()).toEqual([]);
    } finally {
      fault.restore();
    }
  }, 30_000);

  it('delivers, on the next page load, a message the previous page left queued (Rsa-Recovered through a passing preflight), and Personalize gets it once', async () => {
    // While the first page is open the collector answers 503; that page's retry is not due before it closes.
    const fault = failStreamPuts(() => true);
    let first: TrackerTab;
    let viewed: CallResult;
    let anonymousId: string;
    try {
      first = await open('/rudder.html');
      ({ anonymousId } = await harness(first.page).rudder.load({ writeKey: WRITE_KEY, dataPlaneUrl: collectorOrigin(), sourceConfig, queueOptions: { minRetryDelay: 60_000 } }));
      viewed = await harness(first.page).rudder.track('Product Viewed', { product_id: `rsq-${randomUUID().slice(0, 8)}-sku` });
      await waitFor('the first attempt answered 503', () => (first.network.requestsTo(collectorOrigin(), 'POST').some((p) => p.status === 503) ? true : undefined), { context: wire(first) });
      await first.page.close();
    } finally {
      fault.restore();
    }

    // The next page of the same site (same storage) takes over the abandoned queue after the SDK's
    // reclaim timeout (10 s, not configurable lower) and sends the message marked as recovered.
    const next = await openTabBeside(first, `${running().pages.origin}/rudder.html`);
    try {
      await next.network.disableCache();
      const again = await harness(next.page).rudder.load({ writeKey: WRITE_KEY, dataPlaneUrl: collectorOrigin(), sourceConfig });
      expect(again.anonymousId).toBe(anonymousId);
      const recovered = await waitFor(
        'the recovered message to be sent',
        () => next.network.requestsTo(collectorOrigin(), 'POST').find((p) => p.requestHeaders['rsa-recovered'] === 'true' && (p.status !== undefined || p.failure !== undefined)),
        { timeoutMs: 20_000, context: wire(next) },
      );
      expect(parseBody(recovered).messageId).toBe(viewed.messageId);
      expectDeliveredThroughCors(next, recovered);
      const events = await atPersonalize(next, [viewed.messageId]);
      expect(events.get(viewed.messageId)).toMatchObject({ eventType: 'View', sessionId: anonymousId });
      expectEventTime(events.get(viewed.messageId), viewed);
      await running().stack.poller.idle();
      expect(running().stack.personalize!.receivedEvents().filter((e) => e.eventId === viewed.messageId)).toHaveLength(1);
      expect(next.network.external()).toEqual([]);
    } finally {
      await next.close();
    }
  }, 45_000);
});
