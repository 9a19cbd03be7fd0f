import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsArchiveSource, FsImportStore } from '../support/fs-adapters.js';
import { MemoryLinks } from '../support/memory-export.js';
import type { DeletedUsers } from '../../shared/deletion.js';
import { csvHeader, loadDatasetSchemas } from '../../shared/personalize/dataset-schema.js';
import { finishKind, readReport } from '../../shared/export/athena/finish.js';
import type { ExportManifest, ReportRow } from '../../shared/export/manifest.js';
import { CsvPartWriter } from '../../shared/util/csv-parts.js';
import {
  AthenaEventError,
  athenaEventSchema,
  athenaStatements,
  chooseEngine,
  fillAthenaReport,
  finishExport,
  handleAthenaEvent,
  isAthenaEvent,
  planExport,
  prepareExport,
  QUERY_TEXT_MAX_BYTES,
  queryText,
  type AthenaFinishEvent,
  type AthenaFinishSummary,
  type PreparedExport,
  type TargetsPlan,
} from '../../shared/export/athena/orchestrate.js';
import type { ExportDeps } from '../../shared/export/export-day.js';
import { handleExportEvent, setExportRuntime } from '../../shared/export/handle.js';
import type { CreateImportJobRequest, ImportJobs, ImportJobSummary } from '../../shared/export/ports.js';
import type { ExportRuntime } from '../../shared/export/runtime.js';
import { loadEventMapping } from '../../shared/event-mapping.js';
import { loadTargetsFile } from '../../shared/targets.js';
import { AthenaTextError, exportIdOf, forwardedRelation, linksRelation, rawRelation, unloadPrefix, unloadStatement } from '../../shared/export/athena/relations.js';
import { emptyKindReport } from '../../shared/export/manifest.js';
import { EXPORT_KINDS, type ExportKind } from '../../shared/export/kinds.js';
import { duckdbDialect } from '../../shared/export/sql/dialect.js';
import { exportSql, exportStages } from '../../shared/export/sql/rules.js';

const schemas = loadDatasetSchemas();
const HERE = dirname(fileURLToPath(import.meta.url));
const PLAN_SETTINGS = { bulkMode: 'complement', anonymous: 'skip' } as const;
const TABLES = { database: 'personalize_ingest_prod_export', archiveTable: 'archive_lines', linksTable: 'identity_links', forwardedTable: 'forwarded_lines' };
/** What the state machine puts in every prepare and query event (serverless/athena-export.cjs PLACES). */
const PLACES = { bucket: 'personalize-ingest-prod-archive', ...TABLES, targetArchiveTable: 'target_archive_lines', targetForwardedTable: 'target_forwarded_lines' };
/** The tables a non-default target's statements read (orchestrate.ts tablesOf). */
const TARGET_TABLES = { ...TABLES, archiveTable: 'target_archive_lines', forwardedTable: 'target_forwarded_lines', target: 'video' };
const EXPORT_ARN = 'arn:aws:dynamodb:eu-west-1:123456789012:table/personalize-ingest-prod-IdentityTable-1A2B3C/export/01764000000000-a1b2c3d4';
const DATE = '2026-11-22';
const TARGET = {
  bucket: 'personalize-ingest-prod-archive',
  date: DATE,
  runId: '01764000000000-a1b2c3d4',
  tables: TABLES,
  exportId: '01764000000000-a1b2c3d4',
  nowSeconds: Date.UTC(2026, 10, 23, 2, 30) / 1000,
};

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'export-athena-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A registry holding these ids, counting how often it is asked. */
function deletedOf(ids: readonly string[]): DeletedUsers & { asked: number } {
  const set = new Set(ids);
  const registry = {
    asked: 0,
    size: set.size,
    isDeleted(userId: string) {
      registry.asked++;
      return set.has(userId);
    },
  };
  return registry;
}

/** Writes UNLOAD-like output: gzip JSON lines, split over `files` objects, as Athena's JSON writer would. */
async function writeUnload(root: string, prefix: string, rows: readonly Record<string, unknown>[], files = 2): Promise<void> {
  await mkdir(join(root, prefix), { recursive: true });
  const per = Math.ceil(rows.length / files) || 1;
  for (let f = 0; f < files; f++) {
    const chunk = rows.slice(f * per, (f + 1) * per);
    if (chunk.length === 0 && f > 0) continue;
    const text = chunk.map((r) => `${JSON.stringify(r)}\n`).join('');
    await writeFile(join(root, prefix, `20261123_000${f}_query-id.gz`), gzipSync(text));
  }
}

const partRecords = async (paths: readonly string[]) => {
  const texts = await Promise.all(paths.map((p) => readFile(p, 'utf8')));
  return texts;
};

describe('chooseEngine', () => {
  it('runs a day on Athena only when the stack has it and the archive is above the configured size', () => {
    const config = { athenaEnabled: true, minArchiveBytes: 1_000_000_000 };
    expect(chooseEngine(1_000_000_001, config)).toBe('athena');
    expect(chooseEngine(1_000_000_000, config)).toBe('duckdb');
    expect(chooseEngine(0, { athenaEnabled: true, minArchiveBytes: 0 })).toBe('duckdb');
    expect(chooseEngine(10 ** 13, { athenaEnabled: false, minArchiveBytes: 0 })).toBe('duckdb');
  });
});

describe('relations and UNLOAD text', () => {
  it('reads the kind and day of the archive through partition projection, with the object key', () => {
    expect(rawRelation(TABLES, 'interactions', DATE)).toBe(
      `SELECT regexp_replace("$path", '^s3://[^/]+/', '') AS object_key, line
FROM "personalize_ingest_prod_export"."archive_lines"
WHERE kind = 'interactions' AND dt = '2026-11-22'`,
    );
  });

  it('reads a non-default target through the target tables, naming it (its injected partition), with keys relative to its root', () => {
    expect(rawRelation(TARGET_TABLES, 'items', DATE)).toBe(
      `SELECT regexp_replace("$path", '^s3://[^/]+/targets/[^/]+/', '') AS object_key, line
FROM "personalize_ingest_prod_export"."target_archive_lines"
WHERE target = 'video' AND kind = 'items' AND dt = '2026-11-22'`,
    );
    expect(forwardedRelation(TARGET_TABLES, DATE)).toContain(`FROM "personalize_ingest_prod_export"."target_forwarded_lines"\nWHERE target = 'video' AND dt = '2026-11-22'`);
    // The default, named or not, keeps its own tables and text.
    expect(rawRelation({ ...TABLES, target: 'default' }, 'items', DATE)).toBe(rawRelation(TABLES, 'items', DATE));
    // Its UNLOAD folders are the run's, under targets/<name>/ (athena/ is expired and granted as before).
    expect(unloadPrefix(DATE, '01764000000000-a1b2c3d4', 'items', 'rows', 'video')).toBe('athena/exports/2026-11-22/01764000000000-a1b2c3d4/targets/video/items/rows/');
    expect(unloadPrefix(DATE, '01764000000000-a1b2c3d4', 'items', 'rows', 'default')).toBe(unloadPrefix(DATE, '01764000000000-a1b2c3d4', 'items', 'rows'));
  });

  it('reads one row per claim from the named export, as the identity store reads links', () => {
    const text = linksRelation(TABLES, { exportId: '01764000000000-a1b2c3d4', nowSeconds: 1_764_000_000 });
    expect(text).toContain(`FROM "personalize_ingest_prod_export"."identity_links"`);
    expect(text).toContain(`WHERE export_id = '01764000000000-a1b2c3d4'`);
    expect(text).toContain(`NOT starts_with(item.sessionid.s, 'profile#')`);
    expect(text).toContain('NOT coalesce(try_cast(item.expiresat.n AS bigint) <= 1764000000, false)');
    // A link without valid claims is its own claim; every row is (session_id, user_id, linked_at).
    expect(text).toContain('ELSE ARRAY[CAST(ROW(link_user, link_at) AS ROW(user_id varchar, linked_at bigint))]');
    expect(text).toMatch(/^SELECT link\.session_id, claim\.user_id, claim\.linked_at\n/);
    expect(text).toContain('CROSS JOIN UNNEST(link.claims) AS claim (user_id, linked_at)');
  });

  it('splices in only validated names, days and ids', () => {
    expect(() => rawRelation({ ...TABLES, database: 'x"; DROP' }, 'items', DATE)).toThrow(AthenaTextError);
    expect(() => rawRelation(TABLES, 'items', "2026-11-22' OR '1'='1")).toThrow(AthenaTextError);
    expect(() => rawRelation(TABLES, 'items', '2026-02-30')).toThrow(AthenaTextError);
    expect(() => linksRelation(TABLES, { exportId: "x' OR 1=1 --", nowSeconds: 1 })).toThrow(AthenaTextError);
    expect(() => linksRelation(TABLES, { exportId: 'abc', nowSeconds: 1.5 })).toThrow(AthenaTextError);
    expect(exportIdOf(EXPORT_ARN)).toBe('01764000000000-a1b2c3d4');
    expect(() => rawRelation({ ...TARGET_TABLES, target: "video' OR '1'='1" }, 'items', DATE)).toThrow(AthenaTextError);
    expect(() => unloadPrefix(DATE, '01764000000000-a1b2c3d4', 'items', 'rows', '../x')).toThrow(AthenaTextError);
    expect(() => exportIdOf('arn:aws:dynamodb:eu-west-1:123456789012:table/t/backup/x')).toThrow(AthenaTextError);
  });

  it('UNLOADs each run into folders of its own as gzip JSON', () => {
    const prefix = unloadPrefix(DATE, '01764000000000-a1b2c3d4', 'items', 'rows');
    expect(prefix).toBe('athena/exports/2026-11-22/01764000000000-a1b2c3d4/items/rows/');
    expect(unloadStatement('SELECT 1', { bucket: 'my-archive', prefix })).toBe(
      `UNLOAD (\nSELECT 1\n) TO 's3://my-archive/athena/exports/2026-11-22/01764000000000-a1b2c3d4/items/rows/' WITH (format = 'JSON', compression = 'GZIP')`,
    );
    expect(() => unloadStatement('SELECT 1', { bucket: 'My_Bucket', prefix })).toThrow(AthenaTextError);
    expect(() => unloadStatement('SELECT 1', { bucket: 'b-b-b', prefix: "x'/" })).toThrow(AthenaTextError);
  });
});

