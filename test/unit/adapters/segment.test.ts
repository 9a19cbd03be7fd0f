import { describe, expect, it } from 'vitest';
import type { CanonicalMessage, InteractionMessage } from '../../../schemas/canonical.js';
import { loadEventMapping, mapEvent, parseEventMapping } from '../../../shared/event-mapping.js';
import { fromSegmentBatch, fromSegmentMessage } from '../../../shared/adapters/segment.js';
import type { AdapterContext, AdapterResult } from '../../../shared/adapters/types.js';

const mapping = loadEventMapping({});
const RECEIVED_AT = Date.parse('2024-05-14T09:30:02.250Z');
const ctx: AdapterContext = { receivedAt: RECEIVED_AT, mapping };
/** A tracker door (the Segment tracking API): device clocks, corrected only when ahead of ours. */
const device: AdapterContext = { ...ctx, clock: 'device', clockSkewToleranceMs: 60_000 };

const ANON = '5f1c2a9e-8d3b-4e7a-b1c0-9a2f6e4d8c31';
const USER = 'cus_8812094';

const browserContext = {
  library: { name: 'analytics.js', version: 'next-1.70.0' },
  page: { path: '/p/trail-runner-2', url: 'https://shop.example/p/trail-runner-2', title: 'Trail Runner 2 | Northpeak' },
  userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
  locale: 'de-DE',
};
const iosContext = {
  library: { name: 'analytics-swift', version: '1.5.11' },
  device: { type: 'ios', model: 'iPhone15,3', manufacturer: 'Apple' },
  os: { name: 'iOS', version: '17.4.1' },
  app: { name: 'Northpeak', version: '4.12.0', build: '4120' },
};

const productViewed = {
  type: 'track',
  event: 'Product Viewed',
  messageId: 'ajs-next-8d1c9f6b3e2a4c7f9b0e1d2c3a4b5f6e',
  anonymousId: ANON,
  timestamp: '2024-05-14T09:29:55.120Z',
  properties: {
    product_id: 'NP-4711-BLU',
    sku: '4711-BLU-42',
    category: 'Footwear',
    name: 'Trail Runner 2',
    brand: 'Northpeak',
    variant: 'Blue',
    price: 129.9,
    currency: 'EUR',
    position: 3,
    url: 'https://shop.example/p/trail-runner-2',
  },
  context: browserContext,
};

const productAdded = {
  type: 'track',
  event: 'Product Added',
  messageId: 'a3b9d3c4-1f0e-4c59-9a52-2d1c6f0e7b44',
  anonymousId: ANON,
  userId: USER,
  timestamp: '2024-05-14T09:29:58.000Z',
  properties: {
    cart_id: 'cart_77a1',
    product_id: 'NP-2210-GRN',
    sku: '2210-GRN-M',
    name: 'Merino Hoodie',
    price: 49.5,
    quantity: 2,
    recommendation_id: 'rec-2f0c41d7',
  },
  context: iosContext,
};

const orderCompleted = {
  type: 'track',
  event: 'Order Completed',
  messageId: 'ajs-next-0f4e6a2b9c8d7e1f3a5b6c7d8e9f0a1b',
  anonymousId: ANON,
  userId: USER,
  timestamp: '2024-05-14T09:29:59.500Z',
  properties: {
    order_id: 'ORD-2024-0519-0042',
    affiliation: 'Online Store',
    total: 327.3,
    subtotal: 307.3,
    revenue: 307.3,
    shipping: 20,
    tax: 49.07,
    discount: '10PCT',
    coupon: 'SPRING10',
    currency: 'EUR',
    products: [
      { product_id: 'NP-4711-BLU', sku: '4711-BLU-42', name: 'Trail Runner 2', price: 129.9, quantity: 1, category: 'Footwear' },
      { sku: '2210-GRN-M', name: 'Merino Hoodie', price: 49.5, quantity: 2 },
      { id: 7731, name: 'Trail Socks 3-pack', price: '19.99', quantity: 4 },
    ],
  },
  context: browserContext,
};

function tracker(batch: unknown[], sentAt = '2024-05-14T09:30:00.000Z') {
  return { batch, sentAt, writeKey: 'wk_live_3b1f' };
}

