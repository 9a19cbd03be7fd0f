import { canonicalMessageSchema, CONSENT_ENTRIES_MAX, CONSENT_KEY_MAX, type CanonicalMessage } from '../../schemas/canonical.js';
import { formatIssues, describeErrors, type FieldError } from '../field-errors.js';
import { readPath, type EventMapping, type EventMappingEntry } from '../event-mapping.js';

/**
 * What every source adapter (Segment, mParticle, feeds) returns, and the small pure helpers they
 * share. Adapters never throw: each source message ends up as canonical messages, a rejection with
 * its reason, or a filtered entry with its reason (DESIGN "Nothing lost").
 */

/** `index` = position of the source message in the request (mParticle: within `events[]`); -1 = the request as a whole. */
export interface Rejection {
  index: number;
  reason: string;
  errors?: FieldError[];
}

/** Valid input that is intentionally not forwarded (Segment `group`, mParticle `session_start`, ...). */
export interface Filtered {
  index: number;
  reason: string;
}

export interface AdapterMessage {
  /** As for Rejection; -1 for messages built from batch-level data (mParticle identity links, user attributes). */
  index: number;
  message: CanonicalMessage;
}

export interface AdapterResult {
  messages: AdapterMessage[];
  rejections: Rejection[];
  filtered: Filtered[];
}

/**
 * How a door's event times are read:
 * - `device`: a tracker's own clock (Segment tracking API): corrected only when its `sentAt` runs
 *   ahead of ours by more than the tolerance;
 * - `historical`: an import of past events (`/v1/import`): the times as given;
 * - `source`: a CDP or feed that already settled the time (webhooks, feeds).
 */
export type EventClock = 'device' | 'historical' | 'source';

export interface AdapterContext {
  /** Request time, epoch ms. Used only for Segment clock-skew correction and as the version time of feeds, never as an event time. */
  receivedAt: number;
  mapping: EventMapping;
  /** Default `source`. */
  clock?: EventClock;
  /** With `clock: 'device'`: how far sentAt may lead our clock before it counts as a wrong device clock. */
  clockSkewToleranceMs?: number;
}

export function emptyResult(): AdapterResult {
  return { messages: [], rejections: [], filtered: [] };
}

/** Last resort: the adapters are written not to throw, but a bug must still become an answer, not a 500. */
export function guarded(adapt: () => AdapterResult): AdapterResult {
  try {
    return adapt();
  } catch (error) {
    const reason = `request could not be read: ${error instanceof Error ? error.message : String(error)}`;
    return { messages: [], rejections: [{ index: -1, reason }], filtered: [] };
  }
}

// ---------------------------------------------------------------------------------------------
// Hostile input

/** Keys that would reach Object.prototype if a later step assigned them; never copied. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
/** Deeper values are dropped: Personalize schemas are flat (FACTS §4b), and recursion must stay bounded. */
export const MAX_DEPTH = 32;

/**
 * A JSON-shaped copy of untrusted input in fresh objects: prototype keys dropped, non-finite numbers
 * and non-JSON values dropped, bigints (int64 ids from a bigint-aware parser) stringified, depth bounded.
 * Everything after this works on data that cannot pollute prototypes or recurse without end.
 */
export function sanitize(value: unknown, depth = 0): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value !== 'object' || depth >= MAX_DEPTH) return undefined;
  if (Array.isArray(value)) return value.map((v) => sanitize(v, depth + 1) ?? null);
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (!isSafeKey(key)) continue;
    const copy = sanitize(v, depth + 1);
    if (copy !== undefined) out[key] = copy;
  }
  return out;
}

/** False for keys that must never be assigned onto an object (use before `obj[key] = ...` with a computed key). */
export function isSafeKey(key: string): boolean {
  return !FORBIDDEN_KEYS.has(key);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

export function asRecord(value: unknown): Record<string, unknown> | undefined {
  return isRecord(value) ? value : undefined;
}

export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** Same values the canonical id schemas refuse (broken trackers send these); treated as absent. */
const PLACEHOLDER_IDS = new Set(['null', 'undefined', 'nan']);

/**
 * An id as a string: strings as given, numbers stringified (server libraries send numeric user ids,
 * mParticle int64 ids arrive as JSON numbers). Empty, blank and "null"/"undefined" count as absent.
 */
export function idOf(value: unknown): string | undefined {
  let id: string | undefined;
  if (typeof value === 'string') id = value;
  else if (typeof value === 'number' && Number.isFinite(value)) id = String(value);
  if (id === undefined || id.trim() === '' || PLACEHOLDER_IDS.has(id.trim().toLowerCase())) return undefined;
  return id;
}

export function stringOf(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value : undefined;
}

/** The first usable id among `keys` of `source`, with the key it came from (for error paths). */
export function firstId(source: Record<string, unknown> | undefined, keys: readonly string[]): { id: string; key: string } | undefined {
  if (!source) return undefined;
  for (const key of keys) {
    const id = Object.hasOwn(source, key) ? idOf(source[key]) : undefined;
    if (id !== undefined) return { id, key };
  }
  return undefined;
}

/** Drops undefined fields so canonical messages carry only what is known. */
export function compact<T extends Record<string, unknown>>(value: T): T {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) if (v !== undefined) out[key] = v;
  return out as T;
}

