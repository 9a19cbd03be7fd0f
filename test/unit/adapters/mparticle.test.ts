import { describe, expect, it } from 'vitest';
import type { CanonicalMessage, InteractionMessage } from '../../../schemas/canonical.js';
import { loadEventMapping, mapEvent, parseEventMapping } from '../../../shared/event-mapping.js';
import { commerceActions, fromMParticleBatch } from '../../../shared/adapters/mparticle.js';
import type { AdapterContext, AdapterResult } from '../../../shared/adapters/types.js';

const mapping = loadEventMapping({});
const RECEIVED_AT = Date.parse('2024-05-14T10:12:00.000Z');
const ctx: AdapterContext = { receivedAt: RECEIVED_AT, mapping };

const SESSION = '6C9D1F0A-3B7E-4A52-9E14-0D8B2C7F5A63';
const T0 = Date.parse('2024-05-14T10:01:10.000Z');

const sessionStart = {
  event_type: 'session_start',
  data: { timestamp_unixtime_ms: T0, source_message_id: SESSION, session_uuid: SESSION, session_id: -3402957283746158000, event_id: 812734651203948000 },
};
const recipeSaved = {
  event_type: 'custom_event',
  data: {
    event_name: 'Recipe Saved',
    custom_event_type: 'user_preference',
    timestamp_unixtime_ms: T0 + 45_000,
    source_message_id: '0b8a1c3e-61d4-4f7a-9a0e-55c2d9f1e7b8',
    message_id: 'mp-msg-0001',
    session_uuid: SESSION,
    custom_attributes: { item_id: 'recipe-1182', cuisine: 'thai', recommendation_id: 'rec-88f1' },
  },
};
const screenWithItem = {
  event_type: 'screen_view',
  data: {
    screen_name: 'Product Detail',
    timestamp_unixtime_ms: T0 + 60_000,
    source_message_id: 'c2f7e9a1-0d3b-4c8e-b6a5-7e1f2d3c4b5a',
    session_uuid: SESSION,
    custom_attributes: { product_id: 'NP-4711-BLU' },
  },
};
const screenPlain = {
  event_type: 'screen_view',
  data: { screen_name: 'Home', timestamp_unixtime_ms: T0 + 5_000, source_message_id: 'f1e2d3c4-b5a6-4798-8a9b-0c1d2e3f4a5b', session_uuid: SESSION },
};
const purchase = {
  event_type: 'commerce_event',
  data: {
    timestamp_unixtime_ms: T0 + 120_000,
    source_message_id: '9e3b5f71-2a4c-4d8e-8f60-1b2c3d4e5f60',
    session_uuid: SESSION,
    currency_code: 'EUR',
    product_action: {
      action: 'purchase',
      transaction_id: 'ORD-2024-0519-0077',
      total_amount: 228.9,
      tax_amount: 36.55,
      shipping_amount: 0,
      products: [
        { id: 'NP-4711-BLU', name: 'Trail Runner 2', brand: 'Northpeak', category: 'Footwear', price: 129.9, quantity: 1 },
        { id: 'NP-2210-GRN', name: 'Merino Hoodie', price: 49.5, quantity: 2, total_product_amount: 99 },
      ],
    },
    custom_attributes: { payment: 'card' },
  },
};
const sessionEnd = {
  event_type: 'session_end',
  data: { timestamp_unixtime_ms: T0 + 600_000, session_duration_ms: 590_000, source_message_id: 'aa11bb22-cc33-4dd4-8ee5-ff6600112233', session_uuid: SESSION },
};

function batch(overrides: Record<string, unknown> = {}) {
  return {
    schema_version: 2,
    environment: 'production',
    batch_id: 7123409876123,
    mpid: 4683719284755123000,
    timestamp_unixtime_ms: T0 + 700_000,
    device_info: { platform: 'iOS', os_version: '17.4.1', device_model: 'iPhone15,3' },
    application_info: { application_name: 'Northpeak', application_version: '4.12.0' },
    user_identities: [
      { identity_type: 'customer_id', identity: 'cus_8812094', timestamp_unixtime_ms: 1700000000000 },
      { identity_type: 'email', identity: 'jo.example@example.com', timestamp_unixtime_ms: 1700000000000 },
    ],
    user_attributes: { $gender: 'F', $city: 'Hamburg', membership_type: 'loyalty', favourite_categories: ['Footwear', 'Outdoor'] },
    events: [sessionStart, screenPlain, recipeSaved, screenWithItem, purchase, sessionEnd],
    ...overrides,
  };
}