function interactions(result: AdapterResult): InteractionMessage[] {
  return result.messages.map((m) => m.message).filter((m): m is InteractionMessage => m.kind === 'interaction');
}

function only<K extends CanonicalMessage['kind']>(result: AdapterResult, kind: K): Extract<CanonicalMessage, { kind: K }> {
  const found = result.messages.map((m) => m.message).filter((m): m is Extract<CanonicalMessage, { kind: K }> => m.kind === kind);
  expect(found).toHaveLength(1);
  return found[0]!;
}

describe('Segment track (ecommerce spec)', () => {
  it('Product Viewed -> one interaction with the product at its device time, keeping the source name for the mapping', () => {
    const result = fromSegmentBatch(tracker([productViewed]), device);
    expect(result.rejections).toEqual([]);
    expect(result.messages).toHaveLength(1);
    const [event] = interactions(result);
    // Sent 4.88 s after the event, received 2.25 s after sentAt: latency, not a wrong clock.
    expect(event).toMatchObject({
      kind: 'interaction',
      source: 'segment',
      eventId: productViewed.messageId,
      sessionId: ANON,
      eventType: 'Product Viewed',
      itemId: 'NP-4711-BLU',
      timestamp: Date.parse('2024-05-14T09:29:55.120Z'),
    });
    expect(event!.userId).toBeUndefined();
    expect(event!.eventValue).toBeUndefined();
    expect(event!.properties).toMatchObject({ category: 'Footwear', brand: 'Northpeak', device: 'analytics.js' });
    // The processor maps the source name (it maps every interaction).
    expect(mapEvent(mapping, event!.eventType, event!.properties, event!.eventValue)).toMatchObject({ ok: true, eventType: 'View' });
  });

  it('Product Added: eventValue = price × quantity, recommendation_id lifted out of properties, device from the mobile context', () => {
    const result = fromSegmentBatch(tracker([productAdded]), ctx);
    const [event] = interactions(result);
    expect(event).toMatchObject({
      eventType: 'Product Added',
      itemId: 'NP-2210-GRN',
      userId: USER,
      sessionId: ANON,
      eventValue: 99,
      recommendationId: 'rec-2f0c41d7',
    });
    expect(event!.properties).toMatchObject({ cart_id: 'cart_77a1', device: 'ios' });
    expect(event!.properties).not.toHaveProperty('recommendation_id');
  });

  it('Order Completed with 3 products -> 3 Purchase-bound interactions with stable per-product ids', () => {
    const result = fromSegmentBatch(tracker([orderCompleted]), ctx);
    expect(result.rejections).toEqual([]);
    const events = interactions(result);
    expect(events.map((e) => e.eventId)).toEqual([0, 1, 2].map((i) => `${orderCompleted.messageId}:${i}`));
    expect(events.map((e) => e.itemId)).toEqual(['NP-4711-BLU', '2210-GRN-M', '7731']);
    expect(events.map((e) => e.eventValue)).toEqual([129.9, 99, 79.96]);
    expect(result.messages.map((m) => m.index)).toEqual([0, 0, 0]);
    for (const e of events) {
      expect(e).toMatchObject({ eventType: 'Order Completed', userId: USER, sessionId: ANON });
      expect(e.properties).toMatchObject({ order_id: 'ORD-2024-0519-0042', discount: '10PCT', device: 'analytics.js' });
      expect(e.properties).not.toHaveProperty('products');
      expect(mapEvent(mapping, e.eventType, e.properties, e.eventValue)).toMatchObject({ ok: true, eventType: 'Purchase', eventValue: e.eventValue });
    }
  });

  it('Order Completed without products is filtered with a reason; a product without ids is rejected alone', () => {
    const empty = { ...orderCompleted, messageId: 'm-empty', properties: { ...orderCompleted.properties, products: [] } };
    const partial = {
      ...orderCompleted,
      messageId: 'm-partial',
      properties: { ...orderCompleted.properties, products: [orderCompleted.properties.products[0], { name: 'Gift card', price: 25 }, orderCompleted.properties.products[2]] },
    };
    const result = fromSegmentBatch(tracker([empty, partial]), ctx);
    expect(result.filtered).toEqual([{ index: 0, reason: expect.stringContaining('no products') as string }]);
    expect(result.rejections).toHaveLength(1);
    expect(result.rejections[0]).toMatchObject({ index: 1, errors: [{ path: 'properties.products.1.product_id' }] });
    expect(interactions(result).map((e) => e.eventId)).toEqual(['m-partial:0', 'm-partial:2']);
  });

  it('an unmapped name passes through by default and is refused at the door when the mapping says reject', () => {
    const signup = { type: 'track', event: 'Newsletter Signed Up', messageId: 'm-nl', userId: USER, timestamp: '2024-05-14T09:00:00Z', properties: { list: 'weekly' } };
    expect(interactions(fromSegmentMessage(signup, undefined, ctx))[0]).toMatchObject({ eventType: 'Newsletter Signed Up', sessionId: USER, userId: USER });

    const strict = parseEventMapping({ ...mapping, unmapped: 'reject' });
    const refused = fromSegmentMessage(signup, undefined, { ...ctx, mapping: strict });
    expect(refused.messages).toEqual([]);
    expect(refused.rejections[0]).toMatchObject({ index: 0, errors: [{ path: 'event' }] });
  });

  it('a message with only a userId uses it as the session; literal "null" anonymousIds do not count', () => {
    const server = { type: 'track', event: 'Product Viewed', messageId: 'srv-1', userId: 4242, anonymousId: 'null', timestamp: '2024-05-14T08:00:00Z', properties: { sku: 'A-1' } };
    const [event] = interactions(fromSegmentMessage(server, undefined, ctx));
    expect(event).toMatchObject({ sessionId: '4242', userId: '4242', itemId: 'A-1' });
  });

  it("reads a Video spec event's title: asset_id (content), content_asset_id or a one-title content_asset_ids (playback)", () => {
    const video = (event: string, properties: Record<string, unknown>) => {
      const message = { type: 'track', event, messageId: `v-${event}`, userId: 'u-1', timestamp: '2024-05-14T08:00:00Z', properties };
      return interactions(fromSegmentMessage(message, undefined, ctx))[0]?.itemId;
    };
    expect(video('Video Content Playing', { asset_id: 'film-1', position: 10 })).toBe('film-1');
    expect(video('Video Playback Completed', { content_asset_id: 'film-2' })).toBe('film-2');
    expect(video('Video Playback Completed', { content_asset_ids: ['film-3'] })).toBe('film-3');
    // A playback of several titles names no one title the event is about.
    expect(video('Video Playback Completed', { content_asset_ids: ['film-3', 'film-4'] })).toBeUndefined();
  });

  it('properties that are not an object are rejected with their path', () => {
    const result = fromSegmentMessage({ ...productViewed, properties: 'product_id=1' }, undefined, ctx);
    expect(result.rejections[0]).toMatchObject({ index: 0, errors: [{ path: 'properties' }] });
  });
});

