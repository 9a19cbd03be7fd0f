import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ArchivedRecord } from '../shared/archive.js';
import { dynamoDocumentClient } from '../shared/aws/clients.js';
import { exportDay } from '../shared/export/export-day.js';
import { exportRuntimeFromEnv } from '../shared/export/runtime.js';
import { DynamoIdentityStore } from '../shared/aws/dynamo-identity.js';
import { PENDING_PREFIX } from '../shared/personalize/deletion-outbox.js';
import { LOCAL_CREDENTIALS, startLocalStack, type LocalStack } from '../local/stack.js';
import { useEmulators } from './support/env.js';
import { csvRecords, listKeys, readText } from './support/export.js';
import { isolatedStack, readArchive } from './support/stack.js';

/**
 * Consent decides what reaches Personalize (README "Consent"), through the doors: Segment tracker
 * batches with consent objects granted, denied and missing, a `Segment Consent Preference Updated`
 * opt-out in the middle of a session, and mParticle batches with consent_state; asserting what the
 * local Personalize endpoint received, what the archive keeps, the export CSV and the deletion path.
 */

useEmulators();

const CONSENT_ENV = {
  CONSENT_REQUIRED_CATEGORIES: 'Personalization',
  CONSENT_REQUIRED_PURPOSES: 'personalization',
  CONSENT_NO_SIGNAL: 'allow',
  CONSENT_OPT_OUT_DELETION: 'true',
};
const DELETION_HASH_KEY = 'consent-test-hash-key-0123456789abcdef0';
const DAY = new Date(Date.now() - 3 * 86_400_000).toISOString().slice(0, 10);
const at = (hhmm: string, plusMs = 0) => Date.parse(`${DAY}T${hhmm}:00Z`) + plusMs;
const tracker = `Basic ${Buffer.from(`${LOCAL_CREDENTIALS.trackerWriteKey}:`).toString('base64')}`;

let stack: LocalStack;
let stateDir: string;

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'consent-'));
  stack = await startLocalStack({
    ...isolatedStack('consent', 1),
    stateDir,
    poller: { batchSize: 500, maxBatchingWindowMs: 50, pollIntervalMs: 50 },
    processorEnv: { IDENTITY_CACHE_TTL_SECONDS: '0', DELETION_HASH_KEY, ...CONSENT_ENV },
  });
  Object.assign(process.env, { DELETION_HASH_KEY, ...CONSENT_ENV });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  await rm(stateDir, { recursive: true, force: true });
});

type Message = Record<string, unknown>;
const categories = (personalization: boolean) => ({ context: { consent: { categoryPreferences: { Analytics: true, Personalization: personalization } } } });
const view = (messageId: string, anonymousId: string, time: number, extra: Message = {}): Message => ({
  type: 'track', event: 'Product Viewed', messageId, anonymousId, timestamp: new Date(time).toISOString(), properties: { product_id: `p-${messageId}` }, ...extra,
});
const identify = (anonymousId: string, userId: string, time: number, extra: Message = {}): Message => ({
  type: 'identify', messageId: `login-${anonymousId}`, anonymousId, userId, timestamp: new Date(time).toISOString(), ...extra,
});

