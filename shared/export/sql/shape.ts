import {
  CATEGORICAL_MAX_LENGTH,
  PLAIN_STRING_MAX_LENGTH,
  TEXTUAL_MAX_LENGTH,
  TEXTUAL_MAX_LENGTH_CJK,
  type DatasetField,
  type DatasetSchema,
} from '../../personalize/dataset-schema.js';

/**
 * SQL twins of the per-row value rules of the bulk export: what `cells()` in shared/export/rows.ts
 * computes for the properties-fed columns (shapeProperties with no JSON length cap, then csvValue,
 * drop reasons made value-free by droppedReason), as SQL expressions over the properties JSON text.
 * DuckDB text is executed (and tested against the JS rules on hand-picked and random properties);
 * Trino (Athena) text is generated from the same code through the dialect primitives below.
 *
 * Shape of the generated SQL, for speed over millions of rows:
 * - Every expression starts from one "row" value (keys, values as compact JSON text, each metadata
 *   field's value), written identically each time: DuckDB's common-subexpression pass evaluates it
 *   once per row for all the columns of a SELECT, so the JSON is parsed once. When every key is a
 *   field's own camelCase key (the common case) no key is lowercased.
 * - Each value first meets a flat test for its common form (a plain string, a short JSON number,
 *   true/false, epoch milliseconds, absent) that gives the cell. Everything else goes through the
 *   full rules, written with `let` (a one-element list mapped by a lambda) to bind intermediates;
 *   DuckDB evaluates a CASE branch for its rows only, so only those rows pay for it. (What costs in
 *   DuckDB is lambdas capturing outer values, and binding big values: the flat tests have neither.)
 * - A drop reason is assembled from parts once per column, after the per-type branches.
 * - The DuckDB text is long (the row is written out where used, ~0.7 MB for the Items columns,
 *   planned in well under a second); the Trino text binds with lambdas instead, to stay well under
 *   Athena's 256 KB query limit.
 *
 * Known divergences from the JS rules in DuckDB (for Trino, see also trinoShapeSql):
 * - A JSON object with the same key twice: JSON.parse keeps the last value at the first key's
 *   position; here both members are seen, in document order. JSON.stringify never writes this.
 * - A numeric string beyond the double range ("1e400") for a float or double field or for
 *   CREATION_TIMESTAMP: the JS rules throw (plainNumber(Infinity)); here it is dropped as not a
 *   number ("expected a number ...", or "expected epoch milliseconds ..." for the timestamp).
 * - A drop reason clipped to 160 UTF-16 units in the middle of a surrogate pair: JS keeps the lone
 *   high surrogate, which UTF-8 output turns into U+FFFD; SQL strings cannot hold it, so U+FFFD is
 *   written directly (the same bytes in the CSV and the counts).
 * - Escaped lone surrogates in the JSON ("\ud800") make DuckDB's JSON reader fail on the row.
 * - "Chinese/Japanese" is a fixed list of code point ranges taken from Node 20's Unicode tables.
 */

/** A SQL text building block: every function takes SQL expressions and returns one. */
export interface ShapeSql {
  readonly name: 'duckdb' | 'trino';
  /** `body` with `value` evaluated once and bound to the lambda parameter `param`. */
  readonly let: (value: string, param: string, body: string) => string;

  // JSON (the argument is JSON text: VARCHAR, or the engine's JSON type)
  /**
   * A JSON object's members as a struct {k, v}: k the keys, v the values as compact JSON text, in
   * the same order (DuckDB: document order); empty lists for any other JSON value; NULL for NULL.
   */
  readonly jsonMembers: (json: string) => string;
  /** Elements of a JSON array text as compact JSON text. */
  readonly jsonArrayElements: (json: string) => string;
  /** The text of a JSON string literal (`"a\"b"` -> `a"b`). */
  readonly jsonStringValue: (json: string) => string;
  /** Any JSON text re-serialised compactly (no whitespace), so its first character tells its type. */
  readonly jsonCompact: (json: string) => string;

  // Structs
  readonly struct: (fields: readonly StructField[]) => string;
  readonly field: (struct: string, name: string) => string;
  /** A small fixed-size record of VARCHAR (a struct in DuckDB, cheaper than a list; an array in Trino, shorter to write). */
  readonly tuple: (items: readonly string[]) => string;
  /** Item i (1-based) of a tuple. */
  readonly tupleAt: (tuple: string, index: number) => string;

  // Lists (1-based)
  readonly list: (items: readonly string[]) => string;
  /** An empty list of VARCHAR. */
  readonly emptyList: () => string;
  readonly listLength: (list: string) => string;
  /** Element at a 1-based index; NULL when out of range. */
  readonly listAt: (list: string, index: string) => string;
  /** 1-based index of the first element equal to value; NULL when absent. */
  readonly listPosition: (list: string, value: string) => string;
  readonly listTransform: (list: string, param: string, body: string) => string;
  readonly listFilter: (list: string, param: string, body: string) => string;
  /** The indexes 1..length of a list (an empty list for an empty list). */
  readonly listIndexes: (list: string) => string;
  readonly listFlatten: (list: string) => string;
  readonly listJoin: (list: string, separator: string) => string;
  /** Repeats removed, the first occurrence of each kept in place. */
  readonly listDistinct: (list: string) => string;
  readonly listCountDistinct: (list: string) => string;
  readonly listSort: (list: string) => string;
  /** Number of elements for which `predicate` (over `param`) holds. */
  readonly countIf: (list: string, param: string, predicate: string) => string;
  /** The elements of `list` at the 1-based `indexes` (NULL for index 0). */
  readonly listSelect: (list: string, indexes: string) => string;

  // Strings
  /** Length in code points. */
  readonly length: (text: string) => string;
  /** Length in UTF-16 code units, as JS `.length` (an astral character counts 2). */
  readonly utf16Length: (text: string) => string;
  /** Length in UTF-8 bytes: never less than the UTF-16 length, cheap to compute. */
  readonly byteLength: (text: string) => string;
  /** Substring by code points, 1-based; to the end when `length` is omitted. */
  readonly substring: (text: string, start: string, length?: string) => string;
  readonly lower: (text: string) => string;
  readonly replace: (text: string, from: string, to: string) => string;
  /** Removes the characters of `characters` (a set) from both ends. */
  readonly trim: (text: string, characters: string) => string;
  readonly ltrim: (text: string, characters: string) => string;
  readonly rtrim: (text: string, characters: string) => string;
  readonly split: (text: string, separator: string) => string;
  /** The n-th (1-based) piece of text split on separator. */
  readonly splitPart: (text: string, separator: string, n: string) => string;
  readonly startsWith: (text: string, prefix: string) => string;
  readonly endsWith: (text: string, suffix: string) => string;
  readonly contains: (text: string, part: string) => string;
  /** The pattern (RE2 / Java syntax subset: classes, \x{..}, (?:), \A, \z) matches somewhere in text. */
  readonly regexpLike: (text: string, pattern: string) => string;
  /** Every match replaced; `replacement` may refer to groups written with groupRef(). */
  readonly regexpReplace: (text: string, pattern: string, replacement: string) => string;
  /** A group reference inside a regexpReplace replacement (raw text, not SQL). */
  readonly groupRef: (group: number) => string;
  /** The groups of the (anchored) pattern as a struct of VARCHAR named `names`; '' or NULL for a group that took no part. */
  readonly regexpGroups: (text: string, pattern: string, names: readonly string[]) => string;
  /** `count` zeros ('' for 0). */
  readonly zeros: (count: string) => string;
  /** Lowercase hexadecimal of a non-negative integer. */
  readonly hex: (value: string) => string;
  /** Code point of a one-character string. */
  readonly codePoint: (character: string) => string;
  /** Code point of the character at a 1-based index (negative: from the end); not 33-126 when absent. */
  readonly codePointAt: (text: string, index: number) => string;
  /** Any value as VARCHAR. */
  readonly text: (value: string) => string;

  // Numbers
  /** DOUBLE from a decimal text, NULL when not one. */
  readonly tryDouble: (text: string) => string;
  /** The engine's shortest round-trip text of a DOUBLE (any of 12.5, 12.0, 1e+21, 1.0E21 forms). */
  readonly doubleText: (value: string) => string;
  readonly isFinite: (value: string) => string;
  readonly truncate: (value: string) => string;
  /** BIGINT division truncating toward zero (used on non-negative operands only). */
  readonly intDiv: (a: string, b: string) => string;
  readonly bigint: (value: string) => string;
}

export type StructFieldType = 'varchar' | 'varchar[]' | 'boolean' | 'bigint' | 'bigint[]' | readonly StructField[];

export interface StructField {
  name: string;
  type: StructFieldType;
  expr: string;
}

