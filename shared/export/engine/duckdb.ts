import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { DuckDBInstance, LIST, listValue, VARCHAR, type DuckDBConnection } from '@duckdb/node-api';
import pMap from 'p-map';
import type { BulkMode } from '../../bulk-mode.js';
import { decideConsent, policyRequiresConsent, type ConsentPolicy } from '../../consent/policy.js';
import { consentKeyOf, type ConsentStore } from '../../consent/store.js';
import type { DeletedUsers } from '../../deletion.js';
import { csvValue, shapeProperties, type DatasetSchemas } from '../../personalize/dataset-schema.js';
import { droppedReason, type ReportRow } from '../manifest.js';
import { readGzipLines } from '../archive-reader.js';
import type { CsvPart } from '../../util/csv-parts.js';
import { forEachCsvRecord, splitCsvFile } from '../csv-split.js';
import type { ArchiveObjectInfo, ArchiveSource, LinkLookup } from '../ports.js';
import type { ExportKind } from '../kinds.js';
import { duckdbDialect } from '../sql/dialect.js';
import { csvHeaderLine, exportStages, type ExportStages } from '../sql/rules.js';
import { factsPartSql, interactionFactsSql, recordFactsSql } from '../sql/readiness.js';
import { sqlString } from '../sql/shape.js';

/**
 * The export's embedded engine: DuckDB runs the SQL rules (../sql/rules.ts) over one day of one
 * kind. Archive objects are read from local disk (fetched first when the source is S3); tables
 * live in an in-memory database whose blocks spill to the run's scratch folder past
 * `memoryLimit`, so a larger day uses disk instead of growing the process. Node does only what SQL must not: look up the identity
 * links of the day's anonymous sessions, test user ids against the keyed deletion registry, split
 * a file over 1 GB into parts, and salvage the readable lines of a damaged gzip object.
 */

export interface DuckDbSettings {
  /** DuckDB memory_limit, e.g. "512MB": the buffer pool; the process uses somewhat more. */
  memoryLimit: string;
  threads: number;
}

export interface KindRun {
  kind: ExportKind;
  objects: readonly ArchiveObjectInfo[];
  anonymous: 'skip' | 'session-as-user';
  partMaxBytes: number;
  /** Parts are `<baseName>-001.csv`, ... in `dir`. */
  baseName: string;
  /** What the import is for (shared/bulk-mode.ts); default bulk-only (every row). */
  bulkMode?: BulkMode;
  /** complement, interactions: the day's record of what PutEvents accepted (`forwarded/`). */
  forwarded?: readonly ArchiveObjectInfo[];
  /** CSV files Personalize already imported for this day: their records are not written again. */
  published?: PublishedCsvs;
}

/** The day's published CSV files (header first), fetched into the scratch folder when compared. */
export interface PublishedCsvs {
  keys: readonly string[];
  download(key: string, localPath: string): Promise<void>;
}

export interface KindOutcome {
  parts: CsvPart[];
  report: ReportRow[];
  deletedUserRows: number;
  tooLarge: number;
  /** Kept records left out because a published file holds the same CSV record. */
  alreadyPublished: number;
  unreadableObjects: string[];
  rejectedSamples: { key: string; line: number; reason: string }[];
}

export interface EngineDeps {
  archive: ArchiveSource;
  links: LinkLookup;
  deleted: DeletedUsers;
  schemas: DatasetSchemas;
  /** The consent rule and the stored consent states (README "Consent"); unset: not enforced. */
  consent?: { policy: ConsentPolicy; store: ConsentStore };
}

const REJECTED_SAMPLES = 20;
const LIST_OF_VARCHAR = LIST(VARCHAR);

