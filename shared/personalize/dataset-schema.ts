import interactionsAvro from '../../schemas/personalize/interactions.json' with { type: 'json' };
import itemsAvro from '../../schemas/personalize/items.json' with { type: 'json' };
import usersAvro from '../../schemas/personalize/users.json' with { type: 'json' };

/**
 * Personalize dataset schemas (Avro JSON) as the single source of truth for what is sent:
 * PutEvents/PutItems/PutUsers `properties` and the bulk CSV columns are all derived from them
 * (DESIGN "Contracts"). Parsing validates a schema the way Personalize would (FACTS §4b), so a bad
 * schema fails at start-up with the field named; shaping never throws, it drops and explains.
 */

export type DatasetType = 'Interactions' | 'Items' | 'Users';
export type FieldType = 'string' | 'int' | 'long' | 'float' | 'double' | 'boolean';

export interface DatasetField {
  /** Avro field name, also the CSV column header (UPPER_SNAKE by convention). */
  name: string;
  type: FieldType;
  nullable: boolean;
  categorical: boolean;
  textual: boolean;
  /** A required or reserved field of this dataset type: its name and type are fixed by Personalize. */
  reserved: boolean;
  /** camelCase key used in the API's `properties` JSON: CATEGORY_L1 -> categoryL1 (FACTS §2). */
  propertyKey: string;
}

export interface DatasetSchema {
  type: DatasetType;
  /** In schema order, which is also the CSV column order (FACTS §4a). */
  fields: DatasetField[];
  /** The fields sent as API `properties` (not the request's own top-level fields). */
  metadata: DatasetField[];
}

export interface DroppedProperty {
  /** The input key as the caller spelled it. */
  key: string;
  /** Self-contained, starts with the key; short previews of values only. For the DLQ and reports on the data. */
  reason: string;
  /**
   * The same reason built from our own parts only: the dataset, the schema field and the rule, never
   * the input key nor its value (a key can be an e-mail address). Safe for log lines and metric keys,
   * and few: one per field and rule.
   */
  summary: string;
}

export interface ShapedProperties {
  /** camelCase keys of metadata fields only, in schema order. */
  properties: Record<string, string | number | boolean>;
  dropped: DroppedProperty[];
  /** Non-nullable metadata fields with no usable value: the caller decides whether to send anyway. */
  missing: string[];
}

export interface ShapeOptions {
  /** Maximum length of the `properties` JSON string; defaults to the API's limit for the dataset type. */
  maxJsonLength?: number;
  /**
   * The input is an earlier result's `properties` (a stored profile): values are already in
   * Personalize's units, so an integer CREATION_TIMESTAMP is taken as epoch seconds.
   */
  shaped?: boolean;
}

export const PERSONALIZE_NAMESPACE = 'com.amazonaws.personalize.schema';
/** Categorical values, pipes included (FACTS §1c, §4a, §4c). */
export const CATEGORICAL_MAX_LENGTH = 1000;
/** Textual values (FACTS §4c); Chinese and Japanese text has the lower limit. */
export const TEXTUAL_MAX_LENGTH = 20_000;
export const TEXTUAL_MAX_LENGTH_CJK = 7_000;
/**
 * Plain (neither categorical nor textual) strings have no documented limit; Personalize ignores them
 * in training (FACTS §4b), so we cap them like categorical values rather than risk a rejected call.
 */
export const PLAIN_STRING_MAX_LENGTH = CATEGORICAL_MAX_LENGTH;
/** `properties` JSON length: PutEvents 1024 (FACTS §1b), PutItems 32,000, PutUsers 24,000 (FACTS §2). */
export const PROPERTIES_MAX_LENGTH: Readonly<Record<DatasetType, number>> = {
  Interactions: 1024,
  Items: 32_000,
  Users: 24_000,
};
/** Metadata fields per dataset: Interactions 5 excluding reserved (FACTS §1c), Users 25, Items 100 (FACTS §4c). */
export const METADATA_MAX: Readonly<Record<DatasetType, number>> = { Interactions: 5, Items: 100, Users: 25 };

const API_OF: Readonly<Record<DatasetType, string>> = {
  Interactions: 'PutEvents, FACTS §1b',
  Items: 'PutItems, FACTS §2',
  Users: 'PutUsers, FACTS §2',
};

const FIELD_TYPES: readonly FieldType[] = ['float', 'double', 'int', 'long', 'string', 'boolean'];
const TYPE_LIST = `${FIELD_TYPES.join(', ')} (or a ["null", T] union)`;