describe('Segment page, screen, identify, alias, group, delete', () => {
  it('page with a product id -> interaction "Page Viewed"; without -> filtered', () => {
    const base = { type: 'page', name: 'Product Detail', anonymousId: ANON, timestamp: '2024-05-14T09:29:50Z', context: browserContext };
    const withProduct = { ...base, messageId: 'pg-1', properties: { path: '/p/trail-runner-2', title: 'Trail Runner 2', product_id: 'NP-4711-BLU' } };
    const home = { ...base, messageId: 'pg-2', name: 'Home', properties: { path: '/', title: 'Northpeak', url: 'https://shop.example/' } };
    const result = fromSegmentBatch(tracker([withProduct, home]), ctx);
    expect(interactions(result)).toMatchObject([{ eventType: 'Page Viewed', itemId: 'NP-4711-BLU', eventId: 'pg-1' }]);
    expect(result.filtered).toEqual([{ index: 1, reason: 'page without an item id (properties.product_id, item_id or sku)' }]);
  });

  it('page type comes from the route when the body has none; reject-mode mapping filters page views instead of refusing them', () => {
    const body = { anonymousId: ANON, messageId: 'pg-3', timestamp: '2024-05-14T09:29:50Z', properties: { item_id: 'article-991' } };
    expect(interactions(fromSegmentMessage(body, 'page', ctx))[0]).toMatchObject({ eventType: 'Page Viewed', itemId: 'article-991' });
    const strict = { ...ctx, mapping: parseEventMapping({ ...mapping, unmapped: 'reject' }) };
    const result = fromSegmentMessage(body, 'page', strict);
    expect(result.rejections).toEqual([]);
    expect(result.filtered[0]?.reason).toContain('Page Viewed');
  });

  it('screen with a product -> "Screen Viewed" with the device type; without -> filtered', () => {
    const screen = { type: 'screen', name: 'Product', anonymousId: ANON, messageId: 'sc-1', timestamp: '2024-05-14T09:10:00.000Z', properties: { product_id: 'NP-2210-GRN' }, context: iosContext };
    const plain = { ...screen, messageId: 'sc-2', name: 'Settings', properties: {} };
    const result = fromSegmentBatch(tracker([screen, plain]), ctx);
    expect(interactions(result)).toMatchObject([{ eventType: 'Screen Viewed', itemId: 'NP-2210-GRN', properties: { device: 'ios' } }]);
    expect(result.filtered).toMatchObject([{ index: 1, reason: expect.stringContaining('screen without an item id') as string }]);
  });

  it('identify with anonymousId, userId and traits -> identity link + profile upsert', () => {
    const identify = {
      type: 'identify',
      messageId: 'id-77',
      anonymousId: ANON,
      userId: USER,
      timestamp: '2024-05-14T09:29:40Z',
      traits: { email: 'jo.example@example.com', plan: 'gold', membership_type: 'loyalty', createdAt: '2023-11-02T10:00:00Z' },
      context: browserContext,
    };
    const result = fromSegmentBatch(tracker([identify]), ctx);
    expect(result.rejections).toEqual([]);
    expect(only(result, 'identify')).toMatchObject({ eventId: 'id-77', sessionId: ANON, userId: USER, source: 'segment' });
    expect(only(result, 'identify')).not.toHaveProperty('traits');
    expect(only(result, 'user')).toMatchObject({ eventId: 'id-77:traits', userId: USER, properties: identify.traits });
    expect(result.messages.every((m) => m.index === 0)).toBe(true);
  });

  it('identify takes traits from context.traits when there are none at the top level (RudderStack browser SDK)', () => {
    const rudder = { type: 'identify', messageId: 'rs-id-1', anonymousId: ANON, userId: USER, timestamp: '2024-05-14T09:29:40Z', context: { ...browserContext, traits: { plan: 'gold' } } };
    expect(only(fromSegmentBatch(tracker([rudder]), ctx), 'user')).toMatchObject({ userId: USER, properties: { plan: 'gold' } });
    // Top-level traits win: Segment's libraries also copy some traits into context.traits.
    const both = { ...rudder, traits: { plan: 'silver' } };
    expect(only(fromSegmentBatch(tracker([both]), ctx), 'user')).toMatchObject({ properties: { plan: 'silver' } });
    const wrongShape = { ...rudder, context: { traits: 'gold' } };
    expect(fromSegmentBatch(tracker([wrongShape]), ctx).rejections[0]?.reason).toMatch(/context\.traits/);
  });

  it('identify with only a userId and no traits, or without a userId, is filtered', () => {
    const result = fromSegmentBatch(
      tracker([
        { type: 'identify', messageId: 'id-1', userId: USER, timestamp: '2024-05-14T09:00:00Z' },
        { type: 'identify', messageId: 'id-2', anonymousId: ANON, timestamp: '2024-05-14T09:00:00Z', traits: { locale: 'de' } },
        { type: 'identify', messageId: 'id-3', userId: USER, timestamp: '2024-05-14T09:00:00Z', traits: { plan: 'gold' } },
      ]),
      ctx,
    );
    expect(result.filtered.map((f) => f.index)).toEqual([0, 1]);
    expect(only(result, 'user')).toMatchObject({ eventId: 'id-3:traits', properties: { plan: 'gold' } });
  });

  it('alias -> alias message, also in the spelling of the webhook doc example', () => {
    const result = fromSegmentBatch(
      tracker([
        { type: 'alias', messageId: 'al-1', previousId: ANON, userId: USER, timestamp: '2024-05-14T09:29:41Z' },
        { type: 'alias', messageId: 'al-2', 'Previous ID': 'anon-legacy-1', 'User ID': USER, timestamp: '2024-05-14T09:29:41Z' },
        { type: 'alias', messageId: 'al-3', userId: USER, timestamp: '2024-05-14T09:29:41Z' },
      ]),
      ctx,
    );
    expect(result.messages.map((m) => m.message)).toMatchObject([
      { kind: 'alias', previousId: ANON, userId: USER, eventId: 'al-1' },
      { kind: 'alias', previousId: 'anon-legacy-1', userId: USER, eventId: 'al-2' },
    ]);
    expect(result.rejections).toMatchObject([{ index: 2, errors: [{ path: 'previousId' }] }]);
  });

  it('group is filtered with its reason', () => {
    const result = fromSegmentBatch(
      tracker([{ type: 'group', messageId: 'g-1', userId: USER, groupId: 'acct_41', traits: { name: 'Northpeak GmbH' }, timestamp: '2024-05-14T09:00:00Z' }]),
      ctx,
    );
    expect(result.messages).toEqual([]);
    expect(result.filtered).toEqual([{ index: 0, reason: 'group calls (accounts) are not sent to Personalize' }]);
  });

  it('delete -> a deletion request for the userId; without a time it takes the arrival time; without a userId it is refused', () => {
    const result = fromSegmentMessage(
      { type: 'delete', messageId: 'del-1', userId: USER, receivedAt: '2024-05-14T09:00:01Z', timestamp: '2024-05-14T09:00:00Z' },
      undefined,
      ctx,
    );
    expect(result.messages.map((m) => m.message)).toEqual([
      { kind: 'delete', source: 'segment', eventId: 'del-1', userId: USER, timestamp: Date.parse('2024-05-14T09:00:00Z') },
    ]);
    const untimed = fromSegmentMessage({ type: 'delete', userId: USER }, undefined, ctx);
    expect(untimed.messages[0]?.message).toMatchObject({ kind: 'delete', userId: USER, timestamp: RECEIVED_AT });
    // No messageId: the content is the id, so Segment re-sending the request is the same event.
    expect(untimed.messages[0]?.message.eventId).toBe(fromSegmentMessage({ type: 'delete', userId: USER, sentAt: 'x' }, undefined, ctx).messages[0]?.message.eventId);
    const anonymous = fromSegmentMessage({ type: 'delete', anonymousId: ANON, timestamp: '2024-05-14T09:00:00Z' }, undefined, ctx);
    expect(anonymous.messages).toEqual([]);
    expect(anonymous.rejections).toMatchObject([{ index: 0, errors: [{ path: 'userId' }] }]);
  });
});

