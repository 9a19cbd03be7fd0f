/**
 * The request checks of the Amazon Personalize Events API (PutEvents, PutItems, PutUsers), as pure
 * functions. Every limit here comes from the service's Smithy model or developer guide, as recorded
 * in ../shared/FACTS.md §1–2 (team folder). Paths use 0-based indexes: `eventList.3.properties`.
 *
 * Deliberately NOT rejected, because the real service does not document rejecting them: unknown
 * members, a `sentAt` that looks like milliseconds, property keys the dataset schema lacks.
 */

export type Operation = 'PutEvents' | 'PutItems' | 'PutUsers';

export const OPERATIONS: readonly Operation[] = ['PutEvents', 'PutItems', 'PutUsers'];

/** What the SDK puts on the wire (JSON), before any check: shapes are only what validation proved. */
export interface WireEvent {
  eventType: string;
  sentAt: number;
  eventId?: string;
  eventValue?: number;
  itemId?: string;
  properties?: string;
  recommendationId?: string;
  impression?: string[];
  metricAttribution?: { eventAttributionSource: string };
}

export interface PutEventsBody {
  trackingId: string;
  sessionId: string;
  userId?: string;
  eventList: WireEvent[];
}

export interface PutItemsBody {
  datasetArn: string;
  items: { itemId: string; properties?: string }[];
}

export interface PutUsersBody {
  datasetArn: string;
  users: { userId: string; properties?: string }[];
}

export interface ValidationError {
  /** Field path, e.g. `eventList.3.properties`; `body` for the request as a whole. */
  path: string;
  /** The broken rule with the actual value's measure, e.g. `length 1100 exceeds 1024`. */
  reason: string;
}

export const LIMITS = {
  /** StringType, ItemId, UserId: FACTS §1a/§1b/§2. */
  idLength: { min: 1, max: 256 },
  /** EventList: FACTS §1a, §1c. */
  eventsPerCall: 10,
  /** SynthesizedJsonEventPropertiesJSON: FACTS §1b. */
  eventPropertiesLength: { min: 1, max: 1024 },
  /** RecommendationId: FACTS §1b. */
  recommendationIdLength: { min: 1, max: 40 },
  /** Impression list: FACTS §1b, §1c. */
  impressionCount: { min: 1, max: 25 },
  /** EventAttributionSource: FACTS §1b. */
  eventAttributionSourceLength: { min: 0, max: 1024 },
  /**
   * "Maximum size of an event: 10 KB" (FACTS §1c, 2023 guide; current value unconfirmed). Read as
   * 10 × 1024 bytes of the event's JSON as the SDK serializes it.
   */
  eventBytes: 10 * 1024,
  /** ItemList / UserList: FACTS §2. */
  recordsPerCall: 10,
  /** SynthesizedJsonItemProperties: FACTS §2 (current model; older model 24,262). */
  itemPropertiesLength: { min: 1, max: 32_000 },
  /** SynthesizedJsonUserProperties: FACTS §2 (current model; older model 4,096). */
  userPropertiesLength: { min: 1, max: 24_000 },
  /** Arn: FACTS §2. */
  datasetArnLength: { min: 0, max: 256 },
} as const;

/** FACTS §2 (Arn pattern). */
export const DATASET_ARN_PATTERN = /^arn:([a-z\d-]+):personalize:.*:.*:.+$/;
/** FACTS §1b: printable ASCII with at least one non-space character. */
export const EVENT_ATTRIBUTION_SOURCE_PATTERN = /^[\x20-\x7E]*[\x21-\x7E]+[\x20-\x7E]*$/;
/** FACTS §1b: keys not allowed in PutEvents `properties`, compared case-insensitively. */
export const RESERVED_EVENT_PROPERTY_KEYS: readonly string[] = [
  'userId',
  'sessionId',
  'eventType',
  'timestamp',
  'recommendationId',
  'impression',
];
const RESERVED_LOWER = new Set(RESERVED_EVENT_PROPERTY_KEYS.map((k) => k.toLowerCase()));