export function omitKeys(source: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(source)) if (!keys.includes(key)) out[key] = v;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Time

export type TimeResult = { ok: true; value: number } | { ok: false; message: string };

const ISO_8601 =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * ISO-8601 -> epoch ms, parsed by hand because Date.parse reads a zone-less date-time as *local*
 * time, which would make the result depend on the machine. Zone-less values are taken as UTC.
 */
export function parseIso8601(text: string): number | undefined {
  const m = ISO_8601.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h = '0', mi = '0', s = '0', frac = '', zone = 'Z'] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return undefined;
  const ms = Number(frac.slice(0, 3).padEnd(3, '0'));
  let offsetMinutes = 0;
  if (zone.toUpperCase() !== 'Z') {
    const digits = zone.slice(1).replace(':', '');
    const sign = zone.startsWith('-') ? -1 : 1;
    const oh = Number(digits.slice(0, 2));
    const om = digits.length > 2 ? Number(digits.slice(2, 4)) : 0;
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = sign * (oh * 60 + om);
  }
  const utc = Date.UTC(year, month - 1, day, hour, minute, Math.min(second, 59), ms);
  // Date.UTC rolls 2024-02-31 over into March; a date that does not exist is an error, not a guess.
  const check = new Date(Date.UTC(year, month - 1, day));
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) return undefined;
  return utc - offsetMinutes * 60_000;
}

/**
 * A time as epoch ms: a number (epoch ms), a string of digits (epoch ms) or an ISO-8601 string.
 * Returns undefined when the value is absent (undefined, null, ""), so callers decide what absent means.
 * Epoch *seconds* pass through here and are refused by the canonical schema with a message saying so.
 */
export function parseTime(value: unknown): TimeResult | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value === 'number') {
    return Number.isFinite(value) ? { ok: true, value: Math.round(value) } : { ok: false, message: 'is not a finite number' };
  }
  if (typeof value === 'string') {
    if (/^\d+$/.test(value.trim())) return { ok: true, value: Number(value.trim()) };
    const parsed = parseIso8601(value);
    return parsed === undefined ? { ok: false, message: `"${value.slice(0, 40)}" is not an ISO-8601 date-time` } : { ok: true, value: parsed };
  }
  return { ok: false, message: `must be an ISO-8601 string or epoch milliseconds, got ${describeType(value)}` };
}

// ---------------------------------------------------------------------------------------------
// Interactions

/** The PutEvents fields (FACTS §1b) a source may carry inside its properties, camelCase or snake_case. */
const ATTRIBUTION_KEYS = {
  recommendationId: ['recommendationId', 'recommendation_id'],
  impression: ['impression', 'impressions'],
  eventAttributionSource: ['eventAttributionSource', 'event_attribution_source'],
} as const;
const ALL_ATTRIBUTION_KEYS: readonly string[] = Object.values(ATTRIBUTION_KEYS).flat();

export interface Attribution {
  fields: { recommendationId?: unknown; impression?: unknown; eventAttributionSource?: unknown };
  /** key each field came from, for error paths */
  keys: Record<string, string>;
  /** the properties without those keys: they are top-level PutEvents fields, and reserved as property keys (FACTS §1b) */
  rest: Record<string, unknown>;
}

/**
 * Lifts recommendationId / impression / eventAttributionSource out of source properties. Values are
 * normalised only where the meaning is unambiguous (numeric ids, the CSV's pipe-joined impression
 * list, FACTS §4a); anything else is left for the canonical schema to refuse with its field path.
 */
