import { PutObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { buildForwardedObjects } from '../shared/archive.js';
import { dynamoDocumentClient, s3Client } from '../shared/aws/clients.js';
import type { ExportManifest } from '../shared/export/manifest.js';
import { DynamoIdentityStore } from '../shared/aws/dynamo-identity.js';
import type { Entry } from '../shared/entry.js';
import { useEmulators } from './support/env.js';
import { configureExport, exportScenario, manifestOf, useExportFunction, type ExportScenario } from './support/export-function.js';
import { at, csvRecords, daysAgo, view, entry, listKeys, putArchiveBatch, readText } from './support/export.js';

/**
 * The bulk modes (shared/bulk-mode.ts, docs/bulk-modes.md) through the export function: which
 * interactions the import carries given what PutEvents accepted (`forwarded/`), and the runs each
 * mode refuses because they would put an interaction into Personalize twice.
 */

useEmulators();

const exportFunction = useExportFunction();
const control = () => exportFunction().control;
type Scenario = ExportScenario;
const scenario = (env: Record<string, string> = {}) => exportScenario('bulkmode', { ...control().env, ...env });

async function runExport(s: Scenario, event: unknown): Promise<ExportManifest> {
  return manifestOf(s, await exportFunction().invoke(event));
}

/** Writes what the processor writes after PutEvents accepted these entries. */
async function putForwarded(bucket: string, accepted: readonly Entry[], first: string): Promise<void> {
  for (const o of buildForwardedObjects(accepted, { shardId: 'shardId-000000000000', firstSequenceNumber: first, lastSequenceNumber: `${first}9` })) {
    await s3Client().send(new PutObjectCommand({ Bucket: bucket, Key: o.key, Body: o.body }));
  }
}


async function exportedInteractions(s: Scenario, date: string): Promise<Record<string, string>[]> {
  const keys = await listKeys(s.bucket, `imports/interactions/dt=${date}/`);
  const rows: Record<string, string>[] = [];
  for (const key of keys) rows.push(...csvRecords(await readText(s.bucket, key)));
  return rows;
}

describe('complement mode (a live tracker streams)', () => {
  it('imports only what PutEvents never accepted, and anonymous history under the user it now belongs to', async () => {
    const s = await scenario();
    const day = daysAgo(3);
    // streamed-own: accepted with its userId. streamed-anon: accepted anonymously, its session logs
    // in later (Personalize never merges it: the import carries it). streamed-unlinked: accepted
    // anonymously, never linked. refused: Personalize refused it (never accepted), a valid row.
    const streamedOwn = entry(view('own-1', 's-own', at(day, '08:00:00'), { userId: 'u-own' }));
    const streamedStitched = entry(view('stitched-1', 's-anon', at(day, '08:30:00')), 'u-anon');
    const streamedAnon = entry(view('anon-1', 's-anon', at(day, '08:10:00')));
    const streamedUnlinked = entry(view('unlinked-1', 's-unlinked', at(day, '08:20:00')));
    const refused = entry(view('refused-1', 's-own', at(day, '08:40:00'), { userId: 'u-own' }));
    await putArchiveBatch(s.bucket, [streamedOwn, streamedAnon, streamedUnlinked, streamedStitched, refused], { first: '100', last: '199' });
    await putForwarded(s.bucket, [streamedOwn, streamedAnon, streamedUnlinked, streamedStitched], '100');
    await new DynamoIdentityStore(dynamoDocumentClient(), s.table).putLinks([
      { sessionId: 's-anon', userId: 'u-anon', linkedAt: at(day, '08:25:00'), eventId: 'login', source: 'native' },
    ]);

    const manifest = await runExport(s, { date: day, import: false });

    expect(manifest.options.bulkMode).toBe('complement');
    const rows = await exportedInteractions(s, day);
    expect(rows.map((r) => [r.USER_ID, r.ITEM_ID])).toEqual([
      ['u-anon', 'item-anon-1'],
      ['u-own', 'item-refused-1'],
    ]);
    expect(manifest.kinds.interactions).toMatchObject({ read: 5, streamed: 2, backfilled: 1, anonymousWithoutLink: 1, exported: 2 });
  });

  it('refuses session-as-user, and an explicit FULL import of one day, saying why', async () => {
    const s = await scenario();
    const day = daysAgo(3);
    await putArchiveBatch(s.bucket, [entry(view('x-1', 's-x', at(day, '08:00:00'), { userId: 'u-x' }))], { first: '100', last: '199' });
    await expect(runExport(s, { date: day, mode: 'FULL' })).rejects.toThrow(/FULL replaces all of the dataset's bulk data with this one day/);
    await configureExport(s, { EXPORT_ANONYMOUS: 'session-as-user' });
    await expect(runExport(s, { date: day })).rejects.toThrow(/session-as-user is refused in complement mode/);
    expect(await listKeys(s.bucket, 'imports/')).toEqual([]);
  });
});

describe('bulk-only mode (no tracker)', () => {
  it('imports every valid interaction, backfilled, and refuses a day PutEvents already fed', async () => {
    const s = await scenario({ BULK_MODE: 'bulk-only' });
    const day = daysAgo(4);
    const other = daysAgo(5);
    const own = entry(view('b-1', 's-b', at(day, '07:00:00'), { userId: 'u-b' }));
    const anon = entry(view('b-2', 's-c', at(day, '07:10:00')));
    await putArchiveBatch(s.bucket, [own, anon], { first: '100', last: '199' });
    await new DynamoIdentityStore(dynamoDocumentClient(), s.table).putLinks([
      { sessionId: 's-c', userId: 'u-c', linkedAt: at(day, '09:00:00'), eventId: 'login-c', source: 'native' },
    ]);
    const manifest = await runExport(s, { date: day, import: false });
    expect((await exportedInteractions(s, day)).map((r) => r.USER_ID)).toEqual(['u-b', 'u-c']);
    expect(manifest.kinds.interactions).toMatchObject({ streamed: 0, backfilled: 1, exported: 2 });

    const streamed = entry(view('b-3', 's-d', at(other, '07:00:00'), { userId: 'u-d' }));
    await putArchiveBatch(s.bucket, [streamed], { first: '200', last: '299' });
    await putForwarded(s.bucket, [streamed], '200');
    await expect(runExport(s, { date: other, import: false })).rejects.toThrow(/1 objects under forwarded\/ record interactions .* bulk-only would import them a second time/);
  });
});

describe('bootstrap mode (a new dataset group, before its tracker goes live)', () => {
  it('imports the whole range of days as one FULL job (session-as-user allowed: a later FULL replaces it), and refuses INCREMENTAL', async () => {
    const s = await scenario({ BULK_MODE: 'bootstrap', EXPORT_ANONYMOUS: 'session-as-user' });
    const days = [daysAgo(8), daysAgo(7), daysAgo(6)] as const;
    const entries = days.flatMap((d, n) =>
      Array.from({ length: 400 }, (_, i) => entry(view(`boot-${n}-${i}`, `boot-s${i % 40}`, at(d, '10:00:00') + i * 1000, { userId: `boot-u${i % 40}` }))),
    );
    entries.push(entry(view('boot-anon', 'boot-anon-session', at(days[1], '11:00:00'))));
    await putArchiveBatch(s.bucket, entries, { first: '100', last: '199' });
    await expect(runExport(s, { date: days[2], from: days[0], mode: 'INCREMENTAL' })).rejects.toThrow(/bootstrap imports the whole archive with FULL/);

    const manifest = await runExport(s, { date: days[2], from: days[0] });
    expect(manifest.options).toMatchObject({ bulkMode: 'bootstrap', from: days[0] });
    expect(manifest.kinds.interactions).toMatchObject({ exported: 1201, sessionAsUser: 1 });
    const jobs = control().jobs().filter((j) => j.datasetArn === process.env.PERSONALIZE_INTERACTIONS_DATASET_ARN);
    expect(jobs.map((j) => j.importMode)).toEqual(['FULL']);
    const job = manifest.importJobs.find((j) => j.kind === 'interactions');
    expect(job).toMatchObject({ importMode: 'FULL', rows: 1201, status: 'started' });
    const imported: Record<string, string>[] = [];
    for (const key of await listKeys(s.bucket, `imports/interactions/jobs/${job!.jobName}/`)) imported.push(...csvRecords(await readText(s.bucket, key)));
    expect(imported).toHaveLength(1201);
    expect(imported.find((r) => r.ITEM_ID === 'item-boot-anon')?.USER_ID).toBe('boot-anon-session');
  });

  it('refuses a range in which PutEvents already fed the dataset', async () => {
    const s = await scenario({ BULK_MODE: 'bootstrap' });
    const day = daysAgo(9);
    const streamed = entry(view('late-1', 's-l', at(day, '10:00:00'), { userId: 'u-l' }));
    await putArchiveBatch(s.bucket, [streamed], { first: '100', last: '199' });
    await putForwarded(s.bucket, [streamed], '100');
    await expect(runExport(s, { date: daysAgo(8), from: day })).rejects.toThrow(/Bootstrap only the days before the tracker went live/);
  });
});