interface Range {
  readonly min: number;
  readonly max: number;
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** Smithy measures string length in Unicode code points, not UTF-16 units. */
function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // A high surrogate followed by a low one is one code point.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

class Checker {
  readonly errors: ValidationError[] = [];

  add(path: string, reason: string): void {
    this.errors.push({ path, reason });
  }

  /** Checks an optional (or, with `required`, mandatory) string member; returns it when present and a string. */
  string(obj: Obj, key: string, prefix: string, range: Range, required: boolean): string | undefined {
    const path = prefix ? `${prefix}.${key}` : key;
    const v = obj[key];
    if (v === undefined || v === null) {
      if (required) this.add(path, 'required');
      return undefined;
    }
    if (typeof v !== 'string') {
      this.add(path, `expected a string, got ${describe(v)}`);
      return undefined;
    }
    this.length(path, codePoints(v), range);
    return v;
  }

  length(path: string, n: number, range: Range): void {
    if (n < range.min) this.add(path, `length ${n} is below ${range.min}`);
    else if (n > range.max) this.add(path, `length ${n} exceeds ${range.max}`);
  }

  number(obj: Obj, key: string, prefix: string, required: boolean): void {
    const path = `${prefix}.${key}`;
    const v = obj[key];
    if (v === undefined || v === null) {
      if (required) this.add(path, 'required');
      return;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) this.add(path, `expected a number, got ${describe(v)}`);
  }

  /** A required list member; returns its entries when it is an array of an allowed size. */
  list(obj: Obj, key: string, prefix: string, range: Range, required: boolean): unknown[] | undefined {
    const path = prefix ? `${prefix}.${key}` : key;
    const v = obj[key];
    if (v === undefined || v === null) {
      if (required) this.add(path, 'required');
      return undefined;
    }
    if (!Array.isArray(v)) {
      this.add(path, `expected a list, got ${describe(v)}`);
      return undefined;
    }
    if (v.length < range.min) this.add(path, `size ${v.length} is below ${range.min}`);
    else if (v.length > range.max) this.add(path, `size ${v.length} exceeds ${range.max}`);
    return v as unknown[];
  }

  /** `properties`: a JSON string (not an object) that parses to a JSON object. */
  properties(obj: Obj, prefix: string, range: Range, reservedKeys?: Set<string>): void {
    const path = `${prefix}.properties`;
    const s = this.string(obj, 'properties', prefix, range, false);
    if (s === undefined || s.length === 0 || codePoints(s) > range.max) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(s);
    } catch {
      this.add(path, 'is not valid JSON');
      return;
    }
    if (!isObject(parsed)) {
      this.add(path, `must be a JSON object, got ${describe(parsed)}`);
      return;
    }
    if (!reservedKeys) return;
    for (const key of Object.keys(parsed)) {
      if (reservedKeys.has(key.toLowerCase())) this.add(path, `reserved key "${key}" is not allowed`);
    }
  }
}

function requireObjectBody(body: unknown, c: Checker): body is Obj {
  if (isObject(body)) return true;
  c.add('body', `expected a JSON object, got ${describe(body)}`);
  return false;
}