interface ReservedRule {
  type: FieldType;
  required: boolean;
  /** May be declared as ["null", T]. */
  nullable: boolean;
  /** Sent as a field of the API request itself, never inside `properties`. */
  topLevel: boolean;
}

const req = (type: FieldType): ReservedRule => ({ type, required: true, nullable: false, topLevel: true });
const opt = (type: FieldType, nullable: boolean): ReservedRule => ({ type, required: false, nullable, topLevel: true });

/** Required fields and reserved keywords per dataset type (FACTS §4b table). */
const RESERVED: Readonly<Record<DatasetType, Readonly<Record<string, ReservedRule>>>> = {
  Interactions: {
    USER_ID: req('string'),
    ITEM_ID: req('string'),
    TIMESTAMP: req('long'),
    EVENT_TYPE: opt('string', false),
    EVENT_VALUE: opt('float', true),
    IMPRESSION: opt('string', true),
    RECOMMENDATION_ID: opt('string', true),
    EVENT_ATTRIBUTION_SOURCE: opt('string', true),
  },
  Items: {
    ITEM_ID: req('string'),
    // Reserved but sent as the `creationTimestamp` property (FACTS §2).
    CREATION_TIMESTAMP: { type: 'long', required: false, nullable: false, topLevel: false },
  },
  Users: { USER_ID: req('string') },
};

/** Keys PutEvents refuses inside `properties`, case-insensitively (FACTS §1b). */
const PUT_EVENTS_FORBIDDEN_KEYS = ['userid', 'sessionid', 'eventtype', 'timestamp', 'recommendationid', 'impression'];

/** Avro names; Personalize also wants them alphanumeric (FACTS §4b). */
const FIELD_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;

/** Names that Personalize treats as the same: GENRES_FIELD_1 and GENRESFIELD1 conflict (FACTS §4b). */
const conflictKey = (name: string): string => name.replace(/[^A-Za-z0-9]/g, '').toLowerCase();

/** How input property keys are matched: camelCase, UPPER_SNAKE and snake_case all meet here. */
const inputKey = (key: string): string => key.replace(/_/g, '').toLowerCase();

/** CATEGORY_L1 -> categoryL1, NUMBER_OF_RATINGS -> numberOfRatings; mixed-case segments are kept. */
export function toPropertyKey(name: string): string {
  const parts = name.split('_').filter((p) => p !== '');
  return parts
    .map((part, i) => {
      const word = part === part.toUpperCase() ? part.toLowerCase() : part;
      return i === 0 ? word.charAt(0).toLowerCase() + word.slice(1) : word.charAt(0).toUpperCase() + word.slice(1);
    })
    .join('');
}

