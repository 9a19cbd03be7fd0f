import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExportSummary } from '../shared/export/handle.js';
import type { ExportManifest } from '../shared/export/manifest.js';
import { PENDING_PREFIX } from '../shared/personalize/deletion-outbox.js';
import { deletionStepDepsFromEnv } from '../shared/personalize-deletion/runtime.js';
import { runDeletionStep } from '../shared/personalize-deletion/step.js';
import { knownUserSessionId } from '../shared/personalize/put-session.js';
import {
  LOCAL_CREDENTIALS,
  LOCAL_DATASET_GROUP_ARN,
  LOCAL_INTERACTIONS_DATASET_ARN,
  LOCAL_ITEMS_DATASET_ARN,
  startLocalStack,
  type LocalStack,
} from '../local/stack.js';
import { useEmulators } from './support/env.js';
import { at, daysAgo, listKeys, readText } from './support/export.js';
import { isolatedStack } from './support/stack.js';

/**
 * Issue 14's proof, over several days, through the doors: trackers post to /v1/batch, the feed to
 * /v1/items, the privacy endpoint deletes a user; the processor streams to the local Personalize
 * endpoint; the nightly pass (the export function's schedule event) and the daily deletion step
 * drive the local control plane. At the end, per eventId, Personalize holds each interaction once,
 * under the user it belongs to: PutEvents copies with a user plus bulk rows in imported files.
 * (An anonymous PUT event is never trained on here: no PUT event names its session with a user.)
 */

useEmulators();

const DELETION_HASH_KEY = 'holds-once-test-hash-key-0123456789abcdef';
const [D1, D2, D3, D4] = [daysAgo(4), daysAgo(3), daysAgo(2), daysAgo(1)] as const;
const trackerAuth = `Basic ${Buffer.from(`${LOCAL_CREDENTIALS.trackerWriteKey}:`).toString('base64')}`;

let stack: LocalStack;
let stateDir: string;
let handler: (event: unknown) => Promise<ExportSummary>;

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'holds-once-'));
  stack = await startLocalStack({
    ...isolatedStack('once', 1),
    stateDir,
    poller: { batchSize: 500, maxBatchingWindowMs: 50, pollIntervalMs: 50 },
    processorEnv: { IDENTITY_CACHE_TTL_SECONDS: '0', DELETION_HASH_KEY },
    personalizeControl: { activateAfterMs: 0 },
  });
  // The export and the deletion step read the same environment as deployed beside the processor.
  Object.assign(process.env, { DELETION_HASH_KEY, BULK_MODE: 'complement', EXPORT_REEXPORT_DAYS: '2', POWERTOOLS_METRICS_DISABLED: 'true' });
  const { handleExportEvent, setExportRuntime } = await import('../shared/export/handle.js');
  setExportRuntime(undefined);
  handler = async (event) => (await handleExportEvent(event)) as ExportSummary;
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  await rm(stateDir, { recursive: true, force: true });
});

type Message = Record<string, unknown>;
const view = (eventId: string, anonymousId: string, time: number, userId?: string): Message => ({
  type: 'track',
  event: 'Product Viewed',
  messageId: eventId,
  anonymousId,
  ...(userId !== undefined && { userId }),
  timestamp: new Date(time).toISOString(),
  // One product per event: a bulk row maps back to its eventId by ITEM_ID.
  properties: { product_id: `p-${eventId}` },
});
const identify = (anonymousId: string, userId: string, time: number): Message => ({
  type: 'identify',
  messageId: `login-${anonymousId}-${time}`,
  anonymousId,
  userId,
  timestamp: new Date(time).toISOString(),
});

/** As a tracker posts: batches of 100, sentAt of the batch's last message (an old, queued batch). */
async function track(messages: readonly Message[]): Promise<void> {
  for (let i = 0; i < messages.length; i += 100) {
    const batch = messages.slice(i, i + 100);
    const res = await fetch(`${stack.http.url}/v1/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: trackerAuth },
      body: JSON.stringify({ batch, sentAt: batch[batch.length - 1]!.timestamp }),
    });
    expect(res.status, await res.text()).toBe(200);
  }
  await stack.poller.idle(60_000);
}

async function post(path: string, body: unknown, authorization: string): Promise<void> {
  const res = await fetch(`${stack.http.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization }, body: JSON.stringify(body) });
  expect(res.status, await res.text()).toBe(200);
  await stack.poller.idle(60_000);
}

