import { describe, expect, it } from 'vitest';
import type { ArchivedRecord } from '../shared/archive.js';
import { segmentSignature } from '../shared/collect/auth.js';
import type { BatchReport } from '../shared/process/process-batch.js';
import { LOCAL_CREDENTIALS } from '../local/stack.js';
import { useEmulators } from './support/env.js';
import { eventTime, readArchive, useLocalStack } from './support/stack.js';

// The collector carries consent signals through to the archive as sent (FACTS §10); enforcement is
// the processor's. These tests go through the HTTP doors and read the archive lines.

useEmulators();
const stack = useLocalStack('consent-doors');

const basic = (user: string) => `Basic ${Buffer.from(`${user}:`).toString('base64')}`;
const iso = (offsetMs = 0) => new Date(eventTime(offsetMs)).toISOString();
const CONSENT_EVENT = 'Segment Consent Preference Updated';

async function post(path: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const raw = typeof body === 'string' ? body : JSON.stringify(body);
  const res = await fetch(`${stack().http.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: raw });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const tracker = { authorization: basic(LOCAL_CREDENTIALS.trackerWriteKey) };
const segmentWebhook = (body: unknown) => ({ 'x-signature': segmentSignature(JSON.stringify(body), LOCAL_CREDENTIALS.segmentSharedSecret) });

/** Every archived line, by eventId, with the folder (archive kind) it sits in. */
async function archived(): Promise<Map<string, { folder: string; record: ArchivedRecord }>> {
  await stack().poller.idle();
  const out = new Map<string, { folder: string; record: ArchivedRecord }>();
  for (const [key, { records }] of await readArchive(stack().names.archiveBucket)) {
    const folder = key.split('/')[1]!;
    for (const record of records) out.set(record.eventId, { folder, record });
  }
  return out;
}

const consentOf = (line: { record: ArchivedRecord } | undefined) => (line && 'consent' in line.record ? line.record.consent : undefined);
const sentToPersonalize = () => new Set(stack().personalize!.receivedEvents().map((e) => e.eventId));

const granted = { Advertising: false, Analytics: true, Personalization: true };
const denied = { Advertising: false, Analytics: false, Personalization: false };

describe('Segment tracking API (/v1/batch, /v1/track)', () => {
  it('archives granted, denied and missing consent as sent, and the preference event as a consent message that reaches no one', async () => {
    const view = (messageId: string, context?: unknown) => ({
      type: 'track', event: 'Product Viewed', messageId, anonymousId: 'cd-anon-1', timestamp: iso(), properties: { product_id: 'sku-1' }, ...(context !== undefined && { context }),
    });
    const batch = [
      view('cd-granted', { consent: { categoryPreferences: granted } }),
      { type: 'track', event: CONSENT_EVENT, messageId: 'cd-update', anonymousId: 'cd-anon-1', timestamp: iso(), context: { consent: { categoryPreferences: denied } } },
      view('cd-denied', { consent: { categoryPreferences: denied } }),
      view('cd-missing'),
    ];
    const res = await post('/v1/batch', { batch }, tracker);
    expect(res).toMatchObject({ status: 200, body: { accepted: 4, filtered: 0 } });
    const single = await post('/v1/track', { event: 'Product Clicked', messageId: 'cd-single', anonymousId: 'cd-anon-1', timestamp: iso(), properties: { product_id: 'sku-2' }, context: { consent: { categoryPreferences: granted } } }, tracker);
    expect(single.status).toBe(200);

    const lines = await archived();
    expect(consentOf(lines.get('cd-granted'))).toEqual({ categories: granted });
    expect(consentOf(lines.get('cd-denied'))).toEqual({ categories: denied });
    expect(lines.get('cd-missing')?.record).not.toHaveProperty('consent');
    expect(consentOf(lines.get('cd-single'))).toEqual({ categories: granted });
    expect(lines.get('cd-update')).toMatchObject({ folder: 'identity', record: { kind: 'consent', source: 'segment', sessionId: 'cd-anon-1', consent: { categories: denied } } });
    // No enforcement yet: the interactions are forwarded as before; the preference event never is.
    const sent = sentToPersonalize();
    expect(sent.has('cd-update')).toBe(false);
    expect(sent.has('cd-granted')).toBe(true);
  });

  it('malformed consent values never fail the request: non-booleans, nested objects and entries past 50 are dropped, a non-object is no signal', async () => {
    const many = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`C${String(i).padStart(4, '0')}`, true]));
    const view = (messageId: string, consent: unknown) => ({ type: 'track', event: 'Product Viewed', messageId, anonymousId: 'cd-anon-2', timestamp: iso(), properties: { product_id: 'sku-3' }, context: { consent } });
    const batch = [
      view('cd-bad-values', { categoryPreferences: { Analytics: 'true', Advertising: { nested: { deep: [true] } }, Personalization: true, Functional: null } }),
      view('cd-bad-1000', { categoryPreferences: many }),
      view('cd-bad-string', { categoryPreferences: 'granted' }),
      view('cd-bad-consent', 'yes'),
      { type: 'track', event: CONSENT_EVENT, messageId: 'cd-bad-update', anonymousId: 'cd-anon-2', timestamp: iso(), context: { consent: { categoryPreferences: [true] } } },
    ];
    const res = await post('/v1/batch', { batch }, tracker);
    expect(res).toMatchObject({ status: 200, body: { accepted: 4, filtered: 1 } });

    const lines = await archived();
    expect(consentOf(lines.get('cd-bad-values'))).toEqual({ categories: { Personalization: true } });
    expect(Object.keys(consentOf(lines.get('cd-bad-1000'))?.categories ?? {})).toHaveLength(50);
    expect(lines.get('cd-bad-string')?.record).not.toHaveProperty('consent');
    expect(lines.get('cd-bad-consent')?.record).not.toHaveProperty('consent');
    expect(lines.has('cd-bad-update')).toBe(false);
  });
});

describe('Segment webhook door', () => {
  it('takes the same consent object and preference event (same adapter)', async () => {
    const track = { type: 'track', event: 'Product Viewed', messageId: 'cd-wh-view', userId: 'cd-user-1', anonymousId: 'cd-anon-3', timestamp: iso(), properties: { product_id: 'sku-4' }, context: { consent: { categoryPreferences: granted } } };
    const update = { type: 'track', event: CONSENT_EVENT, messageId: 'cd-wh-update', userId: 'cd-user-1', anonymousId: 'cd-anon-3', timestamp: iso(), context: { consent: { categoryPreferences: denied } } };
    for (const body of [track, update]) {
      const res = await post('/v1/webhooks/segment', body, segmentWebhook(body));
      expect(res.status).toBe(200);
    }
    const lines = await archived();
    expect(lines.get('cd-wh-view')).toMatchObject({ folder: 'interactions', record: { kind: 'interaction', consent: { categories: granted } } });
    expect(lines.get('cd-wh-update')).toMatchObject({ folder: 'identity', record: { kind: 'consent', userId: 'cd-user-1', sessionId: 'cd-anon-3', consent: { categories: denied } } });
  });
});

describe('mParticle webhook door', () => {
  const auth = { authorization: LOCAL_CREDENTIALS.mparticleAuthorization };
  const consentState = (at: number) => ({
    gdpr: { personalization: { consented: true, document: 'v3', timestamp_unixtime_ms: at, location: 'app', hardware_id: 'IDFA:x' }, marketing: { consented: false, timestamp_unixtime_ms: at - 1000 } },
    ccpa: { data_sale_opt_out: { consented: true, timestamp_unixtime_ms: at - 2000 } },
  });

  it('puts consent_state on every message of the batch; a batch without events becomes one consent message; int64 ids stay exact', async () => {
    const t = eventTime();
    const at = t - 60_000;
    const state = consentState(at);
    const expected = { purposes: { personalization: true, marketing: false }, dataSaleOptOut: true, at };
    // Raw text: the int64 mpid and event_id must not pass through JSON.parse on our side.
    const raw = `{"batch_id":"cd-mp-1","mpid":-8203934412349586712,"user_identities":[{"identity_type":"customer_id","identity":"cd-mp-user"}],"user_attributes":{"membershipType":"gold"},"consent_state":${JSON.stringify(state)},"events":[{"event_type":"custom_event","data":{"event_name":"Recipe Saved","timestamp_unixtime_ms":${t},"event_id":6004392193482617346,"session_uuid":"cd-mp-session","custom_attributes":{"item_id":"r-1"}}}]}`;
    const res = await post('/v1/webhooks/mparticle', raw, auth);
    expect(res.status).toBe(200);
    const empty = await post('/v1/webhooks/mparticle', { batch_id: 'cd-mp-2', mpid: 42, events: [], consent_state: consentState(at) }, auth);
    expect(empty.status).toBe(200);
    const junk = await post('/v1/webhooks/mparticle', { batch_id: 'cd-mp-3', mpid: 43, consent_state: { gdpr: { a: { consented: 'yes' } }, ccpa: 'no' }, events: [{ event_type: 'custom_event', data: { event_name: 'Recipe Saved', timestamp_unixtime_ms: t, source_message_id: 'cd-mp-junk', custom_attributes: { item_id: 'r-2' } } }] }, auth);
    expect(junk.status).toBe(200);

    const lines = await archived();
    expect(lines.get('6004392193482617346')).toMatchObject({ folder: 'interactions', record: { userId: 'cd-mp-user', consent: expected } });
    expect(lines.get('cd-mp-1:identify:cd-mp-session')).toMatchObject({ folder: 'identity', record: { kind: 'identify', consent: expected } });
    expect(lines.get('cd-mp-1:attributes')).toMatchObject({ folder: 'users', record: { kind: 'user', consent: expected } });
    expect(lines.get('cd-mp-2:consent')).toMatchObject({ folder: 'identity', record: { kind: 'consent', source: 'mparticle', userId: '42', sessionId: 'mpid-42', timestamp: at, consent: expected } });
    expect(lines.get('cd-mp-junk')?.record).not.toHaveProperty('consent');
  });
});

describe('the processor', () => {
  it('counts consent messages, archives them and forwards none', async () => {
    const { batchReports } = await import('../shared/process/handle.js');
    const reports: BatchReport[] = [];
    const unsubscribe = batchReports.subscribe((r) => reports.push(r));
    try {
      const update = { type: 'track', event: CONSENT_EVENT, messageId: 'cd-count', anonymousId: 'cd-anon-4', timestamp: iso(), context: { consent: { categoryPreferences: granted } } };
      expect((await post('/v1/batch', { batch: [update] }, tracker)).status).toBe(200);
      await stack().poller.idle();
    } finally {
      unsubscribe();
    }
    expect(reports.reduce((n, r) => n + r.consents, 0)).toBe(1);
    expect(reports.reduce((n, r) => n + r.forwardedEvents, 0)).toBe(0);
  });
});