describe('Segment batches, time and ids', () => {
  it('one bad message in a batch -> partial result with its index and field paths', () => {
    const bad = { type: 'track', event: 'Product Viewed', properties: { product_id: 'X' } };
    const result = fromSegmentBatch(tracker([productViewed, bad, productAdded]), ctx);
    expect(result.messages.map((m) => m.index)).toEqual([0, 2]);
    expect(result.rejections).toHaveLength(1);
    const [rejection] = result.rejections;
    expect(rejection!.index).toBe(1);
    expect(rejection!.errors?.map((e) => e.path)).toEqual(['anonymousId', 'timestamp']);
    expect(rejection!.reason).toContain('anonymousId: ');
  });

  it('clock skew: a device clock ahead of ours by more than the tolerance is corrected; the message sentAt wins over the batch one', () => {
    const deviceTime = Date.parse(productViewed.timestamp);
    // The device clock runs 2 h ahead: sentAt 2 h after our receive time.
    const ahead = { ...productViewed, timestamp: new Date(deviceTime + 7_200_000).toISOString(), sentAt: new Date(RECEIVED_AT + 7_200_000).toISOString() };
    expect(interactions(fromSegmentBatch(tracker([ahead], '2020-01-01T00:00:00Z'), device))[0]!.timestamp).toBe(deviceTime);
    // 30 s ahead is within the tolerance: the time as given.
    const slightlyAhead = { ...productViewed, sentAt: new Date(RECEIVED_AT + 30_000).toISOString() };
    expect(interactions(fromSegmentBatch(tracker([slightlyAhead]), device))[0]!.timestamp).toBe(deviceTime);
    expect(interactions(fromSegmentBatch({ batch: [{ ...productViewed }] }, device))[0]!.timestamp).toBe(deviceTime);
  });

  it('clock skew: a batch sent long after its events (offline queue, re-send) keeps the device times, not the arrival time', () => {
    const deviceTime = Date.parse(productViewed.timestamp);
    const late = { ...device, receivedAt: deviceTime + 9.8 * 86_400_000 };
    expect(interactions(fromSegmentBatch(tracker([productViewed], productViewed.timestamp), late))[0]!.timestamp).toBe(deviceTime);
  });

  it('/v1/import is historical: times as given, even with a sentAt far ahead of our clock', () => {
    const historical: AdapterContext = { ...device, clock: 'historical' };
    const deviceTime = Date.parse(productViewed.timestamp);
    expect(interactions(fromSegmentBatch(tracker([productViewed], new Date(RECEIVED_AT + 86_400_000).toISOString()), historical))[0]!.timestamp).toBe(deviceTime);
  });

  it('webhook messages already through Segment: timestamp as is; else originalTimestamp corrected with their own receivedAt', () => {
    const processed = {
      ...productViewed,
      timestamp: '2024-05-14T09:29:57.370Z',
      originalTimestamp: '2024-05-14T11:29:55.120+02:00',
      sentAt: '2024-05-14T09:30:00.000Z',
      receivedAt: '2024-05-14T09:30:02.250Z',
    };
    const later = { ...ctx, receivedAt: RECEIVED_AT + 3_600_000 };
    expect(interactions(fromSegmentMessage(processed, undefined, later))[0]!.timestamp).toBe(Date.parse('2024-05-14T09:29:57.370Z'));
    const { timestamp: _dropped, ...withoutTimestamp } = processed;
    // receivedAt − (sentAt − originalTimestamp) = 09:30:02.250 − 4.880 s, whatever our own receive time.
    expect(interactions(fromSegmentMessage(withoutTimestamp, undefined, later))[0]!.timestamp).toBe(Date.parse('2024-05-14T09:29:57.370Z'));
  });

  it('unparseable, missing and implausible times are rejected; the receive time is never used', () => {
    const result = fromSegmentBatch(
      {
        batch: [
          { ...productViewed, timestamp: 'yesterday' },
          { ...productViewed, timestamp: undefined },
          { ...productViewed, timestamp: '2024-02-31T10:00:00Z' },
          { ...productViewed, timestamp: 1715678995 },
          { ...productViewed, timestamp: new Date(Date.now() + 3 * 86_400_000).toISOString() },
        ],
      },
      ctx,
    );
    expect(result.messages).toEqual([]);
    expect(result.rejections.map((r) => [r.index, r.errors?.[0]?.path])).toEqual([
      [0, 'timestamp'],
      [1, 'timestamp'],
      [2, 'timestamp'],
      [3, 'timestamp'],
      [4, 'timestamp'],
    ]);
    expect(result.rejections[3]!.reason).toContain('epoch seconds');
  });

  it('a bad batch-level sentAt is named as such', () => {
    const result = fromSegmentBatch(tracker([productViewed], 'not a date'), device);
    expect(result.rejections[0]).toMatchObject({ index: 0, errors: [{ path: 'sentAt', message: expect.stringContaining('(batch)') as string }] });
  });

  it('eventId: messageId is stable across calls; without one, a content hash that is stable across retries too', () => {
    const first = fromSegmentBatch(tracker([productViewed, orderCompleted]), ctx);
    const retry = fromSegmentBatch(tracker([productViewed, orderCompleted], '2024-05-14T09:31:00.000Z'), { ...ctx, receivedAt: RECEIVED_AT + 60_000 });
    expect(retry.messages.map((m) => m.message.eventId)).toEqual(first.messages.map((m) => m.message.eventId));

    const { messageId: _none, ...anonymous } = productViewed;
    const a = fromSegmentMessage(anonymous, undefined, ctx).messages[0]!.message.eventId;
    // A library retry rewrites sentAt: still the same event.
    const retried = { ...structuredClone(anonymous), sentAt: '2024-05-14T09:30:04.000Z' };
    const b = fromSegmentMessage(retried, undefined, { ...ctx, receivedAt: RECEIVED_AT + 5_000 }).messages[0]!.message.eventId;
    const other = fromSegmentMessage({ ...anonymous, event: 'Product Clicked' }, undefined, ctx).messages[0]!.message.eventId;
    expect(a).toMatch(/^h-[0-9a-f]{40}$/);
    expect(b).toBe(a);
    expect(other).not.toBe(a);
  });

  it('batch-level context applies under the message context', () => {
    const { context: _c, ...bare } = productViewed;
    const result = fromSegmentBatch({ batch: [bare, { ...bare, messageId: 'm2', context: iosContext }], context: { library: { name: 'analytics-node' } } }, ctx);
    expect(interactions(result).map((e) => e.properties?.device)).toEqual(['analytics-node', 'ios']);
  });
});

