import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InteractionMessage } from '../../schemas/canonical.js';
import { loadDatasetSchemas } from '../../shared/personalize/dataset-schema.js';
import { CsvPartWriter } from '../../shared/export/csv-parts.js';
import { isExportDate, previousUtcDay } from '../../shared/export/dates.js';
import { interactionRow, isNewerVersion, itemRow, parseArchiveLine, userRow } from '../../shared/export/rows.js';
import { partitionCount, partitionOf } from '../../shared/export/spill.js';

const schemas = loadDatasetSchemas();
const T = Date.UTC(2026, 10, 22, 9, 30, 15, 999);

const interaction = (extra: Partial<InteractionMessage> = {}): InteractionMessage => ({
  kind: 'interaction',
  source: 'native',
  eventId: 'e1',
  sessionId: 's1',
  eventType: 'View',
  itemId: 'sku-1',
  timestamp: T,
  ...extra,
});

describe('reading archive lines', () => {
  it('keeps the canonical message and drops the archive fields', () => {
    const line = JSON.stringify({ ...interaction({ userId: 'u1' }), stitched: true, stream: { shardId: 's', sequenceNumber: '1', arrivedAt: 1 } });
    expect(parseArchiveLine('interactions', line)).toEqual({ ok: true, message: interaction({ userId: 'u1' }) });
  });

  it('names why a line is unusable, without its content', () => {
    expect(parseArchiveLine('interactions', '{"kind":')).toEqual({ ok: false, reason: 'invalid JSON' });
    expect(parseArchiveLine('interactions', '"text"')).toEqual({ ok: false, reason: 'not a JSON object' });
    expect(parseArchiveLine('items', JSON.stringify(interaction()))).toEqual({ ok: false, reason: 'kind "interaction" in the items archive' });
    expect(parseArchiveLine('interactions', JSON.stringify({ eventId: 'x' }))).toEqual({ ok: false, reason: 'kind missing in the interactions archive' });
    expect(parseArchiveLine('interactions', JSON.stringify(interaction({ timestamp: 1_700_000_000 })))).toEqual({
      ok: false,
      reason: 'schema: timestamp: timestamp is before 2000-01-01: epoch seconds sent where milliseconds are expected?',
    });
  });
});

describe('CSV rows', () => {
  it('writes interactions in schema order with epoch seconds, pipes and lowercase booleans', () => {
    const row = interactionRow(
      schemas.interactions,
      interaction({ eventValue: 1e21, impression: ['a', 'b'], properties: { device: ['ios', 'tablet'], discount: false } }),
      'u-7',
    );
    expect(row).toEqual({
      ok: true,
      cells: ['u-7', 'sku-1', 'View', '1000000000000000000000', String(Math.floor(T / 1000)), 'a|b', '', '', 'ios|tablet', 'false'],
      dropped: [],
    });
  });

  it('refuses an interaction without an item (ITEM_ID is required in bulk data)', () => {
    expect(interactionRow(schemas.interactions, interaction({ itemId: undefined }), 'u')).toEqual({
      ok: false,
      reason: 'ITEM_ID is empty but required by the Interactions schema',
    });
  });

  it('drops an impression list over 1,000 characters with its pipes, keeping the row', () => {
    const impression = Array.from({ length: 25 }, (_, i) => `item-${String(i).padStart(40, '0')}`);
    const row = interactionRow(schemas.interactions, interaction({ impression }), 'u');
    expect(row.ok && row.cells[5]).toBe('');
    expect(row.ok && row.dropped).toEqual(['IMPRESSION: over 1000 characters with its pipes (FACTS §4a)']);
  });

  it('writes items and users from their properties, creation time in seconds', () => {
    const item = itemRow(schemas.items, {
      kind: 'item', source: 'feed', eventId: 'i', itemId: 'sku-1', timestamp: T,
      properties: { CATEGORY_L1: 'shoes', price: '12.50', in_stock: 'TRUE', creationTimestamp: '2026-11-01T08:00:00Z', colour: 'red' },
    });
    expect(item).toEqual({
      ok: true,
      cells: ['sku-1', 'shoes', '', '12.5', '', 'true', String(Date.UTC(2026, 10, 1, 8) / 1000), ''],
      dropped: ['colour: not a field of the Items schema'],
    });
    expect(userRow(schemas.users, { kind: 'user', source: 'feed', eventId: 'p', userId: 'u', timestamp: T, properties: {} })).toEqual({
      ok: false,
      reason: 'MEMBERSHIP_TYPE is empty but required by the Users schema',
    });
  });

  it('takes the later version of an item, and the larger eventId on a tie', () => {
    expect(isNewerVersion({ timestamp: 2, eventId: 'a' }, { timestamp: 1, eventId: 'b' })).toBe(true);
    expect(isNewerVersion({ timestamp: 1, eventId: 'b' }, { timestamp: 1, eventId: 'a' })).toBe(true);
    expect(isNewerVersion({ timestamp: 1, eventId: 'a' }, { timestamp: 1, eventId: 'b' })).toBe(false);
  });
});

describe('partitions', () => {
  it('send a key to the same partition every time, and spread keys over all of them', () => {
    expect(partitionOf('session-42', 64)).toBe(partitionOf('session-42', 64));
    const counts = new Array<number>(16).fill(0);
    for (let i = 0; i < 16_000; i++) counts[partitionOf(`anon-${i}`, 16)]! += 1;
    expect(Math.min(...counts)).toBeGreaterThan(800);
    expect(Math.max(...counts)).toBeLessThan(1200);
  });

  it('grow with the archive size within bounds', () => {
    expect(partitionCount(0)).toBe(4);
    expect(partitionCount(100 * 1024 * 1024)).toBe(25);
    expect(partitionCount(1e12)).toBe(256);
  });
});

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
