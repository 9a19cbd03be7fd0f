import { createHmac } from 'node:crypto';

/**
 * PII policy for free-form properties (user traits, item and interaction properties): named fields
 * are dropped, or replaced by a keyed hash, before anything is archived or sent to Personalize.
 * Pure: the processor applies it where it accepts a message; configuration comes from
 * PII_FIELDS / PII_MODE / PII_HASH_KEY (shared/config.ts).
 */

export type PiiMode = 'drop' | 'hash';

export interface PiiPolicy {
  /** Normalized field names (see normalizePiiField). */
  fields: ReadonlySet<string>;
  mode: PiiMode;
  /** HMAC-SHA256 key; required in hash mode. */
  hashKey?: string;
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

/** Builds a policy; a hash policy without a key is refused (a hash keyed by nothing is reversible by lookup). */
export function piiPolicy(options: { fields?: readonly string[]; mode?: PiiMode; hashKey?: string } = {}): PiiPolicy {
  const mode = options.mode ?? 'drop';
  const hashKey = options.hashKey?.trim() ? options.hashKey : undefined;
  if (mode === 'hash' && hashKey === undefined) throw new PiiPolicyError('PII_HASH_KEY is required when PII_MODE is "hash"');
  const fields = new Set((options.fields ?? DEFAULT_PII_FIELDS).map(normalizePiiField).filter((f) => f !== ''));
  return { fields, mode, ...(hashKey !== undefined && { hashKey }) };
}

/** Comma-separated field names, as PII_FIELDS holds them; undefined or blank means the defaults. */
export function parsePiiFields(value: string | undefined): string[] {
  if (value === undefined || value.trim() === '') return [...DEFAULT_PII_FIELDS];
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
 * The policy applied to a canonical message's free-form maps (`properties` of interactions, items and
 * users; `traits` of identify). Ids are left alone: they are the join keys Personalize needs.
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
