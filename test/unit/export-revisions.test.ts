import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsArchiveSource, FsImportStore } from '../support/fs-adapters.js';
import { ConfigError, readExportEnv } from '../../shared/config.js';
import { deletedUsersOf } from '../../shared/deletion.js';
import { finishExport, type AthenaFinishEvent } from '../../shared/export/athena/orchestrate.js';
import { reexportDates } from '../../shared/export/handle.js';
import { EXPORT_KINDS } from '../../shared/export/kinds.js';
import { emptyKindReport } from '../../shared/export/manifest.js';
import type { CreateImportJobRequest, ImportJobs, ImportJobSummary } from '../../shared/export/ports.js';
import { preparePublication, publishKind, type PublishSettings } from '../../shared/export/publish.js';
import { loadDatasetSchemas } from '../../shared/personalize/dataset-schema.js';

const DATE = '2026-11-22';
const DATASET = 'arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS';
const ROLE = 'arn:aws:iam::123456789012:role/import';

/** A control plane in memory: jobs are created with the status the test gives. */
class MemoryJobs implements ImportJobs {
  readonly jobs: (ImportJobSummary & { request?: CreateImportJobRequest })[] = [];
  nextStatus = 'CREATE PENDING';
  list(): Promise<ImportJobSummary[]> {
    return Promise.resolve(this.jobs.map(({ jobName, jobArn, status, importMode }) => ({ jobName, jobArn, status, ...(importMode !== undefined && { importMode }) })));
  }
  create(request: CreateImportJobRequest): Promise<{ jobArn: string } | { alreadyExists: true }> {
    if (this.jobs.some((j) => j.jobName === request.jobName)) return Promise.resolve({ alreadyExists: true });
    const jobArn = `arn:job/${request.jobName}`;
    this.jobs.push({ jobName: request.jobName, jobArn, status: this.nextStatus, importMode: request.importMode, request });
    return Promise.resolve({ jobArn });
  }
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pi-revisions-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function part(name: string, lines: readonly string[]) {
  const path = join(dir, `${Math.random().toString(36).slice(2)}-${name}`);
  const text = `ITEM_ID,PRICE\n${lines.map((l) => `${l}\n`).join('')}`;
  await writeFile(path, text);
  return { name, path, rows: lines.length, bytes: Buffer.byteLength(text) };
}

function settings(store: FsImportStore, jobs: MemoryJobs, extra: Partial<PublishSettings> = {}): PublishSettings {
  return { kind: 'items', date: DATE, store, importer: { jobs, datasetArn: DATASET, roleArn: ROLE, mode: 'auto' }, incrementalJobBytes: 1_000_000, ...extra };
}

describe('EXPORT_REEXPORT_DAYS and the days of the nightly pass', () => {
  const base = { ARCHIVE_BUCKET: 'b', IDENTITY_TABLE: 't' };
  it('defaults to 2, takes 0 (only yesterday), and refuses anything else by name', () => {
    expect(readExportEnv(base).EXPORT_REEXPORT_DAYS).toBe(2);
    expect(readExportEnv({ ...base, EXPORT_REEXPORT_DAYS: '0' }).EXPORT_REEXPORT_DAYS).toBe(0);
    expect(readExportEnv({ ...base, EXPORT_REEXPORT_DAYS: ' ' }).EXPORT_REEXPORT_DAYS).toBe(2);
    for (const bad of ['-1', '1.5', 'two', '15']) {
      expect(() => readExportEnv({ ...base, EXPORT_REEXPORT_DAYS: bad })).toThrow(ConfigError);
      expect(() => readExportEnv({ ...base, EXPORT_REEXPORT_DAYS: bad })).toThrow(/EXPORT_REEXPORT_DAYS/);
    }
  });

  it('are yesterday and the N days before it, oldest first, across month ends', () => {
    expect(reexportDates('2026-03-01', 2)).toEqual(['2026-02-27', '2026-02-28', '2026-03-01']);
    expect(reexportDates('2026-03-01', 0)).toEqual(['2026-03-01']);
  });
});

describe('the publication of a day (ledger, revisions)', () => {
  it('counts a live job the ledger missed (a run stopped before writing it) by its folder', async () => {
    const store = new FsImportStore(join(dir, 'healed'));
    const jobs = new MemoryJobs();
    const name = 'pi-items-20261122-0123abcd-r1-01';
    jobs.jobs.push({ jobName: name, jobArn: 'arn:x', status: 'ACTIVE', importMode: 'FULL' });
    const file = await part(`items-${DATE}-r1-001.csv`, ['sku-1,10']);
    await store.upload(`imports/items/jobs/${name}/${file.name}`, file.path);

    const publication = await preparePublication(settings(store, jobs));
    expect(publication.revision).toBe(2);
    expect(publication.baseName).toBe(`items-${DATE}-r2`);
    expect(publication.published.map((f) => f.key)).toEqual([`imports/items/jobs/${name}/${file.name}`]);
    expect(await store.getJson(`imports/items/ledger/${DATE}.json`)).toEqual({ kind: 'items', date: DATE, jobs: { [name]: [file.name] } });
  });

  it('forgets files a later FULL job replaced, and reuses the revision of a failed job (with -a2)', async () => {
    const store = new FsImportStore(join(dir, 'full'));
    const jobs = new MemoryJobs();
    jobs.nextStatus = 'ACTIVE';
    const r1 = await preparePublication(settings(store, jobs));
    expect(r1.revision).toBe(1);
    await publishKind([await part(`items-${DATE}-r1-001.csv`, ['sku-1,10'])], r1, emptyKindReport('items'));
    const r2 = await preparePublication(settings(store, jobs));
    expect(r2.published.map((f) => f.name)).toEqual([`items-${DATE}-r1-001.csv`]);
    // FULL asked for a published day: held, never a FULL import of a delta.
    const fullAsked = await preparePublication(settings(store, jobs, { importer: { jobs, datasetArn: DATASET, roleArn: ROLE, mode: 'FULL' } }));
    const heldReport = emptyKindReport('items');
    await publishKind([await part(`items-${DATE}-r2-001.csv`, ['sku-1,8'])], fullAsked, heldReport);
    expect(heldReport.files).toEqual([expect.objectContaining({ state: 'pending', reason: expect.stringContaining('already published') as unknown })]);
    expect(jobs.jobs).toHaveLength(1);

    // A whole-history FULL import (bootstrap, 2026-11-20..22) supersedes r1 and covers every day of its range.
    const bootstrap = await preparePublication(settings(store, jobs, { importer: { jobs, datasetArn: DATASET, roleArn: ROLE, mode: 'FULL' }, wholeHistory: { from: '2026-11-20' } }));
    expect(bootstrap.published).toEqual([]);
    expect(bootstrap.revision).toBe(2);
    const report = emptyKindReport('items');
    await publishKind([await part(`items-${DATE}-r2-001.csv`, ['sku-1,8', 'sku-0,1'])], bootstrap, report);
    expect(report.importJobs.map((j) => [j.importMode, j.jobName.slice(-6)])).toEqual([['FULL', '-r2-01']]);
    expect(report.held.files).toEqual([]);
    const after = await preparePublication(settings(store, jobs));
    expect(after.published.map((f) => f.name)).toEqual([`items-${DATE}-r2-001.csv`]);
    expect(after.revision).toBe(3);
    const earlier = await preparePublication(settings(store, jobs, { date: '2026-11-20' }));
    expect(earlier.published.map((f) => f.key)).toEqual([`imports/items/jobs/${report.importJobs[0]!.jobName}/items-${DATE}-r2-001.csv`]);

    // The last revision's job fails: its revision is planned again, under -a2.
    jobs.jobs.at(-1)!.status = 'CREATE FAILED';
    const retry = await preparePublication(settings(store, jobs));
    expect(retry.revision).toBe(2);
    const retried = emptyKindReport('items');
    await publishKind([await part(`items-${DATE}-r2-001.csv`, ['sku-1,8'])], retry, retried);
    expect(retried.importJobs.map((j) => [j.importMode, j.jobName.slice(-9)])).toEqual([['INCREMENTAL', '-r2-01-a2']]);
  });
});

describe('the Athena path and revisions', () => {
  it('refuses to finish a day that already has a publication, naming the jobs and what to do', async () => {
    const root = join(dir, 'athena');
    const store = new FsImportStore(root);
    const jobs = new MemoryJobs();
    const name = 'pi-items-20261122-0123abcd-r1-01';
    jobs.jobs.push({ jobName: name, jobArn: 'arn:x', status: 'ACTIVE', importMode: 'FULL' });
    await store.putJson(`imports/items/ledger/${DATE}.json`, { kind: 'items', date: DATE, jobs: { [name]: [`items-${DATE}-r1-001.csv`] } });
    await mkdir(join(root, 'archive'), { recursive: true });
    const kinds: AthenaFinishEvent['kinds'] = EXPORT_KINDS.map((k) => ({
      kind: k, rowsPrefix: `athena/${k}/rows/`, reportPrefix: `athena/${k}/report/`, rowsQueryId: 'q', rowsBytesScanned: 0, reportQueryId: 'r', reportBytesScanned: 0,
    }));
    const deps = {
      archive: new FsArchiveSource(root),
      store,
      jobs,
      links: { getLinks: () => Promise.resolve(new Map()) },
      deletedUsers: () => Promise.resolve(deletedUsersOf([])),
      settings: { schemas: loadDatasetSchemas(), datasets: { items: DATASET }, roleArn: ROLE },
    };
    await expect(
      finishExport(deps, { athena: 'finish', date: DATE, options: {}, anonymous: 'skip', bulkMode: 'bulk-only', kinds }, { partMaxBytes: 1_000_000, mode: 'auto', workDir: dir }),
    ).rejects.toThrow(new RegExp(`${DATE} is already published \\(items: ${name}\\).*embedded engine`));
    // Nothing was written.
    await expect(readFile(join(root, `imports/manifests/${DATE}.json`))).rejects.toThrow();
  });
});
