import { readFile, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { parse } from 'csv-parse/sync';
import { describe, expect, it } from 'vitest';
import type { InteractionMessage, ItemMessage } from '../schemas/canonical.js';
import { deletedUsersOf } from '../shared/deletion.js';
import { exportDay } from '../shared/export/export-day.js';
import type { ExportManifest } from '../shared/export/manifest.js';
import type { ArchiveSource, ImportStore, StoredFile } from '../shared/export/ports.js';
import { csvValue, loadDatasetSchemas, parseDatasetSchema, shapeProperties, toEpochSeconds, type DatasetSchema } from '../shared/personalize/dataset-schema.js';

/**
 * The CSV the export writes, read back by a strict RFC 4180 reader (csv-parse: no relaxed quotes,
 * no ragged rows), for values chosen to break naive writers: every value with a comma, quote, LF,
 * CR (alone too) or a leading/trailing space must come back exactly; numbers are plain decimals.
 */

const DAY = '2026-11-20';
const T = Date.parse(`${DAY}T10:00:00Z`);
const schemas = loadDatasetSchemas();

class MemoryArchiveSource implements ArchiveSource {
  constructor(private readonly objects: Map<string, Buffer>) {}
  list(prefix: string) {
    return Promise.resolve([...this.objects].filter(([k]) => k.startsWith(prefix)).map(([key, body]) => ({ key, bytes: body.length })));
  }
  open(key: string) {
    return Promise.resolve(Readable.from([this.objects.get(key)!]));
  }
}

class MemoryImportStore implements ImportStore {
  readonly files = new Map<string, { text: string; rows: number }>();
  readonly json = new Map<string, unknown>();
  location(key: string) {
    return `s3://memory/${key}`;
  }
  listFiles(prefix: string): Promise<StoredFile[]> {
    return Promise.resolve([...this.files].filter(([k]) => k.startsWith(prefix)).map(([key, f]) => ({ key, bytes: Buffer.byteLength(f.text), rows: f.rows })));
  }
  async upload(key: string, localPath: string, rows: number) {
    this.files.set(key, { text: await readFile(localPath, 'utf8'), rows });
  }
  copy(from: string, to: string) {
    this.files.set(to, this.files.get(from)!);
    return Promise.resolve();
  }
  async download(key: string, localPath: string) {
    await writeFile(localPath, this.files.get(key)!.text);
  }
  delete(keys: readonly string[]) {
    for (const k of keys) this.files.delete(k);
    return Promise.resolve();
  }
  putJson(key: string, value: unknown) {
    this.json.set(key, value);
    return Promise.resolve();
  }
  getJson(key: string) {
    return Promise.resolve(this.json.get(key));
  }
}

function archiveObject(lines: readonly object[]): Buffer {
  return gzipSync(`${lines.map((l) => JSON.stringify({ ...l, stream: { shardId: 'shardId-0', sequenceNumber: '1', arrivedAt: T } })).join('\n')}\n`);
}

async function runExport(objects: Map<string, Buffer>): Promise<MemoryImportStore> {
  return (await runExportWithManifest(objects)).store;
}

async function runExportWithManifest(
  objects: Map<string, Buffer>,
  withSchemas = schemas,
  engine: { memoryLimit: string; threads: number } = { memoryLimit: '256MB', threads: 1 },
): Promise<{ store: MemoryImportStore; manifest: ExportManifest }> {
  const store = new MemoryImportStore();
  await exportDay(
    {
      archive: new MemoryArchiveSource(objects),
      store,
      links: { getLinks: () => Promise.resolve(new Map()) },
      deletedUsers: () => Promise.resolve(deletedUsersOf([])),
      settings: { schemas: withSchemas, datasets: {} },
    },
    { date: DAY, import: false, engine },
  );
  return { store, manifest: store.json.get(`imports/manifests/${DAY}.json`) as ExportManifest };
}

/** What the JS rules (the real-time path's shaping) put in each column, for comparison. */
function expectedItemCells(schema: DatasetSchema, message: ItemMessage): string[] {
  const shaped = shapeProperties(schema, message.properties, { maxJsonLength: Number.POSITIVE_INFINITY });
  return schema.fields.map((f) => (f.name === 'ITEM_ID' ? message.itemId : csvValue(f, shaped.properties[f.propertyKey])));
}

const strictRead = (text: string): string[][] => parse(text, { relax_quotes: false, relax_column_count: false, skip_empty_lines: false, bom: false });

describe('the export CSV, read by a strict reader', () => {
  it('returns every adversarial value exactly, header unquoted, numbers in plain decimal', async () => {
    const nasty = [
      'comma, inside',
      'say "hi"',
      'line\nbreak',
      'carriage\rreturn alone',
      'crlf\r\nboth',
      ' leading space',
      'trailing space ',
      '\ttab first',
      '"',
      '""',
      ',',
      'emoji 😀 and ünïcode',
      'plain',
    ];
    const items: ItemMessage[] = nasty.map((description, i) => ({
      kind: 'item',
      source: 'feed',
      eventId: `i${i}`,
      itemId: `sku,${i} "x"`,
      timestamp: T + i,
      properties: {
        categoryL1: `cat ${i}`,
        description,
        price: [1e21, 1.5e-7, 12.5, 0, 3, 123456789.125, 3.4e38][i % 7],
        inStock: i % 2 === 0,
        creationTimestamp: T - 86_400_000,
      },
    }));
    const store = await runExport(new Map([[`archive/items/dt=${DAY}/hour=10/a.ndjson.gz`, archiveObject(items)]]));
    const [key, file] = [...store.files].find(([k]) => k.startsWith('imports/items/'))!;
    expect(key).toMatch(/items-2026-11-20-001\.csv$/);
    const text = file.text;
    expect(text.split('\n')[0]).toBe('ITEM_ID,CATEGORY_L1,CATEGORY_L2,PRICE,BRAND,IN_STOCK,CREATION_TIMESTAMP,DESCRIPTION');
    expect(text.endsWith('\n')).toBe(true);
    const [header, ...records] = strictRead(text);
    expect(header).toHaveLength(8);
    expect(records).toHaveLength(items.length);
    const byId = new Map(records.map((r) => [r[0], r]));
    for (const item of items) expect(byId.get(item.itemId)).toEqual(expectedItemCells(schemas.items, item));
    // Plain decimals, never exponent form.
    expect(records.map((r) => r[3])).toEqual(expect.arrayContaining(['1000000000000000000000', '0.00000015', '340000000000000000000000000000000000000']));
    expect(text).not.toMatch(/e\+|e-\d/);
    // The lone CR is inside quotes (a reader that splits rows on CR would otherwise see a new row).
    expect(text).toContain('"carriage\rreturn alone"');
    expect(text).toContain('" leading space"');
    expect(text).toContain('"trailing space "');
  });

  it('writes interactions in a deterministic order with empty optional cells, whatever order the archive holds', async () => {
    const view = (eventId: string, offset: number, extra: Partial<InteractionMessage> = {}): InteractionMessage => ({
      kind: 'interaction', source: 'native', eventId, sessionId: `s-${eventId}`, userId: `u,${eventId}`, eventType: 'View', itemId: `item "${eventId}"`, timestamp: T + offset, ...extra,
    });
    const messages = [view('b', 2000), view('a', 1000, { eventValue: 1e-7, impression: ['x', 'y,z'] }), view('c', 1000)];
    const first = await runExport(new Map([[`archive/interactions/dt=${DAY}/hour=10/a.ndjson.gz`, archiveObject(messages)]]));
    const second = await runExport(new Map([[`archive/interactions/dt=${DAY}/hour=10/a.ndjson.gz`, archiveObject([...messages].reverse())]]));
    const text = [...first.files.values()][0]!.text;
    expect([...second.files.values()][0]!.text).toBe(text);
    const [, ...records] = strictRead(text);
    expect(records.map((r) => r[1])).toEqual(['item "a"', 'item "c"', 'item "b"']);
    expect(records[0]).toEqual(['u,a', 'item "a"', 'View', '0.0000001', String(toEpochSeconds(T + 1000)), 'x|y,z', '', '', '', '']);
  });

  it('leaves out an interaction without an item, empties an impression list over 1,000 characters and keeps the row', async () => {
    const base = { kind: 'interaction', source: 'native', sessionId: 's1', userId: 'u1', eventType: 'View', timestamp: T } as const;
    const longImpression = Array.from({ length: 25 }, (_, i) => `item-${String(i).padStart(2, '0')}-${'x'.repeat(40)}`);
    const { store, manifest } = await runExportWithManifest(
      new Map([[`archive/interactions/dt=${DAY}/hour=10/a.ndjson.gz`, archiveObject([{ ...base, eventId: 'no-item' }, { ...base, eventId: 'long', itemId: 'sku-1', impression: longImpression }])]]),
    );
    const [, ...records] = strictRead([...store.files.values()][0]!.text);
    expect(records).toEqual([['u1', 'sku-1', 'View', '', String(toEpochSeconds(T)), '', '', '', '', '']]);
    expect(manifest.kinds.interactions.rejectedByReason).toEqual({ 'not exportable: ITEM_ID is empty but required by the Interactions schema': 1 });
    expect(manifest.kinds.interactions.propertiesDropped).toEqual({ 'IMPRESSION: over 1000 characters with its pipes (FACTS §4a)': 1 });
  });

  it('keeps the latest version of an item: the later event time, the larger eventId on a tie', async () => {
    const item = (eventId: string, offset: number, categoryL1: string): ItemMessage => ({
      kind: 'item', source: 'feed', eventId, itemId: 'sku-1', timestamp: T + offset, properties: { categoryL1, price: 1, creationTimestamp: T },
    });
    const { store, manifest } = await runExportWithManifest(
      new Map([[`archive/items/dt=${DAY}/hour=10/a.ndjson.gz`, archiveObject([item('b', 0, 'older'), item('a', 5, 'tie-smaller-id'), item('c', 5, 'newest'), item('c', 5, 'newest')])]]),
    );
    const [, ...records] = strictRead([...store.files.values()][0]!.text);
    expect(records.map((r) => r[1])).toEqual(['newest']);
    expect(manifest.kinds.items).toMatchObject({ read: 4, duplicates: 1, superseded: 2, exported: 1 });
  });

  it('leaves out, counted, a record whose value no rule can write (a numeric string beyond the double range), and exports the rest', async () => {
    const items = parseDatasetSchema(
      {
        type: 'record', name: 'Items', namespace: 'com.amazonaws.personalize.schema',
        fields: [{ name: 'ITEM_ID', type: 'string' }, { name: 'WEIGHT', type: ['null', 'double'] }],
        version: '1.0',
      },
      'Items',
    );
    const item = (itemId: string, weight: unknown): ItemMessage => ({ kind: 'item', source: 'feed', eventId: itemId, itemId, timestamp: T, properties: { weight } });
    const { store, manifest } = await runExportWithManifest(
      new Map([[`archive/items/dt=${DAY}/hour=10/a.ndjson.gz`, archiveObject([item('huge', '1e400'), item('fine', '2.50')])]]),
      { ...schemas, items },
    );
    const [, ...records] = strictRead([...store.files.values()][0]!.text);
    expect(records).toEqual([['fine', '2.5']]);
    expect(manifest.kinds.items.rejectedByReason).toEqual({ 'not exportable: a property value the dataset rules cannot write (a non-finite number)': 1 });
  });

  it('exports a day larger than the engine memory limit by spilling to disk, every row once', async () => {
    const sessions = 20_000;
    const lines: InteractionMessage[] = [];
    for (let i = 0; i < sessions * 5; i++) {
      const s = i % sessions;
      lines.push({
        kind: 'interaction', source: 'segment', eventId: `e-${i}`, sessionId: `session-${s}-${'x'.repeat(200)}`, userId: `user-${s}`,
        eventType: 'View', itemId: `item-${i % 977}-${'y'.repeat(200)}`, timestamp: T + i, properties: { device: ['ios', 'web'][i % 2] },
      });
    }
    const objects = new Map<string, Buffer>();
    for (let o = 0; o < 10; o++) objects.set(`archive/interactions/dt=${DAY}/hour=10/part-${o}.ndjson.gz`, archiveObject(lines.slice(o * 10_000, (o + 1) * 10_000)));
    // Over 100 MB of staged and record tables against a 64 MB limit. The copy of the first object
    // again: a retried batch, every line a duplicate.
    objects.set(`archive/interactions/dt=${DAY}/hour=11/retry.ndjson.gz`, archiveObject(lines.slice(0, 10_000)));
    const { store, manifest } = await runExportWithManifest(objects, schemas, { memoryLimit: '64MB', threads: 1 });
    expect(manifest.kinds.interactions).toMatchObject({ read: 110_000, duplicates: 10_000, exported: 100_000, rejected: 0 });
    const text = [...store.files.values()][0]!.text;
    const ids = text.split('\n').slice(1, -1).map((line) => line.split(',')[1]);
    expect(new Set(ids).size).toBe(977);
    expect(ids).toHaveLength(100_000);
  });
});
