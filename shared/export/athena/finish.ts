import { createInterface, type Interface } from 'node:readline';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { z } from 'zod';
import type { DeletedUsers } from '../../deletion.js';
import { readGzipLines } from '../archive-reader.js';
import { CsvPartWriter, type CsvPart } from '../../util/csv-parts.js';
import type { ReportRow } from '../manifest.js';
import type { ArchiveObjectInfo } from '../ports.js';

/**
 * The finish step of an Athena export, for one kind: reads the UNLOAD output (gzip JSON lines
 * `{"user_id": ..., "csv_line": ...}`), leaves out the rows of deleted users (the registry's HMAC
 * key never enters a query), and writes CSV parts with the header: the same `CsvPart`s the
 * embedded engine hands to publishKind (../publish.ts).
 *
 * UNLOAD writes several files in parallel, each in the query's order, the files in none. When the
 * rows carry their sort keys (`ord_ts`, `ord_id`), the files are merged back into the query's order
 * (the embedded engine's order: parts then hold the same records in the same places run after run);
 * without them the files are read one after the other in key order.
 */

/** The UNLOAD output of a run (the archive bucket in production: S3ArchiveSource lists any prefix). */
export interface UnloadOutput {
  list(prefix: string): Promise<ArchiveObjectInfo[]>;
  /** The object's raw (gzip) bytes. */
  open(key: string): Promise<Readable>;
}

export class AthenaOutputError extends Error {
  override name = 'AthenaOutputError';
}


// Athena's JSON writer leaves a NULL column out or writes null; either is accepted.
const rowLine = z.object({
  user_id: z.string().nullish(),
  csv_line: z.string(),
  ord_ts: z.union([z.number(), z.string().regex(/^-?\d+$/).transform(Number)]).nullish(),
  ord_id: z.string().nullish(),
});
type RowLine = z.infer<typeof rowLine>;
const reportLine = z.object({
  metric: z.string(),
  reason: z.string().nullish(),
  n: z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/).transform(Number)]),
});


/** Every data object under `prefix`, in key order (so a re-read of the same output is the same). */
async function objectsOf(output: UnloadOutput, prefix: string): Promise<ArchiveObjectInfo[]> {
  const objects = await output.list(prefix);
  return [...objects].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * Streams each gzip JSON-lines object and hands every parsed line on; damaged output fails the step.
 * A failure inside a line is held until the object has been read: throwing out of readGzipLines'
 * line loop leaves an unhandled "Premature close" behind (shared/export/archive-reader.ts).
 */
async function eachLine<T>(output: UnloadOutput, object: ArchiveObjectInfo, schema: z.ZodType<T>, onLine: (value: T) => Promise<void>): Promise<number> {
  let n = 0;
  let failure: Error | undefined;
  const result = await readGzipLines(await output.open(object.key), async (text) => {
    if (failure !== undefined) return;
    n++;
    try {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        throw new AthenaOutputError(`${object.key} line ${n}: not JSON`);
      }
      const parsed = schema.safeParse(value);
      if (!parsed.success) throw new AthenaOutputError(`${object.key} line ${n}: not an UNLOAD row of this export (${parsed.error.issues[0]?.message ?? 'invalid'})`);
      await onLine(parsed.data);
    } catch (error) {
      failure = error instanceof Error ? error : new AthenaOutputError(`${object.key} line ${n}: ${String(error)}`);
    }
  });
  if (failure !== undefined) throw failure;
  // Our own query's output, not the archive: a damaged object is a failed run, not a rejected line.
  if (result.corrupt !== undefined) throw new AthenaOutputError(`${object.key}: not valid gzip (${result.corrupt})`);
  return n;
}

/** The report query's rows (metric, reason, n), from its UNLOAD output. */
export async function readReport(output: UnloadOutput, prefix: string): Promise<ReportRow[]> {
  const rows: ReportRow[] = [];
  for (const object of await objectsOf(output, prefix)) {
    await eachLine(output, object, reportLine, (row) => {
      rows.push({ metric: row.metric, reason: row.reason ?? null, n: row.n });
      return Promise.resolve();
    });
  }
  return rows;
}