describe('the finish step', () => {
  const header = csvHeader(schemas.items);
  const headerLine = `${header.join(',')}\n`;

  it('writes each record byte for byte after a header once per part, splitting at record boundaries even inside quoted newlines', async () => {
    const root = join(dir, 'split');
    const records = Array.from({ length: 40 }, (_, i) =>
      i % 3 === 0 ? `item-${i},"line one\nline ""two"", still the value",12.5` : `item-${i},plain,${i}`,
    );
    await writeUnload(root, 'out/', records.map((csv_line) => ({ csv_line })), 3);
    const out = join(dir, 'split-parts');
    await mkdir(out, { recursive: true });
    const maxBytes = 300;
    const result = await finishKind(new FsArchiveSource(root), {
      prefix: 'out/',
      dir: out,
      baseName: `items-${DATE}`,
      header,
      partMaxBytes: maxBytes,
      deleted: deletedOf([]),
    });
    expect(result.records).toBe(40);
    expect(result.objects).toBe(3);
    expect(result.parts.length).toBeGreaterThan(3);
    expect(result.parts.map((p) => p.name)).toEqual(result.parts.map((_, i) => `items-${DATE}-${String(i + 1).padStart(3, '0')}.csv`));
    const texts = await partRecords(result.parts.map((p) => p.path));
    let body = '';
    for (const [i, text] of texts.entries()) {
      expect(Buffer.byteLength(text)).toBe(result.parts[i]!.bytes);
      expect(Buffer.byteLength(text)).toBeLessThanOrEqual(maxBytes);
      // The header once, at the start of every part.
      expect(text.startsWith(headerLine)).toBe(true);
      expect(text.slice(headerLine.length)).not.toContain(headerLine);
      body += text.slice(headerLine.length);
    }
    // Exactly the records, in the UNLOAD objects' key order, each followed by \n.
    expect(body).toBe(records.map((r) => `${r}\n`).join(''));
    expect(result.parts.reduce((n, p) => n + p.rows, 0)).toBe(40);
  });

  it('leaves out deleted users, counting them; rows without a user stay', async () => {
    const root = join(dir, 'deleted');
    const rows = [
      { user_id: 'u-1', csv_line: 'u-1,a' },
      { user_id: 'u-gone', csv_line: 'u-gone,b' },
      { user_id: 'u-gone', csv_line: 'u-gone,c' },
      { user_id: null, csv_line: 'item,d' },
      { csv_line: 'item,e' },
      { user_id: 'u-2', csv_line: 'u-2,f' },
    ];
    await writeUnload(root, 'rows/', rows, 2);
    const out = join(dir, 'deleted-parts');
    await mkdir(out, { recursive: true });
    const registry = deletedOf(['u-gone']);
    const result = await finishKind(new FsArchiveSource(root), { prefix: 'rows/', dir: out, baseName: `users-${DATE}`, header: ['USER_ID', 'X'], partMaxBytes: 1024, deleted: registry });
    expect(result).toMatchObject({ records: 6, deletedUserRows: 2, tooLarge: 0 });
    expect(await readFile(result.parts[0]!.path, 'utf8')).toBe('USER_ID,X\nu-1,a\nitem,d\nitem,e\nu-2,f\n');
  });

  it('leaves out a record no part can hold, counting it, and writes no part for an empty output', async () => {
    const root = join(dir, 'large');
    await writeUnload(root, 'rows/', [{ csv_line: 'x'.repeat(200) }, { csv_line: 'small' }], 1);
    await writeUnload(root, 'empty/', [], 1);
    const out = join(dir, 'large-parts');
    await mkdir(out, { recursive: true });
    const source = new FsArchiveSource(root);
    const options = { dir: out, baseName: `items-${DATE}`, header: ['A'], partMaxBytes: 100, deleted: deletedOf([]) };
    expect(await finishKind(source, { ...options, prefix: 'rows/' })).toMatchObject({ records: 2, tooLarge: 1, parts: [{ rows: 1 }] });
    expect(await finishKind(source, { ...options, prefix: 'empty/' })).toMatchObject({ records: 0, parts: [] });
  });

  it('fails on output that is not the query\'s: damaged gzip, a line that is not JSON, a row without csv_line', async () => {
    const root = join(dir, 'broken');
    const options = { dir: join(dir, 'broken-parts'), baseName: `items-${DATE}`, header: ['A'], partMaxBytes: 1000, deleted: deletedOf([]) };
    await mkdir(options.dir, { recursive: true });
    await mkdir(join(root, 'gz'), { recursive: true });
    await writeFile(join(root, 'gz', 'a.gz'), gzipSync('{"csv_line":"a"}\n').subarray(0, 12));
    await mkdir(join(root, 'json'), { recursive: true });
    await writeFile(join(root, 'json', 'a.gz'), gzipSync('{"csv_line":\n'));
    await writeUnload(root, 'shape/', [{ user_id: 'u', line: 'x' }], 1);
    const source = new FsArchiveSource(root);
    await expect(finishKind(source, { ...options, prefix: 'gz/' })).rejects.toThrow(/gz\/a\.gz/);
    await expect(finishKind(source, { ...options, prefix: 'json/' })).rejects.toThrow(/json\/a\.gz line 1: not JSON/);
    await expect(finishKind(source, { ...options, prefix: 'shape/' })).rejects.toThrow(/not an UNLOAD row/);
  });

  it('merges UNLOAD files back into the query\'s order when the rows carry their sort keys (ids by UTF-8 bytes)', async () => {
    const root = join(dir, 'merge');
    // The query's order: ord_ts, then ord_id as Trino and DuckDB compare VARCHAR (UTF-8 bytes; not JavaScript's UTF-16 order).
    const ordered = [
      { ord_ts: 1, ord_id: 'a' },
      { ord_ts: 1, ord_id: 'z' },
      { ord_ts: 1, ord_id: 'é' },
      { ord_ts: 1, ord_id: '\uFF5E' },
      { ord_ts: 1, ord_id: '😀' },
      { ord_ts: 2, ord_id: 'a' },
      { ord_ts: '3', ord_id: 'b' },
      { ord_ts: 10, ord_id: 'a' },
    ].map((keys, i) => ({ ...keys, user_id: `u${i}`, csv_line: `row-${i}` }));
    // Three files, each in order, interleaved among themselves (as UNLOAD writes them).
    for (const f of [0, 1, 2]) {
      await writeUnload(root, 'rows/', [], 1);
      const mine = ordered.filter((_, i) => i % 3 === f);
      await writeFile(join(root, 'rows', `f${f}.gz`), gzipSync(mine.map((r) => `${JSON.stringify(r)}\n`).join('')));
    }
    await rm(join(root, 'rows', '20261123_0000_query-id.gz'));
    const out = join(dir, 'merge-parts');
    await mkdir(out, { recursive: true });
    const result = await finishKind(new FsArchiveSource(root), { prefix: 'rows/', dir: out, baseName: `users-${DATE}`, header: ['A'], partMaxBytes: 1000, deleted: deletedOf(['u3']) });
    expect(result).toMatchObject({ objects: 3, records: 8, deletedUserRows: 1 });
    expect(await readFile(result.parts[0]!.path, 'utf8')).toBe(`A\n${ordered.filter((r) => r.user_id !== 'u3').map((r) => `${r.csv_line}\n`).join('')}`);

    await writeUnload(root, 'mixed/', [{ csv_line: 'a', ord_ts: 1, ord_id: 'x' }, { csv_line: 'b' }], 1);
    await expect(finishKind(new FsArchiveSource(root), { prefix: 'mixed/', dir: out, baseName: `users-${DATE}`, header: ['A'], partMaxBytes: 1000, deleted: deletedOf([]) })).rejects.toThrow(
      /some rows carry their sort keys/,
    );
  });

  it('writes records with the sibling writer exactly as given', async () => {
    const out = join(dir, 'writer');
    await mkdir(out, { recursive: true });
    const writer = new CsvPartWriter(out, 'items-2026-11-22', ['ITEM_ID'], 20);
    expect(await writer.writeRecord('"a\r\nb"')).toBe(true);
    expect(await writer.writeRecord('x'.repeat(20))).toBe(false);
    const [part] = await writer.close();
    expect(await readFile(part!.path, 'utf8')).toBe('ITEM_ID\n"a\r\nb"\n');
  });

  it('reads the report (numbers as JSON numbers or strings, NULL reasons left out or null) into the manifest\'s fields', async () => {
    const root = join(dir, 'report');
    await writeUnload(root, 'report/', [
      { metric: 'read', n: 10 },
      { metric: 'rejected', reason: 'invalid JSON', n: '2' },
      { metric: 'rowRejected', reason: 'not exportable: ITEM_ID is empty but required by the Interactions schema', n: 1 },
      { metric: 'duplicates', reason: null, n: 1 },
      { metric: 'propertiesDropped', reason: 'device: "x" is not allowed', n: 3 },
      { metric: 'rows', n: 6 },
      { metric: 'backfilled', n: 2 },
      { metric: 'sessionAsUser', n: 0 },
      { metric: 'surprise', n: 5 },
    ]);
    const rows: ReportRow[] = await readReport(new FsArchiveSource(root), 'report/');
    expect(rows[1]).toEqual({ metric: 'rejected', reason: 'invalid JSON', n: 2 });
    const report = emptyKindReport('interactions');
    const counted = fillAthenaReport(report, rows, { parts: [{ name: 'p', path: 'p', bytes: 1, rows: 4 }], objects: 1, bytes: 1, records: 6, deletedUserRows: 1, tooLarge: 1 });
    expect(counted).toBe(6);
    expect(report).toMatchObject({
      read: 10,
      rejected: 4,
      rejectedByReason: {
        'invalid JSON': 2,
        'not exportable: ITEM_ID is empty but required by the Interactions schema': 1,
        'row larger than the CSV part limit': 1,
      },
      duplicates: 1,
      backfilled: 2,
      deletedUserRows: 1,
      exported: 4,
      propertiesDropped: { 'device: "" is not allowed': 3 },
    });
    expect(report.notes).toEqual(['report metrics not understood (not counted): surprise']);
  });
});

