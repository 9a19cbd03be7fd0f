import { describe, expect, it } from 'vitest';
import { canonicalMessageSchema, CONSENT_ENTRIES_MAX, partitionKeyOf, type CanonicalMessage } from '../../../schemas/canonical.js';
import { loadEventMapping, parseEventMapping } from '../../../shared/event-mapping.js';
import { CONSENT_EVENT, fromSegmentBatch, fromSegmentMessage } from '../../../shared/adapters/segment.js';
import { fromMParticleBatch } from '../../../shared/adapters/mparticle.js';
import { archiveKindOf } from '../../../shared/archive.js';
import { MAY_SEND } from '../../../shared/collect/trust.js';
import { parseJsonExact } from '../../../shared/json.js';
import type { AdapterContext, AdapterResult } from '../../../shared/adapters/types.js';

// Consent signals carried from the sources to the canonical message (FACTS §10); nothing is decided here.

const mapping = loadEventMapping({});
const RECEIVED_AT = Date.parse('2024-05-14T09:30:02.250Z');
const ctx: AdapterContext = { receivedAt: RECEIVED_AT, mapping };
const ANON = 'anon-7c1e';
const USER = 'cus_8812094';
const T = '2024-05-14T09:29:55.120Z';

const granted = { Advertising: false, Analytics: true, Personalization: true };
const denied = { Advertising: false, Analytics: false, Personalization: false };
const withConsent = (categoryPreferences: unknown) => ({ consent: { categoryPreferences } });

function track(event: string, context: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  return { type: 'track', event, messageId: `m-${event}-${JSON.stringify(context).length}`, anonymousId: ANON, timestamp: T, properties: { product_id: 'sku-1' }, context, ...extra };
}

const messages = (r: AdapterResult): CanonicalMessage[] => r.messages.map((m) => m.message);
const consentOf = (m: CanonicalMessage | undefined) => (m && 'consent' in m ? m.consent : undefined);

describe('Segment: context.consent.categoryPreferences', () => {
  it('is carried as sent on interactions, granted and denied; absent without a consent object', () => {
    const r = fromSegmentBatch({ batch: [track('Product Viewed', withConsent(granted)), track('Product Clicked', withConsent(denied)), track('Product Added')] }, ctx);
    const [a, b, c] = messages(r);
    expect(consentOf(a)).toEqual({ categories: granted });
    expect(consentOf(b)).toEqual({ categories: denied });
    expect(c).not.toHaveProperty('consent');
    expect(r.rejections).toEqual([]);
  });

  it('a batch-level context applies unless the message has its own consent object', () => {
    const r = fromSegmentBatch({ batch: [track('Product Viewed'), track('Product Clicked', withConsent(denied))], context: withConsent(granted) }, ctx);
    expect(messages(r).map(consentOf)).toEqual([{ categories: granted }, { categories: denied }]);
  });

  it('goes on every message of the call: per-product interactions, identify link and traits, alias', () => {
    const order = { ...track('Order Completed', withConsent(granted)), properties: { order_id: 'o-1', products: [{ product_id: 'a', price: 1 }, { product_id: 'b', price: 2 }] } };
    const identify = { type: 'identify', messageId: 'id-1', anonymousId: ANON, userId: USER, timestamp: T, traits: { plan: 'pro' }, context: withConsent(granted) };
    const alias = { type: 'alias', messageId: 'al-1', previousId: ANON, userId: USER, timestamp: T, context: withConsent(denied) };
    const r = fromSegmentBatch({ batch: [order, identify, alias] }, ctx);
    expect(messages(r).map((m) => [m.kind, consentOf(m)])).toEqual([
      ['interaction', { categories: granted }],
      ['interaction', { categories: granted }],
      ['identify', { categories: granted }],
      ['user', { categories: granted }],
      ['alias', { categories: denied }],
    ]);
  });

  it('keeps booleans only: other values, empty or overlong names and entries past the limit are dropped, never a rejection', () => {
    const odd = { Analytics: 'true', Advertising: 1, Functional: { granted: true }, Personalization: true, '': true, ['x'.repeat(65)]: true, Marketing: null };
    const many = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`C${String(i).padStart(4, '0')}`, i % 2 === 0]));
    const r = fromSegmentBatch(
      {
        batch: [
          track('Product Viewed', withConsent(odd)),
          track('Product Clicked', withConsent(many)),
          track('Product Added', withConsent('all')),
          track('Product Removed', withConsent([true, false])),
          track('Product Reviewed', { consent: 'yes' }),
          track('Checkout Started', withConsent({})),
        ],
      },
      ctx,
    );
    expect(r.rejections).toEqual([]);
    const [a, b, c, d, e, f] = messages(r);
    expect(consentOf(a)).toEqual({ categories: { Personalization: true } });
    const kept = consentOf(b)?.categories ?? {};
    expect(Object.keys(kept)).toHaveLength(CONSENT_ENTRIES_MAX);
    expect(kept.C0000).toBe(true);
    expect(kept.C0001).toBe(false);
    for (const m of [c, d, e]) expect(m).not.toHaveProperty('consent');
    // Checkout Started is perProduct and has no products: filtered, so f is undefined; the empty object is checked below.
    expect(f).toBeUndefined();
    const empty = fromSegmentMessage(track('Product Viewed', withConsent({})), undefined, ctx);
    expect(consentOf(messages(empty)[0])).toEqual({ categories: {} });
  });

  it(`"${CONSENT_EVENT}" becomes a consent message on the session, never an interaction, even when the mapping rejects unknown names`, () => {
    const strict = { ...ctx, mapping: parseEventMapping({ ...mapping, unmapped: 'reject' }) };
    const update = { type: 'track', event: CONSENT_EVENT, messageId: 'cpu-1', anonymousId: ANON, userId: USER, timestamp: T, context: withConsent(denied) };
    const r = fromSegmentMessage(update, undefined, strict);
    expect(r.rejections).toEqual([]);
    expect(messages(r)).toEqual([
      { kind: 'consent', source: 'segment', eventId: 'cpu-1', timestamp: Date.parse(T), sessionId: ANON, userId: USER, consent: { categories: denied } },
    ]);
    expect(partitionKeyOf(messages(r)[0]!)).toBe(ANON);
  });

  it(`"${CONSENT_EVENT}" without a readable consent object is filtered with its reason`, () => {
    const r = fromSegmentMessage({ type: 'track', event: CONSENT_EVENT, messageId: 'cpu-2', anonymousId: ANON, timestamp: T }, undefined, ctx);
    expect(r.messages).toEqual([]);
    expect(r.filtered[0]?.reason).toMatch(/no preference to record/);
  });
});