function validateEvent(c: Checker, event: unknown, prefix: string): void {
  if (!isObject(event)) {
    c.add(prefix, `expected an object, got ${describe(event)}`);
    return;
  }
  c.string(event, 'eventType', prefix, LIMITS.idLength, true);
  c.number(event, 'sentAt', prefix, true);
  c.string(event, 'eventId', prefix, LIMITS.idLength, false);
  c.number(event, 'eventValue', prefix, false);
  c.string(event, 'itemId', prefix, LIMITS.idLength, false);
  c.properties(event, prefix, LIMITS.eventPropertiesLength, RESERVED_LOWER);
  c.string(event, 'recommendationId', prefix, LIMITS.recommendationIdLength, false);

  const impression = c.list(event, 'impression', prefix, LIMITS.impressionCount, false);
  impression?.forEach((id, i) => {
    const path = `${prefix}.impression.${i}`;
    if (typeof id !== 'string') c.add(path, `expected a string, got ${describe(id)}`);
    else c.length(path, codePoints(id), LIMITS.idLength);
  });

  const ma = event.metricAttribution;
  if (ma !== undefined && ma !== null) {
    const maPath = `${prefix}.metricAttribution`;
    if (!isObject(ma)) {
      c.add(maPath, `expected an object, got ${describe(ma)}`);
    } else {
      const src = c.string(ma, 'eventAttributionSource', maPath, LIMITS.eventAttributionSourceLength, true);
      if (src !== undefined && !EVENT_ATTRIBUTION_SOURCE_PATTERN.test(src)) {
        c.add(`${maPath}.eventAttributionSource`, 'must be printable ASCII with at least one non-space character');
      }
    }
  }

  const bytes = Buffer.byteLength(JSON.stringify(event), 'utf8');
  if (bytes > LIMITS.eventBytes) c.add(prefix, `size ${bytes} bytes exceeds ${LIMITS.eventBytes}`);
}

/** Checks a PutEvents request body (FACTS §1a–1c); an empty list means the service would accept it. */
export function validatePutEvents(body: unknown): ValidationError[] {
  const c = new Checker();
  if (!requireObjectBody(body, c)) return c.errors;
  c.string(body, 'trackingId', '', LIMITS.idLength, true);
  c.string(body, 'sessionId', '', LIMITS.idLength, true);
  c.string(body, 'userId', '', LIMITS.idLength, false);
  const events = c.list(body, 'eventList', '', { min: 1, max: LIMITS.eventsPerCall }, true);
  events?.forEach((e, i) => validateEvent(c, e, `eventList.${i}`));
  return c.errors;
}

function validateDatasetArn(c: Checker, body: Obj): void {
  const arn = c.string(body, 'datasetArn', '', LIMITS.datasetArnLength, true);
  if (arn !== undefined && !DATASET_ARN_PATTERN.test(arn)) {
    c.add('datasetArn', `does not match ${DATASET_ARN_PATTERN.source}`);
  }
}

function validateRecords(
  body: unknown,
  listKey: 'items' | 'users',
  idKey: 'itemId' | 'userId',
  propertiesLength: Range,
): ValidationError[] {
  const c = new Checker();
  if (!requireObjectBody(body, c)) return c.errors;
  validateDatasetArn(c, body);
  const records = c.list(body, listKey, '', { min: 1, max: LIMITS.recordsPerCall }, true);
  records?.forEach((r, i) => {
    const prefix = `${listKey}.${i}`;
    if (!isObject(r)) {
      c.add(prefix, `expected an object, got ${describe(r)}`);
      return;
    }
    c.string(r, idKey, prefix, LIMITS.idLength, true);
    c.properties(r, prefix, propertiesLength);
  });
  return c.errors;
}

/** Checks a PutItems request body (FACTS §2). */
export function validatePutItems(body: unknown): ValidationError[] {
  return validateRecords(body, 'items', 'itemId', LIMITS.itemPropertiesLength);
}

/** Checks a PutUsers request body (FACTS §2). */
export function validatePutUsers(body: unknown): ValidationError[] {
  return validateRecords(body, 'users', 'userId', LIMITS.userPropertiesLength);
}

export const VALIDATORS: Record<Operation, (body: unknown) => ValidationError[]> = {
  PutEvents: validatePutEvents,
  PutItems: validatePutItems,
  PutUsers: validatePutUsers,
};

const MAX_LISTED_ERRORS = 10;

/** One message for all errors, in the spirit of AWS's "N validation errors detected: ...". */
export function formatValidationErrors(errors: readonly ValidationError[]): string {
  const listed = errors.slice(0, MAX_LISTED_ERRORS).map((e) => `${e.path}: ${e.reason}`);
  if (errors.length > MAX_LISTED_ERRORS) listed.push(`and ${errors.length - MAX_LISTED_ERRORS} more`);
  const head = errors.length === 1 ? '1 validation error detected' : `${errors.length} validation errors detected`;
  return `${head}: ${listed.join('; ')}`;
}