export interface FinishKindOptions {
  /** The rows UNLOAD folder (`unloadPrefix(..., 'rows')`). */
  prefix: string;
  /** Scratch folder for the parts. */
  dir: string;
  /** Parts are `<baseName>-001.csv`, ... (`<kind>-<date>-r<rev>` from preparePublication: publish.ts recognises the name). */
  baseName: string;
  header: readonly string[];
  partMaxBytes: number;
  deleted: DeletedUsers;
}

export interface FinishKindResult {
  parts: CsvPart[];
  /** UNLOAD objects read, and their (gzip) bytes. */
  objects: number;
  bytes: number;
  /** Records the query produced (before the deletion filter). */
  records: number;
  deletedUserRows: number;
  /** Records larger than a part may be with its header: left out, as the embedded engine does. */
  tooLarge: number;
}

/** A pull reader of one UNLOAD object's rows (gunzip + line reader + JSON + shape check). */
class RowReader {
  private n = 0;
  private readonly lines: AsyncIterator<string>;
  private readonly reader: Interface;
  /** Settles with the pipeline's error, if any (never rejects: nothing is left unhandled). */
  private readonly piped: Promise<unknown>;

  private constructor(
    readonly key: string,
    private readonly body: Readable,
  ) {
    const gunzip = createGunzip();
    this.piped = pipeline(body, gunzip).then(
      () => undefined,
      (error: unknown) => error,
    );
    this.reader = createInterface({ input: gunzip, crlfDelay: Number.POSITIVE_INFINITY });
    this.lines = this.reader[Symbol.asyncIterator]();
  }

  static async open(output: UnloadOutput, key: string): Promise<RowReader> {
    return new RowReader(key, await output.open(key));
  }

  private async fail(message: string): Promise<never> {
    await this.close();
    throw new AthenaOutputError(`${this.key}${this.n > 0 ? ` line ${this.n}` : ''}: ${message}`);
  }

  async next(): Promise<RowLine | undefined> {
    for (;;) {
      let step: IteratorResult<string>;
      try {
        step = await this.lines.next();
      } catch (error) {
        return this.fail(`not valid gzip (${(error as Error).message})`);
      }
      if (step.done) {
        const error = await this.piped;
        if (error !== undefined) return this.fail(`not readable (${(error as Error).message})`);
        return undefined;
      }
      if (step.value.trim() === '') continue;
      this.n++;
      let value: unknown;
      try {
        value = JSON.parse(step.value);
      } catch {
        return this.fail('not JSON');
      }
      const parsed = rowLine.safeParse(value);
      if (!parsed.success) return this.fail(`not an UNLOAD row of this export (${parsed.error.issues[0]?.message ?? 'invalid'})`);
      return parsed.data;
    }
  }

  async close(): Promise<void> {
    this.reader.close();
    this.body.destroy();
    await this.piped;
  }
}

interface Head {
  row: RowLine;
  ts: number;
  id: Buffer;
  source: number;
}

/** Query order: ord_ts, then ord_id by its UTF-8 bytes (as Trino and DuckDB compare VARCHAR), then the file. */
const before = (a: Head, b: Head): boolean => (a.ts !== b.ts ? a.ts < b.ts : Buffer.compare(a.id, b.id) < 0 || (a.id.equals(b.id) && a.source < b.source));

/** A binary min-heap of the files' current rows. */
class Heads {
  private readonly items: Head[] = [];
  get size(): number {
    return this.items.length;
  }
  push(head: Head): void {
    const items = this.items;
    items.push(head);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }
  pop(): Head | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < items.length && before(items[l]!, items[m]!)) m = l;
        if (r < items.length && before(items[r]!, items[m]!)) m = r;
        if (m === i) break;
        [items[i], items[m]] = [items[m]!, items[i]!];
        i = m;
      }
    }
    return top;
  }
}

