import { CreateDatasetImportJobCommand, DescribeDatasetImportJobCommand, PersonalizeClient } from '@aws-sdk/client-personalize';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import type { InteractionMessage, ItemMessage, UserMessage } from '../schemas/canonical.js';
import { personalizeClient, s3Client, dynamoDocumentClient } from '../shared/aws/clients.js';
import { S3Bucket } from '../shared/aws/s3-bucket.js';
import { recordDeletion } from '../shared/deletion.js';
import type { ExportManifest } from '../shared/export/manifest.js';
import { DynamoIdentityStore } from '../shared/aws/dynamo-identity.js';
import { startLocalPersonalizeControl } from '../local/personalize-control.js';
import { useEmulators } from './support/env.js';
import { configureExport, exportScenario, IMPORT_ROLE_ARN, manifestOf, useExportFunction, type ExportScenario } from './support/export-function.js';
import { at, csvRecords, daysAgo, view, entry, listKeys, parseCsv, putArchiveBatch, putRawObject, readText } from './support/export.js';

useEmulators();

const exportFunction = useExportFunction();
const control = () => exportFunction().control;
const handler = (event: unknown) => exportFunction().invoke(event);
const scenario = (env: Record<string, string> = {}) => exportScenario('export', { ...control().env, ...env });
const ROLE_ARN = IMPORT_ROLE_ARN;

const INTERACTIONS_HEADER = 'USER_ID,ITEM_ID,EVENT_TYPE,EVENT_VALUE,TIMESTAMP,IMPRESSION,RECOMMENDATION_ID,EVENT_ATTRIBUTION_SOURCE,DEVICE,DISCOUNT';

async function runExport(s: ExportScenario, event: unknown): Promise<ExportManifest> {
  return manifestOf(s, await handler(event));
}


/** `count` interactions of logged-in users over one day, spread over hours. */
function dayOfInteractions(date: string, tag: string, count: number): InteractionMessage[] {
  const step = Math.floor(86_400_000 / count);
  return Array.from({ length: count }, (_, i) =>
    view(`${tag}-${i}`, `${tag}-s${i % 50}`, at(date, '00:00:00') + i * step, { userId: `${tag}-u${i % 50}` }),
  );
}