/** The nightly schedule at 02:15 UTC of `day`: yesterday and the two days before it. */
async function nightlyPass(day: string): Promise<ExportManifest[]> {
  const summary = await handler({ 'detail-type': 'Scheduled Event', source: 'aws.events', time: `${day}T02:15:00Z` });
  const days = (summary as ExportSummary & { days?: { date: string }[] }).days?.map((d) => d.date) ?? [summary.date];
  const manifests: ExportManifest[] = [];
  for (const date of days) manifests.push(JSON.parse(await readText(stack.names.archiveBucket, `imports/manifests/${date}.json`)) as ExportManifest);
  return manifests;
}

const deletionStep = () => runDeletionStep(deletionStepDepsFromEnv(process.env));
const strictRead = (text: string): string[][] => parse(text, { relax_quotes: false, relax_column_count: false, skip_empty_lines: false, bom: false });

/** Every CSV of every import job Personalize ran (not CREATE FAILED), read strictly, by dataset. */
async function importedRows(datasetArn: string): Promise<{ job: string; mode: string; rows: Record<string, string>[] }[]> {
  const bucket = stack.names.archiveBucket;
  const jobs = stack.personalizeControl!.jobs().filter((j) => j.datasetArn === datasetArn && j.status !== 'CREATE FAILED');
  const out: { job: string; mode: string; rows: Record<string, string>[] }[] = [];
  for (const job of jobs) {
    const prefix = job.dataSource.dataLocation.replace(`s3://${bucket}/`, '');
    const rows: Record<string, string>[] = [];
    for (const key of await listKeys(bucket, prefix)) {
      const [header = [], ...records] = strictRead(await readText(bucket, key));
      for (const r of records) {
        expect(r, key).toHaveLength(header.length);
        rows.push(Object.fromEntries(header.map((h, i) => [h, r[i] ?? ''])));
      }
    }
    out.push({ job: job.jobName, mode: job.importMode, rows });
  }
  return out;
}

