import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import type { InteractionMessage, ItemMessage, UserMessage } from '../schemas/canonical.js';
import { s3Client } from '../shared/aws/clients.js';
import type { ExportManifest } from '../shared/export/manifest.js';
import { startLocalPersonalizeControl } from '../local/personalize-control.js';
import { useEmulators } from './support/env.js';
import { configureExport, exportScenario, manifestOf, useExportFunction, type ExportScenario } from './support/export-function.js';
import { at, csvRecords, daysAgo, entry, listKeys, putArchiveBatch, readText } from './support/export.js';

/**
 * Revisions (README "Revisions"): exporting a day again publishes exactly what changed since its
 * last publication, as a new revision-numbered job; nothing new, nothing written. Checked against
 * the local Personalize control plane, with every CSV read back by a strict RFC 4180 reader.
 */

useEmulators();

const exportFunction = useExportFunction();
const control = () => exportFunction().control;
const handler = (event: unknown) => exportFunction().invoke(event);
type Scenario = ExportScenario;
const scenario = (env: Record<string, string> = {}) => exportScenario('revisions', { ...control().env, ...env });

async function runExport(s: Scenario, event: unknown): Promise<ExportManifest> {
  return manifestOf(s, await handler(event));
}

let sequence = 10_000;
/** `count` interactions of logged-in users on `date`, item ids `item-<tag>-<i>`, as one archived batch. */
async function archiveInteractions(s: Scenario, date: string, tag: string, count: number, startAt = '00:00:00'): Promise<void> {
  const step = Math.floor(3_600_000 / count);
  const messages: InteractionMessage[] = Array.from({ length: count }, (_, i) => ({
    kind: 'interaction',
    source: 'native',
    eventId: `${tag}-${i}`,
    sessionId: `${tag}-s${i % 20}`,
    userId: `${tag}-u${i % 20}`,
    eventType: 'View',
    itemId: `item-${tag}-${i}`,
    timestamp: at(date, startAt) + i * step,
    // Values a naive CSV writer breaks: the strict reader must get them back.
    ...(i % 7 === 0 && { properties: { device: 'android, "tablet"' } }),
  }));
  const first = sequence;
  sequence += count + 10;
  await putArchiveBatch(s.bucket, messages.map((m) => entry(m)), { first: String(first), last: String(first + count - 1) });
}

async function archiveItem(s: Scenario, date: string, eventId: string, itemId: string, time: string, properties: ItemMessage['properties']): Promise<void> {
  const message: ItemMessage = { kind: 'item', source: 'feed', eventId, itemId, timestamp: at(date, time), properties };
  const first = sequence++;
  await putArchiveBatch(s.bucket, [entry(message)], { first: String(first), last: String(first) });
}

async function archiveUser(s: Scenario, date: string, eventId: string, userId: string, time: string, properties: UserMessage['properties']): Promise<void> {
  const message: UserMessage = { kind: 'user', source: 'feed', eventId, userId, timestamp: at(date, time), properties };
  const first = sequence++;
  await putArchiveBatch(s.bucket, [entry(message)], { first: String(first), last: String(first) });
}

const strictRead = (text: string): string[][] => parse(text, { relax_quotes: false, relax_column_count: false, skip_empty_lines: false, bom: false });

/** Every CSV under imports/: strict RFC 4180, the kind's header first, one column count, a final newline. */
async function checkEveryCsv(s: Scenario): Promise<number> {
  let checked = 0;
  for (const key of await listKeys(s.bucket, 'imports/')) {
    if (!key.endsWith('.csv')) continue;
    const text = await readText(s.bucket, key);
    const rows = strictRead(text);
    expect(rows.length, key).toBeGreaterThan(1);
    const kind = /imports\/(interactions|items|users)\//.exec(key)?.[1];
    expect(rows[0]![0], key).toBe(kind === 'items' ? 'ITEM_ID' : 'USER_ID');
    for (const row of rows) expect(row, key).toHaveLength(rows[0]!.length);
    expect(text.endsWith('\n'), key).toBe(true);
    checked++;
  }
  return checked;
}

async function recordsIn(s: Scenario, files: readonly string[]): Promise<Record<string, string>[]> {
  const out: Record<string, string>[] = [];
  for (const key of files) out.push(...csvRecords(await readText(s.bucket, key)));
  return out;
}

const createdFor = (s: Scenario) => control().received('CreateDatasetImportJob').filter((c) => JSON.stringify(c.request).includes(s.bucket));

