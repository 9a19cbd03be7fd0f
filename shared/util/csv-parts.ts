import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { stringify } from 'csv-stringify/sync';

/**
 * Writes CSV rows into part files of at most `maxBytes` each (header included), rotating to the
 * next part before a row would cross the limit: each part fits one INCREMENTAL import job
 * (FACTS §4c). Every part starts with the header row; column names need no quoting (FACTS §4a).
 */

export interface CsvPart {
  name: string;
  path: string;
  bytes: number;
  rows: number;
}

/** RFC 4180 quoting where needed; UTF-8 on disk; `\n` line ends. */
export function csvLine(cells: readonly string[]): string {
  return stringify([cells], { eof: true, record_delimiter: 'unix' });
}

export class CsvPartWriter {
  private readonly parts: CsvPart[] = [];
  private current?: { part: CsvPart; stream: WriteStream };
  private readonly header: string;
  private readonly headerBytes: number;

  constructor(
    private readonly dir: string,
    /** Parts are `<baseName>-001.csv`, `-002.csv`, ... */
    private readonly baseName: string,
    header: readonly string[],
    private readonly maxBytes: number,
  ) {
    this.header = csvLine(header);
    this.headerBytes = Buffer.byteLength(this.header, 'utf8');
  }

  /** False when the row alone (with the header) is larger than a part may be: the caller rejects it. */
  write(cells: readonly string[]): Promise<boolean> {
    return this.writeLine(csvLine(cells));
  }

  /** One record already quoted by the engine (no line end: `\n` is added); false as for write(). */
  writeRecord(record: string): Promise<boolean> {
    return this.writeLine(`${record}\n`);
  }

  private async writeLine(line: string): Promise<boolean> {
    const bytes = Buffer.byteLength(line, 'utf8');
    if (this.headerBytes + bytes > this.maxBytes) return false;
    if (!this.current || this.current.part.bytes + bytes > this.maxBytes) await this.rotate();
    const current = this.current!;
    current.part.bytes += bytes;
    current.part.rows++;
    if (!current.stream.write(line)) await once(current.stream, 'drain');
    return true;
  }

  private async rotate(): Promise<void> {
    await this.finishCurrent();
    const name = `${this.baseName}-${String(this.parts.length + 1).padStart(3, '0')}.csv`;
    const part: CsvPart = { name, path: join(this.dir, name), bytes: this.headerBytes, rows: 0 };
    const stream = createWriteStream(part.path, { encoding: 'utf8', highWaterMark: 1024 * 1024 });
    this.parts.push(part);
    this.current = { part, stream };
    stream.write(this.header);
  }

  private async finishCurrent(): Promise<void> {
    const current = this.current;
    if (!current) return;
    this.current = undefined;
    current.stream.end();
    await once(current.stream, 'finish');
  }

  /** The parts written (none when no row was). */
  async close(): Promise<CsvPart[]> {
    await this.finishCurrent();
    return [...this.parts];
  }
}