describe('the state machine\'s events', () => {
  it('tells Athena events from the export Lambda\'s own, and refuses malformed ones', () => {
    expect(isAthenaEvent({ athena: 'plan' })).toBe(true);
    expect(isAthenaEvent({ date: DATE })).toBe(false);
    expect(athenaEventSchema.safeParse({ athena: 'prepare', date: DATE }).success).toBe(false);
    expect(athenaEventSchema.safeParse({ athena: 'finish', date: DATE, options: {}, anonymous: 'skip', kinds: [] }).success).toBe(false);
  });

  it('plans the previous day of a scheduled run, or a day named by hand, by the size of its archive', async () => {
    const root = join(dir, 'plan');
    await mkdir(join(root, `archive/interactions/dt=${DATE}/hour=09`), { recursive: true });
    await writeFile(join(root, `archive/interactions/dt=${DATE}/hour=09/a.ndjson.gz`), Buffer.alloc(2000));
    await mkdir(join(root, `archive/items/dt=${DATE}/hour=10`), { recursive: true });
    await writeFile(join(root, `archive/items/dt=${DATE}/hour=10/b.ndjson.gz`), Buffer.alloc(500));
    const archive = new FsArchiveSource(root);
    const scheduled = { 'detail-type': 'Scheduled Event', time: '2026-11-23T02:15:00Z', source: 'aws.events' };
    expect(await planExport(archive, { athena: 'plan', input: scheduled, minArchiveBytes: 2000 }, PLAN_SETTINGS)).toEqual({
      engine: 'athena',
      date: DATE,
      archiveBytes: 2500,
      minArchiveBytes: 2000,
      options: {},
    });
    expect(await planExport(archive, { athena: 'plan', input: { date: DATE, mode: 'INCREMENTAL', import: false }, minArchiveBytes: 3000 }, PLAN_SETTINGS)).toMatchObject({
      engine: 'duckdb',
      options: { mode: 'INCREMENTAL', import: false },
    });
    // The bulk-mode refusals (shared/bulk-mode.ts) come before any query is paid for.
    await expect(planExport(archive, { athena: 'plan', input: { date: DATE, mode: 'FULL' }, minArchiveBytes: 0 }, PLAN_SETTINGS)).rejects.toThrow(/FULL replaces all of the dataset's bulk data/);
    expect(await planExport(archive, { athena: 'plan', input: { date: DATE, engine: 'athena' }, minArchiveBytes: 10 ** 12 }, PLAN_SETTINGS)).toMatchObject({ engine: 'athena' });
    await expect(planExport(archive, { athena: 'plan', input: { Comment: 'Insert your JSON here' }, minArchiveBytes: 0 }, PLAN_SETTINGS)).rejects.toThrow(AthenaEventError);
  });

  it('prepares this run\'s folders and settings, then each statement\'s UNLOAD text on its own', () => {
    const prepared = prepareExport(
      { athena: 'prepare', date: DATE, identityExportArn: EXPORT_ARN, ...PLACES },
      { anonymous: 'skip', bulkMode: 'complement', now: Date.UTC(2026, 10, 23, 2, 30) },
    );
    expect(prepared).toMatchObject({ runId: '01764000000000-a1b2c3d4', anonymous: 'skip', nowSeconds: Date.UTC(2026, 10, 23, 2, 30) / 1000 });
    expect(prepared.kinds).toEqual(
      EXPORT_KINDS.map((k) => ({
        kind: k,
        rowsPrefix: `athena/exports/${DATE}/01764000000000-a1b2c3d4/${k}/rows/`,
        reportPrefix: `athena/exports/${DATE}/01764000000000-a1b2c3d4/${k}/report/`,
      })),
    );
    expect(() => prepareExport({ athena: 'prepare', date: DATE, identityExportArn: 'nope', ...PLACES, bucket: 'b-b-b' }, { anonymous: 'skip', bulkMode: 'complement', now: 0 })).toThrow(AthenaTextError);

    for (const k of EXPORT_KINDS) {
      const statements = athenaStatements(k, { ...TARGET, date: DATE }, { schemas, anonymous: 'skip', bulkMode: 'complement' });
      expect(statements.rowsQuery).toMatch(/^UNLOAD \(\nWITH staged AS/);
      expect(statements.rowsQuery.endsWith(`TO 's3://personalize-ingest-prod-archive/${statements.rowsPrefix}' WITH (format = 'JSON', compression = 'GZIP')`)).toBe(true);
      expect(statements.reportQuery.endsWith(`TO 's3://personalize-ingest-prod-archive/${statements.reportPrefix}' WITH (format = 'JSON', compression = 'GZIP')`)).toBe(true);
      expect(statements.rowsQuery).toContain(`WHERE kind = '${k}' AND dt = '${DATE}'`);
    }
  });

  it('hands out one statement\'s text at a time, and refuses, naming it, a text too long to run', () => {
    const event = { athena: 'query' as const, statement: 'report' as const, kind: 'users' as const, date: DATE, identityExportArn: EXPORT_ARN, nowSeconds: 1, anonymous: 'skip' as const, bulkMode: 'complement' as const, ...PLACES };
    const expected = athenaStatements('users', { ...TARGET, nowSeconds: 1 }, { schemas, anonymous: 'skip', bulkMode: 'complement' }).reportQuery;
    expect(queryText(event, schemas)).toEqual({ query: expected, bytes: Buffer.byteLength(expected) });
    // A schema with many more columns makes a longer text than a query may be.
    const wide = { ...schemas, users: { ...schemas.users, fields: Array.from({ length: 40 }, () => schemas.users.fields).flat() } };
    expect(() => queryText(event, wide)).toThrow(/users report query is \d+ bytes, over the 258048 this path runs/);
  });
});

// ------------------------------------------------------------------ golden files

/** Parentheses balance outside string literals and quoted identifiers (a cheap check of generated text). */
function balanced(sql: string): boolean {
  let depth = 0;
  let quote: string | undefined;
  for (const ch of sql) {
    if (quote) {
      if (ch === quote) quote = undefined;
      continue;
    }
    if (ch === "'" || ch === '"') quote = ch;
    else if (ch === '(') depth++;
    else if (ch === ')' && --depth < 0) return false;
  }
  return depth === 0 && quote === undefined;
}

describe('golden Trino text (test/unit/golden/athena-<kind>.sql; regenerate with UPDATE_GOLDEN=1)', () => {
  for (const k of EXPORT_KINDS) {
    const statements = athenaStatements(k, TARGET, { schemas, anonymous: 'skip', bulkMode: 'complement' });
    it(`${k}: the full UNLOAD of the rows and of the report for the shipped schemas`, async () => {
      const text = `-- Generated by test/unit/export-athena.test.ts (UPDATE_GOLDEN=1 to regenerate). Do not edit.\n-- rows\n${statements.rowsQuery};\n\n-- report\n${statements.reportQuery};\n`;
      expect(balanced(statements.rowsQuery)).toBe(true);
      expect(balanced(statements.reportQuery)).toBe(true);
      // Nothing of the deletion registry (its key, its hashes) is ever in Athena's query text.
      expect(text).not.toMatch(/hmac|deletion|secret/i);
      const file = join(HERE, 'golden', `athena-${k}.sql`);
      if (process.env.UPDATE_GOLDEN === '1') {
        await mkdir(dirname(file), { recursive: true });
        await writeFile(file, text);
      }
      const golden = await readFile(file, 'utf8').catch(() => undefined);
      expect(golden, `${file} is missing: run UPDATE_GOLDEN=1 npx vitest run test/unit/export-athena.test.ts`).toBeDefined();
      expect(text).toBe(golden);
    });

    it(`${k}: each text fits Athena's query limit and a Step Functions state (${QUERY_TEXT_MAX_BYTES} bytes)`, () => {
      expect(Buffer.byteLength(statements.rowsQuery)).toBeLessThanOrEqual(QUERY_TEXT_MAX_BYTES);
      expect(Buffer.byteLength(statements.reportQuery)).toBeLessThanOrEqual(QUERY_TEXT_MAX_BYTES);
    });
  }
});

// ------------------------------------------------------------------ the same query on DuckDB

/**
 * Athena cannot run here. The same logical query (../sql/rules.ts), spelled for DuckDB, stands in
 * for it: its rows go through what UNLOAD does (JSON lines, gzip, several files) and the finish step,
 * and must come out byte for byte as the query produced them, with the report's counts agreeing.
 */
describe('the finish step over the rules run on DuckDB in place of Athena', () => {
  let instance: DuckDBInstance;
  let connection: DuckDBConnection;
  const T = Date.UTC(2026, 10, 22, 9, 30, 0);

  beforeAll(async () => {
    instance = await DuckDBInstance.create(':memory:');
    connection = await instance.connect();
  });
  afterAll(() => {
    connection.closeSync();
    instance.closeSync();
  });

  const lines: Record<ExportKind, string[]> = {
    interactions: [
      JSON.stringify({ kind: 'interaction', eventId: 'e1', source: 'native', timestamp: T, sessionId: 's1', userId: 'u-1', eventType: 'View', itemId: 'sku,1' }),
      JSON.stringify({ kind: 'interaction', eventId: 'e1', source: 'native', timestamp: T, sessionId: 's1', userId: 'u-1', eventType: 'View', itemId: 'sku,1' }),
      JSON.stringify({ kind: 'interaction', eventId: 'e2', source: 'native', timestamp: T + 1000, sessionId: 's2', eventType: 'Purchase', itemId: 'sku-"2"' }),
      JSON.stringify({ kind: 'interaction', eventId: 'e3', source: 'native', timestamp: T + 2000, sessionId: 's3', userId: 'u-gone', eventType: 'View', itemId: 'sku-3' }),
      JSON.stringify({ kind: 'interaction', eventId: 'e4', source: 'native', timestamp: T + 3000, sessionId: 's4', eventType: 'View', itemId: 'sku-4' }),
      JSON.stringify({ kind: 'interaction', eventId: '', source: 'native', timestamp: T, sessionId: 's5', eventType: 'View', itemId: 'sku-5' }),
    ],
    items: [
      JSON.stringify({ kind: 'item', eventId: 'i1', source: 'feed', timestamp: T, itemId: 'sku-1', properties: { categoryL1: 'shoes', price: 10, creationTimestamp: T, description: 'first version' } }),
      JSON.stringify({ kind: 'item', eventId: 'i2', source: 'feed', timestamp: T + 5, itemId: 'sku-1', properties: { categoryL1: 'boots', price: 12, creationTimestamp: T, description: 'ünïcødé 🥾' } }),
      JSON.stringify({ kind: 'item', eventId: 'i3', source: 'feed', timestamp: T, itemId: 'sku-2', properties: { categoryL1: 'hats', price: 3.5, creationTimestamp: T + 1000, description: 'says "hi", a, b\nthen\r\nmore\u2028' } }),
    ],
    users: [
      JSON.stringify({ kind: 'user', eventId: 'p1', source: 'native', timestamp: T, userId: 'u-1', properties: { membershipType: 'gold' } }),
      JSON.stringify({ kind: 'user', eventId: 'p2', source: 'native', timestamp: T, userId: 'u-gone', properties: { membershipType: 'silver' } }),
    ],
  };

  for (const k of EXPORT_KINDS) {
    it(`${k}: records byte-identical to the query's csv_line, deleted users out, counts agreeing`, async () => {
      await connection.run('CREATE OR REPLACE TABLE raw_t (object_key VARCHAR, line VARCHAR)');
      await connection.run('CREATE OR REPLACE TABLE links_t (session_id VARCHAR, user_id VARCHAR, linked_at BIGINT)');
      const raw = await connection.createAppender('raw_t');
      for (const [i, line] of lines[k].entries()) {
        raw.appendVarchar(`archive/${k}/dt=${DATE}/hour=09/o${i % 2}.ndjson.gz`);
        raw.appendVarchar(line);
        raw.endRow();
      }
      raw.closeSync();
      const links = await connection.createAppender('links_t');
      links.appendVarchar('s2');
      links.appendVarchar('u-2');
      links.appendBigInt(BigInt(T + 60_000));
      links.endRow();
      links.closeSync();

      const sql = exportSql(k, { schemas, dialect: duckdbDialect, anonymous: 'skip', relations: { raw: 'SELECT * FROM raw_t', links: 'SELECT * FROM links_t' } });
      const rows = (await connection.runAndReadAll(sql.rows)).getRows() as [string | null, string][];
      const report = (await connection.runAndReadAll(sql.report)).getRows() as [string, string | null, bigint | number][];

      // What UNLOAD writes: JSON lines (a NULL column left out), gzip, several files in key order.
      const root = join(dir, `duckdb-${k}`);
      await writeUnload(root, 'rows/', rows.map(([user_id, csv_line]) => (user_id === null ? { csv_line } : { user_id, csv_line })), 2);
      await writeUnload(root, 'report/', report.map(([metric, reason, n]) => ({ metric, reason, n: Number(n) })), 1);
      const out = join(dir, `duckdb-${k}-parts`);
      await mkdir(out, { recursive: true });
      const source = new FsArchiveSource(root);
      const finished = await finishKind(source, {
        prefix: 'rows/',
        dir: out,
        baseName: `${k}-${DATE}`,
        header: csvHeader(schemas[k]),
        partMaxBytes: 1_000_000,
        deleted: deletedOf(['u-gone']),
      });
      const kept = rows.filter(([user]) => user !== 'u-gone').map(([, line]) => `${line}\n`).join('');
      const [part] = finished.parts;
      expect(await readFile(part!.path, 'utf8')).toBe(`${csvHeader(schemas[k]).join(',')}\n${kept}`);
      expect(finished.deletedUserRows).toBe(rows.filter(([user]) => user === 'u-gone').length);

      const manifestReport = emptyKindReport(k);
      const counted = fillAthenaReport(manifestReport, await readReport(source, 'report/'), finished);
      expect(counted).toBe(finished.records);
      expect(manifestReport.read).toBe(lines[k].length);
      expect(manifestReport.exported).toBe(finished.records - finished.deletedUserRows);
      if (k === 'interactions') {
        expect(manifestReport).toMatchObject({ duplicates: 1, backfilled: 1, rejected: 1, deletedUserRows: 1 });
        expect(kept).not.toContain('sku-4'); // anonymous, no link: skipped
      }
      if (k === 'items') {
        expect(manifestReport.superseded).toBe(1);
        // A quoted value holding newlines survived the JSON round trip as one record.
        expect(rows.some(([, line]) => line.includes('\n'))).toBe(true);
      }

      // With the sort keys in the output (the rows stage has them: ord_ts, ord_id), files written in
      // any interleaving come back in the query's order, byte for byte the same CSV.
      const stages = exportStages(k, { schemas, dialect: duckdbDialect, anonymous: 'skip' });
      const keyed = (await connection.runAndReadAll(
        `WITH staged AS (${stages.staged('(SELECT * FROM raw_t)')}), export_rows AS (${stages.rows('staged', '(SELECT * FROM links_t)')})
         SELECT user_id, csv_line, ord_ts, ord_id FROM export_rows WHERE row_reject IS NULL ORDER BY ord_ts, ord_id`,
      )).getRows() as [string | null, string, bigint, string][];
      expect(keyed.map(([, line]) => line)).toEqual(rows.map(([, line]) => line));
      const keyedRoot = join(dir, `duckdb-${k}-keyed`);
      await mkdir(join(keyedRoot, 'rows'), { recursive: true });
      for (const f of [0, 1]) {
        const mine = keyed.filter((_, i) => i % 2 === f).map(([user_id, csv_line, ord_ts, ord_id]) => ({ ...(user_id !== null && { user_id }), csv_line, ord_ts: Number(ord_ts), ord_id }));
        await writeFile(join(keyedRoot, 'rows', `f${f}.gz`), gzipSync(mine.map((r) => `${JSON.stringify(r)}\n`).join('')));
      }
      const keyedOut = join(dir, `duckdb-${k}-keyed-parts`);
      await mkdir(keyedOut, { recursive: true });
      const merged = await finishKind(new FsArchiveSource(keyedRoot), { prefix: 'rows/', dir: keyedOut, baseName: `${k}-${DATE}`, header: csvHeader(schemas[k]), partMaxBytes: 1_000_000, deleted: deletedOf(['u-gone']) });
      expect(await readFile(merged.parts[0]!.path, 'utf8')).toBe(await readFile(part!.path, 'utf8'));
    });
  }
});

describe('finishExport (the last step, end to end on local folders)', () => {
  it('publishes the parts, records Athena in the manifest, and counts per kind', async () => {
    const root = join(dir, 'end-to-end');
    const runId = '01764000000000-a1b2c3d4';
    await mkdir(join(root, `archive/items/dt=${DATE}/hour=00`), { recursive: true });
    await writeFile(join(root, `archive/items/dt=${DATE}/hour=00/a.ndjson.gz`), gzipSync('{}\n'));
    const kinds: AthenaFinishEvent['kinds'] = [];
    for (const k of EXPORT_KINDS) {
      const rowsPrefix = unloadPrefix(DATE, runId, k, 'rows');
      const reportPrefix = unloadPrefix(DATE, runId, k, 'report');
      const rows = k === 'items' ? [{ csv_line: 'sku-1,shoes,,10,,,1700000000,' }] : k === 'users' ? [{ user_id: 'u-gone', csv_line: 'u-gone,gold,' }] : [];
      await writeUnload(root, rowsPrefix, rows, 1);
      await writeUnload(root, reportPrefix, [{ metric: 'read', n: rows.length }, { metric: 'rows', n: rows.length }], 1);
      kinds.push({ kind: k, rowsPrefix, reportPrefix, rowsQueryId: `q-${k}`, rowsBytesScanned: 100, reportQueryId: `r-${k}`, reportBytesScanned: 100 });
    }
    const store = new FsImportStore(root);
    const deps = {
      archive: new FsArchiveSource(root),
      store,
      links: { getLinks: () => Promise.resolve(new Map()) },
      deletedUsers: () => Promise.resolve(deletedOf(['u-gone'])),
      settings: { schemas, datasets: {} },
    };
    const manifest = await finishExport(
      deps,
      { athena: 'finish', date: DATE, options: { import: false }, anonymous: 'skip', bulkMode: 'complement', startedAt: '2026-11-23T02:15:00.000Z', kinds },
      { partMaxBytes: 1_000_000, mode: 'auto', workDir: dir },
    );
    expect(manifest.options).toMatchObject({ engine: { name: 'athena' }, import: false, anonymous: 'skip' });
    expect(manifest.startedAt).toBe('2026-11-23T02:15:00.000Z');
    expect(manifest.kinds.items).toMatchObject({ exported: 1, archive: { objects: 1 }, files: [{ key: `imports/items/dt=${DATE}/items-${DATE}-001.csv`, state: 'exported', rows: 1 }] });
    expect(manifest.kinds.users).toMatchObject({ exported: 0, deletedUserRows: 1, files: [] });
    expect(manifest.kinds.items.notes.join('\n')).toContain('exported with Athena: rows query q-items scanned 100 bytes');
    expect(await readFile(join(root, `imports/items/dt=${DATE}/items-${DATE}-001.csv`), 'utf8')).toBe(`${csvHeader(schemas.items).join(',')}\nsku-1,shoes,,10,,,1700000000,\n`);
    expect(await store.getJson(`imports/manifests/${DATE}.json`)).toMatchObject({ date: DATE });
    // The scratch folder is gone.
    expect((await readdir(dir)).filter((n) => n.startsWith('pi-athena-'))).toEqual([]);
  });
});

// ------------------------------------------------------------------ several targets

/**
 * Two targets (docs/targets.md) as schemas/targets/example.json declares them: the retail default at
 * the bucket's root, the VIDEO_ON_DEMAND `video` target under targets/video/. The state machine's
 * steps are played in its order with the events its definition sends (serverless/athena-export.cjs);
 * Athena is stood in for by `localAthena`, which reads what the Glue tables' location templates
 * resolve to for the text's table and partition values, and runs the same rules (../sql/rules.ts) on
 * DuckDB, writing what UNLOAD writes to the text's TO folder.
 */
describe('several targets: the Athena steps per target (docs/targets.md)', () => {
  const EXAMPLE = join(HERE, '../../schemas/targets/example.json');
  const video = loadTargetsFile(EXAMPLE, { schemas, mapping: loadEventMapping({}) })!.find((t) => t.name === 'video')!;
  const ROLE = 'arn:aws:iam::000000000000:role/personalize-import';
  const RETAIL = {
    interactions: 'arn:aws:personalize:us-east-1:000000000000:dataset/local-retail/INTERACTIONS',
    items: 'arn:aws:personalize:us-east-1:000000000000:dataset/local-retail/ITEMS',
    users: 'arn:aws:personalize:us-east-1:000000000000:dataset/local-retail/USERS',
  };
  const VIDEO = { interactions: video.interactionsDatasetArn!, items: video.itemsDatasetArn!, users: video.usersDatasetArn! };
  const T = Date.UTC(2026, 10, 22, 9, 30, 0);
  const RUN = '01764000000000-a1b2c3d4';
  const line = (value: Record<string, unknown>) => JSON.stringify(value);

  /** Each target's archive of the day, as the processor writes it (shared/process/process-batch.ts). */
  const ARCHIVE: Record<string, Record<ExportKind, string[]>> = {
    '': {
      interactions: [
        line({ kind: 'interaction', eventId: 'r1', source: 'native', timestamp: T, sessionId: 's1', userId: 'u-1', eventType: 'View', itemId: 'sku-1' }),
        line({ kind: 'interaction', eventId: 'r2', source: 'native', timestamp: T + 1000, sessionId: 's2', eventType: 'Purchase', itemId: 'sku-2' }),
      ],
      items: [line({ kind: 'item', eventId: 'ri1', source: 'feed', timestamp: T, itemId: 'sku-1', properties: { categoryL1: 'shoes', price: 10, creationTimestamp: T, description: 'boots' } })],
      users: [line({ kind: 'user', eventId: 'ru1', source: 'native', timestamp: T, userId: 'u-1', properties: { membershipType: 'gold' } })],
    },
    'targets/video/': {
      interactions: [
        line({ kind: 'interaction', eventId: 'v1', source: 'segment', timestamp: T, sessionId: 'vs1', userId: 'u-1', eventType: 'Watch', itemId: 'film-1' }),
        line({ kind: 'interaction', eventId: 'v2', source: 'segment', timestamp: T + 2000, sessionId: 'vs2', eventType: 'Click', itemId: 'film-2' }),
        line({ kind: 'interaction', eventId: 'v3', source: 'segment', timestamp: T + 3000, sessionId: 'vs3', userId: 'u-1', eventType: 'Watch', itemId: 'film-2' }),
        // Enough for an import job of their own (Personalize's minimum is 1,000 records: FACTS §4c).
        ...Array.from({ length: 1000 }, (_, i) =>
          line({ kind: 'interaction', eventId: `vw${i}`, source: 'segment', timestamp: T + 10_000 + i, sessionId: `vs-u3-${i % 7}`, userId: 'u-3', eventType: 'Watch', itemId: `film-${i % 2 === 0 ? 1 : 2}` }),
        ),
      ],
      items: [
        line({ kind: 'item', eventId: 'vi1', source: 'feed', timestamp: T, itemId: 'film-1', properties: { genres: 'drama|thriller', creationTimestamp: T, duration: 5400, contentOwner: 'studio-a' } }),
        line({ kind: 'item', eventId: 'vi2', source: 'feed', timestamp: T, itemId: 'film-2', properties: { genres: 'comedy', creationTimestamp: T, contentClassification: 'PG' } }),
      ],
      users: [line({ kind: 'user', eventId: 'vu1', source: 'native', timestamp: T, userId: 'u-1', properties: { subscriptionModel: 'premium' } })],
    },
  };

  /** A bucket on disk: both archives, and the video target's record of what PutEvents accepted (v1). */
  async function bucket(name: string): Promise<string> {
    const root = join(dir, name);
    for (const [prefix, kinds] of Object.entries(ARCHIVE)) {
      for (const k of EXPORT_KINDS) {
        await mkdir(join(root, `${prefix}archive/${k}/dt=${DATE}/hour=09`), { recursive: true });
        await writeFile(join(root, `${prefix}archive/${k}/dt=${DATE}/hour=09/a.ndjson.gz`), gzipSync(kinds[k].map((l) => `${l}\n`).join('')));
      }
    }
    await mkdir(join(root, `targets/video/forwarded/interactions/dt=${DATE}/hour=09`), { recursive: true });
    await writeFile(join(root, `targets/video/forwarded/interactions/dt=${DATE}/hour=09/f.ndjson.gz`), gzipSync(`${line({ sessionId: 'vs1', eventId: 'v1' })}\n`));
    return root;
  }

  /** One control plane for the account: jobs per dataset. */
  class Jobs implements ImportJobs {
    readonly created: CreateImportJobRequest[] = [];
    list(datasetArn: string): Promise<ImportJobSummary[]> {
      return Promise.resolve(this.created.filter((r) => r.datasetArn === datasetArn).map((r) => ({ jobName: r.jobName, jobArn: `arn:job/${r.jobName}`, status: 'CREATE PENDING', importMode: r.importMode })));
    }
    create(request: CreateImportJobRequest): Promise<{ jobArn: string } | { alreadyExists: true }> {
      if (this.created.some((r) => r.jobName === request.jobName && r.datasetArn === request.datasetArn)) return Promise.resolve({ alreadyExists: true });
      this.created.push(request);
      return Promise.resolve({ jobArn: `arn:job/${request.jobName}` });
    }
  }

  /** Identity links are shared by every target: s2 (retail) and vs2 (video) were claimed by u-2 after the day. */
  const links = new MemoryLinks().add('s2', 'u-2', T + 60_000).add('vs2', 'u-2', T + 60_000);

  /** What runtime.ts builds from TARGETS_FILE, on a directory: the video target rooted at targets/video/. */
  function runtimeOf(root: string, jobs: Jobs, withTargets = true): ExportRuntime {
    const deps: ExportDeps = {
      archive: new FsArchiveSource(root),
      store: new FsImportStore(root),
      links,
      deletedUsers: () => Promise.resolve(deletedOf([])),
      jobs,
      settings: { schemas, datasets: RETAIL, roleArn: ROLE },
    };
    const videoRoot = join(root, 'targets/video');
    return {
      deps,
      targets: withTargets
        ? [{ name: 'video', deps: { ...deps, archive: new FsArchiveSource(videoRoot), store: new FsImportStore(videoRoot), settings: { schemas: video.schemas, datasets: VIDEO, roleArn: ROLE } } }]
        : [],
      defaults: { bulkMode: 'complement', mode: 'auto', anonymous: 'skip', partMaxBytes: 1_000_000, readConcurrency: 4, reexportDays: 0, engine: { memoryLimit: '256MB', threads: 1 }, workDir: dir },
    };
  }

  let instance: DuckDBInstance;
  let connection: DuckDBConnection;
  beforeAll(async () => {
    instance = await DuckDBInstance.create(':memory:');
    connection = await instance.connect();
  });
  afterAll(() => {
    connection.closeSync();
    instance.closeSync();
  });

  const gunzipLines = async (root: string, prefix: string): Promise<{ key: string; line: string }[]> => {
    const out: { key: string; line: string }[] = [];
    for (const o of await new FsArchiveSource(root).list(prefix)) {
      for (const l of gunzipSync(await readFile(join(root, o.key))).toString('utf8').split('\n')) if (l !== '') out.push({ key: o.key, line: l });
    }
    return out;
  };

  /**
   * Athena, locally: the text's table and partition values -> the folder its Glue location template
   * names (archive_lines: archive/<kind>/dt=<day>/; target_archive_lines: targets/<target>/archive/...;
   * the forwarded tables alike), the run's identity export -> the shared links, then the same rules on
   * DuckDB with the schemas of the target the text names; rows and report written as UNLOAD writes
   * them (gzip JSON lines) to the TO folder.
   */
  async function localAthena(root: string, runtime: ExportRuntime, query: string): Promise<void> {
    const to = /\) TO 's3:\/\/[^/]+\/([^']+)' WITH \(format = 'JSON', compression = 'GZIP'\)$/.exec(query)?.[1];
    const from = /FROM "[a-z_]+"\."(archive_lines|target_archive_lines)"\nWHERE (?:target = '([a-z0-9-]+)' AND )?kind = '([a-z]+)' AND dt = '([0-9-]+)'/.exec(query);
    expect(to, 'an UNLOAD to the bucket').toBeDefined();
    expect(from, 'the archive table with its partition values').not.toBeNull();
    const [, table, target, k, dt] = from! as unknown as [string, string, string | undefined, ExportKind, string];
    // Athena refuses a target table read without its injected partition value.
    expect(table === 'target_archive_lines', 'a target table is read with target = ...').toBe(target !== undefined);
    const root_ = target === undefined ? '' : `targets/${target}/`;
    const fwd = /FROM "[a-z_]+"\."(forwarded_lines|target_forwarded_lines)"\nWHERE (?:target = '([a-z0-9-]+)' AND )?dt = '([0-9-]+)'/.exec(query);
    if (fwd) expect(fwd[2]).toBe(target);
    if (k === 'interactions') expect(query).toContain(`WHERE export_id = '${RUN}'`);

    await connection.run('CREATE OR REPLACE TABLE raw_t (object_key VARCHAR, line VARCHAR)');
    await connection.run('CREATE OR REPLACE TABLE links_t (session_id VARCHAR, user_id VARCHAR, linked_at BIGINT)');
    await connection.run('CREATE OR REPLACE TABLE fwd_t (session_id VARCHAR, event_id VARCHAR)');
    const raw = await connection.createAppender('raw_t');
    for (const l of await gunzipLines(root, `${root_}archive/${k}/dt=${dt}/`)) {
      // "$path" with the target's root taken off, as rawRelation does.
      raw.appendVarchar(l.key.slice(root_.length));
      raw.appendVarchar(l.line);
      raw.endRow();
    }
    raw.closeSync();
    const linkRows = await connection.createAppender('links_t');
    for (const [session, claims] of links.claims) {
      for (const c of claims) {
        linkRows.appendVarchar(session);
        linkRows.appendVarchar(c.userId);
        linkRows.appendBigInt(BigInt(c.linkedAt ?? 0));
        linkRows.endRow();
      }
    }
    linkRows.closeSync();
    const forwarded = await connection.createAppender('fwd_t');
    if (fwd) {
      for (const l of await gunzipLines(root, `${root_}forwarded/interactions/dt=${dt}/`)) {
        const { sessionId, eventId } = JSON.parse(l.line) as { sessionId: string; eventId: string };
        forwarded.appendVarchar(sessionId);
        forwarded.appendVarchar(eventId);
        forwarded.endRow();
      }
    }
    forwarded.closeSync();

    const targetSchemas = target === undefined ? runtime.deps.settings.schemas : runtime.targets.find((t) => t.name === target)!.deps.settings.schemas;
    const sql = exportSql(k, {
      schemas: targetSchemas,
      dialect: duckdbDialect,
      anonymous: runtime.defaults.anonymous,
      bulkMode: runtime.defaults.bulkMode,
      relations: { raw: 'SELECT * FROM raw_t', links: 'SELECT * FROM links_t', ...(fwd && { forwarded: 'SELECT * FROM fwd_t' }) },
    });
    const rows = to!.endsWith('/rows/')
      ? ((await connection.runAndReadAll(sql.rows)).getRows() as [string | null, string, bigint, string][]).map(([user_id, csv_line, ord_ts, ord_id]) => ({ ...(user_id !== null && { user_id }), csv_line, ord_ts: Number(ord_ts), ord_id }))
      : ((await connection.runAndReadAll(sql.report)).getRows() as [string, string | null, bigint | number][]).map(([metric, reason, n]) => ({ metric, reason, n: Number(n) }));
    // UNLOAD refuses a folder that is not empty.
    expect(await new FsArchiveSource(root).list(to!)).toEqual([]);
    await writeUnload(root, to!, rows, 2);
  }

  /** The state machine's run, step by step, with the events its definition sends; returns each target's result. */
  async function execute(root: string, runtime: ExportRuntime, input: unknown, minArchiveBytes: number) {
    const plan = (await handleAthenaEvent({ athena: 'plan', input, minArchiveBytes }, runtime)) as TargetsPlan;
    const identityExportArn = plan.athena ? EXPORT_ARN : 'none';
    const results: AthenaFinishSummary[] = [];
    for (const item of plan.targets) {
      if (item.engine === 'duckdb') {
        // Through the export Lambda's handler, which dispatches the state machine's events.
        setExportRuntime(runtime);
        try {
          results.push((await handleExportEvent({ athena: 'embedded', target: item.target, date: plan.date, options: plan.options })) as AthenaFinishSummary);
        } finally {
          setExportRuntime(undefined);
        }
        continue;
      }
      const prepared = (await handleAthenaEvent({ athena: 'prepare', target: item.target, date: plan.date, identityExportArn, ...PLACES }, runtime)) as PreparedExport;
      const kinds: AthenaFinishEvent['kinds'] = [];
      for (const q of prepared.kinds) {
        const ids = { rowsQueryId: `rows-${item.target}-${q.kind}`, reportQueryId: `report-${item.target}-${q.kind}` };
        for (const statement of ['rows', 'report'] as const) {
          const event = { athena: 'query', statement, kind: q.kind, target: item.target, date: plan.date, identityExportArn, nowSeconds: prepared.nowSeconds, anonymous: prepared.anonymous, bulkMode: prepared.bulkMode, ...PLACES };
          const { query } = (await handleAthenaEvent(event, runtime)) as { query: string };
          await localAthena(root, runtime, query);
        }
        kinds.push({ kind: q.kind, rowsPrefix: q.rowsPrefix, reportPrefix: q.reportPrefix, ...ids, rowsBytesScanned: 10, reportBytesScanned: 10 });
      }
      results.push(
        (await handleAthenaEvent(
          { athena: 'finish', target: item.target, date: plan.date, options: plan.options, anonymous: prepared.anonymous, bulkMode: prepared.bulkMode, startedAt: '2026-11-23T02:15:00.000Z', kinds },
          runtime,
        )) as AthenaFinishSummary,
      );
    }
    return { plan, results };
  }

  /** The CSV files under a prefix, by key relative to it. */
  const csvFiles = async (root: string, prefix: string): Promise<Record<string, string>> => {
    const out: Record<string, string> = {};
    for (const o of await new FsArchiveSource(root).list(prefix)) if (o.key.endsWith('.csv')) out[o.key.slice(prefix.length)] = await readFile(join(root, o.key), 'utf8');
    return out;
  };

  it('plans each target by the size of its own archive of the day, the default first, and exports the identity table only when one runs on Athena', async () => {
    const root = await bucket('targets-plan');
    const runtime = runtimeOf(root, new Jobs());
    const sizeOf = async (prefix: string) => (await new FsArchiveSource(root).list(prefix)).filter((o) => o.key.includes(`/dt=${DATE}/`) && !o.key.includes('forwarded/')).reduce((n, o) => n + o.bytes, 0);
    const retailBytes = await sizeOf('archive/');
    const videoBytes = await sizeOf('targets/video/archive/');
    expect(videoBytes).toBeGreaterThan(retailBytes);
    const plan = (await handleAthenaEvent({ athena: 'plan', input: { date: DATE }, minArchiveBytes: retailBytes }, runtime)) as TargetsPlan;
    expect(plan).toEqual({
      date: DATE,
      minArchiveBytes: retailBytes,
      options: {},
      athena: true,
      targets: [
        { target: 'default', engine: 'duckdb', archiveBytes: retailBytes },
        { target: 'video', engine: 'athena', archiveBytes: videoBytes },
      ],
    });
    const small = (await handleAthenaEvent({ athena: 'plan', input: { date: DATE }, minArchiveBytes: videoBytes }, runtime)) as TargetsPlan;
    expect(small).toMatchObject({ athena: false, targets: [{ target: 'default', engine: 'duckdb' }, { target: 'video', engine: 'duckdb' }] });
    // A step naming a target TARGETS_FILE does not declare fails before any query is paid for.
    await expect(handleAthenaEvent({ athena: 'prepare', target: 'radio', date: DATE, identityExportArn: EXPORT_ARN, ...PLACES }, runtime)).rejects.toThrow(/target radio is not declared in TARGETS_FILE \(declared: default, video\)/);
  });

  it("runs each target in its own bulk mode, and tells the caller of each finished target's run (its metrics)", async () => {
    const root = await bucket('targets-bulk-mode');
    const base = runtimeOf(root, new Jobs());
    const runtime: ExportRuntime = { ...base, targets: base.targets.map((t) => ({ ...t, bulkMode: 'bulk-only' as const })) };
    const prepared = async (target: string) =>
      ((await handleAthenaEvent({ athena: 'prepare', target, date: DATE, identityExportArn: EXPORT_ARN, ...PLACES }, runtime)) as PreparedExport).bulkMode;
    expect([await prepared('default'), await prepared('video')]).toEqual(['complement', 'bulk-only']);
    const told: [string, string][] = [];
    const tell = (manifest: ExportManifest, target: string) => void told.push([target, manifest.options.bulkMode]);
    // The video day has a forwarded record: its own mode (bulk-only) refuses to import it again.
    await expect(handleAthenaEvent({ athena: 'embedded', target: 'video', date: DATE, options: { import: false } }, runtime, new Date(), tell)).rejects.toThrow(/bulk-only would import them a second time/);
    const summary = (await handleAthenaEvent({ athena: 'embedded', target: 'default', date: DATE, options: { import: false } }, runtime, new Date(), tell)) as AthenaFinishSummary;
    expect(summary.target).toBe('default');
    expect(told).toEqual([['default', 'complement']]);
  });

  /** Both targets forced onto Athena (execution input `"engine": "athena"`), once for the tests below. */
  let onAthena: { root: string; jobs: Jobs } & Awaited<ReturnType<typeof execute>>;
  beforeAll(async () => {
    const root = await bucket('targets-athena');
    const jobs = new Jobs();
    onAthena = { root, jobs, ...(await execute(root, runtimeOf(root, jobs), { date: DATE, engine: 'athena' }, 10 ** 12)) };
  }, 120_000);

  it('exports the video target on Athena into targets/video/ with its schemas, datasets and role, and leaves the default\'s output as it was', async () => {
    const { root, jobs, plan, results } = onAthena;
    expect(plan.targets.map((t) => [t.target, t.engine])).toEqual([['default', 'athena'], ['video', 'athena']]);
    expect(results.map((r) => [r.target, r.manifestKey])).toEqual([['default', `imports/manifests/${DATE}.json`], ['video', `imports/manifests/${DATE}.json`]]);

    // Each target's UNLOAD output is its own, under the run's folder in athena/.
    expect((await new FsArchiveSource(root).list(`athena/exports/${DATE}/${RUN}/targets/video/`)).length).toBeGreaterThan(0);

    // The video target: its CSVs under targets/video/imports/, with the video schemas' headers.
    const videoCsvs = await csvFiles(root, 'targets/video/imports/');
    for (const k of EXPORT_KINDS) {
      const files = Object.entries(videoCsvs).filter(([key]) => key.startsWith(`${k}/`));
      expect(files.length, k).toBe(1);
      expect(files[0]![1].split('\n')[0], k).toBe(csvHeader(video.schemas[k]).join(','));
    }
    expect(csvHeader(video.schemas.items)).toEqual(['ITEM_ID', 'GENRES', 'GENRE_L2', 'CREATION_TIMESTAMP', 'DURATION', 'CONTENT_OWNER', 'CONTENT_CLASSIFICATION', 'PRODUCT_DESCRIPTION']);
    const videoItems = Object.entries(videoCsvs).find(([key]) => key.startsWith('items/'))![1];
    expect(videoItems).toContain('film-1,drama|thriller,');
    // Complement: v1 is in the video target's forwarded record (PutEvents took it), vs2 backfilled from the shared links.
    const videoInteractions = Object.entries(videoCsvs).find(([key]) => key.startsWith('interactions/'))![1];
    expect(videoInteractions).not.toContain('u-1,film-1,');
    expect(videoInteractions).toContain('u-2,film-2,Click');
    expect(videoInteractions).toContain('u-1,film-2,Watch');
    const videoManifest = (await new FsImportStore(join(root, 'targets/video')).getJson(`imports/manifests/${DATE}.json`)) as ExportManifest;
    expect(videoManifest.options.engine).toEqual({ name: 'athena' });
    expect(videoManifest.kinds.interactions).toMatchObject({ read: 1003, streamed: 1, backfilled: 1, exported: 1002 });
    // Its import jobs: the video datasets, files under targets/video/imports/, the target's role.
    const videoJobs = jobs.created.filter((j) => j.dataLocation.includes('/targets/video/'));
    expect(videoJobs.map((j) => j.datasetArn).sort()).toEqual(Object.values(VIDEO).sort());
    for (const j of videoJobs) expect(j).toMatchObject({ roleArn: ROLE, dataLocation: expect.stringContaining(`${join(root, 'targets/video/imports', j.datasetArn.split('/').at(-1)!.toLowerCase())}/`) as unknown });
    expect(videoManifest.importJobs.map((j) => [j.kind, j.status])).toEqual([['interactions', 'started'], ['items', 'started'], ['users', 'started']]);

    // The default: the retail headers and datasets at the root, nothing of the video target.
    const retailCsvs = await csvFiles(root, 'imports/');
    for (const k of EXPORT_KINDS) {
      const file = Object.entries(retailCsvs).find(([key]) => key.startsWith(`${k}/`))![1];
      expect(file.split('\n')[0], k).toBe(csvHeader(schemas[k]).join(','));
      expect(file, k).not.toMatch(/film-/);
    }
    // Two retail interactions are below the job minimum: held in the default's own pending folder, as before.
    const retailJobs = jobs.created.filter((j) => !j.dataLocation.includes('/targets/'));
    expect(retailJobs.map((j) => j.datasetArn).sort()).toEqual([RETAIL.items, RETAIL.users]);
    expect(Object.keys(retailCsvs).filter((k) => k.startsWith('interactions/'))).toEqual([`interactions/pending/interactions-${DATE}-r1-001.csv`]);
    expect(jobs.created).toHaveLength(5);

    // ... and exactly what the Athena path wrote for it before targets: the same run with no TARGETS_FILE.
    const alone = await bucket('targets-athena-default-alone');
    await rm(join(alone, 'targets'), { recursive: true, force: true });
    const aloneJobs = new Jobs();
    const single = await execute(alone, runtimeOf(alone, aloneJobs, false), { date: DATE, engine: 'athena' }, 10 ** 12);
    expect(single.plan.targets).toEqual([{ target: 'default', engine: 'athena', archiveBytes: plan.targets[0]!.archiveBytes }]);
    expect(single.results).toEqual([results[0]]);
    expect(await csvFiles(alone, 'imports/')).toEqual(retailCsvs);
    // The same manifest but for the time it finished and the scratch bucket's path.
    const manifestOf = async (r: string) => {
      const m = (await new FsImportStore(r).getJson(`imports/manifests/${DATE}.json`)) as ExportManifest;
      return JSON.parse(JSON.stringify({ ...m, finishedAt: undefined }).replaceAll(r, '<root>')) as unknown;
    };
    expect(await manifestOf(alone)).toEqual(await manifestOf(root));
    expect(aloneJobs.created.map((j) => ({ ...j, dataLocation: j.dataLocation.replace(alone, '<root>') }))).toEqual(retailJobs.map((j) => ({ ...j, dataLocation: j.dataLocation.replace(root, '<root>') })));
  });

  it('writes for a target on Athena the same CSV records the embedded engine writes for it (the state machine\'s small-day branch)', async () => {
    const embedded = await bucket('targets-same-embedded');
    const { plan, results } = await execute(embedded, runtimeOf(embedded, new Jobs()), { date: DATE }, 10 ** 12);
    expect(plan).toMatchObject({ athena: false, targets: [{ target: 'default', engine: 'duckdb' }, { target: 'video', engine: 'duckdb' }] });
    expect(results.map((r) => r.target)).toEqual(['default', 'video']);
    expect(results[1]).toMatchObject({ kinds: { interactions: { read: 1003, exported: 1002 }, items: { exported: 2 }, users: { exported: 1 } } });
    // One target's run each: the embedded run of the video target writes under targets/video/ only, readiness included.
    expect((await new FsArchiveSource(embedded).list('targets/video/imports/readiness/')).length).toBeGreaterThan(0);
    for (const prefix of ['imports/', 'targets/video/imports/']) expect(await csvFiles(onAthena.root, prefix), prefix).toEqual(await csvFiles(embedded, prefix));
  });
});
