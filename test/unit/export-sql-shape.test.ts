import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  csvValue,
  loadDatasetSchemas,
  parseDatasetSchema,
  plainNumber,
  propertyFieldOf,
  shapeProperties,
  type DatasetSchema,
} from '../../shared/personalize/dataset-schema.js';
import {
  duckdbShapeSql,
  plainNumberSql,
  propertyCellSql,
  sqlString,
  trinoShapeSql,
  unknownKeyReasonsSql,
} from '../../shared/export/sql/shape.js';

/**
 * The SQL shaping (shared/export/sql/shape.ts), run on DuckDB, against the JS rules it mirrors:
 * shapeProperties with no JSON cap, csvValue, and rows.ts' droppedReason, on hand-picked
 * adversarial properties and on a seeded random corpus.
 */

const shipped = loadDatasetSchemas();
const testSchema = parseDatasetSchema(
  {
    type: 'record',
    name: 'Items',
    namespace: 'com.amazonaws.personalize.schema',
    fields: [
      { name: 'ITEM_ID', type: 'string' },
      { name: 'STOCK_COUNT', type: ['null', 'int'] },
      { name: 'VIEWS', type: ['null', 'long'] },
      { name: 'SCORE', type: ['null', 'double'] },
      { name: 'NOTE', type: ['null', 'string'] },
      { name: 'BODY', type: ['null', 'string'], textual: true },
      { name: 'RATING', type: ['null', 'float'] },
      { name: 'ACTIVE', type: ['null', 'boolean'] },
      { name: 'TAGS', type: ['null', 'string'], categorical: true },
      { name: 'CREATION_TIMESTAMP', type: 'long' },
    ],
  },
  'Items',
);
const SCHEMAS: Record<string, DatasetSchema> = {
  interactions: shipped.interactions,
  items: shipped.items,
  users: shipped.users,
  test: testSchema,
};

// ---------------------------------------------------------------------------------------------
// The JS reference: what cells() in rows.ts gives for the properties-fed columns.

const REASON_MAX = 160;
/** How UTF-8 output writes a string: a lone surrogate becomes U+FFFD (String.prototype.toWellFormed). */
const wellFormed = (text: string) => text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
/** rows.ts droppedReason(), copied: the rule without the values. */
const droppedReason = (reason: string): string => {
  const text = reason.replace(/"[^"]*"/g, '""');
  return text.length > REASON_MAX ? `${text.slice(0, REASON_MAX - 1)}…` : text;
};

interface Shaped {
  /** Per metadata field, csvValue() or null for ''. */
  cells: (string | null)[];
  /** Per metadata field, the first drop reason of a key naming it (not "already set"). */
  dropped: (string | null)[];
  /** Every other reason, in order. */
  unknown: string[];
}

/**
 * The JS rules on one properties JSON text (null: no properties). Reasons are written as UTF-8
 * would write them (a lone surrogate left by the 160-unit clip becomes U+FFFD).
 */
function reference(schema: DatasetSchema, props: string | null): Shaped {
  const input = props === null ? undefined : (JSON.parse(props) as Record<string, unknown>);
  const shaped = shapeProperties(schema, input, { maxJsonLength: Number.POSITIVE_INFINITY });
  const cells = schema.metadata.map((f) => csvValue(f, shaped.properties[f.propertyKey]) || null);
  const dropped: (string | null)[] = schema.metadata.map(() => null);
  const unknown: string[] = [];
  for (const d of shaped.dropped) {
    const text = wellFormed(droppedReason(d.reason));
    const field = propertyFieldOf(schema, d.key);
    const index = field ? schema.metadata.indexOf(field) : -1;
    if (index >= 0 && !d.summary.endsWith('set by two keys, the first kept') && dropped[index] === null) dropped[index] = text;
    else unknown.push(text);
  }
  return { cells, dropped, unknown };
}

// ---------------------------------------------------------------------------------------------
// Running the SQL

let db: DuckDBInstance;
let connection: DuckDBConnection;

beforeAll(async () => {
  db = await DuckDBInstance.create(':memory:');
  connection = await db.connect();
});

