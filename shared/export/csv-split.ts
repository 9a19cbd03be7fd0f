import { createReadStream, createWriteStream } from 'node:fs';
import { open, rm, stat, writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { CsvPart } from '../util/csv-parts.js';

/**
 * Turns the CSV records in `path` (no header) into parts of at most `maxBytes` each, every part
 * starting with `header`, split at record boundaries: a newline inside a quoted value does not end
 * a record (RFC 4180: a record ends at a newline outside quotes, i.e. after an even number of `"`).
 * Each part fits one INCREMENTAL import job (FACTS §4c). A day below the limit is one part.
 */
export async function splitCsvFile(
  path: string,
  options: { dir: string; baseName: string; maxBytes: number; rows: number; header: string },
): Promise<CsvPart[]> {
  const { size } = await stat(path);
  const header = Buffer.from(options.header, 'utf8');
  const name = (index: number) => `${options.baseName}-${String(index).padStart(3, '0')}.csv`;
  if (options.rows === 0) return [];
  if (header.length + size <= options.maxBytes) {
    const part: CsvPart = { name: name(1), path: `${options.dir}/${name(1)}`, bytes: header.length + size, rows: options.rows };
    await writeFile(part.path, header);
    await pipeline(createReadStream(path, { highWaterMark: 1024 * 1024 }), createWriteStream(part.path, { flags: 'a' }));
    await rm(path, { force: true });
    return [part];
  }

  const parts: CsvPart[] = [];
  let current: { part: CsvPart; handle: Awaited<ReturnType<typeof open>> } | undefined;

  const startPart = async () => {
    const index = parts.length + 1;
    const part: CsvPart = { name: name(index), path: `${options.dir}/${name(index)}`, bytes: header.length, rows: 0 };
    const handle = await open(part.path, 'w');
    await handle.write(header);
    parts.push(part);
    current = { part, handle };
  };
  const finishRecord = async (bytes: Buffer) => {
    if (bytes.length + header.length > options.maxBytes) {
      throw new RangeError(`a CSV record of ${bytes.length} bytes does not fit a part of ${options.maxBytes} bytes`);
    }
    if (!current || current.part.bytes + bytes.length > options.maxBytes) {
      await current?.handle.close();
      await startPart();
    }
    await current!.handle.write(bytes);
    current!.part.bytes += bytes.length;
    current!.part.rows++;
  };

  try {
    await forEachCsvRecord(path, finishRecord);
  } finally {
    await current?.handle.close();
  }
  await rm(path, { force: true });
  return parts;
}

/**
 * Calls `onRecord` with each CSV record of the file, its line end included (the last one may have
 * none): a record ends at a newline outside quotes (RFC 4180), so quoted newlines stay inside.
 */
export async function forEachCsvRecord(path: string, onRecord: (record: Buffer) => void | Promise<void>): Promise<void> {
  /** The record being read: its bytes so far, and whether we are inside quotes. */
  let record: Buffer[] = [];
  let recordBytes = 0;
  let quoted = false;
  const finish = async () => {
    const bytes = Buffer.concat(record, recordBytes);
    record = [];
    recordBytes = 0;
    await onRecord(bytes);
  };
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
    let from = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      if (byte === 0x22) quoted = !quoted;
      else if (byte === 0x0a && !quoted) {
        record.push(chunk.subarray(from, i + 1));
        recordBytes += i + 1 - from;
        from = i + 1;
        await finish();
      }
    }
    if (from < chunk.length) {
      // Copied: the stream may reuse its buffer.
      const rest = Buffer.from(chunk.subarray(from));
      record.push(rest);
      recordBytes += rest.length;
    }
  }
  if (recordBytes > 0) await finish();
}