const sortKeyed = (row: RowLine): boolean => row.ord_ts != null && row.ord_id != null;

/**
 * The rows of all objects in the query's order: merged by their sort keys when they carry them
 * (every object open at once, their rows interleave), else one object after the other, each opened
 * when the one before is done. Every object is read to its end.
 */
async function* orderedRows(output: UnloadOutput, objects: readonly ArchiveObjectInfo[]): AsyncGenerator<RowLine> {
  const open: RowReader[] = [];
  const mixed = (key: string) => new AthenaOutputError(`${key}: some rows carry their sort keys (ord_ts, ord_id) and some do not`);
  try {
    // The first row tells whether the query returned its sort keys.
    let first: { row: RowLine; source: number } | undefined;
    let source = 0;
    for (; source < objects.length && first === undefined; source++) {
      const reader = await RowReader.open(output, objects[source]!.key);
      open.push(reader);
      const row = await reader.next();
      if (row !== undefined) first = { row, source };
    }
    if (first === undefined) return;

    if (!sortKeyed(first.row)) {
      yield first.row;
      for (let i = first.source; i < objects.length; i++) {
        const reader = i === first.source ? open[open.length - 1]! : await RowReader.open(output, objects[i]!.key);
        if (i !== first.source) open.push(reader);
        for (let row = await reader.next(); row !== undefined; row = await reader.next()) {
          if (sortKeyed(row)) throw mixed(reader.key);
          yield row;
        }
      }
      return;
    }

    const readers = new Map<number, RowReader>([[first.source, open[open.length - 1]!]]);
    for (let i = first.source + 1; i < objects.length; i++) {
      const reader = await RowReader.open(output, objects[i]!.key);
      open.push(reader);
      readers.set(i, reader);
    }
    const heads = new Heads();
    const push = (row: RowLine, from: number) => {
      if (!sortKeyed(row)) throw mixed(readers.get(from)!.key);
      heads.push({ row, ts: row.ord_ts!, id: Buffer.from(row.ord_id!, 'utf8'), source: from });
    };
    push(first.row, first.source);
    for (const [from, reader] of readers) {
      if (from === first.source) continue;
      const row = await reader.next();
      if (row !== undefined) push(row, from);
    }
    for (;;) {
      const head = heads.pop();
      if (head === undefined) return;
      yield head.row;
      const row = await readers.get(head.source)!.next();
      if (row !== undefined) push(row, head.source);
    }
  } finally {
    await Promise.all(open.map((r) => r.close()));
  }
}

export async function finishKind(output: UnloadOutput, options: FinishKindOptions): Promise<FinishKindResult> {
  const writer = new CsvPartWriter(options.dir, options.baseName, options.header, options.partMaxBytes);
  // The registry caches its answers per user id itself (shared/deletion.ts).
  const deleted = options.deleted;
  const objects = await objectsOf(output, options.prefix);
  let records = 0;
  let deletedUserRows = 0;
  let tooLarge = 0;
  let parts: CsvPart[];
  try {
    for await (const row of orderedRows(output, objects)) {
      records++;
      if (row.user_id != null && deleted.isDeleted(row.user_id)) {
        deletedUserRows++;
        continue;
      }
      // An interaction's ord_id is sessionId NUL eventId (sql/rules.ts; item and user ids hold no
      // NUL): a deleted user's anonymous session leaves the export whatever user it resolved to.
      const nul = row.ord_id?.indexOf('\u0000') ?? -1;
      if (nul > 0 && deleted.isSessionDeleted?.(row.ord_id!.slice(0, nul))) {
        deletedUserRows++;
        continue;
      }
      if (!(await writer.writeRecord(row.csv_line))) tooLarge++;
    }
  } finally {
    parts = await writer.close();
  }
  return {
    parts,
    objects: objects.length,
    bytes: objects.reduce((n, o) => n + o.bytes, 0),
    records,
    deletedUserRows,
    tooLarge,
  };
}
