import { FLOAT32_MAX, ID_MAX, IMPRESSION_MAX, MIN_EVENT_TIME_MS, RECOMMENDATION_ID_MAX, SOURCES } from '../../../schemas/canonical.js';
import { CATEGORICAL_MAX_LENGTH, csvHeader, type DatasetField, type DatasetSchema, type DatasetSchemas } from '../../personalize/dataset-schema.js';
import type { BulkMode } from '../../bulk-mode.js';
import type { ExportKind } from '../kinds.js';
import type { SqlDialect } from './dialect.js';
import { plainNumberSql, propertyCellSql, sqlString, unknownKeyReasonsSql } from './shape.js';

/**
 * The export's rules, once, as SQL generated from the dataset schemas: which archive lines are
 * exportable and why not, which copy of a re-sent message wins, whose interaction an anonymous
 * event is, which version of an item or user is the day's, and what each CSV column holds. The
 * same text runs on DuckDB (the export Lambda, `npm run export`, the tests) and, spelled by the
 * Trino dialect, on Athena for days too large for one machine (docs/export-at-scale.md).
 *
 * Three stages, each a SELECT over named relations, so an engine may materialise between them:
 *   staged(raw)          one row per non-blank archive line: typed fields and reject_reason;
 *   rows(staged, links)  one row per CSV record: user_id (for the deletion filter), csv_line,
 *                        the sort keys and what happened to it (backfilled, session as user);
 *   report(staged, rows) the manifest's counts: (metric, reason, n).
 * Deleted users are filtered by the engine runner after `rows` (the registry's HMAC key must not
 * appear in query text), and so is a record larger than a CSV part may be.
 */

export interface ExportSqlOptions {
  schemas: DatasetSchemas;
  dialect: SqlDialect;
  anonymous: 'skip' | 'session-as-user';
  /**
   * inline: every property value is shaped in SQL (./shape.ts), fast path or not (Athena).
   * split: SQL shapes the values already in canonical form; a record with any other value is
   * marked `needs_shaping` and the engine runner shapes it with the dataset-schema rules
   * themselves, then rewrites its cells (`cellsSql`): those records are few, and the general
   * expressions are large enough to cost seconds of planning on every run (DuckDB).
   */
  shaping?: 'inline' | 'split';
  /**
   * What the bulk import is for (shared/bulk-mode.ts). complement: an interaction PutEvents
   * accepted (in the `forwarded` relation) is in the import only when it went anonymous and the
   * export now attributes it to a user; rows keep it with `in_bulk` false, for the counts.
   * Default bulk-only: every row is in the import.
   */
  bulkMode?: BulkMode;
}

export interface ExportRelations {
  /** (object_key VARCHAR, line VARCHAR): the kind's archive lines of the day. */
  raw: string;
  /** (session_id VARCHAR, user_id VARCHAR, linked_at BIGINT): one row per login claim on a session. */
  links: string;
  /** (session_id VARCHAR, event_id VARCHAR): what PutEvents accepted (complement mode). */
  forwarded?: string;
}

export interface ExportStages {
  staged(raw: string): string;
  /** `forwarded`: what PutEvents accepted, (session_id, event_id); required in complement mode. */
  rows(staged: string, links: string, forwarded?: string): string;
  /** Anonymous sessions whose claims `rows` needs (the embedded engine looks them up first). */
  anonymousSessions(staged: string): string;
  report(staged: string, rows: string, deleted?: string): string;
  /** First rejected lines (object_key, line) for the manifest's samples. */
  rejectedSamples(staged: string, limit: number): string;
  /** The CSV record and the row-level reject reason, as SQL over the cell columns c0..cN. */
  cellsSql(): { csvLine: string; rowReject: string; cellCount: number };
}

const KIND_OF: Record<ExportKind, string> = { interactions: 'interaction', items: 'item', users: 'user' };
const SCHEMA_OF: Record<ExportKind, keyof DatasetSchemas> = { interactions: 'interactions', items: 'items', users: 'users' };

/** JSON members each kind reads from a line, in the order zod reports its issues (schema key order). */
const MEMBERS: Record<ExportKind, readonly string[]> = {
  interactions: [
    'kind', 'eventId', 'source', 'timestamp', 'sessionId', 'userId', 'eventType', 'itemId', 'eventValue',
    'recommendationId', 'impression', 'eventAttributionSource', 'properties',
  ],
  items: ['kind', 'eventId', 'source', 'timestamp', 'itemId', 'properties'],
  users: ['kind', 'eventId', 'source', 'timestamp', 'userId', 'properties'],
};

/** Column names of the staged relation (snake_case of the members). */
const COLUMN: Record<string, string> = {
  kind: 'kind', eventId: 'event_id', source: 'source', timestamp: 'ts_json', sessionId: 'session_id', userId: 'user_id',
  eventType: 'event_type', itemId: 'item_id', eventValue: 'event_value_json', recommendationId: 'recommendation_id',
  impression: 'impression_json', eventAttributionSource: 'attribution_source', properties: 'properties_json',
};

/** Characters that are not text in an id (schemas/canonical.ts NOT_TEXT): C0/C1 controls and non-characters. */
const NOT_TEXT_CLASS =
  '[\\x00-\\x1F\\x7F-\\x9F\\x{FDD0}-\\x{FDEF}\\x{FFFE}\\x{FFFF}' +
  Array.from({ length: 16 }, (_, plane) => `\\x{${(plane + 1).toString(16).toUpperCase()}FFFE}\\x{${(plane + 1).toString(16).toUpperCase()}FFFF}`).join('') +
  ']';
/** What JavaScript's trim() removes and a control-free id can still hold. */
const TRIM_CLASS = '[ \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}]';
/** eventAttributionSource: printable ASCII with a non-space (schemas/canonical.ts). */
const ATTRIBUTION_SOURCE = '^[\\x20-\\x7E]*[\\x21-\\x7E]+[\\x20-\\x7E]*$';

