import { duckdbShapeSql, trinoShapeSql, type ShapeSql } from './shape.js';

/**
 * The few places where DuckDB (the embedded engine) and Trino (Athena) spell the same operation
 * differently. The export's rules (./rules.ts) are written once against this interface; each
 * function takes SQL expression texts and returns one.
 */
export interface SqlDialect {
  readonly name: 'duckdb' | 'trino';
  /** The property shaping primitives (./shape.ts). */
  readonly shape: ShapeSql;
  /** true when `line` is one well-formed JSON document (DuckDB also refuses lone surrogate escapes). */
  jsonValid(line: string): string;
  /**
   * The JSON texts of several members of one document, read with one parse where the engine can:
   * `select` goes into the SELECT list (as column `alias`), `at(i)` reads member i afterwards.
   */
  jsonMembers(line: string, paths: readonly string[], alias: string): { select: string; at(index: number): string };
  /** The text of a JSON string value (its JSON text given), unescaped; NULL for non-strings. */
  jsonStringValue(json: string): string;
  /** The elements of a JSON array of strings (JSON text given), as a list/array of VARCHAR. */
  jsonStringArray(json: string): string;
  /** Number of elements of a JSON array (JSON text given). */
  jsonArrayLength(json: string): string;
  /** Regular-expression match (RE2 in DuckDB, Java regex in Trino: the patterns used are valid in both). */
  matches(text: string, pattern: string): string;
  /** Integer division of non-negative integers. */
  intDiv(a: string, b: string): string;
  tryBigint(text: string): string;
  tryDouble(text: string): string;
  /** Joins a list/array of VARCHAR. */
  join(list: string, separator: string): string;
  /** All elements of a list/array satisfy `predicate` (a lambda body over `x`). */
  listAll(list: string, predicate: string): string;
  /** A hash of a line, used only to break ties between copies deterministically. */
  digest(text: string): string;
  /** String length in UTF-16 code units (JavaScript's `.length`, which the limits are written in). */
  utf16Length(text: string): string;
  /** Byte length of the UTF-8 text. */
  byteLength(text: string): string;
  /** The first and the last character (Trino has no left/right). */
  first(text: string): string;
  last(text: string): string;
  /**
   * The CSV field for `text` (NULL stays NULL): wrapped in quotes, its quotes doubled, when it holds
   * a comma, quote, CR or LF or starts or ends with a space or tab. `text` must be a column: it is
   * referenced three times.
   */
  quoteCsv(text: string): string;
  /** true when every key of the JSON object `json` is one of `keys` (exact spelling). */
  jsonKeysWithin(json: string, keys: readonly string[]): string;
}

/** A value that must be quoted (FACTS §4a, RFC 4180; a leading or trailing space too). */
const NEEDS_QUOTES = '[",\\r\\n]|^[ \\t]|[ \\t]$';


export const duckdbDialect: SqlDialect = {
  name: 'duckdb',
  shape: duckdbShapeSql,
  jsonValid: (line) => `json_valid(${line})`,
  jsonMembers: (line, paths, alias) => ({
    select: `json_extract(${line}, [${paths.map((p) => `'${p}'`).join(', ')}]) AS ${alias}`,
    at: (i) => `CAST(${alias}[${i + 1}] AS VARCHAR)`,
  }),
  jsonStringValue: (json) => `CASE WHEN left(${json}, 1) = '"' THEN json_extract_string(${json}, '$') END`,
  jsonStringArray: (json) => `CAST(json_extract_string(${json}, '$[*]') AS VARCHAR[])`,
  jsonArrayLength: (json) => `json_array_length(${json})`,
  matches: (text, pattern) => `regexp_matches(${text}, '${pattern}')`,
  intDiv: (a, b) => `(${a} // ${b})`,
  tryBigint: (text) => `TRY_CAST(${text} AS BIGINT)`,
  tryDouble: (text) => `TRY_CAST(${text} AS DOUBLE)`,
  join: (list, separator) => `array_to_string(${list}, '${separator}')`,
  listAll: (list, predicate) => `list_bool_and(list_transform(${list}, x -> ${predicate}))`,
  digest: (text) => `hash(${text})`,
  utf16Length: (text) => `(length(${text}) + length(regexp_replace(${text}, '[^\\x{10000}-\\x{10FFFF}]', '', 'g')))`,
  byteLength: (text) => `strlen(${text})`,
  first: (text) => `left(${text}, 1)`,
  last: (text) => `right(${text}, 1)`,
  quoteCsv: (text) => `CASE WHEN regexp_matches(${text}, '${NEEDS_QUOTES}') THEN '"' || replace(${text}, '"', '""') || '"' ELSE ${text} END`,
  jsonKeysWithin: (json, keys) => `list_has_all([${keys.map((k) => `'${k}'`).join(', ')}]::VARCHAR[], json_keys(${json}))`,
};

export const trinoDialect: SqlDialect = {
  name: 'trino',
  shape: trinoShapeSql,
  jsonValid: (line) => `(try(json_parse(${line})) IS NOT NULL)`,
  // Trino parses per call; Athena bills bytes scanned, not CPU, so one call per member is fine.
  jsonMembers: (line, paths, alias) => ({
    select: `${line} AS ${alias}`,
    at: (i) => `json_format(json_extract(${alias}, '${paths[i]}'))`,
  }),
  jsonStringValue: (json) => `CASE WHEN substr(${json}, 1, 1) = '"' THEN json_extract_scalar(${json}, '$') END`,
  jsonStringArray: (json) => `try_cast(json_parse(${json}) AS array(varchar))`,
  jsonArrayLength: (json) => `json_array_length(json_parse(${json}))`,
  matches: (text, pattern) => `regexp_like(${text}, '${pattern}')`,
  intDiv: (a, b) => `(CAST(${a} AS bigint) / CAST(${b} AS bigint))`,
  tryBigint: (text) => `try_cast(${text} AS bigint)`,
  tryDouble: (text) => `try_cast(${text} AS double)`,
  join: (list, separator) => `array_join(${list}, '${separator}')`,
  listAll: (list, predicate) => `all_match(${list}, x -> ${predicate})`,
  digest: (text) => `xxhash64(to_utf8(${text}))`,
  utf16Length: (text) => `(length(${text}) + length(regexp_replace(${text}, '[^\\x{10000}-\\x{10FFFF}]', '')))`,
  byteLength: (text) => `length(to_utf8(${text}))`,
  first: (text) => `substr(${text}, 1, 1)`,
  last: (text) => `substr(${text}, greatest(length(${text}), 1), 1)`,
  quoteCsv: (text) => `CASE WHEN regexp_like(${text}, '${NEEDS_QUOTES}') THEN '"' || replace(${text}, '"', '""') || '"' ELSE ${text} END`,
  jsonKeysWithin: (json, keys) =>
    `all_match(map_keys(CAST(json_parse(${json}) AS map(varchar, json))), k -> contains(ARRAY[${keys.map((k) => `'${k}'`).join(', ')}], k))`,
};
