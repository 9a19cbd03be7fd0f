import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CsvPartWriter } from '../../shared/util/csv-parts.js';
import { splitCsvFile } from '../../shared/export/csv-split.js';
import { isExportDate, previousUtcDay } from '../../shared/util/dates.js';

describe('dates', () => {
  it('accept real UTC days only, and the nightly run exports the day before', () => {
    expect(isExportDate('2026-11-22')).toBe(true);
    expect(isExportDate('2026-02-30')).toBe(false);
    expect(isExportDate('2026-1-2')).toBe(false);
    expect(previousUtcDay(new Date('2026-03-01T02:00:00Z'))).toBe('2026-02-28');
  });
});

describe('CSV parts', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pi-csv-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('start each part with the header and never pass the byte limit', async () => {
    const writer = new CsvPartWriter(dir, 'interactions-2026-11-22', ['A', 'B'], 30);
    for (const cells of [['1', 'x'], ['2', 'y, "quoted"'], ['3', 'é'], ['4', 'z']]) expect(await writer.write(cells)).toBe(true);
    expect(await writer.write(['5', 'x'.repeat(40)])).toBe(false);
    const parts = await writer.close();
    expect(parts.map((p) => p.name)).toEqual(['interactions-2026-11-22-001.csv', 'interactions-2026-11-22-002.csv']);
    const texts = await Promise.all(parts.map((p) => readFile(p.path, 'utf8')));
    expect(texts).toEqual(['A,B\n1,x\n2,"y, ""quoted"""\n', 'A,B\n3,é\n4,z\n']);
    expect(parts.map((p) => p.bytes)).toEqual(texts.map((t) => Buffer.byteLength(t)));
    expect(parts.map((p) => p.rows)).toEqual([2, 2]);
  });
});

describe('splitting a finished CSV into parts', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pi-split-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps a day below the limit as one part, renamed', async () => {
    const path = join(dir, 'day.csv');
    await writeFile(path, '1,x\n');
    const parts = await splitCsvFile(path, { dir, baseName: 'users-2026-11-22', maxBytes: 1000, rows: 1, header: 'A,B\n' });
    expect(parts).toEqual([{ name: 'users-2026-11-22-001.csv', path: join(dir, 'users-2026-11-22-001.csv'), bytes: 8, rows: 1 }]);
  });

  it('splits at record ends only, with the header on every part, never inside a quoted newline', async () => {
    const path = join(dir, 'big.csv');
    const records = ['1,"a\nb"', '2,"x ""y""\r\nz"', '3,é', '4,"\n\n"', '5,plain'];
    await writeFile(path, records.map((r) => `${r}\n`).join(''));
    const parts = await splitCsvFile(path, { dir, baseName: 'items-2026-11-22', maxBytes: 22, rows: records.length, header: 'A,B\n' });
    const texts = await Promise.all(parts.map((p) => readFile(p.path, 'utf8')));
    for (const t of texts) expect(t.startsWith('A,B\n')).toBe(true);
    expect(texts.map((t) => t.slice(4)).join('')).toBe(records.map((r) => `${r}\n`).join(''));
    expect(parts.map((p) => p.bytes)).toEqual(texts.map((t) => Buffer.byteLength(t)));
    for (const p of parts) expect(p.bytes).toBeLessThanOrEqual(22);
    expect(parts.reduce((n, p) => n + p.rows, 0)).toBe(records.length);
  });
});