async function post(path: string, body: string, authorization: string): Promise<void> {
  const res = await fetch(`${stack.http.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body });
  expect(res.status, await res.text()).toBe(200);
  await stack.poller.idle(30_000);
}
const track = (batch: Message[]) => post('/v1/batch', JSON.stringify({ batch, sentAt: batch[batch.length - 1]!.timestamp }), tracker);

async function archivedLines(): Promise<Map<string, ArchivedRecord>> {
  const out = new Map<string, ArchivedRecord>();
  for (const [, { records }] of await readArchive(stack.names.archiveBucket)) for (const r of records) out.set(r.eventId, r);
  return out;
}

describe('consent decides what reaches Personalize', () => {
  it('forwards granted and unsignalled events, keeps denied ones and everything after an opt-out from Personalize, and the export and the deletion path follow', async () => {
    // A: granted. B: denied, and its login carries the denial too. C: no signal (allowed by CONSENT_NO_SIGNAL=allow).
    // D: granted, logs in as uD, then opts out mid-session; the views after it carry no consent object.
    // E: anonymous views granted, logs in as uE: the export attributes them.
    await track([
      view('a-1', 'A', at('08:00'), categories(true)),
      view('b-1', 'B', at('08:01'), categories(false)),
      view('c-1', 'C', at('08:02')),
      view('d-1', 'D', at('08:03'), categories(true)),
      view('e-1', 'E', at('08:04'), categories(true)),
      view('e-2', 'E', at('08:05'), categories(true)),
    ]);
    await track([identify('B', 'uB', at('08:10'), categories(false)), identify('D', 'uD', at('08:11'), categories(true)), identify('E', 'uE', at('08:12'), categories(true))]);
    await track([view('d-2', 'D', at('08:20'), { userId: 'uD', ...categories(true) })]);
    await track([{ type: 'track', event: 'Segment Consent Preference Updated', messageId: 'd-optout', anonymousId: 'D', userId: 'uD', timestamp: new Date(at('08:30')).toISOString(), ...categories(false) }]);
    await track([view('d-3', 'D', at('08:31'), { userId: 'uD' }), view('d-4', 'D', at('08:32'))]);

    // mParticle: one batch whose user consented to the purpose, one whose user did not.
    const mp = (batch: string, mpid: number, consented: boolean, eventId: string) =>
      JSON.stringify({
        batch_id: batch,
        mpid,
        consent_state: { gdpr: { personalization: { consented, timestamp_unixtime_ms: at('07:00') } } },
        events: [{ event_type: 'custom_event', data: { event_name: 'Recipe Saved', timestamp_unixtime_ms: at('09:00'), source_message_id: eventId, session_uuid: `mp-${mpid}`, custom_attributes: { item_id: `p-${eventId}` } } }],
      });
    await post('/v1/webhooks/mparticle', mp('mp-yes', 1001, true, 'mp-granted'), LOCAL_CREDENTIALS.mparticleAuthorization);
    await post('/v1/webhooks/mparticle', mp('mp-no', 1002, false, 'mp-denied'), LOCAL_CREDENTIALS.mparticleAuthorization);

    // What reached Personalize.
    const sent = new Set(stack.personalize!.receivedEvents().map((e) => e.eventId));
    expect([...sent].sort()).toEqual(['a-1', 'c-1', 'd-1', 'd-2', 'e-1', 'e-2', 'mp-granted'].sort());
    expect(stack.summary().consentDenied).toEqual({
      'consent category Personalization not granted': expect.any(Number) as unknown,
      'consent purpose personalization not granted': 1,
    });
    // The denied login left no link to stitch with; the granted ones did.
    const links = await new DynamoIdentityStore(dynamoDocumentClient(), stack.names.identityTable).getLinks(['B', 'E']);
    expect([...links.keys()]).toEqual(['E']);

    // The archive keeps denied events with the verdict (CONSENT_ARCHIVE=keep), so a later opt-in needs no re-collection.
    const lines = await archivedLines();
    expect(lines.get('b-1')).toMatchObject({ consentDenied: expect.stringMatching(/Personalization/) as unknown, consent: { categories: { Personalization: false } } });
    expect(lines.get('d-3')?.consentDenied).toMatch(/Personalization/);
    expect(lines.get('a-1')).not.toHaveProperty('consentDenied');

    // Every user whose consent turned to a denial is scheduled for Personalize's data deletion job
    // (CONSENT_OPT_OUT_DELETION=true): uD's opt-out, and uB and mParticle's 1002, whose first signal
    // was a denial (under CONSENT_NO_SIGNAL=allow, unsignalled events of theirs may have been sent).
    const pending = await listKeys(stack.names.archiveBucket, PENDING_PREFIX);
    const bodies = await Promise.all(pending.map((key) => readText(stack.names.archiveBucket, key)));
    expect(bodies.map((b) => (JSON.parse(b) as { userId: string }).userId).sort()).toEqual(['1002', 'uB', 'uD']);

    // The export: E's anonymous history under uE; nothing of B, and nothing of uD, who opted out since.
    const runtime = exportRuntimeFromEnv(process.env);
    const manifest = await exportDay(runtime.deps, { date: DAY, import: false });
    const rows: Record<string, string>[] = [];
    for (const key of await listKeys(stack.names.archiveBucket, `imports/interactions/dt=${DAY}/`)) rows.push(...csvRecords(await readText(stack.names.archiveBucket, key)));
    expect(rows.map((r) => [r.USER_ID, r.ITEM_ID]).sort()).toEqual([
      ['uE', 'p-e-1'],
      ['uE', 'p-e-2'],
    ]);
    expect(Object.values(manifest.kinds.interactions.consentDenied).reduce((n, v) => n + v, 0)).toBeGreaterThanOrEqual(3);
  }, 120_000);
});