export class DatasetSchemaError extends Error {
  constructor(
    readonly schemaLabel: string,
    readonly issues: readonly string[],
  ) {
    super(`${schemaLabel}: ${issues.join('; ')}`);
    this.name = 'DatasetSchemaError';
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const quote = (value: unknown): string => JSON.stringify(value) ?? String(value);

type ParsedType = { base: FieldType; nullable: boolean } | { problem: string };

function parseFieldType(type: unknown): ParsedType {
  const isFieldType = (t: unknown): t is FieldType => typeof t === 'string' && (FIELD_TYPES as readonly string[]).includes(t);
  if (isFieldType(type)) return { base: type, nullable: false };
  if (type === 'null') return { problem: `type 'null' alone is not allowed; use ["null", T] with T one of ${FIELD_TYPES.join(', ')}` };
  if (typeof type === 'string') return { problem: `type '${type}' is not one of ${TYPE_LIST}` };
  if (Array.isArray(type)) {
    const members = type as unknown[];
    if (members.some(isRecord)) return { problem: 'nested types are not allowed: Personalize schemas are flat (FACTS §4b)' };
    const others = members.filter((t) => t !== 'null');
    const [only] = others;
    if (members.length === 2 && others.length === 1 && isFieldType(only)) return { base: only, nullable: true };
    return { problem: `union ${quote(members)} must be ["null", T] with T one of ${FIELD_TYPES.join(', ')}` };
  }
  if (isRecord(type)) {
    const kind = type.type;
    if (kind === 'record') return { problem: 'nested record is not allowed: Personalize schemas are flat (FACTS §4b)' };
    if (kind === 'array' || kind === 'map') {
      return {
        problem: `${kind} is not allowed: Personalize schemas are flat (FACTS §4b); send several categorical values as one string separated by "|"`,
      };
    }
    const named = typeof type.logicalType === 'string' ? type.logicalType : kind;
    return { problem: `type ${quote(named)} is not allowed: write one of ${TYPE_LIST} as a plain type name` };
  }
  return { problem: `type must be one of ${TYPE_LIST}, got ${quote(type)}` };
}

function parseField(raw: unknown, index: number, type: DatasetType, issues: string[]): DatasetField | undefined {
  if (!isRecord(raw)) {
    issues.push(`field #${index + 1}: must be an object with "name" and "type"`);
    return undefined;
  }
  const name = raw.name;
  if (typeof name !== 'string' || !FIELD_NAME.test(name)) {
    issues.push(`field #${index + 1}: name ${quote(name)} must be letters, digits and underscores, starting with a letter`);
    return undefined;
  }
  const at = `field ${name}`;
  const before = issues.length;
  const parsed = parseFieldType(raw.type);
  if ('problem' in parsed) {
    issues.push(`${at}: ${parsed.problem}`);
    return undefined;
  }
  for (const flag of ['categorical', 'textual'] as const) {
    if (raw[flag] !== undefined && typeof raw[flag] !== 'boolean') issues.push(`${at}: "${flag}" must be true or false`);
  }
  const categorical = raw.categorical === true;
  const textual = raw.textual === true;
  if (categorical && parsed.base !== 'string') issues.push(`${at}: categorical is only allowed on string fields, not ${parsed.base}`);
  if (textual && parsed.base !== 'string') issues.push(`${at}: textual is only allowed on string fields, not ${parsed.base}`);
  if (categorical && textual) issues.push(`${at}: a field cannot be both categorical and textual`);
  if (textual && type !== 'Items') issues.push(`${at}: textual fields are only allowed in the Items dataset (FACTS §4b)`);

  const rule = RESERVED[type][name];
  if (rule) {
    if (parsed.base !== rule.type) issues.push(`${at}: reserved field must have type '${rule.type}', got '${parsed.base}'`);
    if (parsed.nullable && !rule.nullable) {
      issues.push(`${at}: ${rule.required ? 'required' : 'reserved'} field must not be nullable`);
    }
    if (categorical) issues.push(`${at}: reserved field must not be categorical (FACTS §4b)`);
    if (textual) issues.push(`${at}: reserved field must not be textual`);
  } else {
    const lookalike = Object.keys(RESERVED[type]).find((r) => conflictKey(r) === conflictKey(name));
    if (lookalike) issues.push(`${at}: looks like the reserved field ${lookalike}; spell it exactly so`);
  }
  if (issues.length > before) return undefined;
  return {
    name,
    type: parsed.base,
    nullable: parsed.nullable,
    categorical,
    textual,
    reserved: rule !== undefined,
    propertyKey: toPropertyKey(name),
  };
}

/**
 * Validates an Avro schema for a dataset type against FACTS §4b/§4c and returns its fields.
 * Collects every problem it finds and throws one DatasetSchemaError naming schema and fields.
 * A JSON string is accepted too (e.g. from an environment variable).
 */
export function parseDatasetSchema(avro: unknown, type: DatasetType): DatasetSchema {
  const label = `${type.toLowerCase()} schema`;
  let doc = avro;
  if (typeof doc === 'string') {
    try {
      doc = JSON.parse(doc) as unknown;
    } catch (error) {
      throw new DatasetSchemaError(label, [`not valid JSON (${(error as Error).message})`]);
    }
  }
  if (!isRecord(doc)) throw new DatasetSchemaError(label, ['must be a JSON object (an Avro record)']);

  const issues: string[] = [];
  if (doc.type !== 'record') issues.push(`type must be "record", got ${quote(doc.type)}`);
  if (doc.namespace !== PERSONALIZE_NAMESPACE) {
    issues.push(`namespace must be "${PERSONALIZE_NAMESPACE}", got ${quote(doc.namespace)}`);
  }
  if (doc.name !== type) issues.push(`name must be "${type}" for the ${type} dataset, got ${quote(doc.name)}`);
  if (!Array.isArray(doc.fields) || doc.fields.length === 0) {
    issues.push('fields must be a non-empty array');
    throw new DatasetSchemaError(label, issues);
  }

  const fields: DatasetField[] = [];
  const byConflictKey = new Map<string, string>();
  (doc.fields as unknown[]).forEach((raw, index) => {
    const field = parseField(raw, index, type, issues);
    if (!field) return;
    const seen = byConflictKey.get(conflictKey(field.name));
    if (seen !== undefined) {
      issues.push(
        seen === field.name
          ? `field ${field.name}: duplicate field name`
          : `field ${field.name}: conflicts with ${seen} (names must differ in more than case and non-alphanumeric characters, FACTS §4b)`,
      );
      return;
    }
    byConflictKey.set(conflictKey(field.name), field.name);
    fields.push(field);
  });

  // Presence checks look at declared names, so a broken declaration is reported once, not twice.
  const declared = (doc.fields as unknown[]).flatMap((raw) => (isRecord(raw) && typeof raw.name === 'string' ? [raw.name] : []));
  for (const [name, rule] of Object.entries(RESERVED[type])) {
    if (rule.required && !declared.includes(name)) issues.push(`missing required field ${name} (${rule.type})`);
  }

  const textual = fields.filter((f) => f.textual);
  for (const extra of textual.slice(1)) {
    issues.push(`field ${extra.name}: only one textual field is allowed (${textual[0]?.name} is already textual)`);
  }

  const metadata = fields.filter((f) => !RESERVED[type][f.name]?.topLevel);
  if (type !== 'Interactions' && !declared.some((name) => !RESERVED[type][name]?.topLevel)) {
    const id = type === 'Items' ? 'ITEM_ID' : 'USER_ID';
    issues.push(`needs at least one metadata field besides ${id} (FACTS §4b)`);
  }
  // Interactions count excludes reserved fields (FACTS §1c); for Items/Users we count every metadata field.
  const counted = type === 'Interactions' ? metadata.filter((f) => !f.reserved) : metadata;
  const limit = METADATA_MAX[type];
  for (const over of counted.slice(limit)) {
    issues.push(`field ${over.name}: too many metadata fields (${counted.length}); at most ${limit} are allowed in ${type} (FACTS §1c, §4c)`);
  }
  if (type === 'Interactions') {
    for (const f of metadata) {
      if (PUT_EVENTS_FORBIDDEN_KEYS.includes(f.propertyKey.toLowerCase())) {
        issues.push(`field ${f.name}: its properties key '${f.propertyKey}' is not allowed in PutEvents properties (FACTS §1b)`);
      }
    }
  }

  if (issues.length > 0) throw new DatasetSchemaError(label, issues);
  return { type, fields, metadata };
}

// ---------------------------------------------------------------------------------------------
// Shaping values

const NUMERIC = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
/** Date only (UTC), or date-time with an explicit zone: a zoneless time would depend on the host. */
const ISO_8601 = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))?$/;
const CJK = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}]/u;
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const FLOAT32_MAX = 3.4028234663852886e38;
/**
 * Accepted range of millisecond inputs for CREATION_TIMESTAMP. Below 1e11 ms (March 1973) a value
 * is almost surely epoch seconds; dividing it again would silently date the item to January 1970.
 * Above year 3000 it is likely microseconds.
 */