/** The JSON kind of a member from the first character of its JSON text. */
const isString = (d: SqlDialect, json: string) => `(${d.first(json)} = '"')`;
const isNumber = (d: SqlDialect, json: string) => `(${d.first(json)} BETWEEN '0' AND '9' OR ${d.first(json)} = '-')`;
/**
 * `expr` equals one of the SQL values: written as comparisons, not IN, which DuckDB plans as a
 * join per expression (measured: many times slower over millions of rows).
 */
const oneOf = (expr: string, values: readonly string[]) => `(${values.map((v) => `${expr} = ${v}`).join(' OR ')})`;
const noneOf = (expr: string, values: readonly string[]) => `(${values.map((v) => `${expr} <> ${v}`).join(' AND ')})`;
const PLACEHOLDERS = ["'null'", "'undefined'", "'nan'"];
const isObject = (d: SqlDialect, json: string) => `(${d.first(json)} = '{')`;
const isArray = (d: SqlDialect, json: string) => `(${d.first(json)} = '[')`;
/** zod 4's words for a received JSON value. */
const received = (d: SqlDialect, json: string) =>
  `CASE WHEN ${json} IS NULL THEN 'undefined' WHEN ${json} = 'null' THEN 'null' WHEN ${isString(d, json)} THEN 'string' ` +
  `WHEN ${isArray(d, json)} THEN 'array' WHEN ${isObject(d, json)} THEN 'object' WHEN ${oneOf(json, ["'true'", "'false'"])} THEN 'boolean' ELSE 'number' END`;

interface Check {
  when: string;
  /** SQL expression of the reason text. */
  reason: string;
}

const text = (s: string) => sqlString(s);
const schemaReason = (path: string, message: string) => text(`schema: ${path}: ${message}`);

/** More than `max` UTF-16 units; counted only when the code points could reach it (most ids are short). */
function longer(d: SqlDialect, value: string, max: number): string {
  return `(length(${value}) > ${Math.floor(max / 2)} AND ${d.utf16Length(value)} > ${max})`;
}

/** schemas/canonical.ts id(what): a non-empty string of at most 256 UTF-16 units, all text. */
function idChecks(d: SqlDialect, path: string, what: string, json: string, value: string, meaningful: boolean): Check[] {
  const checks: Check[] = [
    { when: `NOT ${isString(d, json)}`, reason: schemaReason(path, `${what} must be a string`) },
    { when: `${value} = ''`, reason: schemaReason(path, `${what} must not be empty`) },
    { when: longer(d, value, ID_MAX), reason: schemaReason(path, `${what} is longer than ${ID_MAX} characters (Personalize limit)`) },
    {
      // plain_ids: every id of the line is printable ASCII (one pattern per line), the common case.
      when: `(NOT plain_ids AND ${d.matches(value, NOT_TEXT_CLASS)})`,
      reason: schemaReason(path, `${what} contains a control character, lone surrogate or non-character: not allowed`),
    },
  ];
  if (meaningful) {
    // Blank once trimmed as JavaScript trims, or null/undefined/nan in any case: one pattern.
    checks.push({
      when:
        `(${oneOf(`lower(${value})`, PLACEHOLDERS)} OR ((NOT plain_ids OR ${d.first(value)} = ' ' OR ${d.last(value)} = ' ') AND ` +
        `${d.matches(value, `^${TRIM_CLASS}*(?i:null|undefined|nan)?${TRIM_CLASS}*$`)}))`,
      reason: schemaReason(path, `${what} is blank or the literal text null, undefined or nan`),
    });
  }
  return checks;
}

function optional(json: string, checks: Check[]): Check[] {
  return checks.map((c) => ({ when: `(${json} IS NOT NULL AND ${json} <> 'null' AND (${c.when}))`, reason: c.reason }));
}

/** A JSON null counts as absent for optional members (zod .optional() refuses null: so do we). */
function nullIsInvalid(json: string, path: string, expected: string): Check {
  return { when: `${json} = 'null'`, reason: schemaReason(path, `Invalid input: expected ${expected}, received null`) };
}

