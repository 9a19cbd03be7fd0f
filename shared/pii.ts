import { createHmac } from 'node:crypto';
import { propertyFieldOf, type DatasetSchema } from './personalize/dataset-schema.js';

/**
 * PII policy for free-form properties (user traits, item and interaction properties), applied
 * before anything is archived or sent to Personalize. Pure: the processor applies it where it
 * accepts a message; configuration comes from PII_MODE / PII_ALLOW_FIELDS / PII_FIELDS /
 * PII_HASH_KEY (shared/config.ts).
 *
 * - `allow` (the default): an allow-list. A property survives only if the target dataset schema
 *   keeps it (matched as the processor matches keys, after the event mapping's renames) with a flat
 *   value, or if PII_ALLOW_FIELDS names it. Then the deny-list below still applies to what is left.
 * - `drop` / `hash`: the deny-list only. Fields named in PII_FIELDS are dropped, or replaced by a
 *   keyed hash; everything else is kept as sent.
 */

export const PII_MODES = ['allow', 'drop', 'hash'] as const;
export type PiiMode = (typeof PII_MODES)[number];

export interface PiiPolicy {
  /** Normalized field names (see normalizePiiField): the deny-list. */
  fields: ReadonlySet<string>;
  mode: PiiMode;
  /**
   * HMAC-SHA256 key; required in hash mode. In allow mode, optional: when set, deny-listed fields
   * that the allow-list keeps (a schema column such as EMAIL) are hashed instead of dropped.
   */
  hashKey?: string;
  /** Allow mode: normalized keys kept besides the dataset schemas' fields (PII_ALLOW_FIELDS). */
  allowFields: ReadonlySet<string>;
}

export const DEFAULT_PII_FIELDS: readonly string[] = ['email', 'phone', 'firstName', 'lastName', 'address', 'ip'];

/** Nested objects deeper than this are dropped whole: their keys cannot all be checked. */
const MAX_DEPTH = 64;

/** `first_name`, `FirstName` and `first-name` all name the same trait. */
export function normalizePiiField(name: string): string {
  return name.replace(/[_\-\s]/g, '').toLowerCase();
}

export class PiiPolicyError extends Error {
  override name = 'PiiPolicyError';
}

/**
 * Builds a policy (allow mode unless told otherwise); a hash policy without a key is refused (a
 * hash keyed by nothing is reversible by lookup).
 */
export function piiPolicy(
  options: { fields?: readonly string[]; mode?: PiiMode; hashKey?: string; allowFields?: readonly string[] } = {},
): PiiPolicy {
  const mode = options.mode ?? 'allow';
  const hashKey = options.hashKey?.trim() ? options.hashKey : undefined;
  if (mode === 'hash' && hashKey === undefined) throw new PiiPolicyError('PII_HASH_KEY is required when PII_MODE is "hash"');
  const normalized = (names: readonly string[]) => new Set(names.map(normalizePiiField).filter((f) => f !== ''));
  const fields = normalized(options.fields ?? DEFAULT_PII_FIELDS);
  const allowFields = normalized(options.allowFields ?? []);
  return { fields, mode, ...(hashKey !== undefined && { hashKey }), allowFields };
}

/** Comma-separated field names, as PII_FIELDS holds them; undefined or blank means the defaults. */
export function parsePiiFields(value: string | undefined): string[] {
  if (value === undefined || value.trim() === '') return [...DEFAULT_PII_FIELDS];
  return value
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f !== '');
}

/** Comma-separated extra keys for allow mode, as PII_ALLOW_FIELDS holds them; undefined or blank: none. */
export function parseAllowFields(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f !== '');
}

/**
 * HMAC-SHA256 (hex) of a value. Strings are trimmed and lower-cased first so one address hashes the
 * same however it was typed; other values hash their JSON.
 */
export function hashPiiValue(value: unknown, key: string): string {
  const text = typeof value === 'string' ? value.trim().toLowerCase() : (JSON.stringify(value) ?? 'null');
  return createHmac('sha256', key).update(text).digest('hex');
}

export interface PiiOutcome {
  properties: Record<string, unknown>;
  dropped: number;
  hashed: number;
}

/**
 * Applies the policy to properties and to objects nested in them (Segment's `address` is an object;
 * traits may nest `contact.email`). Returns a new object when something changed, the same one otherwise.
 */
export function applyPiiPolicyDetailed(properties: Record<string, unknown>, policy: PiiPolicy): PiiOutcome {
  const counts = { dropped: 0, hashed: 0 };
  if (policy.fields.size === 0) return { properties, ...counts };
  const out = visit(properties, policy, counts, 0);
  return { properties: counts.dropped + counts.hashed > 0 ? (out as Record<string, unknown>) : properties, ...counts };
}

export function applyPiiPolicy(properties: Record<string, unknown>, policy: PiiPolicy): Record<string, unknown> {
  return applyPiiPolicyDetailed(properties, policy).properties;
}