const MS_MIN = 1e11;
const MS_MAX = Date.UTC(3000, 0, 1);

type Scalar = string | number | boolean;
/** A problem: `problem` for the record (key, value preview), `why` the rule alone (for the summary). */
type Problem = { problem: string; why: string };
type Coerced = { value: Scalar } | Problem | { absent: true };

const PREVIEW = 32;
/** A short, typed preview of a rejected value: enough to debug, too short to leak much. */
function describe(value: unknown): string {
  if (typeof value === 'string') {
    const shown = value.length > PREVIEW ? `${value.slice(0, PREVIEW)}…` : value;
    return `string ${JSON.stringify(shown)}${value.length > PREVIEW ? ` (${value.length} characters)` : ''}`;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : typeof value;
}

function fieldLabel(field: DatasetField): string {
  const kind = field.categorical ? ', categorical' : field.textual ? ', textual' : '';
  return `${field.name} (${field.type}${kind})`;
}

/**
 * A finite number as a plain decimal, never in exponent form (1e21 -> "1000000000000000000000",
 * 1.5e-7 -> "0.00000015"), so CSV and categorical values read the same everywhere.
 */
export function plainNumber(n: number): string {
  if (!Number.isFinite(n)) throw new RangeError(`${n} is not a finite number`);
  if (Object.is(n, -0)) return '0';
  const text = String(n);
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(text);
  if (!m) return text;
  const [, sign = '', lead = '', frac = '', exp = '0'] = m;
  const digits = lead + frac;
  const point = 1 + Number(exp);
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return sign + digits + '0'.repeat(point - digits.length);
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return plainNumber(value);
  if (typeof value === 'boolean') return String(value);
  return undefined;
}

/**
 * Categorical values: one string or an array; each piece is split on "|", trimmed, and empty pieces
 * and repeats removed. An element containing "|" therefore becomes several categories, which is
 * how Personalize would read it anyway (FACTS §2, §4a) — we only make it explicit and tidy.
 */
function coerceCategorical(field: DatasetField, key: string, raw: unknown): Coerced {
  // The common case, one plain string: the split/dedupe/join below would only trim it.
  if (typeof raw === 'string' && !raw.includes('|')) {
    const text = raw.trim();
    if (text === '') return { absent: true };
    if (text.length <= CATEGORICAL_MAX_LENGTH) return { value: text };
  }
  const pieces: string[] = [];
  for (const element of Array.isArray(raw) ? (raw as unknown[]) : [raw]) {
    if (element === null || element === undefined) continue;
    const text = scalarText(element);
    if (text === undefined) {
      return {
        problem: `${key}: expected a string, number, boolean or an array of them for ${fieldLabel(field)}, got ${Array.isArray(raw) ? 'an array holding ' : ''}${describe(element)}`,
        why: 'expected a string, number, boolean or an array of them',
      };
    }
    pieces.push(...text.split('|'));
  }
  const categories = [...new Set(pieces.map((p) => p.trim()).filter((p) => p !== ''))];
  if (categories.length === 0) return { absent: true };
  const joined = categories.join('|');
  if (joined.length > CATEGORICAL_MAX_LENGTH) {
    return {
      problem: `${key}: ${joined.length} characters for ${fieldLabel(field)}, over the ${CATEGORICAL_MAX_LENGTH}-character limit for categorical values (FACTS §1c, §4c)`,
      why: `over the ${CATEGORICAL_MAX_LENGTH}-character limit for categorical values`,
    };
  }
  return { value: joined };
}

function coerceString(field: DatasetField, key: string, raw: unknown): Coerced {
  if (field.categorical) return coerceCategorical(field, key, raw);
  const text = scalarText(raw);
  if (text === undefined) return { problem: `${key}: expected a string for ${fieldLabel(field)}, got ${describe(raw)}`, why: 'expected a string' };
  if (text.trim() === '') return { absent: true };
  if (field.textual) {
    const cjk = CJK.test(text);
    const limit = cjk ? TEXTUAL_MAX_LENGTH_CJK : TEXTUAL_MAX_LENGTH;
    if (text.length > limit) {
      return {
        problem: `${key}: ${text.length} characters for ${fieldLabel(field)}, over the ${limit}-character limit for textual values${cjk ? ' in Chinese/Japanese' : ''} (FACTS §4c)`,
        why: `over the ${limit}-character limit for textual values${cjk ? ' in Chinese/Japanese' : ''}`,
      };
    }
  } else if (text.length > PLAIN_STRING_MAX_LENGTH) {
    return {
      problem: `${key}: ${text.length} characters for ${fieldLabel(field)}, over our ${PLAIN_STRING_MAX_LENGTH}-character cap`,
      why: `over our ${PLAIN_STRING_MAX_LENGTH}-character cap`,
    };
  }
  return { value: text };
}

function toNumber(raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isFinite(raw) ? raw : undefined;
  if (typeof raw === 'string' && NUMERIC.test(raw.trim())) return Number(raw.trim());
  return undefined;
}

function coerceNumber(field: DatasetField, key: string, raw: unknown): Coerced {
  if (typeof raw === 'string' && raw.trim() === '') return { absent: true };
  const n = toNumber(raw);
  const integral = field.type === 'int' || field.type === 'long';
  if (n === undefined) {
    const expected = integral ? 'an integer' : 'a number';
    return { problem: `${key}: expected ${expected} for ${fieldLabel(field)}, got ${describe(raw)}`, why: `expected ${expected}` };
  }
  const value = n === 0 ? 0 : n; // no -0 in JSON or CSV
  switch (field.type) {
    case 'int':
    case 'long': {
      if (!Number.isInteger(value)) return { problem: `${key}: expected an integer for ${fieldLabel(field)}, got ${describe(raw)}`, why: 'expected an integer' };
      const ok = field.type === 'int' ? value >= INT32_MIN && value <= INT32_MAX : Number.isSafeInteger(value);
      const range = field.type === 'int' ? '32-bit integer range' : 'range of exactly representable integers (±2^53)';
      if (!ok) return { problem: `${key}: ${plainNumber(value)} is outside the ${range} for ${fieldLabel(field)}`, why: `outside the ${range}` };
      return { value };
    }
    case 'float':
      if (Math.abs(value) > FLOAT32_MAX) return { problem: `${key}: ${plainNumber(value)} overflows ${fieldLabel(field)}`, why: 'overflows the float range' };
      return { value };
    default:
      return { value };
  }
}

function coerceBoolean(field: DatasetField, key: string, raw: unknown): Coerced {
  if (typeof raw === 'boolean') return { value: raw };
  if (typeof raw === 'string') {
    const text = raw.trim().toLowerCase();
    if (text === 'true' || text === 'false') return { value: text === 'true' };
    if (text === '') return { absent: true };
  }
  return { problem: `${key}: expected true or false for ${fieldLabel(field)}, got ${describe(raw)}`, why: 'expected true or false' };
}

type SecondsResult = { seconds: number } | Problem;

function epochSeconds(raw: unknown): SecondsResult {
  if (typeof raw === 'string' && ISO_8601.test(raw.trim())) {
    const text = raw.trim();
    const [year, month, day] = text.slice(0, 10).split('-').map(Number) as [number, number, number];
    // Date.parse rolls 2024-02-30 over to March 1st; a calendar check refuses it instead.
    const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
    const ms = Date.parse(text);
    if (month < 1 || month > 12 || day < 1 || day > daysInMonth || Number.isNaN(ms)) return { problem: 'is not a valid date', why: 'not a valid date' };
    if (ms < 0 || ms >= MS_MAX) return { problem: 'is outside 1970 to 3000', why: 'outside 1970 to 3000' };
    return { seconds: Math.floor(ms / 1000) };
  }
  const ms = toNumber(raw);
  const notMs = 'not epoch milliseconds between 1973 and 3000 (epoch seconds sent as milliseconds?)';
  if (ms === undefined) return { problem: `expected epoch milliseconds or an ISO-8601 date-time with a zone`, why: 'expected epoch milliseconds or an ISO-8601 date-time with a zone' };
  if (!Number.isInteger(ms) || ms < MS_MIN || ms >= MS_MAX) return { problem: `${plainNumber(ms)} is ${notMs}`, why: notMs };
  return { seconds: Math.floor(ms / 1000) };
}

/**
 * Our timestamps are epoch milliseconds at the edge; Personalize wants epoch seconds (FACTS §2, §4a).
 * Accepts milliseconds (number or numeric string) or an ISO-8601 date / date-time with a zone.
 * Returns undefined for anything else, including values that look like seconds already.
 */
export function toEpochSeconds(value: unknown): number | undefined {
  const result = epochSeconds(value);
  return 'seconds' in result ? result.seconds : undefined;
}

function coerce(schema: DatasetSchema, field: DatasetField, key: string, raw: unknown, shaped = false): Coerced {
  if (schema.type === 'Items' && field.name === 'CREATION_TIMESTAMP') {
    if (typeof raw === 'string' && raw.trim() === '') return { absent: true };
    if (shaped && typeof raw === 'number' && Number.isSafeInteger(raw) && raw >= 0) return { value: raw };
    const result = epochSeconds(raw);
    if ('seconds' in result) return { value: result.seconds };
    return { problem: `${key}: ${fieldLabel(field)}: ${result.problem}; got ${describe(raw)}`, why: result.why };
  }
  switch (field.type) {
    case 'string':
      return coerceString(field, key, raw);
    case 'boolean':
      return coerceBoolean(field, key, raw);
    default:
      return coerceNumber(field, key, raw);
  }
}

/** A key that is not a property of the schema carries its (immutable, shared) dropped entry. */
type KeyMatch = { field: DatasetField } | { reason: string; summary: string; drop: Readonly<DroppedProperty> };

interface Lookup {
  byKey: Map<string, DatasetField>;
  metadata: Set<DatasetField>;
  /** Input key as spelled -> its field or why it is dropped: the same few keys recur on every message. */
  matches: Map<string, KeyMatch>;
}

/** Bound on remembered input keys (callers choose them). */
const MAX_REMEMBERED_KEYS = 1_000;
const lookups = new WeakMap<DatasetSchema, Lookup>();

function lookupOf(schema: DatasetSchema): Lookup {
  let lookup = lookups.get(schema);
  if (!lookup) {
    lookup = {
      byKey: new Map(schema.fields.map((f) => [inputKey(f.name), f])),
      metadata: new Set(schema.metadata),
      matches: new Map(),
    };
    lookups.set(schema, lookup);
  }
  return lookup;
}

function matchKey(schema: DatasetSchema, lookup: Lookup, key: string): KeyMatch {
  let match = lookup.matches.get(key);
  if (match === undefined) {
    const field = lookup.byKey.get(inputKey(key));
    if (!field) {
      const reason = `${key}: not a field of the ${schema.type} schema`;
      const summary = `not a field of the ${schema.type} schema`;
      match = { reason, summary, drop: Object.freeze({ key, reason, summary }) };
    } else if (!lookup.metadata.has(field)) {
      const reason = `${key}: ${field.name} is a top-level field of the request, not a property`;
      const summary = `${schema.type} ${field.name}: a top-level field of the request, not a property`;
      match = { reason, summary, drop: Object.freeze({ key, reason, summary }) };
    } else match = { field };
    if (lookup.matches.size >= MAX_REMEMBERED_KEYS) lookup.matches.clear();
    lookup.matches.set(key, match);
  }
  return match;
}

/** The metadata field an input property key sets (matched as shapeProperties matches it), if any. */
export function propertyFieldOf(schema: DatasetSchema, key: string): DatasetField | undefined {
  const match = matchKey(schema, lookupOf(schema), key);
  return 'field' in match ? match.field : undefined;
}

const entryLength = (key: string, value: Scalar): number => JSON.stringify({ [key]: value }).length - 2;

/**
 * The accepted values in schema order. Keys are metadata fields' property keys (alphanumeric Avro
 * names, never "__proto__"), defined as own data properties as Object.fromEntries would. A plain
 * function, not a closure: shapeProperties runs for every message.
 */
function buildProperties(schema: DatasetSchema, accepted: ReadonlyMap<DatasetField, { value: Scalar }>): Record<string, Scalar> {
  const out: Record<string, Scalar> = {};
  if (accepted.size === 0) return out;
  for (const f of schema.metadata) {
    const hit = accepted.get(f);
    if (hit) out[f.propertyKey] = hit.value;
  }
  return out;
}

/**
 * Turns free-form input properties into what the dataset schema allows: camelCase keys of
 * metadata fields only, values coerced to the field's type and within Personalize's limits.
 * Never throws: anything unusable is dropped with a reason naming the key, and if the JSON would
 * exceed the API's `properties` limit the largest values are dropped until it fits.
 *
 * Decisions: keys match fields ignoring case and "_"; null, undefined and empty strings count as
 * absent; numeric strings ("12.5") are accepted for number fields and "true"/"false" for booleans;
 * numbers and booleans are stringified for string fields; CREATION_TIMESTAMP converts epoch ms or
 * ISO-8601 to epoch seconds. When two keys name the same field, the first usable one wins.
 */
export function shapeProperties(
  schema: DatasetSchema,
  input: Record<string, unknown> | undefined,
  options: ShapeOptions = {},
): ShapedProperties {
  const dropped: DroppedProperty[] = [];
  // A Map, so hostile keys such as "__proto__" can never reach an object's prototype.
  const accepted = new Map<DatasetField, { key: string; value: Scalar }>();
  const lookup = lookupOf(schema);

  if (input !== undefined && input !== null) {
    if (!isRecord(input)) {
      dropped.push({ key: '(properties)', reason: `(properties): expected an object, got ${describe(input)}`, summary: `${schema.type} (properties): expected an object` });
    } else {
      for (const key of Object.keys(input)) {
        const raw = input[key];
        if (raw === undefined || raw === null) continue;
        const match = matchKey(schema, lookup, key);
        if ('drop' in match) {
          dropped.push(match.drop);
          continue;
        }
        const { field } = match;
        const previous = accepted.get(field);
        if (previous) {
          dropped.push({ key, reason: `${key}: ${field.name} already set from key ${previous.key}`, summary: `${schema.type} ${field.name}: set by two keys, the first kept` });
          continue;
        }
        const result = coerce(schema, field, key, raw, options.shaped);
        if ('problem' in result) dropped.push({ key, reason: result.problem, summary: `${schema.type} ${fieldLabel(field)}: ${result.why}` });
        else if ('value' in result) accepted.set(field, { key, value: result.value });
      }
    }
  }

  const max = options.maxJsonLength ?? PROPERTIES_MAX_LENGTH[schema.type];
  let properties = buildProperties(schema, accepted);
  let json = JSON.stringify(properties);
  let length = json.length;
  while (length > max && accepted.size > 0) {
    // Drop the single largest value: it frees the most room while keeping the most fields.
    let largest: { field: DatasetField; size: number } | undefined;
    for (const f of schema.metadata) {
      const hit = accepted.get(f);
      if (!hit) continue;
      const size = entryLength(f.propertyKey, hit.value);
      if (!largest || size > largest.size) largest = { field: f, size };
    }
    if (!largest) break;
    const hit = accepted.get(largest.field);
    accepted.delete(largest.field);
    if (hit) {
      dropped.push({
        key: hit.key,
        reason: `${hit.key}: dropped so the properties JSON (${length} characters) fits the ${max}-character limit (${API_OF[schema.type]}); this entry took ${largest.size}`,
        summary: `${schema.type} ${largest.field.name}: dropped so the properties JSON fits the ${max}-character limit (${API_OF[schema.type]})`,
      });
    }
    properties = buildProperties(schema, accepted);
    json = JSON.stringify(properties);
    length = json.length;
  }

  const missing: string[] = [];
  for (const f of schema.metadata) if (!f.nullable && !accepted.has(f)) missing.push(f.name);
  // Serialised once already to measure it: propertiesJson, called next, reuses the text (issue 17).
  lastShaped = { properties, json: length === 2 ? undefined : json };
  return { properties, dropped, missing };
}

/**
 * The properties object shapeProperties returned last and its JSON: every caller hands it to
 * propertiesJson straight away. A caller that changes the properties builds a new object, which
 * is then serialised afresh.
 */
let lastShaped: { properties: object; json: string | undefined } | undefined;

/** The `properties` string for the API, or undefined when empty (the API wants length ≥ 1, FACTS §1b). */
export function propertiesJson(shaped: ShapedProperties): string | undefined {
  if (lastShaped?.properties === shaped.properties) return lastShaped.json;
  return Object.keys(shaped.properties).length === 0 ? undefined : JSON.stringify(shaped.properties);
}

// ---------------------------------------------------------------------------------------------
// Bulk CSV

export type CsvInput = Scalar | readonly (Scalar | null | undefined)[] | null | undefined;

/**
 * One CSV cell, unquoted (the export's CSV writer quotes): empty for null, lowercase booleans,
 * plain decimals, arrays joined with "|" (FACTS §4a). Values must already be in Personalize's units
 * (epoch seconds), e.g. shapeProperties output; a non-finite number is a bug and throws.
 */
export function csvValue(field: DatasetField, value: CsvInput): string {
  if (value === null || value === undefined) return '';
  if (Array.isArray(value)) {
    return (value as readonly (Scalar | null | undefined)[])
      .filter((v): v is Scalar => v !== null && v !== undefined)
      .map((v) => csvValue(field, v))
      .filter((v) => v !== '')
      .join('|');
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError(`csvValue: ${field.name}: ${value} is not a finite number`);
    return plainNumber(value);
  }
  const text = value as string;
  if (field.type === 'boolean' && /^(true|false)$/i.test(text.trim())) return text.trim().toLowerCase();
  return text;
}

/** The CSV header row: field names in schema order, which Personalize requires (FACTS §4a). */
export function csvHeader(schema: DatasetSchema): string[] {
  return schema.fields.map((f) => f.name);
}

// ---------------------------------------------------------------------------------------------
// The shipped schemas

export interface DatasetSchemas {
  interactions: DatasetSchema;
  items: DatasetSchema;
  users: DatasetSchema;
}

/** Replacement Avro documents (objects or JSON strings) for deployments with their own schemas. */
export type DatasetSchemaOverrides = Partial<Record<keyof DatasetSchemas, unknown>>;

/**
 * Parses the bundled schemas (static JSON imports, so esbuild bundles them) or the overrides.
 * Called once at start-up; throws DatasetSchemaError naming the schema and field.
 */
export function loadDatasetSchemas(overrides: DatasetSchemaOverrides = {}): DatasetSchemas {
  return {
    interactions: parseDatasetSchema(overrides.interactions ?? interactionsAvro, 'Interactions'),
    items: parseDatasetSchema(overrides.items ?? itemsAvro, 'Items'),
    users: parseDatasetSchema(overrides.users ?? usersAvro, 'Users'),
  };
}