const messagesOf = (result: AdapterResult) => result.messages.map((m) => m.message);
const interactions = (result: AdapterResult) => messagesOf(result).filter((m): m is InteractionMessage => m.kind === 'interaction');
const ofKind = <K extends CanonicalMessage['kind']>(result: AdapterResult, kind: K) =>
  messagesOf(result).filter((m): m is Extract<CanonicalMessage, { kind: K }> => m.kind === kind);

describe('mParticle events', () => {
  it('a full outbound batch: custom_event, screen_view, commerce purchase; session and other events filtered', () => {
    const result = fromMParticleBatch(batch(), ctx);
    expect(result.rejections).toEqual([]);
    expect(result.filtered).toEqual([
      { index: 0, reason: 'session_start events are not interactions' },
      { index: 1, reason: expect.stringContaining('screen_view without an item id') as string },
      { index: 5, reason: 'session_end events are not interactions' },
    ]);
    const events = interactions(result);
    expect(events.map((e) => [e.eventType, e.itemId])).toEqual([
      ['Recipe Saved', 'recipe-1182'],
      ['Screen Viewed', 'NP-4711-BLU'],
      ['Order Completed', 'NP-4711-BLU'],
      ['Order Completed', 'NP-2210-GRN'],
    ]);
    for (const e of events) expect(e).toMatchObject({ source: 'mparticle', userId: 'cus_8812094', sessionId: SESSION });
    expect(result.messages.filter((m) => m.message.kind === 'interaction').map((m) => m.index)).toEqual([2, 3, 4, 4]);
  });

  it('custom_event: source_message_id is the eventId, the event time is the event own, attribution is lifted', () => {
    const [saved] = interactions(fromMParticleBatch(batch({ events: [recipeSaved] }), ctx));
    expect(saved).toMatchObject({
      eventId: '0b8a1c3e-61d4-4f7a-9a0e-55c2d9f1e7b8',
      timestamp: T0 + 45_000,
      recommendationId: 'rec-88f1',
      properties: { cuisine: 'thai', device: 'ios', item_id: 'recipe-1182' },
    });
    expect(saved!.properties).not.toHaveProperty('recommendation_id');
  });

  it('commerce purchase with 2 products -> 2 interactions, price × quantity, per-product ids, Purchase after mapping', () => {
    const [first, second] = interactions(fromMParticleBatch(batch({ events: [purchase] }), ctx));
    expect(first).toMatchObject({ eventId: `${purchase.data.source_message_id}:0`, itemId: 'NP-4711-BLU', eventValue: 129.9, properties: { payment: 'card' } });
    expect(second).toMatchObject({ eventId: `${purchase.data.source_message_id}:1`, itemId: 'NP-2210-GRN', eventValue: 99 });
    expect(mapEvent(mapping, second!.eventType, second!.properties, second!.eventValue)).toMatchObject({ eventType: 'Purchase', eventValue: 99 });
  });

  it('every commerce action maps, through the Segment ecommerce names, to the expected Personalize type', () => {
    const expected: Record<string, string> = {
      view_detail: 'View',
      click: 'Click',
      add_to_cart: 'AddToCart',
      remove_from_cart: 'RemoveFromCart',
      add_to_wishlist: 'Wishlist',
      checkout: 'Checkout',
      purchase: 'Purchase',
    };
    for (const [action, type] of Object.entries(expected)) {
      const name = commerceActions[action]!;
      expect(mapEvent(mapping, name, undefined, undefined)).toMatchObject({ ok: true, eventType: type });
    }
  });

  it('refund, promotions and product-less actions are filtered; a product without id is rejected alone', () => {
    const withAction = (action: Record<string, unknown>, id: string) => ({ event_type: 'commerce_event', data: { ...purchase.data, source_message_id: id, product_action: action } });
    const events = [
      withAction({ ...purchase.data.product_action, action: 'refund' }, 'r-1'),
      { event_type: 'commerce_event', data: { ...purchase.data, product_action: undefined, promotion_action: { action: 'view', promotions: [{ id: 'SPRING10' }] } } },
      withAction({ action: 'add_to_cart', products: [] }, 'r-3'),
      withAction({ action: 'add_to_cart', products: [{ name: 'Unknown', price: 5 }, { id: 991, price: 5, quantity: 3 }] }, 'r-4'),
    ];
    const result = fromMParticleBatch(batch({ events }), ctx);
    expect(result.filtered.map((f) => f.index)).toEqual([0, 1, 2]);
    expect(result.filtered[0]!.reason).toContain('refund');
    expect(result.rejections).toMatchObject([{ index: 3, errors: [{ path: 'data.product_action.products.0.id' }] }]);
    expect(interactions(result)).toMatchObject([{ eventId: 'r-4:1', itemId: '991', eventType: 'Product Added', eventValue: 15 }]);
  });

  it('eventId falls back to message_id, then event_id (int64 as number or string), then a stable content hash', () => {
    const without = (data: Record<string, unknown>) => ({ event_type: 'custom_event', data: { event_name: 'Recipe Saved', timestamp_unixtime_ms: T0, session_uuid: SESSION, ...data } });
    const events = [without({ message_id: 'mp-msg-9' }), without({ event_id: -5183920375621940000 }), without({ event_id: '6004677780660780123' }), without({})];
    const ids = interactions(fromMParticleBatch(batch({ events }), ctx)).map((e) => e.eventId);
    expect(ids.slice(0, 3)).toEqual(['mp-msg-9', String(-5183920375621940000), '6004677780660780123']);
    expect(ids[3]).toMatch(/^h-[0-9a-f]{40}$/);
    const again = interactions(fromMParticleBatch(batch({ events, batch_id: 'other' }), { ...ctx, receivedAt: RECEIVED_AT + 1 })).map((e) => e.eventId);
    expect(again).toEqual(ids);
  });

  it('a missing or bad event time is rejected with its path; the batch timestamp is never used for events', () => {
    const { timestamp_unixtime_ms: _t, ...noTime } = recipeSaved.data;
    const events = [
      { event_type: 'custom_event', data: noTime },
      { event_type: 'custom_event', data: { ...recipeSaved.data, timestamp_unixtime_ms: 'soon' } },
      { event_type: 'custom_event', data: { ...recipeSaved.data, timestamp_unixtime_ms: 1715681000 } },
    ];
    const result = fromMParticleBatch(batch({ events }), ctx);
    expect(interactions(result)).toEqual([]);
    expect(result.rejections.map((r) => [r.index, r.errors?.[0]?.path])).toEqual([
      [0, 'data.timestamp_unixtime_ms'],
      [1, 'data.timestamp_unixtime_ms'],
      [2, 'data.timestamp_unixtime_ms'],
    ]);
  });

  it('events without a session use a per-profile session mpid-<mpid>', () => {
    const { session_uuid: _s, ...sessionless } = recipeSaved.data;
    const [event] = interactions(fromMParticleBatch(batch({ events: [{ event_type: 'custom_event', data: sessionless }] }), ctx));
    expect(event!.sessionId).toBe(`mpid-${String(4683719284755123000)}`);
    expect(ofKind(fromMParticleBatch(batch({ events: [{ event_type: 'custom_event', data: sessionless }] }), ctx), 'identify')).toEqual([]);
  });

  it('screen_view naming an item goes through the mapping as "Screen Viewed"; reject-mode mapping filters it', () => {
    const strict = { ...ctx, mapping: parseEventMapping({ ...mapping, unmapped: 'reject' }) };
    const result = fromMParticleBatch(batch({ events: [screenWithItem, recipeSaved] }), strict);
    expect(result.filtered).toMatchObject([{ index: 0, reason: expect.stringContaining('Screen Viewed') as string }]);
    expect(result.rejections).toMatchObject([{ index: 1, errors: [{ path: 'data.event_name' }] }]);
  });
});