/** SQL string literal, single quotes doubled (both dialects). */
export function sqlString(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

const lit = sqlString;

const SCALAR_TYPES: Record<Exclude<StructFieldType, readonly StructField[]>, [duckdb: string, trino: string]> = {
  varchar: ['VARCHAR', 'VARCHAR'],
  'varchar[]': ['VARCHAR[]', 'ARRAY(VARCHAR)'],
  boolean: ['BOOLEAN', 'BOOLEAN'],
  bigint: ['BIGINT', 'BIGINT'],
  'bigint[]': ['BIGINT[]', 'ARRAY(BIGINT)'],
};
function typeName(type: StructFieldType, dialect: 0 | 1): string {
  if (typeof type === 'string') return SCALAR_TYPES[type][dialect];
  const fields = type.map((f) => `${f.name} ${typeName(f.type, dialect)}`).join(', ');
  return dialect === 0 ? `STRUCT(${fields})` : `ROW(${fields})`;
}

export const duckdbShapeSql: ShapeSql = {
  name: 'duckdb',
  let: (value, param, body) => `list_transform([${value}], lambda ${param}: ${body})[1]`,

  jsonMembers: (json) => `{'k': json_keys(${json}), 'v': CAST(json_extract(${json}, '$.*') AS VARCHAR[])}`,
  jsonArrayElements: (json) => `CAST(json_extract(${json}, '$[*]') AS VARCHAR[])`,
  jsonStringValue: (json) => `json_extract_string(${json}, '$')`,
  jsonCompact: (json) => `CAST(json_extract(${json}, '$') AS VARCHAR)`,

  struct: (fields) => `{${fields.map((f) => `${lit(f.name)}: CAST(${f.expr} AS ${typeName(f.type, 0)})`).join(', ')}}`,
  field: (struct, name) => `struct_extract(${struct}, ${lit(name)})`,
  tuple: (items) => `{${items.map((item, i) => `'t${i + 1}': CAST(${item} AS VARCHAR)`).join(', ')}}`,
  tupleAt: (tuple, index) => `struct_extract(${tuple}, 't${index}')`,

  list: (items) => `[${items.join(', ')}]`,
  emptyList: () => 'CAST([] AS VARCHAR[])',
  listLength: (list) => `len(${list})`,
  listAt: (list, index) => `(${list})[${index}]`,
  listPosition: (list, value) => `list_position(${list}, ${value})`,
  listTransform: (list, param, body) => `list_transform(${list}, lambda ${param}: ${body})`,
  listFilter: (list, param, body) => `list_filter(${list}, lambda ${param}: ${body})`,
  listIndexes: (list) => `range(1, len(${list}) + 1)`,
  listFlatten: (list) => `flatten(${list})`,
  listJoin: (list, separator) => `array_to_string(${list}, ${separator})`,
  listDistinct: (list) => `list_transform([${list}], lambda _dl: list_filter(_dl, lambda _dx, _di: list_position(_dl, _dx) = _di))[1]`,
  listCountDistinct: (list) => `len(list_distinct(${list}))`,
  listSort: (list) => `list_sort(${list})`,
  countIf: (list, param, predicate) => `len(list_filter(${list}, lambda ${param}: ${predicate}))`,
  listSelect: (list, indexes) => `list_select(${list}, ${indexes})`,

  length: (text) => `length(${text})`,
  utf16Length: (text) => `(length(${text}) + length(regexp_replace(${text}, '[^\\x{10000}-\\x{10FFFF}]+', '', 'g')))`,
  byteLength: (text) => `strlen(${text})`,
  substring: (text, start, length) => (length === undefined ? `substring(${text}, ${start})` : `substring(${text}, ${start}, ${length})`),
  lower: (text) => `lower(${text})`,
  replace: (text, from, to) => `replace(${text}, ${from}, ${to})`,
  trim: (text, characters) => `trim(${text}, ${characters})`,
  ltrim: (text, characters) => `ltrim(${text}, ${characters})`,
  rtrim: (text, characters) => `rtrim(${text}, ${characters})`,
  split: (text, separator) => `string_split(${text}, ${separator})`,
  splitPart: (text, separator, n) => `split_part(${text}, ${separator}, ${n})`,
  startsWith: (text, prefix) => `starts_with(${text}, ${prefix})`,
  endsWith: (text, suffix) => `suffix(${text}, ${suffix})`,
  contains: (text, part) => `contains(${text}, ${part})`,
  regexpLike: (text, pattern) => `regexp_matches(${text}, ${pattern})`,
  regexpReplace: (text, pattern, replacement) => `regexp_replace(${text}, ${pattern}, ${replacement}, 'g')`,
  groupRef: (group) => `\\${group}`,
  regexpGroups: (text, pattern, names) => `regexp_extract(${text}, ${pattern}, [${names.map(lit).join(', ')}])`,
  zeros: (count) => `repeat('0', CAST(${count} AS BIGINT))`,
  hex: (value) => `lower(hex(CAST(${value} AS BIGINT)))`,
  codePoint: (character) => `unicode(${character})`,
  codePointAt: (text, index) => `ord((${text})[${index}])`,
  text: (value) => `CAST(${value} AS VARCHAR)`,

  tryDouble: (text) => `TRY_CAST(${text} AS DOUBLE)`,
  doubleText: (value) => `CAST(${value} AS VARCHAR)`,
  isFinite: (value) => `isfinite(${value})`,
  truncate: (value) => `trunc(${value})`,
  intDiv: (a, b) => `((${a}) // (${b}))`,
  bigint: (value) => `CAST(${value} AS BIGINT)`,
};

/**
 * Trino (Athena) text. Not executed here; a golden file pins it. Notes:
 * - Object key order: the object is read through CAST(... AS MAP(VARCHAR, JSON)), which does not
 *   keep the document order, so keys are taken in sorted (code point) order, and the unknown-key
 *   reasons come in that order. A JSON object with a key twice fails the cast and reads as no
 *   properties.
 * - Several keys with values naming one field (deterministic, not shapeProperties' "first usable
 *   key wins"): the field's own camelCase key is the field's key if present, else the first other
 *   spelling in sorted order, whatever its value; every other one is dropped as "<key>: <FIELD>
 *   already set from key <that key>". This keeps the query text small (Athena caps it at 256 KB).
 * - Doubles are printed by Java (Double.toString); the digits are the shortest round-trip digits on
 *   Java 19 and later, which plainNumber requires.
 */
export const trinoShapeSql: ShapeSql = {
  name: 'trino',
  let: (value, param, body) => `element_at(transform(ARRAY[${value}], ${param} -> ${body}), 1)`,

  jsonMembers: (json) =>
    `element_at(transform(ARRAY[try_cast(json_parse(${json}) AS MAP(VARCHAR, JSON))], _jm -> CAST(ROW(array_sort(map_keys(_jm)), transform(array_sort(map_keys(_jm)), _jk -> coalesce(json_format(element_at(_jm, _jk)), 'null'))) AS ROW(k ARRAY(VARCHAR), v ARRAY(VARCHAR)))), 1)`,
  jsonArrayElements: (json) => `transform(CAST(json_parse(${json}) AS ARRAY(JSON)), _je -> coalesce(json_format(_je), 'null'))`,
  jsonStringValue: (json) => `json_extract_scalar(${json}, '$')`,
  jsonCompact: (json) => `json_format(json_parse(${json}))`,

  struct: (fields) =>
    `CAST(ROW(${fields.map((f) => f.expr).join(', ')}) AS ${typeName(fields, 1)})`,
  field: (struct, name) => `(${struct}).${name}`,
  tuple: (items) => `ARRAY[${items.join(', ')}]`,
  tupleAt: (tuple, index) => `element_at(${tuple}, ${index})`,

  list: (items) => `ARRAY[${items.join(', ')}]`,
  emptyList: () => 'CAST(ARRAY[] AS ARRAY(VARCHAR))',
  listLength: (list) => `cardinality(${list})`,
  listAt: (list, index) => `element_at(${list}, ${index})`,
  listPosition: (list, value) => `nullif(array_position(${list}, ${value}), 0)`,
  listTransform: (list, param, body) => `transform(${list}, ${param} -> ${body})`,
  listFilter: (list, param, body) => `filter(${list}, ${param} -> ${body})`,
  listIndexes: (list) => `IF(cardinality(${list}) > 0, sequence(1, cardinality(${list})), CAST(ARRAY[] AS ARRAY(BIGINT)))`,
  listFlatten: (list) => `flatten(${list})`,
  listJoin: (list, separator) => `array_join(${list}, ${separator})`,
  // array_distinct keeps the first occurrence of each value, in order.
  listDistinct: (list) => `array_distinct(${list})`,
  listCountDistinct: (list) => `cardinality(array_distinct(${list}))`,
  listSort: (list) => `array_sort(${list})`,
  countIf: (list, param, predicate) => `cardinality(filter(${list}, ${param} -> ${predicate}))`,
  listSelect: (list, indexes) => `transform(${indexes}, _ls -> IF(_ls > 0, element_at(${list}, _ls)))`,

  length: (text) => `length(${text})`,
  utf16Length: (text) => `(length(${text}) + length(regexp_replace(${text}, '[^\\x{10000}-\\x{10FFFF}]+', '')))`,
  byteLength: (text) => `length(to_utf8(${text}))`,
  substring: (text, start, length) => (length === undefined ? `substr(${text}, ${start})` : `substr(${text}, ${start}, ${length})`),
  lower: (text) => `lower(${text})`,
  replace: (text, from, to) => `replace(${text}, ${from}, ${to})`,
  trim: (text, characters) => `trim(BOTH ${characters} FROM ${text})`,
  ltrim: (text, characters) => `trim(LEADING ${characters} FROM ${text})`,
  rtrim: (text, characters) => `trim(TRAILING ${characters} FROM ${text})`,
  split: (text, separator) => `split(${text}, ${separator})`,
  splitPart: (text, separator, n) => `split_part(${text}, ${separator}, ${n})`,
  startsWith: (text, prefix) => `starts_with(${text}, ${prefix})`,
  endsWith: (text, suffix) => `(substr(${text}, -length(${suffix})) = ${suffix})`,
  contains: (text, part) => `(strpos(${text}, ${part}) > 0)`,
  regexpLike: (text, pattern) => `regexp_like(${text}, ${pattern})`,
  regexpReplace: (text, pattern, replacement) => `regexp_replace(${text}, ${pattern}, ${replacement})`,
  groupRef: (group) => `$${group}`,
  regexpGroups: (text, pattern, names) =>
    `CAST(ROW(${names.map((_, i) => `regexp_extract(${text}, ${pattern}, ${i + 1})`).join(', ')}) AS ROW(${names.map((n) => `${n} VARCHAR`).join(', ')}))`,
  zeros: (count) => `lpad('', CAST(${count} AS BIGINT), '0')`,
  hex: (value) => `to_base(CAST(${value} AS BIGINT), 16)`,
  codePoint: (character) => `codepoint(CAST(${character} AS VARCHAR(1)))`,
  codePointAt: (text, index) => `coalesce(codepoint(CAST(nullif(substr(${text}, ${index}, 1), '') AS VARCHAR(1))), 0)`,
  text: (value) => `CAST(${value} AS VARCHAR)`,

  tryDouble: (text) => `try_cast(${text} AS DOUBLE)`,
  doubleText: (value) => `CAST(${value} AS VARCHAR)`,
  isFinite: (value) => `is_finite(${value})`,
  truncate: (value) => `truncate(${value})`,
  intDiv: (a, b) => `(CAST(${a} AS BIGINT) / CAST(${b} AS BIGINT))`,
  bigint: (value) => `CAST(${value} AS BIGINT)`,
};

// ---------------------------------------------------------------------------------------------
// Constants of the JS rules (dataset-schema.ts keeps these private; the test pins the behaviour).

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const SAFE_MAX = Number.MAX_SAFE_INTEGER;
const FLOAT32_MAX = '3.4028234663852886e38';
const MS_MIN = 1e11;
const MS_MAX = Date.UTC(3000, 0, 1);
const REASON_MAX = 160;
const PREVIEW = 32;

/** String.prototype.trim's whitespace, as a character set for trim(). */
const JS_WHITESPACE = [0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0xa0, 0x1680, ...range(0x2000, 0x200a), 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff];
/** JSON whitespace, around a whole document. */
const JSON_WHITESPACE = [0x20, 0x09, 0x0a, 0x0d];
/** The NUMERIC rule of dataset-schema.ts (\d is ASCII there too); \A and \z: no line semantics in any engine. */
const NUMERIC = '\\A[+-]?(?:[0-9]+\\.?[0-9]*|\\.[0-9]+)(?:[eE][+-]?[0-9]+)?\\z';
const ISO_8601 = '\\A([0-9]{4})-([0-9]{2})-([0-9]{2})(?:T([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\\.([0-9]+))?)?(Z|([+-])([0-9]{2}):([0-9]{2})))?\\z';
const ISO_GROUPS = ['y', 'mo', 'd', 'h', 'mi', 's', 'f', 'z', 'zs', 'zh', 'zm'];
const DOUBLE_TEXT = '\\A(-?)([0-9]+)(?:\\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?\\z';
/** Array-index keys, which JS lists first (ascending) whatever their place in the document. */
const ARRAY_INDEX = '\\A(?:0|[1-9][0-9]{0,9})\\z';
const ASTRAL = '[\\x{10000}-\\x{10FFFF}]';
/**
 * The CJK test of dataset-schema.ts (Script=Han, Hiragana, Katakana), as code point ranges taken
 * from Node's Unicode tables (the unit test checks every boundary against the JS regex): the same
 * in every engine, whatever Unicode version its regular expressions know.
 */
const CJK_RANGES: readonly (readonly [number, number])[] = [
  [0x2e80, 0x2e99], [0x2e9b, 0x2ef3], [0x2f00, 0x2fd5], [0x3005, 0x3005], [0x3007, 0x3007], [0x3021, 0x3029],
  [0x3038, 0x303b], [0x3041, 0x3096], [0x309d, 0x309f], [0x30a1, 0x30fa], [0x30fd, 0x30ff], [0x31f0, 0x31ff],
  [0x32d0, 0x32fe], [0x3300, 0x3357], [0x3400, 0x4dbf], [0x4e00, 0x9fff], [0xf900, 0xfa6d], [0xfa70, 0xfad9],
  [0xff66, 0xff6f], [0xff71, 0xff9d], [0x16fe2, 0x16fe3], [0x16ff0, 0x16ff6], [0x1aff0, 0x1aff3], [0x1aff5, 0x1affb],
  [0x1affd, 0x1affe], [0x1b000, 0x1b122], [0x1b132, 0x1b132], [0x1b150, 0x1b152], [0x1b155, 0x1b155], [0x1b164, 0x1b167],
  [0x1f200, 0x1f200], [0x20000, 0x2a6df], [0x2a700, 0x2b81d], [0x2b820, 0x2cead], [0x2ceb0, 0x2ebe0], [0x2ebf0, 0x2ee5d],
  [0x2f800, 0x2fa1d], [0x30000, 0x3134a], [0x31350, 0x33479],
];
const hex4 = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
const CJK = `[${CJK_RANGES.map(([a, b]) => (a === b ? `\\x{${hex4(a)}}` : `\\x{${hex4(a)}}-\\x{${hex4(b)}}`)).join('')}]`;

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** How dataset-schema.ts matches an input key to a field: case and "_" ignored. */
const matchKey = (name: string): string => name.replace(/_/g, '').toLowerCase();

function fieldLabel(field: DatasetField): string {
  const kind = field.categorical ? ', categorical' : field.textual ? ', textual' : '';
  return `${field.name} (${field.type}${kind})`;
}

// ---------------------------------------------------------------------------------------------
// Building blocks

/** Fresh lambda parameter names: deterministic, so the same call gives the same text. */
class Ctx {
  private n = 0;
  constructor(readonly sql: ShapeSql) {}
  name(base: string): string {
    this.n += 1;
    return `_${base}${this.n}`;
  }
  let(value: string, base: string, body: (name: string) => string): string {
    const name = this.name(base);
    return this.sql.let(value, name, body(name));
  }
}

/** A character set for trim(): control characters by chr(), the others as they are. */
const chars = (codes: readonly number[]) => {
  const control = codes.filter((c) => c < 0x20).map((c) => `chr(${c})`);
  const others = String.fromCodePoint(...codes.filter((c) => c >= 0x20));
  return `(${[...control, lit(others)].join(' || ')})`;
};
const cat = (...parts: string[]) => `(${parts.join(' || ')})`;
const when = (cases: readonly (readonly [string, string])[], otherwise: string) =>
  `CASE ${cases.map(([c, v]) => `WHEN ${c} THEN ${v}`).join(' ')} ELSE ${otherwise} END`;

/**
 * What one key's value comes to: NULL when absent, else a tuple (cell, head, described): the cell
 * text, or a problem: `head` followed, when `described` (a JSON value) is not NULL, by its
 * describe(). A problem is finished (describe, droppedReason) once per column, outside the
 * per-type branches, which keeps the SQL text small.
 */
function outcome(sql: ShapeSql, cell: string, head: string, described?: string): string {
  return sql.tuple([cell, head, described ?? 'NULL']);
}
const cellOf = (sql: ShapeSql, o: string) => sql.tupleAt(o, 1);
const headOf = (sql: ShapeSql, o: string) => sql.tupleAt(o, 2);
const describedOf = (sql: ShapeSql, o: string) => sql.tupleAt(o, 3);

/**
 * The value-free reason of an outcome (NULL when it is not a problem). `described` says which
 * values the outcome may describe, to write no more of describe() than needed: any; only those a
 * string field refuses (an array, an object, a number out of range); none.
 */
function reasonOf(c: Ctx, o: string, described: 'any' | 'unusable' | 'none' = 'any'): string {
  const { sql } = c;
  const describe = c.let(describedOf(sql, o), 'dv', (dv) =>
    described === 'unusable'
      ? when([[isArr(sql, dv), "'an array'"], [isObj(sql, dv), "'an object'"]], `CASE WHEN ${sql.tryDouble(dv)} > 0 THEN 'number Infinity' ELSE 'number -Infinity' END`)
      : describeJson(c, dv),
  );
  const text = described === 'none' ? headOf(sql, o) : cat(headOf(sql, o), `CASE WHEN ${describedOf(sql, o)} IS NULL THEN '' ELSE ${describe} END`);
  return when([[`${headOf(sql, o)} IS NULL`, 'NULL']], droppedReasonSql(c, text));
}

/**
 * The first `units` UTF-16 units of text as JS slice() takes them: `whole` is the text of the
 * characters that fit entirely; `cut` is the astral character split by the cut (NULL if none).
 */
function utf16Slice(c: Ctx, text: string, units: number, body: (whole: string, cut: string) => string): string {
  const { sql } = c;
  // Each astral character written twice: one code point per UTF-16 unit.
  const doubled = sql.regexpReplace(text, lit(`(${ASTRAL})`), lit(sql.groupRef(1) + sql.groupRef(1)));
  return c.let(sql.substring(doubled, '1', String(units)), 'u', (p) => {
    const cut = sql.regexpLike(p, lit(`(?:\\A|[^\\x{10000}-\\x{10FFFF}])(?:${ASTRAL}{2})*${ASTRAL}\\z`));
    const halved = sql.regexpReplace(p, lit(`(${ASTRAL})${ASTRAL}`), lit(sql.groupRef(1)));
    return c.let(
      sql.struct([
        { name: 'cut', type: 'boolean', expr: cut },
        { name: 'halved', type: 'varchar', expr: halved },
      ]),
      'w',
      (w) => {
        const h = sql.field(w, 'halved');
        const whole = `CASE WHEN ${sql.field(w, 'cut')} THEN ${sql.substring(h, '1', `${sql.length(h)} - 1`)} ELSE ${h} END`;
        const cutChar = `CASE WHEN ${sql.field(w, 'cut')} THEN ${sql.substring(p, sql.length(p), '1')} END`;
        return body(whole, cutChar);
      },
    );
  });
}

/** droppedReason() of rows.ts: quoted parts emptied, then clipped to 160 UTF-16 units with "…". */
function droppedReasonSql(c: Ctx, reason: string): string {
  const { sql } = c;
  return c.let(sql.regexpReplace(reason, lit('"[^"]*"'), lit('""')), 'r', (r) =>
    when(
      [[`${sql.byteLength(r)} <= ${REASON_MAX} OR ${sql.utf16Length(r)} <= ${REASON_MAX}`, r]],
      // A cut surrogate pair: JS keeps the lone high surrogate, which UTF-8 output writes as U+FFFD.
      utf16Slice(c, r, REASON_MAX - 1, (whole, cut) => cat(whole, `CASE WHEN ${cut} IS NULL THEN '' ELSE '\uFFFD' END`, lit('…'))),
    ),
  );
}

/** JSON.stringify's escaping of a string's content (the quotes are not included). */
function jsonEscape(sql: ShapeSql, text: string): string {
  let out = sql.replace(sql.replace(text, lit('\\'), lit('\\\\')), lit('"'), lit('\\"'));
  const short: Record<number, string> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r' };
  for (let code = 0; code < 0x20; code++) {
    out = sql.replace(out, `chr(${code})`, lit(short[code] ?? `\\u${code.toString(16).padStart(4, '0')}`));
  }
  return out;
}

/** describe() of a string value: `string "<first 32 units>…" (N characters)`. */
function describeString(c: Ctx, s: string): string {
  const { sql } = c;
  return c.let(sql.utf16Length(s), 'n', (n) =>
    utf16Slice(c, s, PREVIEW, (whole, cut) =>
      cat(
        lit('string "'),
        jsonEscape(sql, `CASE WHEN ${n} <= ${PREVIEW} THEN ${s} ELSE ${whole} END`),
        `CASE WHEN ${n} <= ${PREVIEW} THEN '"' ELSE ${cat(
          // JSON.stringify writes a lone surrogate as \udxxx.
          `CASE WHEN ${cut} IS NULL THEN '' ELSE ${cat(lit('\\u'), sql.hex(`55296 + ${sql.intDiv(`${sql.codePoint(cut)} - 65536`, '1024')}`))} END`,
          lit('…" ('),
          sql.text(n),
          lit(' characters)'),
        )} END`,
      ),
    ),
  );
}

/** Decimal digits (no leading or trailing zeros) and point position of a finite DOUBLE's doubleText(): value = 0.D × 10^P. */
function digitsOf(c: Ctx, text: string, body: (sign: string, digits: string, point: string) => string): string {
  const { sql } = c;
  return c.let(sql.regexpGroups(text, lit(DOUBLE_TEXT), ['sg', 'ip', 'fp', 'ex']), 'g', (g) => {
    const ip = `coalesce(${sql.field(g, 'ip')}, '')`;
    const all = cat(ip, `coalesce(${sql.field(g, 'fp')}, '')`);
    const exp = `coalesce(${sql.bigint(`nullif(${sql.field(g, 'ex')}, '')`)}, 0)`;
    const lead = `(${sql.length(all)} - ${sql.length(sql.ltrim(all, "'0'"))})`;
    return c.let(
      sql.struct([
        { name: 'sg', type: 'varchar', expr: `coalesce(${sql.field(g, 'sg')}, '')` },
        { name: 'dg', type: 'varchar', expr: sql.rtrim(sql.ltrim(all, "'0'"), "'0'") },
        { name: 'pt', type: 'bigint', expr: `${sql.length(ip)} + ${exp} - ${lead}` },
      ]),
      'q',
      (q) => body(sql.field(q, 'sg'), sql.field(q, 'dg'), sql.field(q, 'pt')),
    );
  });
}

/** plainNumber() of a finite DOUBLE (never exponent form; -0 -> 0). */
function plainOfDouble(c: Ctx, d: string): string {
  const { sql } = c;
  return c.let(sql.doubleText(d), 't', (t) =>
    when(
      [
        [`${d} = 0`, "'0'"],
        // Already plain (no exponent): only the engine's ".0" of integers differs from JS.
        [`NOT ${sql.contains(t, "'e'")} AND NOT ${sql.contains(t, "'E'")}`, `CASE WHEN ${sql.endsWith(t, "'.0'")} THEN ${sql.substring(t, '1', `${sql.length(t)} - 2`)} ELSE ${t} END`],
      ],
      digitsOf(c, t, (sign, dg, pt) =>
        when(
          [
            [`${pt} <= 0`, cat(sign, "'0.'", sql.zeros(`-${pt}`), dg)],
            [`${pt} >= ${sql.length(dg)}`, cat(sign, dg, sql.zeros(`${pt} - ${sql.length(dg)}`))],
          ],
          cat(sign, sql.substring(dg, '1', pt), "'.'", sql.substring(dg, `${pt} + 1`)),
        ),
      ),
    ),
  );
}

/** String(n) of a DOUBLE, as describe() shows numbers ("1e+21", "1.5e-7", "Infinity"). */
function jsStringOfDouble(c: Ctx, d: string): string {
  const { sql } = c;
  return when(
    [
      [`NOT ${sql.isFinite(d)}`, `CASE WHEN ${d} > 0 THEN 'Infinity' WHEN ${d} < 0 THEN '-Infinity' ELSE 'NaN' END`],
      [`${d} = 0`, "'0'"],
    ],
    digitsOf(c, sql.doubleText(d), (sign, dg, pt) => {
      const k = sql.length(dg);
      const e = `(${pt} - 1)`;
      return when(
        [
          [`${pt} >= ${k} AND ${pt} <= 21`, cat(sign, dg, sql.zeros(`${pt} - ${k}`))],
          [`${pt} > 0 AND ${pt} <= 21`, cat(sign, sql.substring(dg, '1', pt), "'.'", sql.substring(dg, `${pt} + 1`))],
          [`${pt} > -6 AND ${pt} <= 0`, cat(sign, "'0.'", sql.zeros(`-${pt}`), dg)],
        ],
        cat(
          sign,
          sql.substring(dg, '1', '1'),
          `CASE WHEN ${k} > 1 THEN ${cat("'.'", sql.substring(dg, '2'))} ELSE '' END`,
          "'e'",
          `CASE WHEN ${e} >= 0 THEN '+' ELSE '-' END`,
          sql.text(`abs(${e})`),
        ),
      );
    }),
  );
}

// JSON value classes, by the first character of compact JSON text.
const isStr = (sql: ShapeSql, v: string) => sql.startsWith(v, `'"'`);
const isArr = (sql: ShapeSql, v: string) => sql.startsWith(v, "'['");
const isObj = (sql: ShapeSql, v: string) => sql.startsWith(v, "'{'");
const isBool = (v: string) => `${v} IN ('true', 'false')`;

/** describe() of any JSON value (compact text). */
function describeJson(c: Ctx, v: string): string {
  const { sql } = c;
  return when(
    [
      [isStr(sql, v), describeString(c, sql.jsonStringValue(v))],
      [isBool(v), cat("'boolean '", v)],
      [isArr(sql, v), "'an array'"],
      [isObj(sql, v), "'an object'"],
    ],
    cat("'number '", c.let(sql.tryDouble(v), 'd', (d) => jsStringOfDouble(c, d))),
  );
}

/** scalarText() of a JSON string/number/boolean (compact text); NULL for a non-finite number. */
function scalarText(c: Ctx, v: string): string {
  const { sql } = c;
  return when(
    [
      [isStr(sql, v), sql.jsonStringValue(v)],
      [isBool(v), v],
    ],
    c.let(sql.tryDouble(v), 'd', (d) => `CASE WHEN ${sql.isFinite(d)} THEN ${plainOfDouble(c, d)} END`),
  );
}

// ---------------------------------------------------------------------------------------------
// One key's value -> its outcome: the coerce() of dataset-schema.ts

interface Coercion {
  c: Ctx;
  sql: ShapeSql;
  field: DatasetField;
  label: string;
  /** The input key (SQL expression). */
  key: string;
  /** The value's compact JSON text (a bound name). */
  v: string;
  readonly ok: (cell: string) => string;
  /** A problem: `head` (SQL expression), then describe() of the JSON value `described` if given. */
  readonly bad: (head: string, described?: string) => string;
}

/** Printable ASCII but a backslash (and `also`): a character that is surely not whitespace nor an escape. */
const plainChar = (sql: ShapeSql, text: string, index: number, also: readonly number[] = []) =>
  `${sql.codePointAt(text, index)} BETWEEN 33 AND 126 AND ${sql.codePointAt(text, index)} NOT IN (${[92, ...also].join(', ')})`;

/** String.prototype.trim's whitespace as a regular-expression class. */
const WS_CLASS = `[${JS_WHITESPACE.map((c) => `\\x{${hex4(c)}}`).join('')}]`;

/**
 * The common forms of a value, tested without lambdas: a condition on the value's compact JSON
 * text and the cell it gives. Every other value goes through the full rules.
 */
function fastPath(sql: ShapeSql, schema: DatasetSchema, field: DatasetField, v: string): [string, string] {
  const str = `${isStr(sql, v)} AND ${sql.byteLength(v)}`;
  if (schema.type === 'Items' && field.name === 'CREATION_TIMESTAMP') {
    // Epoch milliseconds as a JSON integer from 1e11 (12 digits) to year 3000.
    return [`${sql.regexpLike(v, lit('\\A[1-9][0-9]{11,13}\\z'))} AND ${sql.tryDouble(v)} < ${MS_MAX}`, sql.text(sql.intDiv(sql.bigint(v), '1000'))];
  }
  switch (field.type) {
    case 'string': {
      if (!field.categorical) {
        // Within the limit (bytes bound UTF-16 units) and not blank: it starts with a plain character.
        const limit = field.textual ? Math.min(TEXTUAL_MAX_LENGTH, TEXTUAL_MAX_LENGTH_CJK) : PLAIN_STRING_MAX_LENGTH;
        return [`${str} BETWEEN 3 AND ${limit + 2} AND ${plainChar(sql, v, 2)}`, sql.jsonStringValue(v)];
      }
      // No escapes, within the limit, nothing to trim, and at most one pipe, between two different
      // pieces that are not padded: the text is then its own category list.
      const content = sql.substring(v, '2', `${sql.length(v)} - 2`);
      const end = `[^${WS_CLASS.slice(1, -1)}|\\\\"]`;
      const piece = `${end}(?:[^|\\\\"]*${end})?`;
      const distinct = `(NOT ${sql.contains(v, "'|'")} OR ${sql.splitPart(content, "'|'", '1')} <> ${sql.splitPart(content, "'|'", '2')})`;
      return [`${sql.byteLength(v)} <= ${CATEGORICAL_MAX_LENGTH + 2} AND ${sql.regexpLike(v, lit(`\\A"${piece}(?:\\|${piece})?"\\z`))} AND ${distinct}`, content];
    }
    case 'boolean':
      return [isBool(v), v];
    default: {
      // At most 15 digits: the JSON text is then the shortest round-trip text, which plainNumber gives.
      const pattern = field.type === 'int' || field.type === 'long' ? '\\A-?(?:0|[1-9][0-9]*)\\z' : '\\A-?(?:0|[1-9][0-9]*)(?:\\.[0-9]*[1-9])?\\z';
      const range = field.type === 'int' ? ` AND ${sql.tryDouble(v)} BETWEEN ${INT32_MIN} AND ${INT32_MAX}` : '';
      return [`${sql.byteLength(v)} <= 15 AND ${sql.regexpLike(v, lit(pattern))} AND ${v} <> '-0'${range}`, v];
    }
  }
}

/** One key's outcome by the full rules. `key` and `value` (compact JSON text, not null) are cheap to repeat. */
function coerceSql(c: Ctx, schema: DatasetSchema, field: DatasetField, key: string, value: string): string {
  const { sql } = c;
  // The key and value bound together, so the lambdas below capture one small value.
  return c.let(sql.list([key, value]), 'kv', (kv) => {
    const v = sql.listAt(kv, '2');
    const k: Coercion = {
      c,
      sql,
      field,
      label: fieldLabel(field),
      key: sql.listAt(kv, '1'),
      v,
      ok: (cell) => outcome(sql, cell, 'NULL'),
      bad: (head, described) => outcome(sql, 'NULL', head, described),
    };
    if (schema.type === 'Items' && field.name === 'CREATION_TIMESTAMP') return coerceTimestamp(k);
    switch (field.type) {
      case 'string':
        return field.categorical ? coerceCategorical(k) : coerceString(k);
      case 'boolean':
        return coerceBoolean(k);
      default:
        return coerceNumber(k);
    }
  });
}

const WS = chars(JS_WHITESPACE);

function coerceCategorical({ c, sql, label, key, v, ok, bad }: Coercion): string {
  const fits = (text: string) => `${sql.byteLength(text)} <= ${CATEGORICAL_MAX_LENGTH}`;
  const checked = (text: string) =>
    c.let(sql.utf16Length(text), 'n', (n) =>
      when(
        [[`${n} > ${CATEGORICAL_MAX_LENGTH}`, bad(cat(key, "': '", sql.text(n), lit(` characters for ${label}, over the ${CATEGORICAL_MAX_LENGTH}-character limit for categorical values (FACTS §1c, §4c)`)))]],
        ok(text),
      ),
    );
  // Each element (null skipped) as text, split on "|", trimmed; empty pieces and repeats removed.
  // The first element that is not a string, finite number or boolean is the problem.
  const elements = `CASE WHEN ${isArr(sql, v)} THEN ${sql.jsonArrayElements(v)} ELSE ${sql.list([v])} END`;
  const b = c.name('b');
  const unusable = `${isArr(sql, b)} OR ${isObj(sql, b)} OR NOT (${isStr(sql, b)} OR ${isBool(b)} OR ${b} = 'null' OR ${sql.isFinite(sql.tryDouble(b))})`;
  const general = c.let(elements, 'e', (e) =>
    c.let(sql.listAt(sql.listFilter(e, b, unusable), '1'), 'bad', (first) => {
      const [n, x, t, p, q] = ['n', 'x', 't', 'p', 'q'].map((name) => c.name(name)) as [string, string, string, string, string];
      const texts = sql.listTransform(sql.listFilter(e, n, `${n} <> 'null'`), x, scalarText(c, x));
      const pieces = sql.listFilter(sql.listTransform(sql.listFlatten(sql.listTransform(texts, t, sql.split(t, "'|'"))), p, sql.trim(p, WS)), q, `${q} <> ''`);
      return when(
        [
          [
            `${first} IS NOT NULL`,
            bad(cat(key, lit(`: expected a string, number, boolean or an array of them for ${label}, got `), `CASE WHEN ${isArr(sql, v)} THEN 'an array holding ' ELSE '' END`), first),
          ],
        ],
        c.let(sql.listDistinct(pieces), 'c', (cats) =>
          when([[`${sql.listLength(cats)} = 0`, 'NULL']], c.let(sql.listJoin(cats, "'|'"), 'j', (j) => when([[fits(j), ok(j)]], checked(j)))),
        ),
      );
    }),
  );
  // The common case, one string without "|" (never escaped in compact JSON): trimmed, that is all.
  return when(
    [[`${isStr(sql, v)} AND NOT ${sql.contains(v, "'|'")}`, c.let(sql.trim(sql.jsonStringValue(v), WS), 't', (t) => when([[`${t} = ''`, 'NULL'], [fits(t), ok(t)]], checked(t)))]],
    general,
  );
}

function coerceString({ c, sql, field, label, key, v, ok, bad }: Coercion): string {
  const fast = field.textual ? Math.min(TEXTUAL_MAX_LENGTH, TEXTUAL_MAX_LENGTH_CJK) : PLAIN_STRING_MAX_LENGTH;
  const over = (n: string, text: string) => bad(cat(key, "': '", sql.text(n), lit(text)));
  const checked = (t: string) =>
    c.let(sql.utf16Length(t), 'n', (n) => {
      if (!field.textual) return when([[`${n} > ${PLAIN_STRING_MAX_LENGTH}`, over(n, ` characters for ${label}, over our ${PLAIN_STRING_MAX_LENGTH}-character cap`)]], ok(t));
      const cjk = sql.regexpLike(t, lit(CJK));
      return when(
        [
          [`${n} > ${TEXTUAL_MAX_LENGTH_CJK} AND ${cjk}`, over(n, ` characters for ${label}, over the ${TEXTUAL_MAX_LENGTH_CJK}-character limit for textual values in Chinese/Japanese (FACTS §4c)`)],
          [`${n} > ${TEXTUAL_MAX_LENGTH}`, over(n, ` characters for ${label}, over the ${TEXTUAL_MAX_LENGTH}-character limit for textual values (FACTS §4c)`)],
        ],
        ok(t),
      );
    });
  const notString = bad(cat(key, lit(`: expected a string for ${label}, got `)), v);
  return when(
    [[`${isArr(sql, v)} OR ${isObj(sql, v)}`, notString]],
    c.let(scalarText(c, v), 't', (t) =>
      when(
        [
          [`${t} IS NULL`, notString],
          [`${sql.trim(t, WS)} = ''`, 'NULL'],
          [`${sql.byteLength(t)} <= ${fast}`, ok(t)],
        ],
        checked(t),
      ),
    ),
  );
}

function coerceBoolean({ c, sql, label, key, v, ok, bad }: Coercion): string {
  const problem = bad(cat(key, lit(`: expected true or false for ${label}, got `)), v);
  return when(
    [
      [isBool(v), ok(v)],
      [
        isStr(sql, v),
        c.let(sql.lower(sql.trim(sql.jsonStringValue(v), WS)), 't', (t) =>
          when(
            [
              [isBool(t), ok(t)],
              [`${t} = ''`, 'NULL'],
            ],
            problem,
          ),
        ),
      ],
    ],
    problem,
  );
}

/**
 * The number a value gives for a number rule (NULL when none), after the common checks: strings are
 * trimmed ('' is absent: `blank`), must be NUMERIC; JSON numbers are taken as they are.
 */
function numberOf(c: Ctx, v: string, body: (d: string, blank: string, notNumber: string) => string): string {
  const { sql } = c;
  return c.let(`CASE WHEN ${isStr(sql, v)} THEN ${sql.trim(sql.jsonStringValue(v), WS)} END`, 't', (t) =>
    c.let(`CASE WHEN ${t} IS NULL AND NOT (${isBool(v)} OR ${isArr(sql, v)} OR ${isObj(sql, v)}) THEN ${sql.tryDouble(v)} WHEN ${sql.regexpLike(t, lit(NUMERIC))} THEN ${sql.tryDouble(t)} END`, 'd', (d) =>
      body(d, `${t} = ''`, `${d} IS NULL OR NOT ${sql.isFinite(d)}`),
    ),
  );
}

function coerceNumber({ c, sql, field, label, key, v, ok, bad }: Coercion): string {
  const integral = field.type === 'int' || field.type === 'long';
  const expected = bad(cat(key, lit(`: expected ${integral ? 'an integer' : 'a number'} for ${label}, got `)), v);
  return numberOf(c, v, (d, blank, notNumber) => {
    const checks: [string, string][] = [
      [blank, 'NULL'],
      [notNumber, expected],
    ];
    if (integral) checks.push([`${d} <> ${sql.truncate(d)}`, expected]);
    const [over, problem] =
      field.type === 'int'
        ? [`${d} < ${INT32_MIN} OR ${d} > ${INT32_MAX}`, ' is outside the 32-bit integer range for ']
        : field.type === 'long'
          ? [`abs(${d}) > ${SAFE_MAX}`, ' is outside the range of exactly representable integers (±2^53) for ']
          : field.type === 'float'
            ? [`abs(${d}) > ${FLOAT32_MAX}`, ' overflows ']
            : ['FALSE', ''];
    return when(checks, c.let(plainOfDouble(c, d), 'pn', (pn) => when([[over, bad(cat(key, "': '", pn, lit(`${problem}${label}`)))]], ok(pn))));
  });
}

function coerceTimestamp({ c, sql, label, key, v, ok, bad }: Coercion): string {
  const problem = (text: string) => bad(cat(key, lit(`: ${label}: `), text, "'; got '"), v);
  const notMs = problem(lit('expected epoch milliseconds or an ISO-8601 date-time with a zone'));
  const iso = (t: string) =>
    c.let(sql.regexpGroups(t, lit(ISO_8601), ISO_GROUPS), 'g', (g) => {
      const parts = ['y', 'mo', 'd', 'h', 'mi', 's', 'zh', 'zm'];
      const numbers = sql.list(parts.map((name) => `coalesce(${sql.bigint(`nullif(${sql.field(g, name)}, '')`)}, 0)`));
      return c.let(numbers, 'dt', (dt) => {
        const [y, mo, d, h, mi, s, zh, zm] = parts.map((_, i) => sql.listAt(dt, String(i + 1))) as [string, string, string, string, string, string, string, string];
        const frac = `coalesce(${sql.field(g, 'f')}, '')`;
        // Date.UTC(year, month, 0) maps years 0-99 to 1900-1999: dataset-schema.ts checks days that way.
        const cy = `(CASE WHEN ${y} < 100 THEN ${y} + 1900 ELSE ${y} END)`;
        const leap = `(${cy} % 4 = 0 AND (${cy} % 100 <> 0 OR ${cy} % 400 = 0))`;
        const dim = `(CASE WHEN ${mo} = 2 THEN (CASE WHEN ${leap} THEN 29 ELSE 28 END) WHEN ${mo} IN (4, 6, 9, 11) THEN 30 ELSE 31 END)`;
        // Date.parse (V8): hours 0-23 or 24:00:00 exactly, minutes and seconds 0-59, zone up to 23:59.
        const time = `(${h} <= 23 OR (${h} = 24 AND ${mi} = 0 AND ${s} = 0 AND ${sql.trim(frac, "'0'")} = '')) AND ${mi} <= 59 AND ${s} <= 59 AND ${zh} <= 23 AND ${zm} <= 59`;
        const valid = `${mo} >= 1 AND ${mo} <= 12 AND ${d} >= 1 AND ${d} <= ${dim} AND ${time}`;
        // Days since 1970 (days_from_civil) for years from 1969 on; earlier dates are out of range anyway.
        const yy = `(${y} - CASE WHEN ${mo} <= 2 THEN 1 ELSE 0 END)`;
        const era = sql.intDiv(yy, '400');
        const yoe = `(${yy} - ${era} * 400)`;
        const doy = `(${sql.intDiv(`153 * ((${mo} + 9) % 12) + 2`, '5')} + ${d} - 1)`;
        const doe = `(${yoe} * 365 + ${sql.intDiv(yoe, '4')} - ${sql.intDiv(yoe, '100')} + ${doy})`;
        const days = `(${era} * 146097 + ${doe} - 719468)`;
        // Milliseconds: the first three fraction digits (V8 ignores the rest).
        const fracMs = sql.bigint(sql.substring(cat(frac, "'000'"), '1', '3'));
        const zone = `(CASE WHEN ${sql.field(g, 'zs')} = '-' THEN -1 ELSE 1 END) * (${zh} * 3600000 + ${zm} * 60000)`;
        const epochMs = `(${days} * 86400000 + ${h} * 3600000 + ${mi} * 60000 + ${s} * 1000 + ${fracMs} - ${zone})`;
        return when(
          [[`NOT (${valid})`, problem("'is not a valid date'")]],
          c.let(`CASE WHEN ${y} < 1969 THEN -1 ELSE ${epochMs} END`, 'm', (m) =>
            when([[`${m} < 0 OR ${m} >= ${MS_MAX}`, problem("'is outside 1970 to 3000'")]], ok(sql.text(sql.intDiv(m, '1000')))),
          ),
        );
      });
    });
  // An ISO-8601 string, else epoch milliseconds (a JSON number or a NUMERIC string).
  const isoText = `CASE WHEN ${isStr(sql, v)} THEN ${sql.trim(sql.jsonStringValue(v), WS)} END`;
  return c.let(isoText, 'it', (it) =>
    when(
      [[sql.regexpLike(it, lit(ISO_8601)), iso(it)]],
      numberOf(c, v, (d, blank, notNumber) =>
        when(
          [
            [blank, 'NULL'],
            [notNumber, notMs],
            [
              `${d} <> ${sql.truncate(d)} OR ${d} < ${MS_MIN} OR ${d} >= ${MS_MAX}`,
              problem(cat(plainOfDouble(c, d), lit(' is not epoch milliseconds between 1973 and 3000 (epoch seconds sent as milliseconds?)'))),
            ],
          ],
          ok(sql.text(sql.bigint(`floor(${d} / 1000)`))),
        ),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// Rows and keys

/** Index offsets of the per-key field codes (`fi`): see rowSql. */
const INEXACT = 1000;

/**
 * The per-row value every expression starts from, written identically each time (DuckDB computes
 * it once per row for all columns, as a common subexpression):
 * - k: the keys; v: the member values as compact JSON; p: the document;
 * - canon: every key is a metadata field's own camelCase key (the common case: no two keys name
 *   the same field, and nothing needs lowercasing);
 * - fi (when not canon): per key, the field it names: n (1-based, schema order) for a metadata
 *   field's own camelCase key, 1000 + n for another spelling (case and "_" ignored), 1000 + N + t
 *   for the t-th top-level field (N metadata fields), 0 for none (Trino: also for a null value);
 * - x.dup: two keys name the same metadata field; x.fp: each metadata field's key
 *   index (its own key first; 0 for none), in schema order; x.fv: each metadata field's value, or
 *   "#" for all when dup (not JSON: it never takes a short path).
 */
function rowSql(c: Ctx, schema: DatasetSchema, props: string): string {
  const { sql } = c;
  const n = schema.metadata.length;
  const topLevel = schema.fields.filter((f) => !schema.metadata.includes(f));
  const own = sql.list(schema.metadata.map((f) => lit(f.propertyKey)));
  const matched = sql.list([...schema.metadata, ...topLevel].map((f) => lit(matchKey(f.name))));
  return shared(c, sql.jsonMembers(props), 'jm', (members) => {
    const [keys, values] = [sql.field(members, 'k'), sql.field(members, 'v')];
    // Each metadata field's own key: found for every key is the common case, decided without lambdas.
    const exactList = sql.list(schema.metadata.map((f) => `coalesce(${sql.listPosition(keys, lit(f.propertyKey))}, 0)`));
    return shared(c, exactList, 'ex', (exact) =>
      shared(c, `coalesce(${sql.listLength(keys)} = ${sql.countIf(exact, '_nz', '_nz <> 0')}, TRUE)`, 'cn', (canon) => {
        // JS lowercases "İ" to "i̇" (two code points), the engines to "i": it must never match a field.
        const code = (key: string) =>
          `coalesce(${sql.listPosition(own, key)}, ${sql.listPosition(matched, sql.lower(sql.replace(sql.replace(key, "'_'", "''"), lit('\u0130'), lit('\u0307'))))} + ${INEXACT}, 0)`;
        // DuckDB: keys with a null value get codes too (a lambda over the keys alone is cheaper); they
        // only make `dup` true where shapeProperties, which skips them, sees one key, and the exact
        // path then gives the same result. Trino: they name nothing, so that they are never kept.
        const codesText = `CASE WHEN ${canon} THEN NULL ELSE ${
          exactKeyOrder(sql)
            ? sql.listTransform(keys, '_fk', code('_fk'))
            : sql.listTransform(sql.listIndexes(keys), '_fj', `CASE WHEN ${sql.listAt(values, '_fj')} = 'null' THEN 0 ELSE ${code(sql.listAt(keys, '_fj'))} END`)
        } END`;
        return shared(c, codesText, 'fc', (codes) => {
          const s = '_fs';
          const [f, v, g] = [sql.field(s, 'f'), sql.field(s, 'v'), '_fg'];
          const metaCodes = sql.listFilter(f, g, `${g} BETWEEN 1 AND ${n} OR ${g} BETWEEN ${INEXACT + 1} AND ${INEXACT + n}`);
          const dupText = `${sql.listCountDistinct(sql.listTransform(metaCodes, g, `${g} % ${INEXACT}`))} <> ${sql.listLength(metaCodes)}`;
          const positionsText = sql.list(schema.metadata.map((_, i) => `coalesce(${sql.listPosition(f, String(i + 1))}, ${sql.listPosition(f, String(INEXACT + i + 1))}, 0)`));
          const x: StructField[] = [
            { name: 'dup', type: 'boolean', expr: 'FALSE' },
            { name: 'fp', type: 'bigint[]', expr: exact },
            { name: 'fv', type: 'varchar[]', expr: sql.listSelect(values, exact) },
          ];
          const uncommon = sql.let(
            sql.struct([
              { name: 'f', type: 'bigint[]', expr: codes },
              { name: 'v', type: 'varchar[]', expr: values },
            ]),
            s,
            shared(c, positionsText, 'fpos', (positions) =>
              shared(c, dupText, 'dup', (dup) =>
                sql.struct([
                  { name: 'dup', type: 'boolean', expr: dup },
                  { name: 'fp', type: 'bigint[]', expr: positions },
                  { name: 'fv', type: 'varchar[]', expr: `CASE WHEN ${dup} THEN ${sql.list(schema.metadata.map(() => "'#'"))} ELSE ${sql.listSelect(v, positions)} END` },
                ]),
              ),
            ),
          );
          return sql.struct([
            { name: 'k', type: 'varchar[]', expr: keys },
            { name: 'v', type: 'varchar[]', expr: values },
            { name: 'p', type: 'varchar', expr: sql.text(props) },
            { name: 'canon', type: 'boolean', expr: canon },
            { name: 'fi', type: 'bigint[]', expr: codes },
            { name: 'x', type: x, expr: `CASE WHEN ${canon} THEN ${sql.struct(x)} ELSE ${uncommon} END` },
          ]);
        });
      }),
    );
  });
}

/** DuckDB reads keys in document order and follows shapeProperties' loop exactly; Trino does not (see trinoShapeSql). */
const exactKeyOrder = (sql: ShapeSql) => sql.name === 'duckdb';

const rowX = (sql: ShapeSql, row: string, name: string) => sql.field(sql.field(row, 'x'), name);
/** The key index of the n-th metadata field (1-based; the only key naming it when not dup), NULL if none. */
const positionSql = (sql: ShapeSql, row: string, n: number) => `nullif(${sql.listAt(rowX(sql, row, 'fp'), String(n))}, 0)`;

/**
 * A value every part of an expression refers to (the row). DuckDB: written out where used; its
 * optimiser evaluates identical subexpressions once per row (common subexpression elimination),
 * across all the columns of a SELECT, whereas a lambda binding would copy the row once per column.
 * Trino: bound by a lambda, which keeps the text short.
 */
function shared(c: Ctx, value: string, base: string, body: (ref: string) => string): string {
  return c.sql.name === 'duckdb' ? body(`(${value})`) : c.let(value, base, body);
}

interface Entries {
  /** Indexes (into the row's keys) of the non-null keys naming the field, in key order. */
  es: string;
  /** Their outcomes. */
  cs: string;
  /** Position in `cs` of the kept one (the first with a value), NULL if none. */
  a: string;
  /** Position in `cs` of the first problem before the kept one, NULL if none. */
  fp: string;
}

/** A field's keys in the row and their outcomes: shapeProperties' loop for one field (DuckDB, rows with keys naming the same field). */
function entriesSql(c: Ctx, schema: DatasetSchema, row: string, field: DatasetField, body: (e: Entries) => string): string {
  const { sql } = c;
  const n = schema.metadata.indexOf(field) + 1;
  const k = sql.field(row, 'k');
  const v = sql.field(row, 'v');
  const j = c.name('j');
  const entries = sql.listFilter(sql.listIndexes(k), j, `${sql.listAt(sql.field(row, 'fi'), j)} IN (${n}, ${INEXACT + n}) AND ${sql.listAt(v, j)} <> 'null'`);
  return c.let(entries, 'es', (es) => {
    const i = c.name('i');
    return c.let(sql.listTransform(es, i, coerceSql(c, schema, field, sql.listAt(k, i), sql.listAt(v, i))), 'cs', (cs) => {
      const x = c.name('x');
      const q = c.name('q');
      const a = sql.listPosition(sql.listTransform(cs, x, `${cellOf(sql, x)} IS NOT NULL`), 'TRUE');
      const fp = sql.listAt(sql.listFilter(sql.listIndexes(cs), q, `(${a} IS NULL OR ${q} < ${a}) AND ${headOf(sql, sql.listAt(cs, q))} IS NOT NULL`), '1');
      return c.let(sql.list([a, fp]), 'afp', (afp) => body({ es, cs, a: sql.listAt(afp, '1'), fp: sql.listAt(afp, '2') }));
    });
  });
}

/**
 * One CSV column fed from properties. `props` is a SQL expression evaluating to the properties JSON text (VARCHAR, may be NULL or not an object).
 * cell: VARCHAR expression = the text csvValue() would give for that field (NULL where csvValue gives '').
 * dropped: VARCHAR expression = droppedReason(reason) of the shapeProperties drop for that field (NULL when nothing was dropped for it).
 *
 * When several keys name the field, `dropped` is the first of their problems before the kept key;
 * later problems and the "already set" drops are listed by unknownKeyReasonsSql, so that the two
 * together give every reason shapeProperties gives.
 */
export function propertyCellSql(schema: DatasetSchema, field: DatasetField, props: string, sql: ShapeSql): { cell: string; dropped: string } {
  if (!schema.metadata.includes(field)) throw new Error(`propertyCellSql: ${field.name} is not a metadata field of the ${schema.type} schema`);
  const c = new Ctx(sql);
  const n = schema.metadata.indexOf(field) + 1;
  const expression = (result: (fast: string, fastCell: string, slow: string) => string) =>
    shared(c, rowSql(c, schema, props), 'row', (row) => {
      // The common forms, decided on the value alone (a lambda that captures nothing): state 1 with
      // the cell, state 0 for absent (no key, or null), state 2 for everything else.
      const v = c.name('fv');
      const [cond, cell] = fastPath(sql, schema, field, v);
      const fastValue = sql.let(
        sql.listAt(rowX(sql, row, 'fv'), String(n)),
        v,
        when(
          [
            [`${v} IS NULL OR ${v} = 'null'`, sql.tuple(["'0'", 'NULL'])],
            [cond, sql.tuple(["'1'", cell])],
          ],
          sql.tuple(["'2'", 'NULL']),
        ),
      );
      return shared(c, fastValue, 'fast', (fast) => {
        // The rest: the row bound once, so that the lambdas there capture one value.
        const slow = c.let(row, 'r', (r) => {
          const position = positionSql(sql, r, n);
          const single = coerceSql(c, schema, field, sql.listAt(sql.field(r, 'k'), position), sql.listAt(sql.field(r, 'v'), position));
          // Trino keeps one key per field, whatever its value (see trinoShapeSql): Athena caps the
          // query text at 256 KB, and shapeProperties' loop over several keys is most of the text.
          if (!exactKeyOrder(sql)) return single;
          const general = entriesSql(c, schema, r, field, ({ cs, a, fp }) => {
            const problem = sql.listAt(cs, fp);
            return outcome(sql, cellOf(sql, sql.listAt(cs, a)), headOf(sql, problem), describedOf(sql, problem));
          });
          return when([[`NOT ${rowX(sql, r, 'dup')}`, single]], general);
        });
        return result(`${sql.tupleAt(fast, 1)} <> '2'`, sql.tupleAt(fast, 2), slow);
      });
    });
  const cell = expression((fast, fastCell, slow) => `CASE WHEN ${fast} THEN ${fastCell} ELSE ${cellOf(sql, slow)} END`);
  const described = field.type === 'string' ? 'unusable' : 'any';
  const dropped = expression((fast, _fastCell, slow) => `CASE WHEN ${fast} THEN NULL ELSE ${c.let(slow, 'o', (o) => reasonOf(c, o, described))} END`);
  return { cell, dropped };
}

/**
 * A SQL array/list expression (DuckDB LIST(VARCHAR) / Trino ARRAY(VARCHAR)) of droppedReason() texts for every input key of `props` that is not a metadata field (unknown keys, top-level fields, and a second key naming an already-set field), in input key order. Empty list when none.
 *
 * Also listed: a problem of a key naming a field after that field's first problem (the first is the
 * column's `dropped`), and props that are not an object ("(properties): expected an object ...").
 */
export function unknownKeyReasonsSql(schema: DatasetSchema, props: string, sql: ShapeSql): string {
  const c = new Ctx(sql);
  return shared(c, rowSql(c, schema, props), 'row', (row) => {
    // Props that are not an object (JSON null counts as absent).
    const notObject = c.let(sql.trim(sql.field(row, 'p'), chars(JSON_WHITESPACE)), 'pt', (pt) =>
      when(
        [[`${pt} IS NULL OR ${pt} = 'null' OR ${sql.startsWith(pt, "'{'")}`, sql.emptyList()]],
        sql.list([reasonOf(c, outcome(sql, 'NULL', "'(properties): expected an object, got '", sql.jsonCompact(pt)))]),
      ),
    );
    const k = sql.field(row, 'k');
    const n = schema.metadata.length;
    const metadataOnly = `NOT ${rowX(sql, row, 'dup')} AND ${sql.countIf(sql.field(row, 'fi'), '_uk', `_uk = 0 OR _uk > ${INEXACT + n}`)} = 0`;
    return when(
      [
        [`${k} IS NULL OR ${sql.listLength(k)} = 0`, notObject],
        [sql.field(row, 'canon'), sql.emptyList()],
        // Keys that all name metadata fields, one key each: nothing to say.
        [metadataOnly, sql.emptyList()],
      ],
      // The row bound once for the rest (rare rows), so that the lambdas there capture one value.
      c.let(row, 'r', (r) => keyReasons(c, schema, r)),
    );
  });
}

/** Every key's reason, in JS key order (rows with unknown or top-level keys, or keys naming the same field). */
function keyReasons(c: Ctx, schema: DatasetSchema, row: string): string {
  const { sql } = c;
  const k = sql.field(row, 'k');
  const v = sql.field(row, 'v');
  const fi = sql.field(row, 'fi');
  const n = schema.metadata.length;
  const topLevel = schema.fields.filter((f) => !schema.metadata.includes(f));
  const reason = (head: string) => outcome(sql, 'NULL', head);

  // Where keys name the same field: per metadata field, the reason each key gives beyond the
  // column's own (aligned with the row's keys, NULL where none).
  const roles = () => sql.list(
    schema.metadata.map((f) =>
      entriesSql(c, schema, row, f, ({ es, cs, a, fp }) => {
        const i = c.name('i');
        return sql.listTransform(
          sql.listIndexes(k),
          i,
          c.let(sql.listPosition(es, i), 'p', (p) =>
            when(
              [
                [`${p} IS NULL`, 'NULL'],
                [`${a} IS NOT NULL AND ${p} > ${a}`, reason(cat(sql.listAt(k, i), lit(`: ${f.name} already set from key `), sql.listAt(k, sql.listAt(es, a))))],
                [`(${a} IS NULL OR ${p} < ${a}) AND ${p} <> ${fp}`, sql.listAt(cs, p)],
              ],
              'NULL',
            ),
          ),
        );
      }),
    ),
  );

  return c.let(`CASE WHEN ${rowX(sql, row, 'dup')} THEN ${exactKeyOrder(sql) ? roles() : 'NULL'} END`, 'roles', (rs) => {
    const reasonAt = (i: string) => {
      const key = sql.listAt(k, i);
      const code = sql.listAt(fi, i);
      const cases: [string, string][] = [[`${sql.listAt(v, i)} = 'null'`, 'NULL']];
      topLevel.forEach((f, t) => {
        cases.push([`${code} = ${INEXACT + n + t + 1}`, reason(cat(key, lit(`: ${f.name} is a top-level field of the request, not a property`)))]);
      });
      schema.metadata.forEach((f, m) => {
        const kept = positionSql(sql, row, m + 1);
        const role = exactKeyOrder(sql)
          ? sql.listAt(sql.listAt(rs, String(m + 1)), i)
          : `CASE WHEN ${i} = ${kept} THEN NULL ELSE ${reason(cat(key, lit(`: ${f.name} already set from key `), sql.listAt(k, kept)))} END`;
        cases.push([`${code} IN (${m + 1}, ${INEXACT + m + 1})`, role]);
      });
      return when(cases, reason(cat(key, lit(`: not a field of the ${schema.type} schema`))));
    };
    // JS lists array-index keys ("0" .. "4294967294") first, ascending, then the others in document
    // order (Trino: keys are in sorted order anyway).
    const x = c.name('x');
    const isIndex = `(${sql.regexpLike(sql.listAt(k, x), lit(ARRAY_INDEX))} AND ${sql.bigint(sql.listAt(k, x))} <= 4294967294)`;
    const padded = (t: string) => `lpad(${sql.text(t)}, 10, '0')`;
    const sortKey = `CASE WHEN ${isIndex} THEN ${cat("'0'", padded(sql.listAt(k, x)), padded(x))} ELSE ${cat("'1'", padded(x))} END`;
    const y = c.name('y');
    const ordered = exactKeyOrder(sql)
      ? sql.listTransform(sql.listSort(sql.listTransform(sql.listIndexes(k), x, sortKey)), y, sql.bigint(sql.substring(y, `${sql.length(y)} - 9`)))
      : sql.listIndexes(k);
    const [i, z, r] = [c.name('i'), c.name('z'), c.name('r')];
    // Trino: reasons of keys only (unknown, top-level, "already set"), with no value to describe.
    return sql.listTransform(sql.listFilter(sql.listTransform(ordered, i, reasonAt(i)), z, `${headOf(sql, z)} IS NOT NULL`), r, reasonOf(c, r, exactKeyOrder(sql) ? 'any' : 'none'));
  });
}

/** The plainNumber() text of the number whose decimal text (JSON number literal, or a NUMERIC string) is `numberText`; NULL for NULL. Must match JS: Number(text) then plainNumber. */
export function plainNumberSql(numberText: string, sql: ShapeSql): string {
  const c = new Ctx(sql);
  return c.let(sql.tryDouble(numberText), 'd', (d) => `CASE WHEN ${sql.isFinite(d)} THEN ${plainOfDouble(c, d)} END`);
}