export class DuckDbExportEngine {
  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly connection: DuckDBConnection,
    private readonly scratch: string,
    private readonly deps: EngineDeps,
    private readonly readConcurrency: number,
    private readonly linkLookupBatch: number,
  ) {}

  static async open(
    scratch: string,
    deps: EngineDeps,
    settings: DuckDbSettings & { readConcurrency: number; linkLookupBatch: number },
  ): Promise<DuckDbExportEngine> {
    await mkdir(join(scratch, 'spill'), { recursive: true });
    // An in-memory database that spills to temp_directory past memory_limit: as bounded as a
    // database file, and twice as fast at 10M lines (BENCHMARKS.md, "Export on DuckDB").
    const instance = await DuckDBInstance.create(':memory:', {
      memory_limit: settings.memoryLimit,
      threads: String(settings.threads),
      temp_directory: join(scratch, 'spill'),
      // Row order comes from ORDER BY where it matters; without it, scans need not keep file order.
      preserve_insertion_order: 'false',
      // No extension is ever downloaded: the npm build ships json and parquet.
      autoinstall_known_extensions: 'false',
      autoload_known_extensions: 'false',
    });
    const connection = await instance.connect();
    return new DuckDbExportEngine(instance, connection, scratch, deps, settings.readConcurrency, settings.linkLookupBatch);
  }

  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }

  /** PI_EXPORT_TRACE=1 prints each statement's duration to stderr (for profiling the rules). */
  private async timed<T>(label: string, work: () => Promise<T>): Promise<T> {
    if (process.env.PI_EXPORT_TRACE !== '1') return work();
    const started = performance.now();
    try {
      return await work();
    } finally {
      console.error(`[export] ${label}: ${(performance.now() - started).toFixed(0)} ms, rss ${Math.round(process.memoryUsage.rss() / 1048576)} MB`);
    }
  }

  private async scalar(sql: string): Promise<unknown> {
    const reader = await this.connection.runAndReadAll(sql);
    return reader.getRows()[0]?.[0];
  }

  /** Local copies of the objects (or the source's own files), named by position: key order is kept. */
  private async localFiles(dir: string, objects: readonly ArchiveObjectInfo[]): Promise<Map<string, string>> {
    await mkdir(dir, { recursive: true });
    const files = new Map<string, string>();
    await pMap(
      objects.map((o, i) => [o, i] as const),
      async ([object, index]) => {
        const own = this.deps.archive.localPath?.(object.key);
        if (own !== undefined) {
          files.set(own, object.key);
          return;
        }
        const path = join(dir, `${String(index).padStart(6, '0')}.ndjson.gz`);
        await pipeline(await this.deps.archive.open(object.key), createWriteStream(path));
        files.set(path, object.key);
      },
      { concurrency: this.readConcurrency },
    );
    return files;
  }

  /**
   * Validates and types every line into `staged_<kind>` straight from the files (no raw copy); the
   * object column holds the object's position in key order (a small integer where a path would be
   * carried through every later step), mapped back to the key in Node. A damaged gzip
   * object fails DuckDB's read naming the file: its readable lines are salvaged to a plain file
   * (as gzip's framing allows), it is reported, and the statement runs again.
   */
  private async stage(kind: ExportKind, stages: ExportStages, files: Map<string, string>): Promise<string[]> {
    const unreadable: string[] = [];
    const keys = [...new Set(files.values())].sort();
    for (let attempt = 0; ; attempt++) {
      await this.connection.run(`CREATE OR REPLACE TABLE files_${kind} (path VARCHAR, file_no INTEGER)`);
      const appender = await this.connection.createAppender(`files_${kind}`);
      for (const [path, key] of files) {
        appender.appendVarchar(path);
        appender.appendInteger(keys.indexOf(key));
        appender.endRow();
      }
      appender.closeSync();
      const list = [...files.keys()].sort().map((p) => sqlString(p)).join(', ');
      const raw =
        files.size === 0
          ? `(SELECT CAST(NULL AS INTEGER) AS object_key, CAST(NULL AS VARCHAR) AS line WHERE false)`
          : `(SELECT f.file_no AS object_key, r.line FROM read_csv([${list}], columns = {'line': 'VARCHAR'}, header = false, delim = E'\\x1f', ` +
            `quote = '', escape = '', auto_detect = false, filename = true, compression = 'auto', new_line = '\\n', max_line_size = 2097152, buffer_size = 4194304) r ` +
            `JOIN files_${kind} f ON f.path = r.filename)`;
      try {
        await this.connection.run(`CREATE OR REPLACE TABLE staged_${kind} AS ${stages.staged(raw)}`);
        return unreadable;
      } catch (error) {
        const message = (error as Error).message;
        const damaged = [...files.keys()].find((p) => message.includes(p));
        if (damaged === undefined || attempt >= files.size) throw error;
        const key = files.get(damaged)!;
        files.delete(damaged);
        unreadable.push(key);
        const salvaged = join(this.scratch, 'archive', kind, `salvaged-${attempt}.ndjson`);
        const out = createWriteStream(salvaged);
        await readGzipLines(createReadStream(damaged), (line) => {
          if (!out.write(`${line}\n`)) return new Promise<void>((resolve) => out.once('drain', () => resolve()));
          return undefined;
        });
        await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
        files.set(salvaged, key);
      }
    }
  }

  /** Every login claim on the day's anonymous sessions, from the identity table, as `links_<kind>`. */
  private async loadLinks(kind: ExportKind, sessionsSql: string): Promise<void> {
    const table = `links_${kind}`;
    await this.connection.run(`CREATE OR REPLACE TABLE ${table} (session_id VARCHAR, user_id VARCHAR, linked_at BIGINT)`);
    const appender = await this.connection.createAppender(table);
    // Streamed a batch at a time: a day's anonymous sessions are millions at 10M events, and
    // holding them all in Node would grow the process with the day.
    const result = await this.connection.stream(sessionsSql);
    let batch: string[] = [];
    const lookUp = async () => {
      // A link recorded after the exported day still applies: the table is read now, not as of the day.
      for (const [sessionId, link] of await this.deps.links.getLinks(batch)) {
        const claims = link.claims && link.claims.length > 0 ? link.claims : [{ userId: link.userId, linkedAt: link.linkedAt ?? 0 }];
        for (const claim of claims) {
          appender.appendVarchar(sessionId);
          appender.appendVarchar(claim.userId);
          appender.appendBigInt(BigInt(Math.trunc(claim.linkedAt)));
          appender.endRow();
        }
      }
      batch = [];
    };
    for (;;) {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) break;
      const sessions = chunk.getColumnVector(0);
      for (let i = 0; i < chunk.rowCount; i++) {
        batch.push(sessions.getItem(i) as string);
        if (batch.length >= this.linkLookupBatch) await lookUp();
      }
    }
    if (batch.length > 0) await lookUp();
    appender.closeSync();
  }

  /**
   * The records whose property values were not already in canonical form: shaped here by the
   * dataset-schema rules the real-time path uses (shapeProperties, csvValue), then their cells,
   * CSV record and row check rewritten in SQL. Usually none. Records are matched by ord_id, unique
   * per record (session and eventId; the item or user id).
   */
  private async shapeRemaining(kind: ExportKind, stages: ExportStages): Promise<void> {
    const table = `rows_${kind}`;
    const pending = Number(await this.scalar(`SELECT count(*) FROM ${table} WHERE needs_shaping`));
    if (pending === 0) return;
    const schema = this.deps.schemas[kind];
    // The properties-fed fields, and EVENT_VALUE when SQL could not print it.
    const shapedFields = schema.fields.map((f, i) => [f, i] as const).filter(([f]) => schema.metadata.includes(f) || f.name === 'EVENT_VALUE');
    const shapedTable = `shaped_${kind}`;
    await this.connection.run(
      `CREATE OR REPLACE TABLE ${shapedTable} (rid VARCHAR, ${shapedFields.map(([, i]) => `c${i} VARCHAR`).join(', ')}, dropped VARCHAR[], reject VARCHAR)`,
    );
    const hasEventValue = kind === 'interactions';
    const result = await this.connection.stream(
      `SELECT ord_id, shaping_properties${hasEventValue ? ', shaping_event_value' : ''} FROM ${table} WHERE needs_shaping`,
    );
    const appender = await this.connection.createAppender(shapedTable);
    for (;;) {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) break;
      const ids = chunk.getColumnVector(0);
      const props = chunk.getColumnVector(1);
      const values = hasEventValue ? chunk.getColumnVector(2) : undefined;
      for (let r = 0; r < chunk.rowCount; r++) {
        let cells: (string | null)[];
        let dropped: string[] = [];
        let reject: string | null = null;
        try {
          const text = props.getItem(r) as string | null;
          const parsed = text === null ? undefined : (JSON.parse(text) as Record<string, unknown> | null);
          const shaped = shapeProperties(schema, parsed ?? undefined, { maxJsonLength: Number.POSITIVE_INFINITY });
          const eventValue = values?.getItem(r) as string | null | undefined;
          cells = shapedFields.map(([field]) => {
            const raw = field.name === 'EVENT_VALUE' ? (eventValue === null || eventValue === undefined ? undefined : (JSON.parse(eventValue) as number)) : shaped.properties[field.propertyKey];
            const cell = csvValue(field, raw);
            return cell === '' ? null : cell;
          });
          dropped = shaped.dropped.map((d) => droppedReason(d.reason));
        } catch (error) {
          // A value the rules cannot print (a non-finite number): the record is left out, counted.
          cells = shapedFields.map(() => null);
          void error;
          reject = 'not exportable: a property value the dataset rules cannot write (a non-finite number)';
        }
        appender.appendVarchar(ids.getItem(r) as string);
        for (const cell of cells) {
          if (cell === null) appender.appendNull();
          else appender.appendVarchar(cell);
        }
        appender.appendList(listValue(dropped), LIST_OF_VARCHAR);
        if (reject === null) appender.appendNull();
        else appender.appendVarchar(reject);
        appender.endRow();
      }
    }
    appender.closeSync();
    // EVENT_VALUE is only sent here when SQL could not print it; otherwise SQL's cell stands.
    const assign = shapedFields.map(([f, i]) => (f.name === 'EVENT_VALUE' ? `c${i} = coalesce(s.c${i}, ${table}.c${i})` : `c${i} = s.c${i}`)).join(', ');
    await this.connection.run(
      `UPDATE ${table} SET ${assign}, dropped_reasons = list_concat(coalesce(${table}.dropped_reasons, CAST([] AS VARCHAR[])), s.dropped) ` +
        `FROM ${shapedTable} s WHERE ${table}.ord_id = s.rid`,
    );
    const { csvLine, rowReject } = stages.cellsSql();
    await this.connection.run(`UPDATE ${table} SET csv_line = ${csvLine}, row_reject = ${rowReject} WHERE needs_shaping`);
    await this.connection.run(`UPDATE ${table} SET row_reject = s.reject FROM ${shapedTable} s WHERE ${table}.ord_id = s.rid AND s.reject IS NOT NULL`);
    await this.connection.run(`DROP TABLE ${shapedTable}`);
  }

  /**
   * The day's record of what PutEvents accepted, as `forwarded_interactions` (session_id, event_id).
   * A record object that cannot be read fails the run: leaving it out would import what Personalize
   * already holds.
   */
  private async loadForwarded(objects: readonly ArchiveObjectInfo[]): Promise<string> {
    const table = 'forwarded_interactions';
    const dir = join(this.scratch, 'forwarded');
    const paths = [...(await this.localFiles(dir, objects)).keys()];
    await this.connection.run(`CREATE OR REPLACE TABLE ${table} (session_id VARCHAR, event_id VARCHAR)`);
    if (paths.length > 0) {
      await this.connection.run(
        `INSERT INTO ${table} SELECT sessionId, eventId FROM read_json([${paths.map(sqlString).join(', ')}], ` +
          `format = 'newline_delimited', compression = 'gzip', columns = {sessionId: 'VARCHAR', eventId: 'VARCHAR'})`,
      );
    }
    await rm(dir, { recursive: true, force: true });
    return table;
  }

  /** The users of the day's records that the deletion registry holds, as `deleted_<kind>`. */
  private async loadDeleted(kind: ExportKind, rowsTable: string): Promise<void> {
    const table = `deleted_${kind}`;
    const { deleted } = this.deps;
    await this.keepIds(`SELECT DISTINCT user_id FROM ${rowsTable} WHERE row_reject IS NULL AND user_id IS NOT NULL`, table, 'user_id', (id) => deleted.isDeleted(id));
    if (kind === 'interactions') await this.excludeDeletedSessions(rowsTable, table);
    if (kind !== 'items') await this.excludeConsentDenied(rowsTable, table);
  }

  /**
   * Users whose latest stored consent (shared/consent) now denies Personalize leave this and every
   * later export, as deleted users do: an opt-out reaches the bulk data from the next export on.
   * Users without a stored state keep their rows (their lines were judged when processed).
   */
  private async excludeConsentDenied(rowsTable: string, deletedTable: string): Promise<void> {
    const consent = this.deps.consent;
    if (consent === undefined || !policyRequiresConsent(consent.policy)) return;
    await this.keepIdBatches(
      `SELECT DISTINCT user_id FROM ${rowsTable} WHERE row_reject IS NULL AND user_id IS NOT NULL EXCEPT SELECT user_id FROM ${deletedTable}`,
      deletedTable,
      'user_id',
      async (ids) => {
        const states = await consent.store.getConsents(ids.map((id) => ({ kind: 'user' as const, id })));
        return ids.filter((id) => {
          const state = states.get(consentKeyOf({ kind: 'user', id }));
          return state !== undefined && !decideConsent(consent.policy, state).allowed;
        });
      },
      true,
    );
  }

  /**
   * A deleted user's anonymous sessions (registered when their links were removed) leave the
   * export too, whatever user their rows resolved to (in session-as-user mode, the session). Their
   * rows get a user_id no real id can be (ids hold no NUL) and that id joins `deleted_<kind>`, so
   * the anti-join and the report leave them out as deleted users' rows.
   */
  private async excludeDeletedSessions(rowsTable: string, deletedTable: string): Promise<void> {
    const isSessionDeleted = this.deps.deleted.isSessionDeleted?.bind(this.deps.deleted);
    if (isSessionDeleted === undefined || this.deps.deleted.size === 0) return;
    // ord_id of an interaction is sessionId || chr(0) || eventId (sql/rules.ts).
    const sessionOf = `substr(ord_id, 1, strpos(ord_id, chr(0)) - 1)`;
    const sessions = `deleted_sessions_${deletedTable}`;
    const found = await this.keepIds(`SELECT DISTINCT ${sessionOf} AS session_id FROM ${rowsTable} WHERE row_reject IS NULL`, sessions, 'session_id', isSessionDeleted);
    if (found > 0) {
      const marker = `chr(0) || 'deleted session'`;
      await this.connection.run(`UPDATE ${rowsTable} SET user_id = ${marker} WHERE row_reject IS NULL AND ${sessionOf} IN (SELECT session_id FROM ${sessions})`);
      await this.connection.run(`INSERT INTO ${deletedTable} VALUES (${marker})`);
    }
    await this.connection.run(`DROP TABLE ${sessions}`);
  }

  async runKind(run: KindRun): Promise<KindOutcome> {
    const { kind } = run;
    const bulkMode = run.bulkMode ?? 'bulk-only';
    const stages = exportStages(kind, { schemas: this.deps.schemas, dialect: duckdbDialect, anonymous: run.anonymous, shaping: 'split', bulkMode });
    const files = await this.timed(`${kind} fetch`, () => this.localFiles(join(this.scratch, 'archive', kind), run.objects));
    const unreadableObjects = await this.timed(`${kind} staged`, () => this.stage(kind, stages, files));
    await this.timed(`${kind} links`, () =>
      kind === 'interactions'
        ? this.loadLinks(kind, stages.anonymousSessions(`staged_${kind}`))
        : this.connection.run(`CREATE OR REPLACE TABLE links_${kind} (session_id VARCHAR, user_id VARCHAR, linked_at BIGINT)`).then(() => undefined),
    );
    const forwarded = kind === 'interactions' && bulkMode === 'complement' ? await this.timed(`${kind} forwarded`, () => this.loadForwarded(run.forwarded ?? [])) : undefined;
    await this.timed(`${kind} rows`, () => this.connection.run(`CREATE OR REPLACE TABLE rows_${kind} AS ${stages.rows(`staged_${kind}`, `links_${kind}`, forwarded)}`));
    await this.timed(`${kind} shaping`, () => this.shapeRemaining(kind, stages));
    await this.timed(`${kind} deleted`, () => this.loadDeleted(kind, `rows_${kind}`));

    const header = csvHeaderLine(this.deps.schemas[kind]);
    const headerBytes = Buffer.byteLength(header, 'utf8') + 1;
    const fits = `strlen(csv_line) + 1 + ${headerBytes} <= ${run.partMaxBytes}`;
    // Anti-joins, not NOT IN: DuckDB plans them as a hash join it can spill.
    // in_bulk: the rows this bulk mode imports (complement leaves out what PutEvents holds).
    const keptFrom = (extraJoin: string) => `rows_${kind} r ANTI JOIN deleted_${kind} d ON d.user_id = r.user_id${extraJoin} WHERE r.row_reject IS NULL AND r.in_bulk`;
    const kept = keptFrom('');
    const candidates = Number(await this.scalar(`SELECT count(*) FROM rows_${kind} WHERE row_reject IS NULL AND in_bulk`));
    const notDeletedCount = Number(await this.scalar(`SELECT count(*) FROM ${kept}`));
    const deletedUserRows = candidates - notDeletedCount;
    const tooLarge = Number(await this.scalar(`SELECT count(*) FROM ${kept} AND NOT (${fits})`));

    // Only what Personalize does not hold yet: a re-export publishes the day's changes (README "Revisions").
    const anyPublished = await this.timed(`${kind} published`, () => this.loadPublished(kind, run.published));
    const unpublished = anyPublished
      ? keptFrom(` ANTI JOIN published_${kind} p ON p.csv_line = r.csv_line`)
      : kept;
    // The body alone, sorted (a header row in the same statement made the sort run out of memory
    // at 10M rows); splitCsvFile writes the header before it in every part.
    const bodyPath = join(this.scratch, `${run.baseName}.body.csv`);
    const written = Number(
      await this.timed(`${kind} copy`, () =>
        this.scalar(
          `COPY (SELECT csv_line FROM ${unpublished} AND ${fits} ORDER BY r.ord_ts, r.ord_id) ` +
            `TO ${sqlString(bodyPath)} (FORMAT CSV, HEADER false, QUOTE '', ESCAPE '', DELIMITER E'\\x1f')`,
        ),
      ),
    );
    const parts = await splitCsvFile(bodyPath, { dir: this.scratch, baseName: run.baseName, maxBytes: run.partMaxBytes, rows: written, header: `${header}\n` });
    const alreadyPublished = notDeletedCount - tooLarge - written;

    const reportReader = await this.timed(`${kind} report`, () => this.connection.runAndReadAll(stages.report(`staged_${kind}`, `rows_${kind}`, `deleted_${kind}`)));
    const report = (reportReader.getRows() as [string, string | null, bigint | number][]).map(([metric, reason, n]) => ({ metric, reason, n: Number(n) }));
    const samplesReader = await this.connection.runAndReadAll(stages.rejectedSamples(`staged_${kind}`, REJECTED_SAMPLES));
    const keys = [...new Set(files.values())].sort();
    const pathOfKey = new Map([...files].map(([path, key]) => [key, path]));
    const rejectedSamples = await this.lineNumbers(
      (samplesReader.getRows() as [number, string, string][]).map(([fileNo, line, reason]) => [pathOfKey.get(keys[fileNo]!) ?? '', line, reason]),
      files,
    );
    await this.timed(`${kind} readiness`, () => this.keepReadinessFacts(kind));
    for (const table of ['staged', 'rows', 'links', 'deleted', 'files', 'published', 'forwarded']) await this.connection.run(`DROP TABLE IF EXISTS ${table}_${kind}`);
    return { parts, report, deletedUserRows, tooLarge, alreadyPublished, unreadableObjects, rejectedSamples };
  }

  /**
   * The records of the day's published CSV files (headers skipped) as `published_<kind>`: each file
   * fetched into the scratch folder, split at record ends (quoted newlines kept), then removed.
   * False when nothing is published (the COPY then needs no second anti-join).
   */
  private async loadPublished(kind: ExportKind, published: PublishedCsvs | undefined): Promise<boolean> {
    const table = `published_${kind}`;
    await this.connection.run(`CREATE OR REPLACE TABLE ${table} (csv_line VARCHAR)`);
    if (!published || published.keys.length === 0) return false;
    const dir = join(this.scratch, 'published', kind);
    await mkdir(dir, { recursive: true });
    const appender = await this.connection.createAppender(table);
    try {
      for (const [index, key] of published.keys.entries()) {
        const path = join(dir, `${String(index).padStart(6, '0')}.csv`);
        try {
          await published.download(key, path);
        } catch (error) {
          // Without the file the day's published rows are unknown: publishing all again could double them.
          throw new Error(`published file ${key} could not be read (${(error as Error).name}: ${(error as Error).message}); the export cannot tell what Personalize holds`);
        }
        let header = true;
        await forEachCsvRecord(path, (record) => {
          if (header) {
            header = false;
            return;
          }
          const end = record.at(-1) === 0x0a ? (record.at(-2) === 0x0d ? 2 : 1) : 0;
          appender.appendVarchar(record.subarray(0, record.length - end).toString('utf8'));
          appender.endRow();
        });
        await rm(path, { force: true });
      }
    } finally {
      appender.closeSync();
    }
    return true;
  }

  /** This run's readiness facts, a parquet file per kind (../readiness.ts reads them), and what failed. */
  readonly readinessParts: string[] = [];
  readonly readinessErrors: string[] = [];

  /** The kind's readiness facts (../sql/readiness.ts), from its tables before runKind drops them; a failure is reported, never the export's. */
  private async keepReadinessFacts(kind: ExportKind): Promise<void> {
    await this.writeReadinessFacts(kind).catch((error: unknown) => void this.readinessErrors.push(`${kind}: ${(error as Error).message}`));
  }

  private async writeReadinessFacts(kind: ExportKind): Promise<void> {
    const tables = { staged: `staged_${kind}`, rows: `rows_${kind}`, deleted: `deleted_${kind}` };
    const select = kind === 'interactions' ? interactionFactsSql(tables) : recordFactsSql(kind, tables);
    const path = join(this.scratch, `readiness-${kind}.parquet`);
    await this.connection.run(factsPartSql(select, path));
    this.readinessParts.push(path);
  }

  async readinessRun(sql: string): Promise<void> {
    await this.connection.run(sql);
  }

  async readinessRows(sql: string): Promise<unknown[][]> {
    return (await this.connection.runAndReadAll(sql)).getRows();
  }

  /** `table(user_id)`: the users `usersSql` names that the registry holds, streamed (they can be millions). */
  async readinessDeleted(usersSql: string, table: string, deleted: DeletedUsers): Promise<void> {
    await this.keepIds(usersSql, table, 'user_id', (id) => deleted.isDeleted(id));
  }

  /**
   * `table(column)`: the ids of the first column of `sql` that `keep` accepts. Streamed and tested
   * in Node (the registry's key must not enter query text); returns how many were kept.
   */
  private async keepIds(sql: string, table: string, column: string, keep: (id: string) => boolean): Promise<number> {
    return this.keepIdBatches(sql, table, column, (ids) => ids.filter(keep), false);
  }

  /** keepIds with a batch answer (a store lookup per chunk of ids); `append` adds to an existing table. */
  private async keepIdBatches(sql: string, table: string, column: string, keep: (ids: string[]) => string[] | Promise<string[]>, append: boolean): Promise<number> {
    if (!append) await this.connection.run(`CREATE OR REPLACE TABLE ${table} (${column} VARCHAR)`);
    const result = await this.connection.stream(sql);
    const appender = await this.connection.createAppender(table);
    let kept = 0;
    for (;;) {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) break;
      const column0 = chunk.getColumnVector(0);
      const ids: string[] = [];
      for (let i = 0; i < chunk.rowCount; i++) ids.push(column0.getItem(i) as string);
      for (const id of await keep(ids)) {
        appender.appendVarchar(id);
        appender.endRow();
        kept++;
      }
    }
    appender.closeSync();
    return kept;
  }

  /** Where the sampled rejected lines are (object key and the line's 1-based position among non-blank lines). */
  private async lineNumbers(samples: [string, string, string][], keyOf: Map<string, string>): Promise<KindOutcome['rejectedSamples']> {
    const out: KindOutcome['rejectedSamples'] = [];
    const byFile = new Map<string, Map<string, string>>();
    for (const [path, line, reason] of samples) byFile.set(path, (byFile.get(path) ?? new Map<string, string>()).set(line, reason));
    for (const [path, pending] of byFile) {
      const key = keyOf.get(path);
      if (key === undefined) continue;
      let line = 0;
      const consume = (text: string) => {
        line++;
        const reason = pending.get(text);
        if (reason !== undefined) {
          out.push({ key, line, reason });
          pending.delete(text);
        }
      };
      if (path.endsWith('.gz')) await readGzipLines(createReadStream(path), consume);
      else for await (const text of createInterface({ input: createReadStream(path), crlfDelay: Infinity })) if (text.trim() !== '') consume(text);
    }
    return out;
  }
}