export function exportStages(kind: ExportKind, options: ExportSqlOptions): ExportStages {
  const d = options.dialect;
  const schema = options.schemas[SCHEMA_OF[kind]];
  const split = options.shaping === 'split';
  const members = MEMBERS[kind];
  const col = (member: string) => COLUMN[member]!;
  const json = (member: string) => `${col(member)}`;
  const value = (member: string) => `${col(member)}_value`;

  // Records about a person carry the processor's consent verdict (shared/consent); items do not.
  const personal = kind !== 'items';
  const stringMemberList = members.filter((m) => !['timestamp', 'eventValue', 'impression', 'properties'].includes(m));
  /** Only checked, never written: not kept past staging (every staged byte is written once and read twice). */
  const CHECK_ONLY = new Set(['kind', 'source', 'timestamp']);
  const stagedColumns = [
    'object_key', 'digest', 'timestamp_ms',
    ...members.filter((m) => !stringMemberList.includes(m) && !CHECK_ONLY.has(m)).map((m) => col(m)),
    ...stringMemberList.filter((m) => !CHECK_ONLY.has(m)).map((m) => value(m)),
    ...(kind === 'interactions' ? ['stitched'] : []),
    ...(personal ? ['consent_denied'] : []),
    'reject_reason', 'rejected_line',
  ];

  function staged(raw: string): string {
    // Marks the processor adds to the archived line: `stitched` (it attached the userId) and
    // `consentDenied` (why consent kept it from Personalize; never exported while it stands).
    const marks = [...(kind === 'interactions' ? ['stitched'] : []), ...(personal ? ['consentDenied'] : [])];
    const extract = d.jsonMembers('CASE WHEN is_object THEN line END', [...members, ...marks].map((m) => `$.${m}`), 'm');
    const markAt = (mark: string) => extract.at(members.length + marks.indexOf(mark));
    const memberColumns = [
      ...members.map((m, i) => `${extract.at(i)} AS ${col(m)}`),
      ...(kind === 'interactions' ? [`coalesce(${markAt('stitched')} = 'true', false) AS stitched`] : []),
      ...(personal ? [`${d.jsonStringValue(markAt('consentDenied'))} AS consent_denied`] : []),
    ].join(',\n      ');
    const stringMembers = members.filter((m) => !['timestamp', 'eventValue', 'impression', 'properties'].includes(m));
    const idMembers = members.filter((m) => ['eventId', 'sessionId', 'userId', 'eventType', 'itemId'].includes(m));
    const values = stringMembers.map((m) => `${d.jsonStringValue(json(m))} AS ${value(m)}`).join(',\n      ');

    const checks: Check[] = [];
    const kindValue = value('kind');
    checks.push({
      when: `${kindValue} IS NULL OR ${kindValue} <> '${KIND_OF[kind]}'`,
      reason:
        `CASE WHEN ${kindValue} IS NULL THEN ${text(`kind missing in the ${kind} archive`)} ` +
        `ELSE 'kind "' || substr(${kindValue}, 1, 20) || '" in the ${kind} archive' END`,
    });
    checks.push(...idChecks(d, 'eventId', 'eventId', json('eventId'), value('eventId'), false));
    checks.push(
      ...optional(json('source'), [
        {
          when: `(NOT ${isString(d, json('source'))} OR ${noneOf(value('source'), SOURCES.map((x) => `'${x}'`))})`,
          reason: schemaReason('source', `Invalid option: expected one of ${SOURCES.map((s) => `"${s}"`).join('|')}`),
        },
      ]),
    );
    const ts = json('timestamp');
    checks.push(
      { when: `NOT ${isNumber(d, ts)}`, reason: schemaReason('timestamp', 'timestamp must be epoch milliseconds (a number)') },
      { when: `${d.tryBigint(ts)} IS NULL OR ${d.tryDouble(ts)} <> CAST(${d.tryBigint(ts)} AS DOUBLE)`, reason: schemaReason('timestamp', 'timestamp must be whole epoch milliseconds') },
      {
        when: `${d.tryBigint(ts)} < ${MIN_EVENT_TIME_MS}`,
        reason: schemaReason('timestamp', 'timestamp is before 2000-01-01: epoch seconds sent where milliseconds are expected?'),
      },
    );
    if (kind === 'interactions') {
      checks.push(...idChecks(d, 'sessionId', 'sessionId', json('sessionId'), value('sessionId'), true));
      checks.push(nullIsInvalid(json('userId'), 'userId', 'string'));
      checks.push(...optional(json('userId'), idChecks(d, 'userId', 'userId', json('userId'), value('userId'), true)));
      checks.push(...idChecks(d, 'eventType', 'eventType', json('eventType'), value('eventType'), false));
      checks.push(nullIsInvalid(json('itemId'), 'itemId', 'string'));
      checks.push(...optional(json('itemId'), idChecks(d, 'itemId', 'itemId', json('itemId'), value('itemId'), false)));
      const ev = json('eventValue');
      checks.push(
        ...optional(ev, [
          { when: `NOT ${isNumber(d, ev)}`, reason: `'schema: eventValue: Invalid input: expected number, received ' || ${received(d, ev)}` },
          { when: `abs(${d.tryDouble(ev)}) > ${FLOAT32_MAX} OR ${d.tryDouble(ev)} IS NULL`, reason: schemaReason('eventValue', `eventValue is outside the float range Personalize stores (±${FLOAT32_MAX})`) },
        ]),
        nullIsInvalid(ev, 'eventValue', 'number'),
      );
      const rec = json('recommendationId');
      checks.push(
        nullIsInvalid(rec, 'recommendationId', 'string'),
        ...optional(rec, [
          { when: `NOT ${isString(d, rec)}`, reason: `'schema: recommendationId: Invalid input: expected string, received ' || ${received(d, rec)}` },
          { when: `${value('recommendationId')} = ''`, reason: schemaReason('recommendationId', 'recommendationId must not be empty') },
          {
            when: longer(d, value('recommendationId'), RECOMMENDATION_ID_MAX),
            reason: schemaReason('recommendationId', `recommendationId is longer than ${RECOMMENDATION_ID_MAX} characters (Personalize limit)`),
          },
        ]),
      );
      const imp = json('impression');
      const elements = d.jsonStringArray(imp);
      checks.push(
        nullIsInvalid(imp, 'impression', 'array'),
        ...optional(imp, [
          { when: `NOT ${isArray(d, imp)}`, reason: `'schema: impression: Invalid input: expected array, received ' || ${received(d, imp)}` },
          { when: `${d.jsonArrayLength(imp)} = 0`, reason: schemaReason('impression', 'impression must list at least one item id') },
          { when: `${d.jsonArrayLength(imp)} > ${IMPRESSION_MAX}`, reason: schemaReason('impression', `impression lists more than ${IMPRESSION_MAX} item ids (Personalize limit)`) },
          {
            // Non-strings read as NULL: the check below then fails on them too.
            when: `NOT coalesce(${d.listAll(elements, `x IS NOT NULL AND x <> '' AND NOT ${longer(d, 'x', ID_MAX)} AND NOT ${d.matches('x', NOT_TEXT_CLASS)}`)}, false) OR ${d.name === 'duckdb' ? `len(${elements})` : `cardinality(${elements})`} <> ${d.jsonArrayLength(imp)}`,
            reason: schemaReason('impression', `every impression item id must be a non-empty string of at most ${ID_MAX} characters, all text`),
          },
        ]),
      );
      const src = json('eventAttributionSource');
      checks.push(
        nullIsInvalid(src, 'eventAttributionSource', 'string'),
        ...optional(src, [
          { when: `NOT ${isString(d, src)}`, reason: `'schema: eventAttributionSource: Invalid input: expected string, received ' || ${received(d, src)}` },
          { when: longer(d, value('eventAttributionSource'), 1024), reason: schemaReason('eventAttributionSource', 'eventAttributionSource is longer than 1024 characters') },
          {
            when: `NOT ${d.matches(value('eventAttributionSource'), ATTRIBUTION_SOURCE)}`,
            reason: schemaReason('eventAttributionSource', 'eventAttributionSource must be printable ASCII with a non-space character'),
          },
        ]),
      );
      const props = json('properties');
      checks.push(
        nullIsInvalid(props, 'properties', 'record'),
        ...optional(props, [{ when: `NOT ${isObject(d, props)}`, reason: `'schema: properties: Invalid input: expected record, received ' || ${received(d, props)}` }]),
      );
    } else {
      const idMember = kind === 'items' ? 'itemId' : 'userId';
      checks.push(...idChecks(d, idMember, idMember, json(idMember), value(idMember), kind === 'users'));
      const props = json('properties');
      checks.push({ when: `${props} IS NULL OR NOT ${isObject(d, props)}`, reason: `'schema: properties: Invalid input: expected record, received ' || ${received(d, props)}` });
    }

    // The common line passes one short conjunction; only the others go through every check in order.
    const plainId = (m: string, meaningful: boolean) =>
      `(${value(m)} IS NOT NULL AND ${value(m)} <> '' AND length(${value(m)}) <= ${ID_MAX / 2}` +
      (meaningful ? ` AND (${noneOf(d.byteLength(value(m)), ['3', '4', '9'])} OR ${noneOf(`lower(${value(m)})`, PLACEHOLDERS)}) AND ${d.first(value(m))} <> ' ' AND ${d.last(value(m))} <> ' ')` : ')');
    const absentOr = (m: string, condition: string) => `(${json(m)} IS NULL OR ${condition})`;
    const fast = [
      'ok AND is_object AND plain_ids',
      `${value('kind')} = '${KIND_OF[kind]}'`,
      plainId('eventId', false),
      absentOr('source', oneOf(value('source'), SOURCES.map((x) => `'${x}'`))),
      `timestamp_ms >= ${MIN_EVENT_TIME_MS} AND ${d.tryDouble(json('timestamp'))} = CAST(timestamp_ms AS DOUBLE)`,
      ...(kind === 'interactions'
        ? [
            plainId('sessionId', true),
            absentOr('userId', plainId('userId', true)),
            plainId('eventType', false),
            absentOr('itemId', plainId('itemId', false)),
            absentOr('eventValue', `${isNumber(d, json('eventValue'))} AND abs(${d.tryDouble(json('eventValue'))}) <= ${FLOAT32_MAX}`),
            absentOr('recommendationId', `${value('recommendationId')} <> '' AND length(${value('recommendationId')}) <= ${RECOMMENDATION_ID_MAX / 2}`),
            `${json('impression')} IS NULL`,
            `${json('eventAttributionSource')} IS NULL`,
            absentOr('properties', isObject(d, json('properties'))),
          ]
        : [plainId(kind === 'items' ? 'itemId' : 'userId', kind === 'users'), `${json('properties')} IS NOT NULL AND ${isObject(d, json('properties'))}`]),
    ]
      .map((c) => `(${c})`)
      .join(' AND ');
    const reason =
      `CASE WHEN ${fast} THEN NULL WHEN NOT ok THEN 'invalid JSON' WHEN NOT is_object THEN 'not a JSON object'\n` +
      checks.map((c) => `      WHEN (${c.when}) THEN ${c.reason}`).join('\n') +
      `\n      END`;

    // The JSON texts are kept only where no string value replaces them.
    const kept = [
      ...members.filter((m) => !stringMembers.includes(m)).map((m) => col(m)),
      ...stringMembers.map((m) => value(m)),
      ...(kind === 'interactions' ? ['stitched'] : []),
      ...(personal ? ['consent_denied'] : []),
    ].join(', ');
    return `SELECT ${stagedColumns.filter((c) => c !== 'rejected_line').join(', ')}, CASE WHEN reject_reason IS NOT NULL THEN line END AS rejected_line
  FROM (
  SELECT object_key, line, ${d.digest('line')} AS digest, timestamp_ms,
    ${kept},
    ${reason} AS reject_reason
  FROM (
  SELECT *, CASE WHEN ok AND is_object THEN ${d.tryBigint(json('timestamp'))} END AS timestamp_ms, ${d.matches(`${idMembers.map((m) => `coalesce(${value(m)}, '')`).join(' || ')}`, '^[\\x20-\\x7E]*$')} AS plain_ids
  FROM (
    SELECT *,
      ${values}
    FROM (
      SELECT object_key, line, ok, is_object,
      ${memberColumns}
      FROM (
        SELECT object_key, line, ok, is_object, ${extract.select}
        FROM (
          SELECT object_key, line, ok, ok AND (${d.first('line')} = '{' OR ${d.matches('line', '^[ \\t\\r\\n]*[{]')}) AS is_object
          FROM (SELECT object_key, line, ${d.jsonValid('line')} AS ok
          FROM (SELECT object_key, line FROM ${raw} WHERE line IS NOT NULL AND line <> '' AND (${d.matches('line', '^[^ \\t\\r]')} OR trim(line) <> '')) lines) parsed
        ) checked
      ) extracted
    ) typed
  ) valued
  ) screened
  ) judged`;
  }

  /**
   * The fast path of property shaping. Archived properties are mostly already what the schema
   * wants: exact camelCase keys of metadata fields, plain strings, JSON.stringify's numbers. For
   * such a value the cell is the value itself; a record whose every property is such a value
   * (`props_fast`) skips the general rules (./shape.ts), which run only for the others. The
   * conditions are conservative: anything else takes the general path, never a different answer.
   */
  const metadataFields = schema.metadata;
  const propPaths = metadataFields.map((f) => `$.${f.propertyKey}`);
  const printableEdges = (v: string) => `${d.first(v)} BETWEEN '!' AND '~' AND ${d.last(v)} BETWEEN '!' AND '~'`;
  /** A JSON number literal that plainNumber would print unchanged: JSON.stringify's form without an exponent (absent counts). */
  const FAST_NUMBER = (jsonText: string) =>
    `(${jsonText} IS NULL OR ${jsonText} = 'null' OR (${d.matches(jsonText, '^-?(0|[1-9][0-9]{0,15})([.][0-9]{0,15}[1-9])?$')} AND ${jsonText} <> '-0'))`;
  function fastValue(field: DatasetField, jsonText: string): { ok: string; cell: string } {
    const str = d.jsonStringValue(jsonText);
    if (schema.type === 'Items' && field.name === 'CREATION_TIMESTAMP') {
      // Epoch milliseconds from 1973 (1e11) to 2286: whole seconds by integer division.
      return { ok: d.matches(jsonText, '^[1-9][0-9]{11,12}$'), cell: `CAST(${d.intDiv(d.tryBigint(jsonText), '1000')} AS VARCHAR)` };
    }
    switch (field.type) {
      case 'string': {
        const max = field.textual ? 3_500 : 500; // code points: half the UTF-16 limit (7,000 CJK, 1,000 categorical/plain)
        const noPipe = field.categorical ? ` AND strpos(${str}, '|') = 0` : '';
        return { ok: `(${isString(d, jsonText)} AND length(${str}) BETWEEN 1 AND ${max} AND ${printableEdges(str)}${noPipe})`, cell: str };
      }
      case 'boolean':
        return { ok: oneOf(jsonText, ["'true'", "'false'"]), cell: jsonText };
      case 'int':
        return { ok: d.matches(jsonText, '^(0|-?[1-9][0-9]{0,8})$'), cell: jsonText };
      case 'long':
        return { ok: d.matches(jsonText, '^(0|-?[1-9][0-9]{0,14})$'), cell: jsonText };
      default:
        // JSON.stringify's shortest form without an exponent is already what plainNumber prints.
        return { ok: d.matches(jsonText, '^-?(0|[1-9][0-9]{0,15})([.][0-9]{0,15}[1-9])?$') + ` AND ${jsonText} <> '-0'`, cell: jsonText };
    }
  }
  function propsFast(props: string, at: (i: number) => string): string {
    const each = metadataFields.map((f, i) => `(${at(i)} IS NULL OR ${at(i)} = 'null' OR (${fastValue(f, at(i)).ok}))`);
    return `(${props} IS NULL OR ${props} = 'null' OR (${d.jsonKeysWithin(props, metadataFields.map((f) => f.propertyKey))} AND ${each.join(' AND ')}))`;
  }

  /** CSV cell for a top-level value (already text); NULL is an empty cell. */
  const cellOf = (field: DatasetField, topLevel: Record<string, string>, props: string, at: (i: number) => string): { cell: string; dropped?: string } => {
    if (Object.hasOwn(topLevel, field.name)) return { cell: topLevel[field.name]! };
    const i = metadataFields.indexOf(field);
    const fast = fastValue(field, at(i));
    if (split) return { cell: `CASE WHEN props_fast THEN CASE WHEN ${at(i)} = 'null' THEN NULL ELSE ${fast.cell} END END` };
    const general = propertyCellSql(schema, field, props, d.shape);
    return {
      cell: `CASE WHEN props_fast THEN CASE WHEN ${at(i)} = 'null' THEN NULL ELSE ${fast.cell} END ELSE ${general.cell} END`,
      dropped: `CASE WHEN props_fast THEN NULL ELSE ${general.dropped} END`,
    };
  };

  /**
   * RFC 4180 quoting where Personalize's reader needs it: a comma, quote, CR or LF, or a leading or
   * trailing space or tab. Written so `expr` appears once: engines inline a subquery's expression
   * at every reference, and a shaped cell is a large expression.
   */
  function csvQuote(expr: string): string {
    return `coalesce(${d.quoteCsv(expr)}, '')`;
  }

  /** The CSV record and the row-level checks for the schema's columns, from the top-level cells. */
  function record(topLevel: Record<string, string>, props: string, at: (i: number) => string): { cells: string[]; dropped: string[]; rejectReason: string } {
    const cells: string[] = [];
    const dropped: string[] = [];
    const required: string[] = [];
    for (const field of schema.fields) {
      let { cell, dropped: drop } = cellOf(field, topLevel, props, at);
      if (field.name === 'IMPRESSION') {
        // FACTS §4a: the pipes count toward the 1000-character limit; the list is optional, the row is not.
        const over = longer(d, cell, CATEGORICAL_MAX_LENGTH);
        drop = `CASE WHEN ${over} THEN ${text(`IMPRESSION: over ${CATEGORICAL_MAX_LENGTH} characters with its pipes (FACTS §4a)`)} END`;
        cell = `CASE WHEN ${over} THEN NULL ELSE ${cell} END`;
      }
      cells.push(cell);
      if (drop !== undefined) dropped.push(drop);
      if (!field.nullable) {
        required.push(`WHEN coalesce(c${cells.length - 1}, '') = '' THEN ${text(`not exportable: ${field.name} is empty but required by the ${schema.type} schema`)}`);
      }
    }
    return { cells, dropped, rejectReason: required.length > 0 ? `CASE ${required.join(' ')} END` : 'CAST(NULL AS VARCHAR)' };
  }

  function finalSelect(base: string, topLevel: Record<string, string>, extra: string[], order: { ts: string; id: string }): string {
    const members = d.jsonMembers('properties_json', propPaths, 'pm');
    const { cells, dropped, rejectReason } = record(topLevel, 'properties_json', (i) => `pv${i}`);
    const cellColumns = cells.map((c, i) => `${c} AS c${i}`).join(',\n      ');
    const generalDrops = dropped.filter((x) => x.startsWith('CASE WHEN props_fast')).map((x) => x.replace(/^CASE WHEN props_fast THEN NULL ELSE /, '').replace(/ END$/, ''));
    const otherDrops = dropped.filter((x) => !x.startsWith('CASE WHEN props_fast'));
    let droppedList: string;
    if (split) {
      droppedList =
        otherDrops.length === 0 ? 'CAST(NULL AS VARCHAR[])' : `CASE WHEN ${otherDrops.map((x) => `(${x}) IS NULL`).join(' AND ')} THEN NULL ELSE list_filter([${otherDrops.join(', ')}]::VARCHAR[], x -> x IS NOT NULL) END`;
    } else {
      // Built only for a record off the fast path: list functions cost per row.
      const unknown = unknownKeyReasonsSql(schema, 'properties_json', d.shape);
      const drops = [...otherDrops, ...generalDrops.map((x) => `CASE WHEN props_fast THEN NULL ELSE ${x} END`)];
      droppedList =
        d.name === 'duckdb'
          ? `CASE WHEN props_fast${otherDrops.map((x) => ` AND (${x}) IS NULL`).join('')} THEN NULL ` +
            `ELSE list_filter(list_concat([${drops.join(', ')}]::VARCHAR[], CASE WHEN props_fast THEN CAST([] AS VARCHAR[]) ELSE ${unknown} END), x -> x IS NOT NULL) END`
          : `CASE WHEN props_fast${otherDrops.map((x) => ` AND (${x}) IS NULL`).join('')} THEN NULL ` +
            `ELSE filter(concat(ARRAY[${drops.map((x) => `CAST(${x} AS varchar)`).join(', ')}], CASE WHEN props_fast THEN CAST(ARRAY[] AS array(varchar)) ELSE ${unknown} END), x -> x IS NOT NULL) END`;
    }
    const line = csvLineOfCells();
    const needsShaping = `NOT props_fast${kind === 'interactions' ? ` OR NOT ${FAST_NUMBER('event_value_json')}` : ''}`;
    // The cells are kept only where the engine rewrites the record.
    const shapingColumns = split
      ? `, needs_shaping, CASE WHEN needs_shaping THEN properties_json END AS shaping_properties` +
        (kind === 'interactions' ? `, CASE WHEN needs_shaping THEN event_value_json END AS shaping_event_value` : '') +
        `, ${cells.map((_, i) => `CASE WHEN needs_shaping THEN c${i} END AS c${i}`).join(', ')}`
      : '';
    return `SELECT resolved_user AS user_id, ${order.ts} AS ord_ts, ${order.id} AS ord_id,
    ${line} AS csv_line,
    ${rejectReason} AS row_reject,
    dropped_reasons${extra.length > 0 ? `, ${extra.join(', ')}` : ''}${shapingColumns}
  FROM (
    SELECT *, ${droppedList} AS dropped_reasons,${split ? ` ${needsShaping} AS needs_shaping,` : ''}
      ${cellColumns}
    FROM (
      SELECT *, ${propsFast('properties_json', (i) => `pv${i}`)} AS props_fast
      FROM (
        SELECT *, ${propPaths.map((_, i) => `${members.at(i)} AS pv${i}`).join(', ') || 'NULL AS pv_none'}
        FROM (SELECT *, ${members.select} FROM (${base}) shaped_base) shaped_members
      ) shaped_values
    ) shaped_input
  ) shaped`;
  }

  /** The CSV record from the cells c0..cN: numbers and booleans never need quotes. */
  function csvLineOfCells(): string {
    const numeric = new Set(['TIMESTAMP', 'EVENT_VALUE', 'CREATION_TIMESTAMP']);
    return schema.fields
      .map((field, i) => (numeric.has(field.name) || field.type !== 'string' ? `coalesce(c${i}, '')` : csvQuote(`c${i}`)))
      .join(` || ',' || `);
  }

  function cellsSql(): { csvLine: string; rowReject: string; cellCount: number } {
    const required = schema.fields.flatMap((field, i) =>
      field.nullable ? [] : [`WHEN coalesce(c${i}, '') = '' THEN ${text(`not exportable: ${field.name} is empty but required by the ${schema.type} schema`)}`],
    );
    return { csvLine: csvLineOfCells(), rowReject: required.length > 0 ? `CASE ${required.join(' ')} END` : 'CAST(NULL AS VARCHAR)', cellCount: schema.fields.length };
  }

  function rowsInteractions(staged: string, links: string, forwarded: string | undefined): string {
    const top: Record<string, string> = {
      USER_ID: 'resolved_user',
      ITEM_ID: value('itemId'),
      EVENT_TYPE: value('eventType'),
      EVENT_VALUE: `CASE WHEN event_value_json IS NULL OR event_value_json = 'null' THEN NULL WHEN ${FAST_NUMBER('event_value_json')} THEN event_value_json${split ? '' : ` ELSE ${plainNumberSql('event_value_json', d.shape)}`} END`,
      TIMESTAMP: `CAST(${d.intDiv('timestamp_ms', '1000')} AS VARCHAR)`,
      IMPRESSION: `CASE WHEN impression_json IS NOT NULL AND impression_json <> 'null' THEN ${d.join(d.jsonStringArray('impression_json'), '|')} END`,
      RECOMMENDATION_ID: value('recommendationId'),
      EVENT_ATTRIBUTION_SOURCE: value('eventAttributionSource'),
    };
    const sessionAsUser = options.anonymous === 'session-as-user';
    // Dedupe over the whole day by (session, eventId), the processor's dedupeKey; the winner is the
    // copy in the first object (then the smaller line digest): identical copies are interchangeable.
    const unique = dedupe(staged, [value('sessionId'), value('eventId')]);
    // shared/identity/attribution.ts userAt: the next login at or after the event, else the latest
    // before it (ties on the login time: the smaller user id, so re-runs agree).
    // Read from the staged lines, not the deduped ones: a copy's own time decides, as it would for the winner.
    const attributed = `SELECT e.${value('sessionId')} AS a_session, e.${value('eventId')} AS a_event, e.timestamp_ms AS a_time,
        ${minBy('c.user_id', 'c.linked_at', 'c.linked_at >= e.timestamp_ms', 'min')} AS next_user,
        ${minBy('c.user_id', 'c.linked_at', 'c.linked_at < e.timestamp_ms', 'max')} AS previous_user
      FROM ${staged} e JOIN ${links} c ON c.session_id = e.${value('sessionId')}
      WHERE e.reject_reason IS NULL AND e.${value('userId')} IS NULL
      GROUP BY e.${value('sessionId')}, e.${value('eventId')}, e.timestamp_ms`;
    const complement = options.bulkMode === 'complement';
    if (complement && forwarded === undefined) throw new Error('complement mode needs the forwarded relation (what PutEvents accepted)');
    const backfilled = `(u.${value('userId')} IS NULL AND coalesce(a.next_user, a.previous_user) IS NOT NULL)`;
    // complement: Personalize holds what PutEvents accepted; of that, only an anonymous event now
    // attributed to a user is imported (Personalize never merges the session: put-session.ts).
    const forwardedJoin = complement
      ? `LEFT JOIN (SELECT DISTINCT session_id AS f_session, event_id AS f_event FROM ${forwarded}) f ON f.f_session = u.${value('sessionId')} AND f.f_event = u.${value('eventId')}`
      : '';
    const resolved = `SELECT u.*,
        coalesce(u.${value('userId')}, a.next_user, a.previous_user${sessionAsUser ? `, u.${value('sessionId')}` : ''}) AS resolved_user,
        ${backfilled} AS backfilled,
        ${sessionAsUser ? `(u.${value('userId')} IS NULL AND coalesce(a.next_user, a.previous_user) IS NULL)` : 'false'} AS session_as_user,
        CASE WHEN u.${value('userId')} IS NOT NULL THEN (CASE WHEN u.stitched THEN 'stitched' ELSE 'own' END)
          WHEN ${backfilled} THEN 'backfilled' ELSE 'session-as-user' END AS user_source,
        ${complement ? `(f.f_event IS NULL OR ${backfilled})` : 'true'} AS in_bulk,
        ${complement ? 'f.f_event IS NOT NULL' : 'false'} AS streamed
      FROM (${unique}) u LEFT JOIN (${attributed}) a ON a.a_session = u.${value('sessionId')} AND a.a_event = u.${value('eventId')} AND a.a_time = u.timestamp_ms
      ${forwardedJoin}`;
    // The event's type, item and value ride along for the readiness report (../readiness.ts).
    const extras = ['backfilled', 'session_as_user', 'user_source', 'in_bulk', 'streamed', value('eventType'), value('itemId'), 'event_value_json'];
    return finalSelect(`SELECT * FROM (${resolved}) r WHERE resolved_user IS NOT NULL AND consent_denied IS NULL`, top, extras, {
      ts: 'timestamp_ms',
      id: `${value('sessionId')} || chr(0) || ${value('eventId')}`,
    });
  }

  /** min_by / max_by of `v` by login time among claims where `condition`; equal times go to the smaller user id, so re-runs agree. */
  function minBy(v: string, key: string, condition: string, which: 'min' | 'max'): string {
    // The latest before is the smallest of (-time, id): one aggregate spelled the same in both engines.
    const orderKey = which === 'min' ? `ROW(${key}, ${v})` : `ROW(-${key}, ${v})`;
    return `min_by(${v}, ${orderKey}) FILTER (WHERE ${condition})`;
  }

  /**
   * The valid lines, one per key, the winner being the copy in the first object (then the smaller
   * line hash): copies are re-sends of one message. Keys are rarely repeated, so only the repeated
   * ones are ranked; the rest pass an anti-join.
   */
  function dedupe(staged: string, keys: readonly string[]): string {
    const columns = stagedColumns.map((c) => `s.${c}`).join(', ');
    const repeated = `(SELECT ${keys.map((k, i) => `${k} AS k${i}`).join(', ')} FROM ${staged} WHERE reject_reason IS NULL GROUP BY ${keys.join(', ')} HAVING count(*) > 1)`;
    const match = keys.map((k, i) => `r.k${i} = s.${k}`).join(' AND ');
    return `SELECT ${columns} FROM ${staged} s LEFT JOIN ${repeated} r ON ${match} WHERE s.reject_reason IS NULL AND r.k0 IS NULL
    UNION ALL
    SELECT ${stagedColumns.join(', ')} FROM (
      SELECT ${columns}, row_number() OVER (PARTITION BY ${keys.map((k) => `s.${k}`).join(', ')} ORDER BY s.object_key, s.digest) AS copy_no
      FROM ${staged} s JOIN ${repeated} r ON ${match} WHERE s.reject_reason IS NULL
    ) ranked WHERE copy_no = 1`;
  }

  function rowsLatest(staged: string): string {
    const idMember = kind === 'items' ? 'itemId' : 'userId';
    const id = value(idMember);
    // Dedupe by (id, eventId) first (duplicates), then the latest version per id: later event time,
    // on a tie the larger eventId (rows.ts isNewerVersion).
    const latest = `SELECT * FROM (
      SELECT *, row_number() OVER (PARTITION BY ${id} ORDER BY timestamp_ms DESC, ${value('eventId')} DESC) AS version_no
      FROM (${dedupe(staged, [id, value('eventId')])}) unique_versions
    ) versions WHERE version_no = 1${kind === 'users' ? ' AND consent_denied IS NULL' : ''}`;
    const top: Record<string, string> = kind === 'items' ? { ITEM_ID: id } : { USER_ID: id };
    // Items and users are records by id: a bulk copy replaces, never doubles, a PUT one (FACTS §4d).
    const base = `SELECT *, ${kind === 'users' ? id : 'CAST(NULL AS VARCHAR)'} AS resolved_user, true AS in_bulk FROM (${latest}) l`;
    return finalSelect(base, top, ['in_bulk'], { ts: 'CAST(0 AS BIGINT)', id });
  }

  function rows(staged: string, links: string, forwarded?: string): string {
    return kind === 'interactions' ? rowsInteractions(staged, links, forwarded) : rowsLatest(staged);
  }

  function anonymousSessions(staged: string): string {
    return `SELECT DISTINCT ${value('sessionId')} AS session_id FROM ${staged} WHERE reject_reason IS NULL AND ${value('userId')} IS NULL`;
  }

  /**
   * `deleted`: the users the registry holds, when the engine knows them (DuckDB): the records of
   * deleted users then count as neither backfilled nor dropping properties, as they are not written.
   */
  function report(staged: string, rowsRelation: string, deleted?: string): string {
    const idMember = kind === 'interactions' ? 'sessionId' : kind === 'items' ? 'itemId' : 'userId';
    const kept = deleted === undefined ? 'row_reject IS NULL' : `row_reject IS NULL AND (user_id IS NULL OR user_id NOT IN (SELECT user_id FROM ${deleted}))`;
    const unnested =
      d.name === 'duckdb'
        ? `SELECT unnest(dropped_reasons) AS reason FROM ${rowsRelation} WHERE ${kept}`
        : `SELECT reason FROM ${rowsRelation} CROSS JOIN UNNEST(dropped_reasons) AS t(reason) WHERE ${kept}`;
    const parts = [
      `SELECT 'read' AS metric, CAST(NULL AS VARCHAR) AS reason, count(*) AS n FROM ${staged}`,
      ...(personal
        ? [
            // Unique records the processor kept from Personalize for want of consent (shared/consent).
            `SELECT 'consentDenied', consent_denied, count(DISTINCT ${value(idMember)} || chr(0) || ${value('eventId')}) FROM ${staged} ` +
              `WHERE reject_reason IS NULL AND consent_denied IS NOT NULL GROUP BY consent_denied`,
          ]
        : []),
      `SELECT 'rejected', reject_reason, count(*) FROM ${staged} WHERE reject_reason IS NOT NULL GROUP BY reject_reason`,
      `SELECT 'duplicates', CAST(NULL AS VARCHAR), count(*) - count(DISTINCT ${value(idMember)} || chr(0) || ${value('eventId')}) FROM ${staged} WHERE reject_reason IS NULL`,
      `SELECT 'rowRejected', row_reject, count(*) FROM ${rowsRelation} WHERE row_reject IS NOT NULL GROUP BY row_reject`,
      `SELECT 'propertiesDropped', reason, count(*) FROM (${unnested}) dropped GROUP BY reason`,
      `SELECT 'rows', CAST(NULL AS VARCHAR), count(*) FROM ${rowsRelation} WHERE row_reject IS NULL AND in_bulk`,
    ];
    if (kind === 'interactions') {
      parts.push(
        `SELECT 'backfilled', CAST(NULL AS VARCHAR), count(*) FROM ${rowsRelation} WHERE ${kept} AND backfilled`,
        `SELECT 'sessionAsUser', CAST(NULL AS VARCHAR), count(*) FROM ${rowsRelation} WHERE ${kept} AND session_as_user`,
        // Left out of the import because PutEvents accepted them (complement mode).
        `SELECT 'streamed', CAST(NULL AS VARCHAR), count(*) FROM ${rowsRelation} WHERE ${kept} AND NOT in_bulk`,
        // Unique valid events that found no user (rows() leaves them out), consent aside.
        `SELECT 'anonymousWithoutLink', CAST(NULL AS VARCHAR), ` +
          `(SELECT count(DISTINCT ${value('sessionId')} || chr(0) || ${value('eventId')}) FROM ${staged} WHERE reject_reason IS NULL AND consent_denied IS NULL) - ` +
          `(SELECT count(*) FROM ${rowsRelation})`,
      );
    } else {
      parts.push(
        `SELECT 'superseded', CAST(NULL AS VARCHAR), count(DISTINCT ${value(idMember)} || chr(0) || ${value('eventId')}) - count(DISTINCT ${value(idMember)}) FROM ${staged} WHERE reject_reason IS NULL`,
      );
    }
    return parts.join('\nUNION ALL\n');
  }

  function rejectedSamples(staged: string, limit: number): string {
    return `SELECT object_key, rejected_line, reject_reason FROM ${staged} WHERE reject_reason IS NOT NULL ORDER BY object_key, digest LIMIT ${limit}`;
  }

  return { staged, rows, anonymousSessions, report, rejectedSamples, cellsSql };
}

/** The header row: field names in schema order, unquoted (FACTS §4a). */
export function csvHeaderLine(schema: DatasetSchema): string {
  return csvHeader(schema).join(',');
}

/**
 * The whole export of a kind as two statements over the engine's relations (Athena): the rows in
 * their deterministic order, and the report. Each repeats the stages as common table expressions.
 */
export function exportSql(kind: ExportKind, options: ExportSqlOptions & { relations: ExportRelations }): { rows: string; report: string } {
  const stages = exportStages(kind, options);
  const { forwarded } = options.relations;
  const ctes = `WITH staged AS (\n${stages.staged(`(${options.relations.raw})`)}\n),\nexport_rows AS (\n${stages.rows('staged', `(${options.relations.links})`, forwarded === undefined ? undefined : `(${forwarded})`)}\n)`;
  return {
    // ord_ts, ord_id: an engine that writes several unordered files (UNLOAD) merges them back into this order.
    rows: `${ctes}\nSELECT user_id, csv_line, ord_ts, ord_id FROM export_rows WHERE row_reject IS NULL AND in_bulk ORDER BY ord_ts, ord_id`,
    report: `${ctes}\n${stages.report('staged', 'export_rows')}`,
  };
}