afterAll(() => {
  connection?.closeSync();
  db?.closeSync();
});

let tables = 0;

/**
 * The SQL shaping of every properties text (null: SQL NULL), as the same shape as reference().
 * `props` is what the shaping reads, an expression over the column `props` (computed in a subquery).
 */
async function shapeInSql(schema: DatasetSchema, rows: readonly (string | null)[], props = 'props'): Promise<Shaped[]> {
  const table = `props_${(tables += 1)}`;
  await connection.run(`CREATE TABLE ${table} (id INTEGER, props VARCHAR)`);
  const appender = await connection.createAppender(table);
  rows.forEach((text, id) => {
    appender.appendInteger(id);
    if (text === null) appender.appendNull();
    else appender.appendVarchar(text);
    appender.endRow();
  });
  appender.closeSync();
  // Texts are read back with a leading "#": the client's UTF-8 decoding drops a leading U+FEFF.
  const columns = schema.metadata.flatMap((f, i) => {
    const { cell, dropped } = propertyCellSql(schema, f, 'p', duckdbShapeSql);
    return [`'#' || ${cell} AS c${i}`, `'#' || ${dropped} AS d${i}`];
  });
  const unknown = `list_transform(${unknownKeyReasonsSql(schema, 'p', duckdbShapeSql)}, lambda x: '#' || x)`;
  const reader = await connection.runAndReadAll(
    `SELECT ${columns.join(', ')}, ${unknown} AS unknown FROM (SELECT id, ${props} AS p FROM ${table}) ORDER BY id`,
  );
  const text = (value: unknown) => (value === null ? null : (value as string).slice(1));
  return reader.getRowObjectsJson().map((row) => ({
    cells: schema.metadata.map((_, i) => text(row[`c${i}`])),
    dropped: schema.metadata.map((_, i) => text(row[`d${i}`])),
    unknown: (row.unknown as string[]).map((x) => x.slice(1)),
  }));
}