describe('mParticle identities and attributes', () => {
  it('customer_id + session -> one identify per session at its earliest event time; user_attributes -> one profile', () => {
    const other = { ...recipeSaved, data: { ...recipeSaved.data, source_message_id: 'x-2', session_uuid: 'S-2', timestamp_unixtime_ms: T0 + 300_000 } };
    const result = fromMParticleBatch(batch({ events: [...batch().events, other] }), ctx);
    const links = ofKind(result, 'identify');
    expect(links).toEqual([
      { kind: 'identify', source: 'mparticle', eventId: `7123409876123:identify:${SESSION}`, timestamp: T0, sessionId: SESSION, userId: 'cus_8812094' },
      { kind: 'identify', source: 'mparticle', eventId: '7123409876123:identify:S-2', timestamp: T0 + 300_000, sessionId: 'S-2', userId: 'cus_8812094' },
    ]);
    // Links come first, as batch-level messages.
    expect(result.messages.slice(0, 2).map((m) => [m.index, m.message.kind])).toEqual([
      [-1, 'identify'],
      [-1, 'identify'],
    ]);
    const [profile] = ofKind(result, 'user');
    expect(profile).toEqual({
      kind: 'user',
      source: 'mparticle',
      eventId: '7123409876123:attributes',
      timestamp: T0 + 600_000,
      userId: 'cus_8812094',
      properties: { gender: 'F', city: 'Hamburg', membership_type: 'loyalty', favourite_categories: ['Footwear', 'Outdoor'] },
    });
  });

  it('accepts the inbound map form of user_identities', () => {
    const result = fromMParticleBatch(batch({ user_identities: { customer_id: 'cus_77', email: 'x@example.com' }, events: [recipeSaved] }), ctx);
    expect(interactions(result)[0]!.userId).toBe('cus_77');
    expect(ofKind(result, 'identify')).toHaveLength(1);
  });

  it('without customer_id the mpid is the userId, and no identity links are made', () => {
    const result = fromMParticleBatch(batch({ user_identities: [{ identity_type: 'email', identity: 'x@example.com' }], events: [recipeSaved] }), ctx);
    expect(interactions(result)[0]!.userId).toBe(String(4683719284755123000));
    expect(ofKind(result, 'identify')).toEqual([]);
    expect(ofKind(result, 'user')[0]!.userId).toBe(String(4683719284755123000));
  });

  it('user_attributes without events use the batch timestamp; no batch id -> ids from a hash of the batch', () => {
    const body = batch({ events: [], batch_id: undefined });
    const [profile] = ofKind(fromMParticleBatch(body, ctx), 'user');
    expect(profile!.timestamp).toBe(T0 + 700_000);
    expect(profile!.eventId).toMatch(/^h-[0-9a-f]{40}:attributes$/);
    expect(ofKind(fromMParticleBatch(structuredClone(body), ctx), 'user')[0]!.eventId).toBe(profile!.eventId);
  });

  it('user_attributes with no user at all are filtered', () => {
    const result = fromMParticleBatch(batch({ mpid: undefined, user_identities: [], events: [] }), ctx);
    expect(result.messages).toEqual([]);
    expect(result.filtered).toMatchObject([{ index: -1 }]);
  });
});