describe('revisions of an exported day', () => {
  it('publishes only what changed since the last publication as revision 2, then nothing', async () => {
    const s = await scenario();
    const day = daysAgo(4);
    await archiveInteractions(s, day, 'a', 1200, '01:00:00');
    await archiveItem(s, day, 'i1', 'sku-1', '08:00:00', { categoryL1: 'shoes', price: 10, creationTimestamp: at(day, '07:00:00') });
    await archiveItem(s, day, 'i2', 'sku-2', '08:00:00', { categoryL1: 'socks', price: 3, creationTimestamp: at(day, '07:00:00'), description: 'warm,\n"wool"' });
    await archiveUser(s, day, 'p1', 'u-1', '08:00:00', { membershipType: 'gold' });

    const first = await runExport(s, { date: day });
    const r1 = first.importJobs;
    expect(r1.map((j) => [j.kind, j.importMode, j.status, j.rows])).toEqual([
      ['interactions', 'FULL', 'started', 1200],
      ['items', 'FULL', 'started', 2],
      ['users', 'FULL', 'started', 1],
    ]);
    for (const j of r1) expect(j.jobName).toMatch(/^pi-[a-z]+-\d{8}-[0-9a-f]{8}-r1-01$/);
    expect(first.kinds.interactions).toMatchObject({ revision: 1, exported: 1200, alreadyPublished: 0 });
    expect(first.kinds.interactions.files).toEqual([
      { key: `imports/interactions/jobs/${r1[0]!.jobName}/interactions-${day}-r1-001.csv`, rows: 1200, bytes: expect.any(Number) as unknown, state: 'imported', jobName: r1[0]!.jobName },
    ]);
    expect(await listKeys(s.bucket, `imports/interactions/ledger/`)).toEqual([`imports/interactions/ledger/${day}.json`]);

    // Late data for the day: 1000 more interactions and a new version of sku-1.
    await archiveInteractions(s, day, 'late', 1000, '05:00:00');
    await archiveItem(s, day, 'i3', 'sku-1', '20:00:00', { categoryL1: 'shoes', price: 8.5, creationTimestamp: at(day, '07:00:00') });

    const second = await runExport(s, { date: day });
    // The r1 jobs ran (the control plane settles on list): revision 2 is INCREMENTAL and holds only the changes.
    expect(control().jobs().filter((j) => r1.some((r) => r.jobName === j.jobName)).map((j) => j.status)).toEqual(['ACTIVE', 'ACTIVE', 'ACTIVE']);
    expect(second.importJobs.map((j) => [j.kind, j.importMode, j.status, j.rows])).toEqual([
      ['interactions', 'INCREMENTAL', 'started', 1000],
      ['items', 'INCREMENTAL', 'started', 1],
    ]);
    const [i2, items2] = second.importJobs;
    expect(i2!.jobName).toBe(r1[0]!.jobName.replace(/-r1-01$/, '-r2-01'));
    expect(second.kinds.interactions).toMatchObject({ revision: 2, exported: 1000, alreadyPublished: 1200 });
    expect(second.kinds.items).toMatchObject({ revision: 2, exported: 1, alreadyPublished: 1, superseded: 1 });
    expect(second.kinds.users).toMatchObject({ exported: 0, alreadyPublished: 1, files: [] });
    const lateRows = await recordsIn(s, i2!.files);
    expect(i2!.files).toEqual([`imports/interactions/jobs/${i2!.jobName}/interactions-${day}-r2-001.csv`]);
    expect(lateRows.map((r) => r.ITEM_ID).sort()).toEqual(Array.from({ length: 1000 }, (_, i) => `item-late-${i}`).sort());
    expect(await recordsIn(s, items2!.files)).toEqual([
      { ITEM_ID: 'sku-1', CATEGORY_L1: 'shoes', CATEGORY_L2: '', PRICE: '8.5', BRAND: '', IN_STOCK: '', CREATION_TIMESTAMP: String(at(day, '07:00:00') / 1000), DESCRIPTION: '' },
    ]);

    // Again: nothing changed, nothing written, no job.
    const before = createdFor(s).length;
    const third = await runExport(s, { date: day });
    expect(third.importJobs).toEqual([]);
    for (const kind of ['interactions', 'items', 'users'] as const) expect(third.kinds[kind]).toMatchObject({ exported: 0, files: [], held: { rows: 0 } });
    expect(third.kinds.interactions.alreadyPublished).toBe(2200);
    expect(third.kinds.items.alreadyPublished).toBe(2);
    expect(createdFor(s)).toHaveLength(before);

    // Every interaction of the day is in exactly one job folder, and every file reads strictly.
    const imported = await recordsIn(s, (await listKeys(s.bucket, 'imports/interactions/jobs/')).filter((k) => k.endsWith('.csv')));
    expect(imported).toHaveLength(2200);
    expect(new Set(imported.map((r) => r.ITEM_ID)).size).toBe(2200);
    expect(await checkEveryCsv(s)).toBe(5);
  });

  it('holds a small revision in pending and replaces it when the day is exported again', async () => {
    const s = await scenario();
    const day = daysAgo(6);
    await archiveInteractions(s, day, 'b', 1100);
    const first = await runExport(s, { date: day });
    expect(first.importJobs.filter((j) => j.kind === 'interactions')).toMatchObject([{ rows: 1100, jobName: expect.stringMatching(/-r1-01$/) as unknown }]);

    await archiveInteractions(s, day, 'late1', 300, '06:00:00');
    const held = await runExport(s, { date: day });
    const pendingKey = `imports/interactions/pending/interactions-${day}-r2-001.csv`;
    expect(held.kinds.interactions).toMatchObject({ revision: 2, exported: 300, alreadyPublished: 1100, held: { rows: 300, files: [pendingKey] } });
    expect(held.kinds.interactions.files).toEqual([
      expect.objectContaining({ key: pendingKey, state: 'pending', reason: expect.stringContaining('below the minimum of 1000') as unknown }),
    ]);

    // More late data: the held file keeps its revision and is replaced by one holding both.
    await archiveInteractions(s, day, 'late2', 800, '07:00:00');
    const again = await runExport(s, { date: day });
    const [job] = again.importJobs.filter((j) => j.kind === 'interactions');
    expect(job).toMatchObject({ importMode: 'INCREMENTAL', status: 'started', rows: 1100, jobName: expect.stringMatching(/-r2-01$/) as unknown });
    expect(job!.files).toEqual([`imports/interactions/jobs/${job!.jobName}/interactions-${day}-r2-001.csv`]);
    const rows = await recordsIn(s, job!.files);
    expect(new Set(rows.map((r) => (r.ITEM_ID ?? '').replace(/-\d+$/, '')))).toEqual(new Set(['item-late1', 'item-late2']));
    expect(await listKeys(s.bucket, 'imports/interactions/pending/')).toEqual([]);
    expect(again.kinds.interactions.held).toMatchObject({ rows: 0, files: [] });
    await checkEveryCsv(s);
  });

  it('republishes the rows of a CREATE FAILED revision under -a2, late rows included', async () => {
    const s = await scenario();
    const day = daysAgo(8);
    await archiveInteractions(s, day, 'c', 1100);
    let clock = Date.now();
    const slow = await startLocalPersonalizeControl({ s3: s3Client(), activateAfterMs: 60_000, now: () => clock });
    try {
      await configureExport(s, slow.env);
      const first = await runExport(s, { date: day });
      const [job] = first.importJobs.filter((j) => j.kind === 'interactions');
      expect(job!.jobName).toMatch(/-r1-01$/);
      // The data is gone before the job runs: it fails, so its rows are not in Personalize.
      for (const key of await listKeys(s.bucket, `imports/interactions/jobs/${job!.jobName}/`)) {
        await s3Client().send(new DeleteObjectCommand({ Bucket: s.bucket, Key: key }));
      }
      clock += 60_000;
      await archiveInteractions(s, day, 'c-late', 40, '09:00:00');

      const retried = await runExport(s, { date: day });
      expect(slow.jobs().find((j) => j.jobName === job!.jobName)?.status).toBe('CREATE FAILED');
      const [retry] = retried.importJobs.filter((j) => j.kind === 'interactions');
      expect(retry).toMatchObject({ jobName: `${job!.jobName}-a2`, importMode: 'FULL', status: 'started', rows: 1140 });
      expect(retried.kinds.interactions).toMatchObject({ revision: 1, alreadyPublished: 0, exported: 1140 });
      expect(await recordsIn(s, retry!.files)).toHaveLength(1140);

      clock += 60_000;
      const third = await runExport(s, { date: day });
      expect(third.importJobs).toEqual([]);
      expect(third.kinds.interactions).toMatchObject({ exported: 0, alreadyPublished: 1140, files: [] });
      expect(slow.jobs().find((j) => j.jobName === `${job!.jobName}-a2`)?.status).toBe('ACTIVE');
      await checkEveryCsv(s);
    } finally {
      await slow.close();
    }
  });

  it('the scheduled pass exports yesterday and the configured days before it, oldest first, so late data is published', async () => {
    const s = await scenario({ EXPORT_REEXPORT_DAYS: '1' });
    const [older, yesterday] = [daysAgo(31), daysAgo(30)];
    await archiveInteractions(s, older, 'd1', 1000);
    await archiveInteractions(s, yesterday, 'd2', 1000);
    const scheduled = { 'detail-type': 'Scheduled Event', source: 'aws.events', time: `${daysAgo(29)}T02:15:00Z`, detail: {} };

    const first = await handler(scheduled);
    expect(first.days?.map((d) => d.date)).toEqual([older, yesterday]);
    expect(first.date).toBe(yesterday);
    expect(first.days?.map((d) => d.kinds.interactions.exported)).toEqual([1000, 1000]);
    for (const d of first.days ?? []) expect(await manifestOf(s, d)).toMatchObject({ date: d.date });

    // Late events of the older day arrive; the next night's pass would have moved on, so ask for the same night.
    await archiveInteractions(s, older, 'd1-late', 1000, '10:00:00');
    const second = await handler(scheduled);
    expect(second.days?.map((d) => [d.date, d.kinds.interactions.exported, d.kinds.interactions.alreadyPublished, d.kinds.interactions.revision])).toEqual([
      [older, 1000, 1000, 2],
      [yesterday, 0, 1000, 2],
    ]);
    expect(second.days?.[0]?.importJobs).toEqual([expect.objectContaining({ kind: 'interactions', importMode: 'INCREMENTAL', status: 'started', jobName: expect.stringMatching(/-r2-01$/) as unknown })]);
    expect(second.days?.[1]?.importJobs).toEqual([]);

    // A direct invocation still exports the one day it names.
    const direct = await handler({ date: older });
    expect(direct.days).toBeUndefined();
    expect(direct.date).toBe(older);
    await checkEveryCsv(s);
  });
});