describe('the nightly export', () => {
  it('writes one day as Personalize CSVs: deduped, backfilled (also from late links), deleted users out, bad lines counted', async () => {
    const s = await scenario();
    const day = daysAgo(3);
    const next = daysAgo(2);

    // Interactions as the processor archived them. s-login logs in at 10:00 (a1, a2 before, b1 after: stitched
    // then); s-late's link is written after the day; s-none never logs in; u-gone asks for deletion.
    const a1 = view('a1', 's-login', at(day, '09:00:00'));
    const batch1 = [
      entry(a1),
      entry(view('a2', 's-login', at(day, '09:01:00'))),
      entry(view('c1', 's-late', at(day, '09:02:00'))),
      entry(view('c2', 's-late', at(day, '09:03:00'), { eventType: 'AddToCart', eventValue: 2 })),
      entry(view('d1', 's-none', at(day, '09:04:00'))),
      entry(
        view('e1', 's-known', at(day, '09:05:30.900'), {
          userId: 'u-known',
          eventType: 'Purchase',
          eventValue: 19.99,
          impression: ['item-e1', 'item-x', 'item-y'],
          recommendationId: 'rec-1',
          eventAttributionSource: 'email',
          properties: { device: 'android, tablet', discount: true, notInSchema: 'x' },
        }),
      ),
      entry(view('f1', 's-gone', at(day, '09:06:00'), { userId: 'u-gone' })),
      entry(view('g1', 's-gone-anon', at(day, '09:07:00'))),
    ];
    await putArchiveBatch(s.bucket, batch1, { first: '100', last: '199' });
    // A retried part of a batch: a1 again in another object, plus the stitched b1 in the 10:00 hour.
    await putArchiveBatch(s.bucket, [entry(a1), entry(view('b1', 's-login', at(day, '10:01:00')), 'u-login')], { first: '150', last: '299' });
    // Next day's partition: not part of this export.
    await putArchiveBatch(s.bucket, [entry(view('n1', 's-login', at(next, '00:30:00'), { userId: 'u-login' }))], { first: '300', last: '300' });

    const valid = JSON.stringify({ ...view('h1', 's-none', at(day, '11:00:00')), stream: { shardId: 'shardId-000000000000', sequenceNumber: '400', arrivedAt: 1 } });
    await putRawObject(s.bucket, `archive/interactions/dt=${day}/hour=11/shardId-000000000000-400-405.ndjson.gz`, [
      valid,
      '{"kind":"interaction", this is not json',
      JSON.stringify({ ...view('bad-session', 'null', at(day, '11:01:00')) }),
      JSON.stringify({ kind: 'item', eventId: 'misplaced', itemId: 'x', timestamp: at(day, '11:02:00'), properties: {} }),
      '[1,2,3]',
      '',
    ]);
    await putRawObject(s.bucket, `archive/interactions/dt=${day}/hour=12/shardId-000000000000-500-500.ndjson.gz`, Buffer.from('not gzip at all'));

    // Items: two versions of sku-1 (the later wins), sku-2 delivered twice. Users: two versions, one deleted user.
    const item = (eventId: string, itemId: string, time: string, properties: ItemMessage['properties']): ItemMessage => ({
      kind: 'item', source: 'feed', eventId, itemId, timestamp: at(day, time), properties,
    });
    const sku2 = item('i3', 'sku-2', '08:30:00', { categoryL1: 'socks', price: 3, inStock: true, creationTimestamp: at(day, '08:00:00') });
    await putArchiveBatch(s.bucket, [
      entry(item('i1', 'sku-1', '08:00:00', { categoryL1: 'shoes', price: 10, creationTimestamp: at(day, '07:00:00') })),
      entry(item('i2', 'sku-1', '12:00:00', {
        categoryL1: 'shoes', categoryL2: ['running', 'trail'], price: 12.5, inStock: false,
        creationTimestamp: at(day, '07:00:00'), description: 'Light, "fast" shoe',
      })),
      entry(sku2),
    ], { first: '600', last: '699' });
    await putArchiveBatch(s.bucket, [entry(sku2)], { first: '650', last: '699' });
    const user = (eventId: string, userId: string, time: string, properties: UserMessage['properties']): UserMessage => ({
      kind: 'user', source: 'feed', eventId, userId, timestamp: at(day, time), properties,
    });
    await putArchiveBatch(s.bucket, [
      entry(user('p1', 'u-known', '08:00:00', { membershipType: 'silver' })),
      entry(user('p2', 'u-known', '13:00:00', { membershipType: 'gold', country: 'DE' })),
      entry(user('p3', 'u-gone', '08:00:00', { membershipType: 'gold' })),
    ], { first: '700', last: '799' });

    // Links: s-login during the day, s-late the day after (a late login), s-gone-anon belongs to u-gone.
    const links = new DynamoIdentityStore(dynamoDocumentClient(), s.table);
    await links.putLinks([
      { sessionId: 's-login', userId: 'u-login', linkedAt: at(day, '10:00:00'), eventId: 'l1', source: 'native' },
      { sessionId: 's-late', userId: 'u-late', linkedAt: at(next, '08:00:00'), eventId: 'l2', source: 'native' },
      { sessionId: 's-gone-anon', userId: 'u-gone', linkedAt: at(day, '09:08:00'), eventId: 'l3', source: 'native' },
    ]);
    await recordDeletion(new S3Bucket(s3Client(), s.bucket), 'u-gone', at(next, '09:00:00'));

    const manifest = await runExport(s, { date: day });

    // Interactions: below 1000 rows, so held in pending for the next run.
    const interactions = manifest.kinds.interactions;
    const pendingKey = `imports/interactions/pending/interactions-${day}-r1-001.csv`;
    expect(interactions.held.files).toEqual([pendingKey]);
    const text = await readText(s.bucket, pendingKey);
    expect(text.split('\n')[0]).toBe(INTERACTIONS_HEADER);
    expect(text.endsWith('\n')).toBe(true);
    const rows = csvRecords(text);
    const byItem = new Map(rows.map((r) => [r.ITEM_ID, r]));
    expect([...byItem.keys()].sort()).toEqual(['item-a1', 'item-a2', 'item-b1', 'item-c1', 'item-c2', 'item-e1']);
    expect(rows).toHaveLength(6); // a1 once, though archived twice
    expect(byItem.get('item-a1')).toMatchObject({ USER_ID: 'u-login', EVENT_TYPE: 'View', EVENT_VALUE: '', TIMESTAMP: String(at(day, '09:00:00') / 1000) });
    expect(byItem.get('item-a2')?.USER_ID).toBe('u-login');
    expect(byItem.get('item-b1')?.USER_ID).toBe('u-login');
    expect(byItem.get('item-c1')?.USER_ID).toBe('u-late');
    expect(byItem.get('item-c2')).toMatchObject({ USER_ID: 'u-late', EVENT_TYPE: 'AddToCart', EVENT_VALUE: '2' });
    expect(byItem.get('item-e1')).toEqual({
      USER_ID: 'u-known',
      ITEM_ID: 'item-e1',
      EVENT_TYPE: 'Purchase',
      EVENT_VALUE: '19.99',
      TIMESTAMP: String(Math.floor(at(day, '09:05:30.900') / 1000)),
      IMPRESSION: 'item-e1|item-x|item-y',
      RECOMMENDATION_ID: 'rec-1',
      EVENT_ATTRIBUTION_SOURCE: 'email',
      DEVICE: 'android, tablet',
      DISCOUNT: 'true',
    });
    expect(text).toContain('"android, tablet"');

    expect(interactions).toMatchObject({
      archive: { objects: 5, unreadableObjects: [`archive/interactions/dt=${day}/hour=12/shardId-000000000000-500-500.ndjson.gz`] },
      read: 8 + 2 + 5,
      duplicates: 1,
      backfilled: 4, // a1, a2 (same-day login), c1, c2 (late link); b1 was stitched by the processor
      anonymousWithoutLink: 2, // d1, h1
      deletedUserRows: 2, // f1 (own userId), g1 (backfilled to the deleted user)
      exported: 6,
      rejected: 5,
      held: { rows: 6 },
      importJobs: [],
    });
    expect(interactions.rejectedByReason).toEqual({
      'invalid JSON': 1,
      'schema: sessionId: sessionId is blank or the literal text null, undefined or nan': 1,
      'kind "item" in the interactions archive': 1,
      'not a JSON object': 1,
      'unreadable gzip object (its lines before the damage are kept)': 1,
    });
    expect(interactions.rejectedSamples.map((r) => r.line)).toEqual(expect.arrayContaining([2, 3, 4, 5]));
    expect(interactions.propertiesDropped).toEqual({ 'notInSchema: not a field of the Interactions schema': 1 });
    expect(interactions.held.reasons[0]).toMatch(/6 interactions records, below the minimum of 1000/);

    // Items and users: latest version per id, first imports of their datasets are FULL.
    const itemJob = manifest.importJobs.find((j) => j.kind === 'items')!;
    expect(itemJob).toMatchObject({ importMode: 'FULL', status: 'started', rows: 2 });
    expect(itemJob.dataLocation).toBe(`s3://${s.bucket}/imports/items/jobs/${itemJob.jobName}/`);
    const itemsText = await readText(s.bucket, `imports/items/jobs/${itemJob.jobName}/items-${day}-r1-001.csv`);
    expect(parseCsv(itemsText)[0]).toEqual(['ITEM_ID', 'CATEGORY_L1', 'CATEGORY_L2', 'PRICE', 'BRAND', 'IN_STOCK', 'CREATION_TIMESTAMP', 'DESCRIPTION']);
    const items = new Map(csvRecords(itemsText).map((r) => [r.ITEM_ID, r]));
    expect(items.get('sku-1')).toEqual({
      ITEM_ID: 'sku-1', CATEGORY_L1: 'shoes', CATEGORY_L2: 'running|trail', PRICE: '12.5', BRAND: '', IN_STOCK: 'false',
      CREATION_TIMESTAMP: String(at(day, '07:00:00') / 1000), DESCRIPTION: 'Light, "fast" shoe',
    });
    expect(items.get('sku-2')?.IN_STOCK).toBe('true');
    expect(manifest.kinds.items).toMatchObject({ read: 4, duplicates: 1, superseded: 1, exported: 2 });

    const userJob = manifest.importJobs.find((j) => j.kind === 'users')!;
    const users = csvRecords(await readText(s.bucket, `imports/users/jobs/${userJob.jobName}/users-${day}-r1-001.csv`));
    expect(users).toEqual([{ USER_ID: 'u-known', MEMBERSHIP_TYPE: 'gold', COUNTRY: 'DE' }]);
    expect(manifest.kinds.users).toMatchObject({ superseded: 1, deletedUserRows: 1, exported: 1 });

    // What the control plane was asked, and that the jobs ran (the data is where dataLocation says).
    const created = control().received('CreateDatasetImportJob').filter((c) => JSON.stringify(c.request).includes(s.bucket));
    expect(created.map((c) => c.request)).toEqual([
      { jobName: itemJob.jobName, datasetArn: s.datasets.items, dataSource: { dataLocation: itemJob.dataLocation }, roleArn: ROLE_ARN, importMode: 'FULL' },
      { jobName: userJob.jobName, datasetArn: s.datasets.users, dataSource: { dataLocation: userJob.dataLocation }, roleArn: ROLE_ARN, importMode: 'FULL' },
    ]);
    const described = await personalizeClient().send(new DescribeDatasetImportJobCommand({ datasetImportJobArn: itemJob.jobArn }));
    expect(described.datasetImportJob?.status).toBe('ACTIVE');

    // The same day again: no second job for the same data; the held file of the day is replaced
    // (same revision, same rows), items and users have nothing new. (session-as-user is refused
    // outside bootstrap: test/bulk-modes.test.ts.)
    const again = await runExport(s, { date: day });
    expect(csvRecords(await readText(s.bucket, pendingKey))).toEqual(rows);
    expect(again.kinds.interactions).toMatchObject({ sessionAsUser: 0, anonymousWithoutLink: 2, exported: 6 });
    expect(again.importJobs).toEqual([]);
    expect(again.kinds.items).toMatchObject({ exported: 0, alreadyPublished: 2, revision: 2, files: [] });
    expect(again.kinds.users).toMatchObject({ exported: 0, alreadyPublished: 1, files: [] });
    expect(again.kinds.interactions).toMatchObject({ alreadyPublished: 0, revision: 1, held: { files: [pendingKey] } });
    expect(control().received('CreateDatasetImportJob').filter((c) => JSON.stringify(c.request).includes(s.bucket))).toHaveLength(2);
  });

  it('holds a day below 1,000 interactions, imports it with the next day (FULL first, INCREMENTAL after), never twice', async () => {
    const s = await scenario();
    const [d1, d2, d3] = [daysAgo(9), daysAgo(8), daysAgo(7)];
    await putArchiveBatch(s.bucket, dayOfInteractions(d1, 'h1', 600).map((m) => entry(m)), { first: '1', last: '600' });
    await putArchiveBatch(s.bucket, dayOfInteractions(d2, 'h2', 700).map((m) => entry(m)), { first: '601', last: '1300' });
    await putArchiveBatch(s.bucket, dayOfInteractions(d3, 'h3', 1200).map((m) => entry(m)), { first: '1301', last: '2500' });

    const first = await runExport(s, { date: d1 });
    expect(first.kinds.interactions).toMatchObject({ exported: 600, held: { rows: 600, files: [`imports/interactions/pending/interactions-${d1}-r1-001.csv`] } });
    expect(first.importJobs.filter((j) => j.kind === 'interactions')).toEqual([]);

    const second = await runExport(s, { date: d2 });
    const [job2] = second.importJobs.filter((j) => j.kind === 'interactions');
    expect(job2).toMatchObject({ importMode: 'FULL', status: 'started', rows: 1300 });
    const folder = `imports/interactions/jobs/${job2!.jobName}/`;
    expect(job2!.dataLocation).toBe(`s3://${s.bucket}/${folder}`);
    expect(await listKeys(s.bucket, folder)).toEqual([`${folder}interactions-${d1}-r1-001.csv`, `${folder}interactions-${d2}-r1-001.csv`]);
    expect(await listKeys(s.bucket, 'imports/interactions/pending/')).toEqual([]);
    expect(second.kinds.interactions.held.rows).toBe(0);

    const third = await runExport(s, { date: d3 });
    const [job3] = third.importJobs.filter((j) => j.kind === 'interactions');
    expect(job3).toMatchObject({ importMode: 'INCREMENTAL', status: 'started', rows: 1200 });
    expect(control().jobs().find((j) => j.jobName === job2!.jobName)?.status).toBe('ACTIVE');

    // Re-running days already imported starts nothing and holds nothing.
    const before = control().received('CreateDatasetImportJob').length;
    const rerun = await runExport(s, { date: d1 });
    expect(rerun.kinds.interactions).toMatchObject({ exported: 0, alreadyPublished: 600, files: [] });
    expect((await runExport(s, { date: d3 })).importJobs).toEqual([]);
    expect(control().received('CreateDatasetImportJob').length).toBe(before);
    expect(await listKeys(s.bucket, 'imports/interactions/pending/')).toEqual([]);

    // Every interaction of the three days is in exactly one job folder.
    const imported = [];
    for (const key of await listKeys(s.bucket, 'imports/interactions/jobs/')) imported.push(...csvRecords(await readText(s.bucket, key)));
    expect(imported).toHaveLength(2500);
    expect(new Set(imported.map((r) => r.ITEM_ID)).size).toBe(2500);
  });

  it('splits a day over the part size into parts of at most that size, one INCREMENTAL job per part', async () => {
    const partMaxBytes = 100_000;
    const s = await scenario({ EXPORT_PART_MAX_BYTES: String(partMaxBytes) });
    const [d1, d2] = [daysAgo(12), daysAgo(11)];
    await putArchiveBatch(s.bucket, dayOfInteractions(d1, 'p1', 5000).map((m) => entry(m)), { first: '1', last: '5000' });
    await putArchiveBatch(s.bucket, dayOfInteractions(d2, 'p2', 5000).map((m) => entry(m)), { first: '5001', last: '10000' });

    // First import: FULL takes 100 GB, so all parts go into one job folder.
    const first = await runExport(s, { date: d1 });
    const fullJobs = first.importJobs.filter((j) => j.kind === 'interactions');
    expect(fullJobs).toHaveLength(1);
    expect(fullJobs[0]).toMatchObject({ importMode: 'FULL', rows: 5000 });
    expect(fullJobs[0]!.files.length).toBeGreaterThan(1);

    // Then INCREMENTAL: at most partMaxBytes per job; a last part under 1,000 rows waits.
    const second = await runExport(s, { date: d2 });
    const jobs = second.importJobs.filter((j) => j.kind === 'interactions');
    expect(jobs.length).toBeGreaterThanOrEqual(2);
    let rows = 0;
    for (const job of jobs) {
      expect(job).toMatchObject({ importMode: 'INCREMENTAL', status: 'started' });
      expect(job.files).toHaveLength(1);
      expect(job.bytes).toBeLessThanOrEqual(partMaxBytes);
      expect(job.rows).toBeGreaterThanOrEqual(1000);
      const text = await readText(s.bucket, job.files[0]!);
      expect(Buffer.byteLength(text)).toBe(job.bytes);
      expect(text.split('\n')[0]).toBe(INTERACTIONS_HEADER);
      rows += csvRecords(text).length;
    }
    const held = second.kinds.interactions.held;
    expect(rows + held.rows).toBe(5000);
    expect(held.rows).toBeLessThan(1000);
    expect(new Set(jobs.map((j) => j.jobName)).size).toBe(jobs.length);
  });

  it('keeps the files pending with the reason when Personalize refuses the job, and imports them on the next run', async () => {
    const s = await scenario();
    const [day, next] = [daysAgo(15), daysAgo(14)];
    await putArchiveBatch(s.bucket, dayOfInteractions(day, 'r', 1200).map((m) => entry(m)), { first: '1', last: '1200' });
    // Five jobs of another dataset still running: the region's limit of jobs in flight (FACTS §4c).
    const busy = await startLocalPersonalizeControl({ s3: s3Client(), activateAfterMs: 3_600_000 });
    try {
      const busyClient = new PersonalizeClient({ endpoint: busy.url });
      for (let i = 0; i < 5; i++) {
        await busyClient.send(new CreateDatasetImportJobCommand({
          jobName: `other-${i}`, datasetArn: `${s.datasets.interactions}-other`, roleArn: ROLE_ARN, dataSource: { dataLocation: `s3://${s.bucket}/x/` },
        }));
      }
      busyClient.destroy();
      await configureExport(s, { AWS_ENDPOINT_URL_PERSONALIZE: busy.url });
      const refused = await runExport(s, { date: day });
      const [job] = refused.importJobs;
      expect(job).toMatchObject({ kind: 'interactions', status: 'not-started', reason: expect.stringMatching(/^LimitExceededException/) as unknown });
      expect(await listKeys(s.bucket, `imports/interactions/jobs/${job!.jobName}/`)).toEqual([]);
      expect(refused.kinds.interactions.held).toMatchObject({ rows: 1200, files: [`imports/interactions/pending/interactions-${day}-r1-001.csv`] });
      expect(refused.kinds.interactions.held.reasons[0]).toContain('could not start');
    } finally {
      await busy.close();
    }

    await configureExport(s, control().env);
    const retried = await runExport(s, { date: next });
    expect(retried.importJobs).toEqual([expect.objectContaining({ kind: 'interactions', status: 'started', importMode: 'FULL', rows: 1200 })]);
    expect(await listKeys(s.bucket, 'imports/interactions/pending/')).toEqual([]);
  });

  it('exports the UTC day before the time of a scheduled EventBridge event, and refuses an event it does not understand', async () => {
    const s = await scenario();
    const day = daysAgo(20);
    await putArchiveBatch(s.bucket, [entry(view('t1', 's-t', at(day, '23:59:59'), { userId: 'u-t' }))], { first: '1', last: '1' });
    const scheduled = {
      version: '0', id: 'e-1', 'detail-type': 'Scheduled Event', source: 'aws.events', account: '000000000000',
      time: `${daysAgo(19)}T02:30:00Z`, region: 'us-east-1', resources: ['arn:aws:events:us-east-1:000000000000:rule/nightly-export'], detail: {},
    };
    const summary = await handler(scheduled);
    // Yesterday and, by default, the 2 days before it, oldest first: one manifest each.
    expect(summary.days?.map((d) => d.date)).toEqual([daysAgo(22), daysAgo(21), day]);
    const manifest = JSON.parse(await readText(s.bucket, summary.manifestKey)) as ExportManifest;
    expect(manifest.date).toBe(day);
    expect(manifest.kinds.interactions.exported).toBe(1);
    await expect(handler({ date: '22/11/2026' })).rejects.toThrow(/date must be a UTC day written YYYY-MM-DD/);
  });

  it('imports a day again under a retry job name when its import job failed when it ran', async () => {
    const s = await scenario();
    const day = daysAgo(25);
    await putArchiveBatch(s.bucket, dayOfInteractions(day, 'f', 1100).map((m) => entry(m)), { first: '1', last: '1100' });
    // A control plane on a hand-moved clock: the job runs when the test says so.
    let clock = Date.now();
    const slow = await startLocalPersonalizeControl({ s3: s3Client(), activateAfterMs: 60_000, now: () => clock });
    try {
      await configureExport(s, { AWS_ENDPOINT_URL_PERSONALIZE: slow.url });
      const first = await runExport(s, { date: day });
      const [job] = first.importJobs.filter((j) => j.kind === 'interactions');
      expect(job).toMatchObject({ status: 'started', importMode: 'FULL' });

      // The data is gone before the job runs (a mistaken lifecycle rule, say): the job fails.
      for (const key of await listKeys(s.bucket, `imports/interactions/jobs/${job!.jobName}/`)) {
        await s3Client().send(new DeleteObjectCommand({ Bucket: s.bucket, Key: key }));
      }
      clock += 60_000;
      const client = new PersonalizeClient({ endpoint: slow.url });
      const described = await client.send(new DescribeDatasetImportJobCommand({ datasetImportJobArn: job!.jobArn }));
      client.destroy();
      expect(described.datasetImportJob).toMatchObject({ status: 'CREATE FAILED', failureReason: expect.stringContaining('no CSV file') as unknown });

      const again = await runExport(s, { date: day });
      expect(again.importJobs.filter((j) => j.kind === 'interactions')).toEqual([
        expect.objectContaining({ jobName: `${job!.jobName}-a2`, status: 'started', importMode: 'FULL', rows: 1100 }),
      ]);
      clock += 60_000;
      const third = await runExport(s, { date: day });
      expect(third.importJobs).toEqual([]);
      expect(third.kinds.interactions).toMatchObject({ exported: 0, alreadyPublished: 1100, files: [] });
      expect(slow.jobs().map((j) => [j.jobName.endsWith('-a2'), j.status])).toContainEqual([true, 'ACTIVE']);
    } finally {
      await slow.close();
    }
  });

  it('leaves a deleted user out of every later export, explicit and backfilled rows alike', async () => {
    const s = await scenario();
    const day = daysAgo(5);
    await putArchiveBatch(
      s.bucket,
      [
        entry(view('k1', 's-keep', at(day, '08:00:00'), { userId: 'u-keep' })),
        entry(view('x1', 's-x', at(day, '08:01:00'), { userId: 'u-delete-me' })),
        entry(view('x2', 's-x-anon', at(day, '08:02:00'))),
        entry(view('x3', 's-x-stitched', at(day, '08:03:00')), 'u-delete-me'),
      ],
      { first: '1', last: '4' },
    );
    await new DynamoIdentityStore(dynamoDocumentClient(), s.table).putLinks([
      { sessionId: 's-x-anon', userId: 'u-delete-me', linkedAt: at(day, '09:00:00'), eventId: 'l', source: 'native' },
    ]);

    const before = await runExport(s, { date: day, import: false });
    expect(before.kinds.interactions.exported).toBe(4);

    await recordDeletion(new S3Bucket(s3Client(), s.bucket), 'u-delete-me', Date.now());
    const after = await runExport(s, { date: day, import: false });
    const key = `imports/interactions/dt=${day}/interactions-${day}-001.csv`;
    expect(after.kinds.interactions.files).toEqual([expect.objectContaining({ key, state: 'exported', rows: 1 })]);
    const rows = csvRecords(await readText(s.bucket, key));
    expect(rows.map((r) => r.USER_ID)).toEqual(['u-keep']);
    expect(after.kinds.interactions.deletedUserRows).toBe(3);
  });
});