const T0 = Date.parse('2024-05-14T10:01:10.000Z');
const consentState = {
  gdpr: {
    personalization: { consented: true, document: 'privacy.v3', timestamp_unixtime_ms: T0 - 60_000, location: 'shop.example/consent', hardware_id: 'IDFA:x' },
    marketing: { consented: false, timestamp_unixtime_ms: T0 - 30_000 },
  },
  ccpa: { data_sale_opt_out: { consented: true, timestamp_unixtime_ms: T0 - 90_000 } },
};
const customEvent = {
  event_type: 'custom_event',
  data: { event_name: 'Recipe Saved', timestamp_unixtime_ms: T0, source_message_id: 'ev-1', session_uuid: 'S-1', custom_attributes: { item_id: 'r-1' } },
};
const sessionStart = { event_type: 'session_start', data: { timestamp_unixtime_ms: T0, session_uuid: 'S-1' } };
const mpBatch = (extra: Record<string, unknown>) => ({
  batch_id: 'b-1',
  mpid: 8_812_094,
  user_identities: [{ identity_type: 'customer_id', identity: USER }],
  user_attributes: { plan: 'pro' },
  ...extra,
});
const expected = { purposes: { personalization: true, marketing: false }, dataSaleOptOut: true, at: T0 - 30_000 };