export function liftAttribution(properties: Record<string, unknown>): Attribution {
  const fields: Attribution['fields'] = {};
  const keys: Record<string, string> = {};
  for (const [field, candidates] of Object.entries(ATTRIBUTION_KEYS)) {
    const key = candidates.find((k) => Object.hasOwn(properties, k) && properties[k] !== null && properties[k] !== undefined && properties[k] !== '');
    if (key === undefined) continue;
    let value = properties[key];
    if (field === 'impression') {
      if (typeof value === 'string') value = value.split('|').filter((s) => s !== '');
      if (Array.isArray(value)) value = (value as unknown[]).map((v) => idOf(v) ?? v);
    } else if (field === 'recommendationId' && typeof value === 'number') {
      value = String(value);
    }
    fields[field as keyof Attribution['fields']] = value;
    keys[field] = key;
  }
  return { fields, keys, rest: omitKeys(properties, ALL_ATTRIBUTION_KEYS) };
}

function numberOf(value: unknown): number | undefined {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) ? n : undefined;
}

/**
 * eventValue of one product (or of the event) per the mapping entry's `eventValue` path. When that
 * path names a `price`, it is multiplied by the `quantity` beside it (when a positive number): the
 * value is then the line's revenue, so summing EVENT_VALUE (metric attribution) gives revenue, and
 * 3 units bought weigh more than 1. Segment's and mParticle's product objects both carry
 * `price` + `quantity`. Other paths (e.g. `rating`) are taken as they are.
 */
export function mappedValue(entry: EventMappingEntry | undefined, source: Record<string, unknown> | undefined): number | undefined {
  if (!entry?.eventValue || !source) return undefined;
  const value = numberOf(readPath(source, entry.eventValue));
  if (value === undefined) return undefined;
  const segments = entry.eventValue.split('.');
  if (segments[segments.length - 1] !== 'price') return value;
  const parent = segments.length === 1 ? source : readPath(source, segments.slice(0, -1).join('.'));
  const quantity = isRecord(parent) ? numberOf(parent.quantity) : undefined;
  if (quantity === undefined || quantity <= 0) return value;
  // Round away binary noise (19.99 * 3 = 59.970000000000006).
  return Math.round(value * quantity * 1e6) / 1e6;
}

// ---------------------------------------------------------------------------------------------
// Consent

/**
 * A source's consent map (Segment categoryPreferences, mParticle gdpr purposes) as `name: boolean`.
 * Like other optional context, what is not usable is ignored, never a reason to refuse the event:
 * entries whose flag is not a boolean, names that are empty or longer than CONSENT_KEY_MAX, and
 * entries past the first CONSENT_ENTRIES_MAX usable ones are dropped. An object with nothing usable
 * stays `{}` (the source did send a consent object); anything but an object is no map at all.
 */
export function consentFlagsOf(value: unknown, flagOf: (entry: unknown) => unknown = (entry) => entry): Record<string, boolean> | undefined {
  if (!isRecord(value)) return undefined;
  const out: Record<string, boolean> = {};
  let count = 0;
  for (const [name, entry] of Object.entries(value)) {
    if (count >= CONSENT_ENTRIES_MAX) break;
    const flag = flagOf(entry);
    if (typeof flag !== 'boolean' || name === '' || name.length > CONSENT_KEY_MAX || !isSafeKey(name)) continue;
    out[name] = flag;
    count++;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Validation

/** Canonical field -> where it came from in the source, so rejections name the caller's own fields. */
export type SourcePaths = Readonly<Record<string, string>>;

function sourcePath(path: string, paths: SourcePaths): string {
  const [head = '', ...rest] = path.split('.');
  const mapped = Object.hasOwn(paths, head) ? paths[head] : undefined;
  if (mapped === undefined) return path;
  return rest.length > 0 ? `${mapped}.${rest.join('.')}` : mapped;
}

export function reject(result: AdapterResult, index: number, errors: FieldError[]): void {
  result.rejections.push({ index, reason: describeErrors(errors), errors });
}

/** Validates a candidate against the canonical schema: a message on success, a rejection with source field paths otherwise. */
export function accept(result: AdapterResult, index: number, candidate: Record<string, unknown>, paths: SourcePaths = {}): boolean {
  const parsed = canonicalMessageSchema.safeParse(compact(candidate));
  if (parsed.success) {
    result.messages.push({ index, message: parsed.data });
    return true;
  }
  reject(
    result,
    index,
    formatIssues(parsed.error).map((e) => ({ path: sourcePath(e.path, paths), message: e.message })),
  );
  return false;
}
