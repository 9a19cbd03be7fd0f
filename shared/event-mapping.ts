import { z } from 'zod';
import bundledMapping from '../schemas/event-mapping.json' with { type: 'json' };
import { propertyFieldOf, type DatasetSchema } from './personalize/dataset-schema.js';

/**
 * Source event name -> Personalize event type, as configuration (DESIGN "Mapping").
 * Validated at start-up; a bad entry fails the container with an error that names it.
 */

const entrySchema = z.strictObject({
  eventType: z.string().min(1).max(256),
  /** Dot path of the property (of the event, or of each product when perProduct) holding eventValue. */
  eventValue: z.string().min(1).optional(),
  perProduct: z.boolean().optional(),
  /**
   * Heartbeats (Segment's `Video Content Playing`, every ~10 s): one training interaction per session,
   * item and window of this many seconds. The events of a window share one eventId, and Personalize
   * trains on the first event of an eventId only (FACTS §1b); the processor and the export drop the rest as duplicates.
   */
  oncePerSeconds: z.number().int().min(1).max(86_400).optional(),
});

/** Source property name -> dataset property name (e.g. Segment trait "plan" -> "membershipType"). */
const renamesSchema = z.record(z.string().min(1, 'a source name must not be empty'), z.string().trim().min(1, 'must name a dataset property').max(256));

export const eventMappingSchema = z.strictObject({
  $comment: z.string().optional(),
  unmapped: z.enum(['passthrough', 'reject']).default('passthrough'),
  events: z.record(z.string().min(1), entrySchema),
  /** User properties (identify traits, mParticle user_attributes, the users feed) renamed before they are merged. */
  traits: renamesSchema.default({}),
  /** Item properties (the items feed) renamed before they are merged. */
  itemProperties: renamesSchema.default({}),
});

export type EventMapping = z.infer<typeof eventMappingSchema>;
export type EventMappingEntry = z.infer<typeof entrySchema>;

export class EventMappingError extends Error {
  override name = 'EventMappingError';
}

/** Parses and validates a mapping; the error names the offending entry and field. */
export function parseEventMapping(input: unknown, origin = 'event mapping'): EventMapping {
  const result = eventMappingSchema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const path = issue.path.map(String);
    const where =
      path[0] === 'events' && path.length > 1
        ? `entry "${path[1]}"${path.length > 2 ? ` field ${path.slice(2).join('.')}` : ''}`
        : (path[0] === 'traits' || path[0] === 'itemProperties') && path.length > 1
          ? `${path[0]} entry "${path[1]}"`
          : path.join('.') || '(root)';
    return `${where}: ${issue.message}`;
  });
  throw new EventMappingError(`${origin} is invalid: ${problems.join('; ')}`);
}

/** The bundled mapping, or EVENT_MAPPING (inline JSON, shared/config.ts) when set. */
export function loadEventMapping(env: { EVENT_MAPPING?: string | undefined }): EventMapping {
  const inline = env.EVENT_MAPPING;
  if (inline === undefined || inline.trim() === '') return parseEventMapping(bundledMapping, 'schemas/event-mapping.json');
  let parsed: unknown;
  try {
    parsed = JSON.parse(inline);
  } catch (error) {
    throw new EventMappingError(`EVENT_MAPPING is not valid JSON: ${(error as Error).message}`);
  }
  return parseEventMapping(parsed, 'EVENT_MAPPING');
}

/**
 * Every rename must name a property of its dataset schema (matched as input keys are: camelCase,
 * UPPER_SNAKE or snake_case), checked at start-up so a typo fails the container, naming the entry.
 */
export function checkPropertyRenames(mapping: EventMapping, schemas: { users: DatasetSchema; items: DatasetSchema }, origin = 'event mapping'): void {
  const problems: string[] = [];
  for (const [section, schema] of [['traits', schemas.users], ['itemProperties', schemas.items]] as const) {
    for (const [source, target] of Object.entries(mapping[section])) {
      // Archived updates carry the renamed names (shared/process/stages/preflight.ts), and replay renames
      // them again: a chain (a -> b, b -> c) would move a value twice.
      if (target !== source && Object.hasOwn(mapping[section], target)) {
        problems.push(`${section} entry "${source}": "${target}" is itself renamed (entry "${target}"); rename to the final name`);
        continue;
      }
      if (propertyFieldOf(schema, target)) continue;
      const known = schema.metadata.map((f) => f.propertyKey).join(', ');
      problems.push(`${section} entry "${source}": "${target}" is not a property of the ${schema.type} dataset schema (its properties: ${known})`);
    }
  }
  if (problems.length > 0) throw new EventMappingError(`${origin} is invalid: ${problems.join('; ')}`);
}

/**
 * Renames source property names to dataset property names. A name not in `renames` is kept as it
 * is. A rename is not applied when its target is already taken (the properties hold that name, or
 * an earlier rename produced it): the value keeps its source name and is dropped later as not a
 * schema field, with a reason, rather than silently replacing the other value.
 */
export function renameProperties(properties: Record<string, unknown>, renames: Readonly<Record<string, string>>): Record<string, unknown> {
  const names = Object.keys(properties);
  if (!names.some((name) => Object.hasOwn(renames, name))) return properties;
  // A Map, then own data properties only: no name (not even "__proto__") reaches a prototype.
  const out = new Map<string, unknown>();
  for (const name of names) {
    const target = Object.hasOwn(renames, name) ? renames[name]! : name;
    const taken = target !== name && (Object.hasOwn(properties, target) || out.has(target));
    out.set(taken ? name : target, properties[name]);
  }
  return Object.fromEntries(out);
}

/** Reads a dot path ("price", "product.price") from a plain object, own properties only. */
export function readPath(source: Record<string, unknown> | undefined, path: string): unknown {
  let current: unknown = source;
  for (const key of path.split('.')) {
    if (current === null || typeof current !== 'object' || !Object.hasOwn(current, key)) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

export type MappedEvent =
  | { ok: true; eventType: string; eventValue?: number; entry?: EventMappingEntry }
  | { ok: false; reason: string };

/** Translates one event name; eventValue comes from the mapped property when the message has none. */
export function mapEvent(
  mapping: EventMapping,
  name: string,
  properties: Record<string, unknown> | undefined,
  explicitValue: number | undefined,
): MappedEvent {
  const entry = Object.hasOwn(mapping.events, name) ? mapping.events[name] : undefined;
  if (!entry) {
    if (mapping.unmapped === 'reject') return { ok: false, reason: `eventType "${name}" has no entry in the event mapping` };
    return explicitValue === undefined ? { ok: true, eventType: name } : { ok: true, eventType: name, eventValue: explicitValue };
  }
  let eventValue = explicitValue;
  if (eventValue === undefined && entry.eventValue) {
    const raw = readPath(properties, entry.eventValue);
    const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
    if (typeof value === 'number' && Number.isFinite(value)) eventValue = value;
  }
  return eventValue === undefined
    ? { ok: true, eventType: entry.eventType, entry }
    : { ok: true, eventType: entry.eventType, eventValue, entry };
}

/** The configured mapping, its renames checked against the dataset schemas: what every runtime starts with. */
export function loadCheckedEventMapping(env: { EVENT_MAPPING?: string | undefined }, schemas: { users: DatasetSchema; items: DatasetSchema }): EventMapping {
  const mapping = loadEventMapping(env);
  checkPropertyRenames(mapping, schemas, env.EVENT_MAPPING?.trim() ? 'EVENT_MAPPING' : 'schemas/event-mapping.json');
  return mapping;
}