describe('mParticle: consent_state', () => {
  it('gdpr purposes, the ccpa data-sale opt-out and the latest consent time go on every message of the batch', () => {
    const r = fromMParticleBatch(mpBatch({ events: [customEvent], consent_state: consentState }), ctx);
    expect(r.rejections).toEqual([]);
    expect(messages(r).map((m) => [m.kind, consentOf(m)])).toEqual([
      ['identify', expected],
      ['interaction', expected],
      ['user', expected],
    ]);
  });

  it('no consent_state, or nothing usable in it: no consent field and no consent message', () => {
    for (const state of [undefined, null, 'granted', { gdpr: 'yes' }, { gdpr: { p: { consented: 'true' } }, ccpa: { data_sale_opt_out: { consented: 1 } } }]) {
      const r = fromMParticleBatch(mpBatch({ events: [customEvent], consent_state: state }), ctx);
      expect(r.rejections).toEqual([]);
      for (const m of messages(r)) expect(m).not.toHaveProperty('consent');
    }
  });

  it('drops purposes whose consented is not a boolean and implausible times; keeps the rest', () => {
    const state = { gdpr: { a: { consented: 'yes' }, b: { consented: false, timestamp_unixtime_ms: 1_700_000_000 } }, ccpa: { data_sale_opt_out: { consented: false } } };
    const r = fromMParticleBatch(mpBatch({ events: [customEvent], consent_state: state }), ctx);
    expect(consentOf(messages(r)[1])).toEqual({ purposes: { b: false }, dataSaleOptOut: false });
  });

  it('a batch with no events, or none that became a message, yields one consent message for its user', () => {
    const noEvents = fromMParticleBatch({ batch_id: 'b-2', mpid: 8_812_094, user_identities: [{ identity_type: 'customer_id', identity: USER }], events: [], consent_state: consentState }, ctx);
    expect(messages(noEvents)).toEqual([
      { kind: 'consent', source: 'mparticle', eventId: 'b-2:consent', timestamp: T0 - 30_000, sessionId: 'mpid-8812094', userId: USER, consent: expected },
    ]);
    // Only a session_start and no customer_id (so no identity link carrying it): the mpid is the user.
    const filteredOnly = fromMParticleBatch({ batch_id: 'b-2', mpid: 8_812_094, events: [sessionStart], consent_state: consentState }, ctx);
    expect(messages(filteredOnly)).toEqual([
      { kind: 'consent', source: 'mparticle', eventId: 'b-2:consent', timestamp: T0 - 30_000, sessionId: 'mpid-8812094', userId: '8812094', consent: expected },
    ]);
    // With a customer_id the session's identity link already carries it: no extra message.
    const linked = fromMParticleBatch(mpBatch({ user_attributes: undefined, events: [sessionStart], consent_state: consentState }), ctx);
    expect(messages(linked).map((m) => [m.kind, consentOf(m)])).toEqual([['identify', expected]]);
    // Without any user: filtered, not dropped silently.
    const anonymous = fromMParticleBatch({ batch_id: 'b-3', events: [], consent_state: consentState }, ctx);
    expect(anonymous.messages).toEqual([]);
    expect(anonymous.filtered.map((f) => f.reason)).toContain('consent_state without customer_id or mpid: no user to attach it to');
  });

  it('keeps int64 ids exact beside consent (lossless JSON)', () => {
    const text = `{"batch_id":"b-4","mpid":-8203934412349586712,"events":[{"event_type":"custom_event","data":{"event_name":"Recipe Saved","timestamp_unixtime_ms":${T0},"event_id":6004392193482617346,"session_id":-3402957283746158337,"custom_attributes":{"item_id":"r-1"}}}],"consent_state":{"gdpr":{"personalization":{"consented":true,"timestamp_unixtime_ms":${T0}}}}}`;
    const [m] = messages(fromMParticleBatch(parseJsonExact(text), ctx));
    expect(m).toMatchObject({ kind: 'interaction', eventId: '6004392193482617346', sessionId: '-3402957283746158337', userId: '-8203934412349586712' });
    expect(consentOf(m)).toEqual({ purposes: { personalization: true }, at: T0 });
  });
});

describe('the canonical consent contract', () => {
  const base = { kind: 'interaction', eventId: 'e', timestamp: T0, sessionId: 's', eventType: 'View' };
  it('is bounded and typed: the schema refuses what the adapters never produce', () => {
    const ok = (consent: unknown) => canonicalMessageSchema.safeParse({ ...base, consent }).success;
    expect(ok({ categories: { a: true }, purposes: { p: false }, dataSaleOptOut: true, at: T0 })).toBe(true);
    expect(ok({ categories: { a: 'true' } })).toBe(false);
    expect(ok({ categories: { ['k'.repeat(65)]: true } })).toBe(false);
    expect(ok({ purposes: Object.fromEntries(Array.from({ length: CONSENT_ENTRIES_MAX + 1 }, (_, i) => [`p${i}`, true])) })).toBe(false);
    expect(ok({ dataSaleOptOut: 'yes' })).toBe(false);
    expect(ok({ at: 1_700_000_000 })).toBe(false);
  });

  it('a consent message needs its consent and a session; it is archived with the identity records and may come through every event door', () => {
    const msg = { kind: 'consent', eventId: 'c', timestamp: T0, sessionId: 's', consent: { categories: {} } };
    expect(canonicalMessageSchema.safeParse(msg).success).toBe(true);
    expect(canonicalMessageSchema.safeParse({ ...msg, consent: undefined }).success).toBe(false);
    expect(canonicalMessageSchema.safeParse({ ...msg, sessionId: undefined }).success).toBe(false);
    expect(archiveKindOf('consent')).toBe('identity');
    for (const cls of ['public-key', 'server-key', 'segment-webhook', 'mparticle-webhook'] as const) expect(MAY_SEND[cls].has('consent')).toBe(true);
    for (const cls of ['feed-key', 'privacy-key'] as const) expect(MAY_SEND[cls].has('consent')).toBe(false);
  });
});