describe('Segment hostile input', () => {
  it.each([
    ['null', null],
    ['an array', [productViewed]],
    ['a string', 'batch'],
    ['a number', 42],
    ['undefined', undefined],
  ])('a batch body that is %s -> one request-level rejection', (_label, body) => {
    const result = fromSegmentBatch(body, ctx);
    expect(result.messages).toEqual([]);
    expect(result.rejections).toHaveLength(1);
    expect(result.rejections[0]!.index).toBe(-1);
  });

  it('{"batch": "x"} names the field; non-object messages are rejected one by one', () => {
    expect(fromSegmentBatch({ batch: 'x' }, ctx).rejections).toMatchObject([{ index: -1, errors: [{ path: 'batch' }] }]);
    const result = fromSegmentBatch({ batch: [null, 5, 'x', [], { type: 42 }, { type: 'launch' }] }, ctx);
    expect(result.rejections.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(fromSegmentMessage([productViewed], 'track', ctx).rejections[0]!.index).toBe(-1);
  });

  it('__proto__ and constructor keys are dropped and pollute nothing', () => {
    const body = JSON.parse(
      `{"batch":[{"type":"track","event":"Product Viewed","messageId":"p-1","anonymousId":"${ANON}","timestamp":"2024-05-14T09:29:55Z",` +
        `"properties":{"product_id":"A","__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"nested":{"__proto__":{"polluted":true}}},` +
        `"context":{"__proto__":{"device":{"type":"evil"}}}}],"__proto__":{"polluted":true}}`,
    ) as unknown;
    const result = fromSegmentBatch(body, ctx);
    const [event] = interactions(result);
    expect(event!.properties).toEqual({ product_id: 'A', nested: {} });
    expect(Object.keys(event!.properties!)).not.toContain('__proto__');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(event!.properties)).toBe(Object.prototype);
  });

  it('deep nesting, huge batches and odd ids never throw', () => {
    let deep: unknown = 'leaf';
    for (let i = 0; i < 5000; i++) deep = { d: deep };
    const huge = Array.from({ length: 20_000 }, (_, i) => ({ ...productViewed, messageId: `m-${i}` }));
    expect(() => fromSegmentBatch({ batch: [{ ...productViewed, properties: { product_id: 'A', deep } }] }, ctx)).not.toThrow();
    const big = fromSegmentBatch({ batch: huge }, ctx);
    expect(big.messages).toHaveLength(20_000);
    const odd = fromSegmentBatch({ batch: [{ ...productViewed, messageId: 'x'.repeat(300) }, { ...productViewed, anonymousId: { id: 1 } }, { ...productViewed, properties: { ...productViewed.properties, product_id: ['a'] } }] }, ctx);
    expect(odd.rejections.map((r) => [r.index, r.errors?.[0]?.path])).toEqual([
      [0, 'messageId'],
      [1, 'anonymousId'],
    ]);
    expect(interactions(odd)[0]!.itemId).toBe('4711-BLU-42');
  });
});
