import { z } from 'zod';
import bundledMapping from '../schemas/event-mapping.json' with { type: 'json' };

/**
 * Source event name -> Personalize event type, as configuration (DESIGN "Mapping").
 * Validated at start-up; a bad entry fails the container with an error that names it.
 */

const entrySchema = z.strictObject({
  eventType: z.string().min(1).max(256),
  /** Dot path of the property (of the event, or of each product when perProduct) holding eventValue. */
  eventValue: z.string().min(1).optional(),
  perProduct: z.boolean().optional(),
});

export const eventMappingSchema = z.strictObject({
  $comment: z.string().optional(),
  unmapped: z.enum(['passthrough', 'reject']).default('passthrough'),
  events: z.record(z.string().min(1), entrySchema),
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
    const where = path[0] === 'events' && path.length > 1 ? `entry "${path[1]}"${path.length > 2 ? ` field ${path.slice(2).join('.')}` : ''}` : path.join('.') || '(root)';
    return `${where}: ${issue.message}`;
  });
  throw new EventMappingError(`${origin} is invalid: ${problems.join('; ')}`);
}

/** The bundled mapping, or EVENT_MAPPING (inline JSON) when set. */
export function loadEventMapping(env: NodeJS.ProcessEnv = process.env): EventMapping {
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