describe('Personalize holds each interaction once, attributed right, over several days', () => {
  it('streams, imports, revises and deletes so that every eventId reaches Personalize exactly once', async () => {
    const expectedUser = new Map<string, string>();
    const d1 = (hhmm: string, plusMs = 0) => at(D1, `${hhmm}:00`) + plusMs;

    // ---- Day 1, in the order it happens: browsing first (processed before any login exists),
    // then the logins, then what follows them.
    const browsing: Message[] = [];
    const logins: Message[] = [];
    const afterLogin: Message[] = [];
    // L: 40 visitors browse anonymously, then log in the same day (1,200 events).
    for (let s = 0; s < 40; s++) {
      for (let e = 0; e < 30; e++) {
        browsing.push(view(`L${s}-${e}`, `L${s}`, d1('08:00', s * 60_000 + e * 1000)));
        expectedUser.set(`L${s}-${e}`, `uL${s}`);
      }
      logins.push(identify(`L${s}`, `uL${s}`, d1('12:00', s * 1000)));
    }
    // K: five members, logged in all along (streamed with their user: never in the bulk import).
    for (let k = 0; k < 5; k++) {
      for (let e = 0; e < 10; e++) {
        browsing.push(view(`K${k}-${e}`, `K${k}`, d1('09:00', k * 60_000 + e * 1000), `uK${k}`));
        expectedUser.set(`K${k}-${e}`, `uK${k}`);
      }
    }
    // S: three views, a login, three more (stitched by the processor, streamed with the user).
    for (let e = 0; e < 3; e++) browsing.push(view(`S-pre-${e}`, 'S0', d1('10:00', e * 1000)));
    logins.push(identify('S0', 'uS0', d1('10:05')));
    for (let e = 0; e < 3; e++) afterLogin.push(view(`S-post-${e}`, 'S0', d1('10:10', e * 1000)));
    for (const id of ['S-pre-0', 'S-pre-1', 'S-pre-2', 'S-post-0', 'S-post-1', 'S-post-2']) expectedUser.set(id, 'uS0');
    // T: 25 visitors browse anonymously (1,000 events) and log in only on day 2.
    for (let s = 0; s < 25; s++) {
      for (let e = 0; e < 40; e++) {
        browsing.push(view(`T${s}-${e}`, `T${s}`, d1('14:00', s * 60_000 + e * 1000)));
        expectedUser.set(`T${s}-${e}`, `uT${s}`);
      }
    }
    // Del: browses, logs in; deleted on day 2.
    for (let e = 0; e < 5; e++) browsing.push(view(`Del-${e}`, 'Del', d1('16:00', e * 1000)));
    logins.push(identify('Del', 'uDel', d1('16:30')));
    await track(browsing);
    await track(logins);
    await track(afterLogin);
    await post('/v1/items', { items: [{ itemId: 'cat-1', timestamp: d1('07:00'), properties: { categoryL1: 'shoes', price: 10, creationTimestamp: d1('07:00') } }] }, `Bearer ${LOCAL_CREDENTIALS.feedApiKey}`);

    // PutEvents: every interaction of the day, the known and stitched ones with their user, each
    // with a session Personalize never sees anonymous (it cannot merge any session itself).
    const streamed = stack.personalize!.receivedEvents();
    expect(streamed).toHaveLength(2_261);
    expect(streamed.filter((e) => e.userId !== undefined).map((e) => e.eventId).sort()).toEqual(
      [...Array.from({ length: 5 }, (_, k) => Array.from({ length: 10 }, (__, e) => `K${k}-${e}`)).flat(), 'S-post-0', 'S-post-1', 'S-post-2'].sort(),
    );
    expect(streamed.find((e) => e.eventId === 'S-post-0')?.sessionId).toBe(knownUserSessionId('S0'));

    // ---- Night 1: D1 exported. The import carries only the anonymous history, under its users.
    const [, , night1D1] = await nightlyPass(D2);
    expect(night1D1!.date).toBe(D1);
    // streamed: K's 50 and S's 3 stitched events, which PutEvents holds under their user; T's
    // 1,000 have no user yet (anonymous without link).
    expect(night1D1!.kinds.interactions).toMatchObject({ streamed: 53, backfilled: 1_208, anonymousWithoutLink: 1_000, exported: 1_208, revision: 1 });
    expect(night1D1!.importJobs.map((j) => [j.kind, j.importMode, j.rows])).toEqual([
      ['interactions', 'FULL', 1_208],
      ['items', 'FULL', 1],
    ]);

    // ---- Day 2: late events of day 1, late logins for T, an item update, uDel asks for
    // deletion, the members keep browsing.
    // Two late events of day 1, queued on devices: L0's session is linked (stitched in real time,
    // streamed with its user); T0's is not yet (streamed anonymously, imported by the re-export).
    await track([view('L0-late', 'L0', d1('23:30')), view('T0-late', 'T0', d1('23:40'))]);
    expectedUser.set('L0-late', 'uL0');
    expectedUser.set('T0-late', 'uT0');
    const day2: Message[] = [];
    for (let s = 0; s < 25; s++) day2.push(identify(`T${s}`, `uT${s}`, at(D2, '09:00:00') + s * 1000));
    for (let k = 0; k < 5; k++) {
      day2.push(view(`K${k}-d2`, `K${k}-2`, at(D2, '10:00:00') + k * 1000, `uK${k}`));
      expectedUser.set(`K${k}-d2`, `uK${k}`);
    }
    await track(day2);
    await post('/v1/items', { items: [{ itemId: 'cat-1', timestamp: at(D2, '11:00:00'), properties: { categoryL1: 'boots', price: 12, creationTimestamp: d1('07:00') } }] }, `Bearer ${LOCAL_CREDENTIALS.feedApiKey}`);
    await post('/v1/privacy/delete', { userIds: ['uDel'] }, `Bearer ${LOCAL_CREDENTIALS.privacyApiKey}`);

    // The deletion step: one CreateDataDeletionJob with uDel, for the dataset group.
    const firstStep = await deletionStep();
    expect(firstStep.created.map((j) => [j.datasetGroupArn, j.users])).toEqual([[LOCAL_DATASET_GROUP_ARN, 1]]);

    // ---- Night 2: D2 exported, D1 re-exported: revision 2 carries exactly what changed.
    const night2 = await nightlyPass(D3);
    const night2D1 = night2.find((m) => m.date === D1)!;
    const night2D2 = night2.find((m) => m.date === D2)!;
    expect(night2D1.kinds.interactions).toMatchObject({ exported: 1_001, revision: 2, alreadyPublished: 1_203 });
    expect(night2D1.importJobs.map((j) => [j.kind, j.importMode, j.rows, j.jobName.includes('-r2-')])).toEqual([['interactions', 'INCREMENTAL', 1_001, true]]);
    expect(night2D2.kinds.interactions).toMatchObject({ streamed: 5, exported: 0 });
    expect(night2D2.importJobs.map((j) => [j.kind, j.importMode, j.rows])).toEqual([['items', 'INCREMENTAL', 1]]);

    // The deletion jobs complete (two passes: the docs advise a second job after imports ran).
    // Each run describes the jobs (the local control plane moves them on) and follows them.
    await deletionStep();
    await deletionStep();
    const finalStep = await deletionStep();
    const deletionJobs = stack.personalizeControl!.deletionJobs();
    expect(deletionJobs.filter((j) => j.status === 'COMPLETED').length).toBeGreaterThanOrEqual(2);
    expect(deletionJobs.every((j) => j.datasetGroupArn === LOCAL_DATASET_GROUP_ARN && (j.deletedUsers ?? []).every((u) => u === 'uDel'))).toBe(true);
    expect(finalStep.pendingAfter).toBe(0);
    expect(await listKeys(stack.names.archiveBucket, PENDING_PREFIX)).toEqual([]);

    // ---- Night 3: D3 exported, D2 and D1 re-exported: nothing changed, nothing published.
    const night3 = await nightlyPass(D4);
    expect(night3.flatMap((m) => m.importJobs)).toEqual([]);
    expect(night3.find((m) => m.date === D1)!.kinds.interactions).toMatchObject({ exported: 0, alreadyPublished: 2_204 }); // 1,203 + 1,001

    // ---- What Personalize received, per eventId, over both paths.
    const interactionJobs = await importedRows(LOCAL_INTERACTIONS_DATASET_ARN);
    expect(interactionJobs.map((j) => j.mode)).toEqual(['FULL', 'INCREMENTAL']);
    const copies = new Map<string, string[]>();
    const add = (eventId: string, user: string) => copies.set(eventId, [...(copies.get(eventId) ?? []), user]);
    const events = stack.personalize!.receivedEvents();
    for (const e of events) if (e.userId !== undefined) add(e.eventId ?? '', e.userId);
    for (const job of interactionJobs) for (const r of job.rows) add(r.ITEM_ID!.replace(/^p-/, ''), r.USER_ID!);
    // No session is ever named both anonymously and with a user: Personalize merges none.
    const anonymousSessions = new Set(events.filter((e) => e.userId === undefined).map((e) => e.sessionId));
    expect(events.filter((e) => e.userId !== undefined && anonymousSessions.has(e.sessionId))).toEqual([]);

    expect([...copies.keys()].sort()).toEqual([...expectedUser.keys(), 'Del-0', 'Del-1', 'Del-2', 'Del-3', 'Del-4'].sort());
    for (const [eventId, users] of copies) {
      if (eventId.startsWith('Del-')) {
        // Imported before the deletion, then removed by the COMPLETED deletion jobs; in no later file.
        expect(users, eventId).toEqual(['uDel']);
        expect(interactionJobs[1]!.rows.some((r) => r.USER_ID === 'uDel')).toBe(false);
        continue;
      }
      expect(users, eventId).toEqual([expectedUser.get(eventId)]);
    }

    // Items: the first version FULL, the update INCREMENTAL (it replaces the record by ITEM_ID).
    const itemJobs = await importedRows(LOCAL_ITEMS_DATASET_ARN);
    expect(itemJobs.map((j) => [j.mode, j.rows.map((r) => [r.ITEM_ID, r.CATEGORY_L1])])).toEqual([
      ['FULL', [['cat-1', 'shoes']]],
      ['INCREMENTAL', [['cat-1', 'boots']]],
    ]);

    // Every export wrote its readiness report; the latest one names the minimums.
    const latest = JSON.parse(await readText(stack.names.archiveBucket, 'imports/readiness/latest.json')) as { line?: string };
    expect(latest.line).toMatch(/^readiness: /);
    expect(night3.every((m) => (m as ExportManifest & { readiness?: unknown }).readiness !== undefined)).toBe(true);
  }, 240_000);
});