describe('mParticle hostile input', () => {
  it.each([
    ['null', null],
    ['an array', [batch()]],
    ['a string', 'events'],
  ])('a body that is %s -> one request-level rejection', (_label, body) => {
    const result = fromMParticleBatch(body, ctx);
    expect(result.messages).toEqual([]);
    expect(result.rejections).toMatchObject([{ index: -1 }]);
  });

  it('events that are not an array or not objects are rejected with their index', () => {
    expect(fromMParticleBatch({ events: 'x' }, ctx).rejections).toMatchObject([{ index: -1, errors: [{ path: 'events' }] }]);
    const result = fromMParticleBatch({ mpid: 1, events: [null, 3, { event_type: 'custom_event', data: 'x' }, { data: {} }, { event_type: 'custom_event', data: { event_name: 'A', timestamp_unixtime_ms: T0, custom_attributes: [1] } }] }, ctx);
    expect(result.rejections.map((r) => [r.index, r.errors?.[0]?.path])).toEqual([
      [0, '(event)'],
      [1, '(event)'],
      [2, 'data'],
      [3, 'event_type'],
      [4, 'data.custom_attributes'],
    ]);
  });

  it('__proto__, constructor and $__proto__ keys pollute nothing', () => {
    const body = JSON.parse(
      `{"mpid":77,"batch_id":"b1","user_attributes":{"$__proto__":{"polluted":true},"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"tier":"gold"},` +
        `"events":[{"event_type":"custom_event","data":{"event_name":"Recipe Saved","timestamp_unixtime_ms":${T0},"session_uuid":"S","custom_attributes":{"__proto__":{"item_id":"evil"},"item_id":"r-1"}}}]}`,
    ) as unknown;
    const result = fromMParticleBatch(body, ctx);
    expect(result.rejections).toEqual([]);
    expect(ofKind(result, 'user')[0]!.properties).toEqual({ tier: 'gold' });
    expect(interactions(result)[0]).toMatchObject({ itemId: 'r-1', properties: { item_id: 'r-1' } });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