function visit(value: unknown, policy: PiiPolicy, counts: { dropped: number; hashed: number }, depth: number): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) {
    counts.dropped++;
    return undefined;
  }
  if (Array.isArray(value)) return value.map((v) => visit(v, policy, counts, depth + 1) ?? null);
  // A fresh object with no prototype chain to write through, keys copied as data.
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (policy.fields.has(normalizePiiField(key))) {
      if (policy.mode === 'drop' || policy.hashKey === undefined) {
        counts.dropped++;
        continue;
      }
      counts.hashed++;
      Object.defineProperty(out, key, { value: hashPiiValue(v, policy.hashKey), enumerable: true, writable: true, configurable: true });
      continue;
    }
    const copy = visit(v, policy, counts, depth + 1);
    if (copy !== undefined) Object.defineProperty(out, key, { value: copy, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/**
 * The deny-list (PII_FIELDS, dropped or hashed) applied to a canonical message's free-form maps
 * (`properties` of interactions, items and users; `traits` of identify), whatever the mode: the
 * allow-list needs the dataset schemas, see applyPrivacyPolicy. Ids are left alone: they are the
 * join keys Personalize needs.
 */
export function withoutPii<M extends object>(message: M, policy: PiiPolicy): M {
  let out = message;
  for (const field of ['properties', 'traits'] as const) {
    const value = (message as Record<string, unknown>)[field];
    if (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value)) continue;
    const cleaned = applyPiiPolicy(value as Record<string, unknown>, policy);
    if (cleaned !== value) out = { ...out, [field]: cleaned };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Allow mode

/** The dataset schemas (and the event mapping's renames) that decide which keys allow mode keeps. */
export interface AllowTargets {
  schemas: { interactions: DatasetSchema; items: DatasetSchema; users: DatasetSchema };
  /** Source name -> dataset property (the event mapping's itemProperties / traits): a source name whose target the schema keeps is kept. */
  renames?: { items?: Readonly<Record<string, string>>; users?: Readonly<Record<string, string>> };
}

type Target = 'interactions' | 'items' | 'users';

/** Which free-form map of which message kind goes to which dataset: identify traits are user properties. */
const TARGET_OF: Readonly<Record<string, { field: 'properties' | 'traits'; target: Target }>> = {
  interaction: { field: 'properties', target: 'interactions' },
  item: { field: 'properties', target: 'items' },
  user: { field: 'properties', target: 'users' },
  identify: { field: 'traits', target: 'users' },
};

/** A value a dataset column can hold: a scalar, or a list of them (categorical values). Schemas are flat (FACTS §4b). */
function isFlat(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return true;
  return Array.isArray(value) && value.every((v) => v === null || typeof v !== 'object');
}

/** The schema keeps the key: a metadata field (matched as shapeProperties matches), directly or through a rename. */
function schemaKeeps(schema: DatasetSchema, renames: Readonly<Record<string, string>> | undefined, key: string): boolean {
  if (propertyFieldOf(schema, key) !== undefined) return true;
  const target = renames !== undefined && Object.hasOwn(renames, key) ? renames[key] : undefined;
  return target !== undefined && propertyFieldOf(schema, target) !== undefined;
}

export interface AllowOutcome {
  properties: Record<string, unknown>;
  /** Top-level keys removed because neither the schema nor PII_ALLOW_FIELDS keeps them. */
  notAllowed: number;
}

/**
 * The allow-list on one map: a key is kept if PII_ALLOW_FIELDS names it (its value as sent), or if
 * the schema keeps it and its value is flat (a nested object under a column name is no value the
 * column can hold, and could carry anything). No schema: only PII_ALLOW_FIELDS keeps anything.
 * Returns the same object when every key is kept.
 */
export function allowedProperties(
  properties: Record<string, unknown>,
  policy: PiiPolicy,
  schema?: DatasetSchema,
  renames?: Readonly<Record<string, string>>,
): AllowOutcome {
  let notAllowed = 0;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(properties)) {
    const keep =
      (policy.allowFields.size > 0 && policy.allowFields.has(normalizePiiField(key))) ||
      (schema !== undefined && isFlat(value) && schemaKeeps(schema, renames, key));
    if (!keep) {
      notAllowed++;
      continue;
    }
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return { properties: notAllowed > 0 ? out : properties, notAllowed };
}

export interface PrivacyOutcome<M> {
  message: M;
  /** Keys removed by the allow-list (allow mode). */
  notAllowed: number;
  /** Deny-listed fields dropped, and hashed. */
  dropped: number;
  hashed: number;
}

/**
 * The whole policy on a canonical message's free-form maps (`properties` of interactions, items and
 * users; `traits` of identify), as the processor applies it before the archive: in allow mode the
 * allow-list against the message's target dataset, then (every mode) the deny-list. Ids are left
 * alone: they are the join keys Personalize needs. Returns the same message when nothing changed.
 */
export function applyPrivacyPolicy<M extends object>(message: M, policy: PiiPolicy, targets?: AllowTargets): PrivacyOutcome<M> {
  const outcome: PrivacyOutcome<M> = { message, notAllowed: 0, dropped: 0, hashed: 0 };
  const kind = (message as { kind?: unknown }).kind;
  const route = typeof kind === 'string' && Object.hasOwn(TARGET_OF, kind) ? TARGET_OF[kind] : undefined;
  for (const field of ['properties', 'traits'] as const) {
    const value = (message as Record<string, unknown>)[field];
    if (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value)) continue;
    let properties = value as Record<string, unknown>;
    if (policy.mode === 'allow') {
      // A map no dataset takes (a field the message kind does not send) keeps only the configured extras.
      const target = route?.field === field ? route.target : undefined;
      const renames = target === 'items' ? targets?.renames?.items : target === 'users' ? targets?.renames?.users : undefined;
      const allowed = allowedProperties(properties, policy, target !== undefined ? targets?.schemas[target] : undefined, renames);
      properties = allowed.properties;
      outcome.notAllowed += allowed.notAllowed;
    }
    const denied = applyPiiPolicyDetailed(properties, policy);
    properties = denied.properties;
    outcome.dropped += denied.dropped;
    outcome.hashed += denied.hashed;
    if (properties !== value) outcome.message = { ...outcome.message, [field]: properties };
  }
  return outcome;
}