/** Every row where the SQL differs from the JS rules (empty when they agree). */
async function differences(schema: DatasetSchema, rows: readonly (string | null)[], props?: string) {
  const actual = await shapeInSql(schema, rows, props);
  const out: { props: string | null; expected: Shaped; actual: Shaped }[] = [];
  rows.forEach((props, i) => {
    const expected = reference(schema, props);
    if (JSON.stringify(expected) !== JSON.stringify(actual[i])) out.push({ props, expected, actual: actual[i]! });
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Corpus

const snake = (name: string) => name.toLowerCase();
/** The spellings of a field's key that shapeProperties accepts. */
function spellings(name: string, propertyKey: string): string[] {
  return [propertyKey, name, snake(name), `_${propertyKey}`, propertyKey.toUpperCase(), name.replace(/_/g, '')];
}

const VALUES: readonly unknown[] = [
  // strings: trimming, pipes, limits (UTF-16 units: CJK and astral characters at the boundaries)
  'shoes', ' shoes ', '', '   ', '\u3000\u00a0x\ufeff', '\u0085x', 'a|b', 'a||b', ' a | b |a', '|', '| |', 'A|a', 'a|a', 'a| b', 'running|trail',
  'x'.repeat(1000), 'x'.repeat(1001), `|${'x'.repeat(1000)}`, `${'x'.repeat(999)}||`, 'é'.repeat(1000), 'é'.repeat(1001),
  '😀'.repeat(500), '😀'.repeat(501), `x${'😀'.repeat(500)}`, `${'a|'.repeat(400)}b`, `${'ab|'.repeat(334)}`,
  '中'.repeat(7000), '中'.repeat(7001), `中${'x'.repeat(7000)}`, `${'x'.repeat(19999)}中`, 'x'.repeat(20000), 'x'.repeat(20001), '😀'.repeat(10000), '😀'.repeat(10001), 'ぁ'.repeat(7001),
  // quotes, escapes and control characters (they show in the reasons' previews)
  'he said "hi"', 'back\\slash', 'tab\there', 'new\nline', 'nul\u0000char', '\u001f\u007f\u2028', 'quote"', '"', '""', '"a"b"', `${'x'.repeat(31)}"y`,
  `${'x'.repeat(31)}😀z`, `${'x'.repeat(30)}😀😀`, `${'"'.repeat(40)}`, `${'\\'.repeat(40)}`, `"${'x'.repeat(200)}`,
  // numbers and numeric strings
  '12.50', ' 12.50 ', '1e21', '1E21', '-0', '+5', '.5', '5.', '5.e3', '0x10', '1_000', 'NaN', 'Infinity', '00012', '-.5e-3', '1e-400', '123456789012345678901234567890',
  12.5, 1e21, 1.5e-7, -0, 0, 7, -7, 2 ** 31, 2 ** 31 - 1, -(2 ** 31), -(2 ** 31) - 1, 2 ** 53, 2 ** 53 + 2, 2 ** 53 - 1, -(2 ** 53) + 1, 3.4028234663852886e38,
  3.4028235e38, -3.4028235e38, 1.7976931348623157e308, 5e-324, 0.1 + 0.2, 123456789.123, 1e-7, 1e-6, 1e16, 1e15, 123e-20, 2.5e-7, 100, 1.0000000000000002,
  // booleans
  true, false, 'true', ' FALSE ', 'True', 'yes', 'tru', '\ttrue\n',
  // arrays and objects
  [], ['a', 'b|c', null, 'a', ' b '], [1, true, 'x', 1e21, -0, 1.5e-7], [null], [[1]], [{}], ['x', {}], ['x', [2]], {}, { a: 1 }, ['|'], [''], ['  ', null],
  ['x'.repeat(600), 'y'.repeat(600)], [`${'😀'.repeat(250)}`, 'z'.repeat(500)], ['dup', 'dup', 'DUP'],
  // dates and epoch milliseconds
  '2024-02-29', '2024-02-30', '2023-02-29', '2024-01-01T00:00Z', '2024-01-01T24:00Z', '2024-01-01T24:00:00.000Z', '2024-01-01T24:00:01Z', '2024-01-01T23:60Z',
  '2024-01-01T23:59:60Z', '2024-01-01T00:00+24:00', '2024-01-01T00:00+23:59', '2024-01-01T00:00:00.1239Z', '2024-01-01T00:00:00.9999+05:30', '1970-01-01',
  '1969-12-31T23:00:00-02:00', '1970-01-01T00:00:00+00:01', '2999-12-31T23:59:59.999Z', '2999-12-31T23:59:59.999-00:01', '3000-01-01', '0000-02-29',
  '0004-02-29', '0099-02-29', '1900-02-29', '2000-02-29', '2024-13-01', '2024-00-10', '2024-01-00', '2024-01-01T10:00', ' 2024-05-06T07:08:09Z ', '2024-1-01',
  1e11, 1e11 - 1, 1e11 + 0.5, 1700000000123, 1700000000123.5, -1700000000000, 32503680000000, 32503679999999, 1e15, '1700000000123', ' 1700000000999 ', '1.7e12',
];

const NON_OBJECTS: readonly (string | null)[] = [null, 'null', '[1,2]', '[]', '"str"', `"${'q'.repeat(40)}"`, '5', '-0', '1e21', 'true', '{}', ' { } ', '\n{"a" : [1, 2] }\n'];

/** Hand-picked properties for a schema: every value under every field, key spellings, and keys that are not properties. */
function adversarial(schema: DatasetSchema): string[] {
  const rows: string[] = [];
  const topLevel = schema.fields.filter((f) => !schema.metadata.includes(f));
  for (const field of schema.metadata) {
    for (const value of VALUES) rows.push(JSON.stringify({ [field.propertyKey]: value }));
    for (const key of spellings(field.name, field.propertyKey)) rows.push(JSON.stringify({ [key]: VALUES[0], other: 1 }));
    // Two keys for one field, in both orders: usable, unusable, absent, null.
    const pairs: unknown[] = ['first', 'x'.repeat(1001), '', null, [{}], 12, 'true', '2024-01-01'];
    for (const a of pairs) for (const b of pairs) rows.push(`{${JSON.stringify(field.name)}:${JSON.stringify(a)},${JSON.stringify(field.propertyKey)}:${JSON.stringify(b)}}`);
    rows.push(JSON.stringify({ [field.name]: 'a', [field.propertyKey]: 'b', [snake(field.name)]: [[]], [`_${field.propertyKey}`]: {} }));
  }
  const unknownKeys = ['foo', 'a"b', 'x.y', 'with space', '__proto__', 'constructor', '😀', '0', '10', '2', '4294967294', '4294967295', '01', '-1', 'k'.repeat(200), `${'"'.repeat(3)}q`, 'pr\u0130ce', 'IN_STOC\u212A', 'cat"egory'];
  for (const key of [...unknownKeys, ...topLevel.flatMap((f) => spellings(f.name, f.propertyKey))]) {
    rows.push(`{${JSON.stringify(key)}:"v"}`);
    rows.push(`{${JSON.stringify(key)}:null,${JSON.stringify(schema.metadata[0]!.propertyKey)}:"x"}`);
  }
  rows.push(JSON.stringify(Object.fromEntries(unknownKeys.map((k, i) => [k, i]))));
  rows.push(`{"b":1,"10":2,"${schema.metadata[0]!.propertyKey}":"x","2":3,"4294967295":4,"a":5}`);
  rows.push(JSON.stringify({ [schema.metadata[0]!.propertyKey]: 'x' }, null, 2));
  return rows;
}

/** A small seeded generator (mulberry32): the corpus is the same on every run. */
function random(seed: number) {
  let a = seed;
  const next = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  return { next, int, pick };
}

const CHARS = [...'abcXYZ09 _-.|"\\\t\n', '\u00a0', '\u3000', 'é', '中', 'ア', 'ひ', '😀', '𠀀', '\u2028', '\ufeff', '\u0001', 'K', '\u212a', '\u0130'];

function randomCorpus(schema: DatasetSchema, count: number, seed: number): string[] {
  const r = random(seed);
  const topLevel = schema.fields.filter((f) => !schema.metadata.includes(f));
  const text = (max: number) => Array.from({ length: r.int(max) }, () => r.pick(CHARS)).join('');
  const number = (): number =>
    r.pick([
      () => r.int(1000) - 500,
      () => (r.next() - 0.5) * 10 ** (r.int(40) - 20),
      () => Number((r.next() * 1000).toFixed(r.int(4))),
      () => 1e11 + r.int(2e13),
      () => r.pick([2 ** 31, 2 ** 53, 2 ** 53 + 2, -0, 3.4028235e38, 1e21, 1.5e-7]),
      () => new DataView(new BigUint64Array([BigInt(r.int(2 ** 32)) * 2n ** 32n + BigInt(r.int(2 ** 32))]).buffer).getFloat64(0),
    ])();
  const finite = (): number => {
    const n = number();
    return Number.isFinite(n) ? n : 0;
  };
  const value = (depth: number): unknown =>
    r.pick<() => unknown>([
      () => text(12),
      () => ` ${text(6)}|${text(6)} `,
      () => String(finite()),
      () => ` ${finite().toExponential(r.int(5))} `,
      () => finite(),
      () => r.next() < 0.5,
      () => r.pick(['true', 'FALSE ', ' tRuE', 'no']),
      () => null,
      () => r.pick(VALUES.filter((v) => typeof v !== 'string' || v.length < 50)),
      () => new Date(r.int(2 ** 45) - 2 ** 43).toISOString().slice(0, r.pick([10, 16, 19, 23, 24])) + r.pick(['', 'Z', '+01:00', '-23:59']),
      () => (depth > 1 ? 'deep' : Array.from({ length: r.int(4) }, () => value(depth + 1))),
      () => (depth > 1 ? 7 : { k: value(depth + 1) }),
    ])();
  const key = (): string => {
    const field = r.pick([...schema.metadata, ...schema.metadata, ...topLevel]);
    return r.pick([...spellings(field.name, field.propertyKey), text(5), r.pick(['foo', '0', '42', 'Foo_Bar'])]);
  };
  return Array.from({ length: count }, () => {
    if (r.next() < 0.02) return r.pick(NON_OBJECTS) ?? 'null';
    // Distinct keys: JSON.stringify never writes a key twice (see the divergences in shape.ts).
    const keys = [...new Set(Array.from({ length: r.int(7) }, key))];
    return `{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(value(0)) ?? 'null'}`).join(',')}}`;
  });
}

/** Inputs on which the JS rules throw (see the divergences in shape.ts): left out of the comparison. */
function throwsInJs(schema: DatasetSchema, props: string | null): boolean {
  try {
    reference(schema, props);
    return false;
  } catch {
    return true;
  }
}

// ---------------------------------------------------------------------------------------------

describe('SQL property shaping (DuckDB) matches the JS rules', () => {
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    const handPicked = [...NON_OBJECTS, ...adversarial(schema)];
    const randomRows = randomCorpus(schema, 2500, name.length * 7919).filter((p) => !throwsInJs(schema, p));
    // One query for both corpora: planning the SQL of a schema takes a good part of a second.
    let both: Promise<Awaited<ReturnType<typeof differences>>> | undefined;
    const differing = async (rows: readonly (string | null)[]) => {
      both ??= differences(schema, [...handPicked, ...randomRows]);
      return (await both).filter((d) => rows.includes(d.props));
    };

    it(`gives the same cells and drop reasons on hand-picked properties (${name})`, async () => {
      expect(handPicked.filter((p) => throwsInJs(schema, p))).toEqual([]);
      expect((await differing(handPicked)).slice(0, 5)).toEqual([]);
    });

    it(`gives the same cells and drop reasons on random properties (${name})`, async () => {
      expect(randomRows.length).toBeGreaterThan(2400);
      expect((await differing(randomRows)).slice(0, 5)).toEqual([]);
    });
  }

  it('reads properties taken out of a line by DuckDB (JSON type), whose JSON functions rewrite numbers (1.0, 1e21)', async () => {
    const schema = testSchema;
    const rows = [...adversarial(schema), ...randomCorpus(schema, 500, 99)].filter((p) => !throwsInJs(schema, p));
    const props = `json_extract('{"kind":"item","properties":' || props || '}', '$.properties')`;
    expect((await differences(schema, rows, props)).slice(0, 5)).toEqual([]);
  });

  it('drops a numeric string beyond the double range as not a number, where the JS rules throw', async () => {
    const schema = testSchema;
    const rows = ['{"rating":"1e400"}', '{"score":" -1e999 "}', '{"creationTimestamp":"1e400"}', '{"stockCount":"1e400"}'];
    expect(rows.map((p) => throwsInJs(schema, p))).toEqual([true, true, true, false]);
    const [rating, score, created, count] = await shapeInSql(schema, rows);
    const at = (name: string) => schema.metadata.findIndex((f) => f.name === name);
    expect(rating!.dropped[at('RATING')]).toBe('rating: expected a number for RATING (float), got string ""');
    expect(score!.dropped[at('SCORE')]).toBe('score: expected a number for SCORE (double), got string ""');
    expect(created!.dropped[at('CREATION_TIMESTAMP')]).toBe(
      'creationTimestamp: CREATION_TIMESTAMP (long): expected epoch milliseconds or an ISO-8601 date-time with a zone; got string ""',
    );
    expect(count).toEqual(reference(schema, rows[3]!));
  });

  it('applies the Chinese/Japanese limit to textual values on the characters the JS rule counts as CJK', async () => {
    // Every boundary of the JS class (Script=Han, Hiragana, Katakana), in a value just over 7,000 units.
    const cjk = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u;
    const boundaries: number[] = [];
    let previous = false;
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const now = cjk.test(String.fromCodePoint(cp));
      if (now !== previous) boundaries.push(cp - 1, cp);
      previous = now;
    }
    expect(boundaries.length).toBeGreaterThan(40);
    const rows = boundaries.map((cp) => {
      const char = String.fromCodePoint(cp);
      return JSON.stringify({ body: `x${char.repeat(Math.ceil(7000 / char.length))}` });
    });
    expect((await differences(testSchema, rows)).map((d) => d.props?.slice(0, 12))).toEqual([]);
  });

  it('takes the key order of the document for "the first usable key wins"', async () => {
    const schema = shipped.items;
    const rows = ['{"BRAND":"late","brand":"x"}', '{"brand":"x","BRAND":"late"}', '{"brand":"","BRAND":"kept","Brand":"third"}'];
    const actual = await shapeInSql(schema, rows);
    const brand = schema.metadata.findIndex((f) => f.name === 'BRAND');
    expect(actual.map((a) => a.cells[brand])).toEqual(['late', 'x', 'kept']);
    expect(actual[2]!.unknown).toEqual(['Brand: BRAND already set from key BRAND']);
  });
});

describe('plainNumberSql', () => {
  it('gives plainNumber(Number(text)) for JSON numbers and numeric strings', async () => {
    const r = random(42);
    const doubles = [
      0, -0, 1, -1, 0.1, 12.5, 1e21, 1e-7, 1.5e-7, 123e-20, 5e-324, 1.7976931348623157e308, 2 ** 53 + 2, 1e15, 1e16, 123456789012345680000, 0.000001,
      ...Array.from({ length: 3000 }, () => new DataView(new BigUint64Array([BigInt(r.int(2 ** 32)) * 2n ** 32n + BigInt(r.int(2 ** 32))]).buffer).getFloat64(0)),
      ...Array.from({ length: 1000 }, () => (r.next() - 0.5) * 10 ** (r.int(60) - 30)),
    ].filter((n) => Number.isFinite(n));
    const texts = [
      ...doubles.map((n) => JSON.stringify(n)),
      ...doubles.slice(0, 500).map((n) => n.toExponential()),
      ...['12.50', '3.0', '1E21', '1e+21', '+5', '.5', '5.', '00012', '-.5e-3', '1e-400', '123456789012345678901234567890', '18446744073709551615', '9007199254740993', '-0.0'],
    ];
    const values = texts.map((t) => `(${sqlString(t)})`).join(', ');
    const reader = await connection.runAndReadAll(`SELECT t, ${plainNumberSql('t', duckdbShapeSql)} AS plain FROM (VALUES ${values}) v(t)`);
    const wrong = reader.getRowObjectsJson().filter((row) => row.plain !== plainNumber(Number(row.t as string)));
    expect(wrong.slice(0, 5)).toEqual([]);
    const nulls = await connection.runAndReadAll(`SELECT ${plainNumberSql('NULL', duckdbShapeSql)} AS a, ${plainNumberSql("'1e400'", duckdbShapeSql)} AS b`);
    expect(nulls.getRowObjectsJson()).toEqual([{ a: null, b: null }]);
  });
});

describe('dialects', () => {
  it('quotes SQL strings by doubling single quotes', () => {
    expect(sqlString("it's")).toBe("'it''s'");
  });

  const trinoTexts = (schema: DatasetSchema) => [
    ...schema.metadata.flatMap((f) => {
      const { cell, dropped } = propertyCellSql(schema, f, 'properties_json', trinoShapeSql);
      return [cell, dropped];
    }),
    unknownKeyReasonsSql(schema, 'properties_json', trinoShapeSql),
  ];

  it('writes Trino text without DuckDB-only functions or syntax', () => {
    const texts = [shipped.interactions, shipped.items, shipped.users].flatMap(trinoTexts);
    texts.push(plainNumberSql('n', trinoShapeSql));
    const duckdbOnly = /json_extract_string|json_keys|\blist_|regexp_matches|regexp_full_match|string_split|struct_extract|\blambda\b|\/\/|\bstrlen\(|\bord\(|\bsuffix\(|\brepeat\(|\bcontains\(|array_to_string|\bisfinite\(|\btrunc\(|\[\]::|\{'[a-z0-9_]+': /;
    for (const text of texts) expect(text.match(duckdbOnly)?.[0]).toBeUndefined();
  });

  it("keeps a shipped schema's Trino shaping well under Athena's 256 KB query text limit", () => {
    for (const schema of [shipped.interactions, shipped.items, shipped.users]) {
      expect(trinoTexts(schema).reduce((sum, text) => sum + Buffer.byteLength(text), 0)).toBeLessThan(200_000);
    }
  });
});
