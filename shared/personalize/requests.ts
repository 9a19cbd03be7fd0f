import type { Event as PersonalizeEvent, Item as PersonalizeItem, User as PersonalizeUser } from '@aws-sdk/client-personalize-events';
import type { InteractionMessage, ItemMessage, UserMessage } from '../../schemas/canonical.js';
import type { FieldError } from '../field-errors.js';
import { renameProperties } from '../event-mapping.js';
import { profileValues, type Profile, type ProfileScalar } from '../profile/profile.js';
import { propertiesJson, propertyFieldOf, shapeProperties, type DatasetSchema, type DroppedProperty } from './dataset-schema.js';

/** Personalize pre-flight: everything the API would reject is caught here, with its field and limit. */
export const PERSONALIZE_LIMITS = {
  /** FACTS §1a/§2: eventList, items and users take 1–10 entries per call. */
  perCall: 10,
  /** FACTS §1b: PutEvents `properties` JSON string, 1–1024 characters. */
  eventPropertiesChars: 1024,
  /** FACTS §2 (current model): PutItems 32,000, PutUsers 24,000 characters of properties. */
  itemPropertiesChars: 32_000,
  userPropertiesChars: 24_000,
  /** FACTS §1c: maximum size of one event, 10 KB. */
  eventBytes: 10 * 1024,
} as const;

/** FACTS §1b: property keys PutEvents refuses, compared case-insensitively. */
export const RESERVED_EVENT_PROPERTY_KEYS = new Set(['userid', 'sessionid', 'eventtype', 'timestamp', 'recommendationid', 'impression']);

export type Built<T> =
  | { ok: true; value: T; dropped: DroppedProperty[] }
  | { ok: false; reason: string; errors: FieldError[] };

function fail<T>(path: string, message: string): Built<T> {
  return { ok: false, reason: `${path}: ${message}`, errors: [{ path, message }] };
}

/** Event time in epoch seconds, as Personalize takes it; never the time we received it. */
export function sentAtOf(timestampMs: number): Date {
  return new Date(Math.floor(timestampMs / 1000) * 1000);
}

const reservedBySchema = new WeakMap<DatasetSchema, boolean>();

/** True when a metadata field's properties key is one PutEvents refuses (never in a parsed schema). */
function declaresReservedKey(schema: DatasetSchema): boolean {
  let declares = reservedBySchema.get(schema);
  if (declares === undefined) {
    declares = schema.metadata.some((f) => RESERVED_EVENT_PROPERTY_KEYS.has(f.propertyKey.toLowerCase()));
    reservedBySchema.set(schema, declares);
  }
  return declares;
}

export function buildEvent(message: InteractionMessage, schema: DatasetSchema, userId?: string): Built<PersonalizeEvent> {
  let shaped = shapeProperties(schema, message.properties);
  let dropped = shaped.dropped;
  // parseDatasetSchema refuses such a schema; only one built by hand can declare a reserved key.
  if (declaresReservedKey(schema)) {
    dropped = [...shaped.dropped];
    const properties = { ...shaped.properties };
    for (const key of Object.keys(properties)) {
      if (RESERVED_EVENT_PROPERTY_KEYS.has(key.toLowerCase())) {
        delete properties[key];
        dropped.push({ key, reason: `${key} is a reserved PutEvents property key`, summary: `${schema.type} property ${key}: a reserved PutEvents property key` });
      }
    }
    shaped = { ...shaped, properties };
  }
  const properties = propertiesJson(shaped);
  if (properties !== undefined && properties.length > PERSONALIZE_LIMITS.eventPropertiesChars) {
    return fail('properties', `serialized properties are ${properties.length} characters, limit ${PERSONALIZE_LIMITS.eventPropertiesChars}`);
  }
  // Optional fields assigned in this order (the request's key order), not spread from a temporary
  // object each: built for every interaction (issue 17).
  const event: PersonalizeEvent = { eventId: message.eventId, eventType: message.eventType, sentAt: sentAtOf(message.timestamp) };
  if (message.itemId !== undefined) event.itemId = message.itemId;
  if (message.eventValue !== undefined) event.eventValue = message.eventValue;
  if (properties !== undefined) event.properties = properties;
  if (message.recommendationId !== undefined) event.recommendationId = message.recommendationId;
  if (message.impression !== undefined) event.impression = message.impression;
  if (message.eventAttributionSource !== undefined) event.metricAttribution = { eventAttributionSource: message.eventAttributionSource };
  // Serialising every event to measure it costs more than the rest of building it: only events whose
  // worst-case size could exceed the limit are measured exactly.
  if (eventBytesBound(event, properties, userId, message.sessionId) <= PERSONALIZE_LIMITS.eventBytes) return { ok: true, value: event, dropped };
  const bytes = Buffer.byteLength(JSON.stringify({ ...event, sentAt: Math.floor(message.timestamp / 1000), userId, sessionId: message.sessionId }));
  if (bytes > PERSONALIZE_LIMITS.eventBytes) {
    return fail('(event)', `event is ${bytes} bytes, limit ${PERSONALIZE_LIMITS.eventBytes}`);
  }
  return { ok: true, value: event, dropped };
}

/** Room for key names, punctuation and numbers (eventValue, sentAt) in an event's JSON. */
const EVENT_JSON_OVERHEAD = 512;

/**
 * An upper bound on the event's JSON size in bytes: JSON.stringify turns one UTF-16 code unit into
 * at most 6 bytes (a \uXXXX escape), so 6 x the characters of every string, plus the overhead.
 */
function eventBytesBound(event: PersonalizeEvent, properties: string | undefined, userId: string | undefined, sessionId: string): number {
  // `properties` as built: the SDK types the event's field loosely.
  let chars = (event.eventId?.length ?? 0) + (event.eventType?.length ?? 0) + (event.itemId?.length ?? 0) + (properties?.length ?? 0);
  chars += (event.recommendationId?.length ?? 0) + (event.metricAttribution?.eventAttributionSource?.length ?? 0);
  chars += (userId?.length ?? 0) + sessionId.length;
  // Each impression id also brings two quotes and a comma.
  for (const id of event.impression ?? []) chars += id.length + 3;
  return 6 * chars + EVENT_JSON_OVERHEAD;
}

function buildUpsert<T>(
  what: 'item' | 'user',
  properties: Record<string, unknown>,
  schema: DatasetSchema,
  limit: number,
  make: (properties: string) => T,
): Built<T> {
  const shaped = shapeProperties(schema, properties);
  // PutItems/PutUsers replace the whole record: a partial one would wipe the fields it lacks.
  if (shaped.missing.length > 0) {
    return fail('properties', `${shaped.missing.join(', ')} required by the ${schema.type} dataset schema (PutItems/PutUsers replace the whole record)`);
  }
  const json = propertiesJson(shaped);
  if (json === undefined) return fail('properties', `no ${what} property matches the ${schema.type} dataset schema`);
  if (json.length > limit) return fail('properties', `serialized properties are ${json.length} characters, limit ${limit}`);
  return { ok: true, value: make(json), dropped: shaped.dropped };
}

export function buildItem(message: ItemMessage, schema: DatasetSchema): Built<PersonalizeItem> {
  return buildUpsert('item', message.properties, schema, PERSONALIZE_LIMITS.itemPropertiesChars, (properties) => ({
    itemId: message.itemId,
    properties,
  }));
}

export function buildUser(message: UserMessage, schema: DatasetSchema): Built<PersonalizeUser> {
  return buildUpsert('user', message.properties, schema, PERSONALIZE_LIMITS.userPropertiesChars, (properties) => ({
    userId: message.userId,
    properties,
  }));
}

// ---------------------------------------------------------------------------------------------
// Partial updates merged into profiles (shared/profile/)

/**
 * One item/user update checked on its own, as a partial update: its usable values, shaped (dataset
 * property keys, Personalize units), ready to merge into the stored record. A required field the
 * update does not carry is fine (the stored record may have it); a value it carries that cannot be
 * used for a required field (wrong type, too long) fails the update, with the property's path.
 * Unusable values of optional fields are dropped and reported, as for any message. `renames` (the
 * event mapping's traits / itemProperties) are applied first; an error's path names the property as
 * the message has it.
 */
export function shapeProfileUpdate(
  what: 'item' | 'user',
  properties: Record<string, unknown>,
  schema: DatasetSchema,
  renames: Readonly<Record<string, string>> = {},
): Built<Record<string, ProfileScalar>> {
  const renamed = renameProperties(properties, renames);
  const shaped = shapeProperties(schema, renamed);
  const missing = new Set(shaped.missing);
  const errors: FieldError[] = [];
  const sourceName = (key: string) =>
    renamed === properties || Object.hasOwn(properties, key) ? key : (Object.keys(renames).find((s) => renames[s] === key && Object.hasOwn(properties, s)) ?? key);
  for (const d of shaped.dropped) {
    const field = propertyFieldOf(schema, d.key);
    if (field === undefined || !missing.has(field.name)) continue;
    const prefix = `${d.key}: `;
    errors.push({ path: `properties.${sourceName(d.key)}`, message: d.reason.startsWith(prefix) ? d.reason.slice(prefix.length) : d.reason });
  }
  if (errors.length > 0) return { ok: false, reason: errors.map((e) => `${e.path}: ${e.message}`).join('; '), errors };
  if (Object.keys(shaped.properties).length === 0) return fail('properties', `no ${what} property matches the ${schema.type} dataset schema`);
  return { ok: true, value: shaped.properties, dropped: shaped.dropped };
}

/** A merged profile as a PutItems/PutUsers record, or held while a field the schema requires has no value yet. */
export type FromProfile<T> = { held: false; value: T; dropped: DroppedProperty[] } | { held: true; missing: string[] };

function fromProfile<T>(profile: Profile, schema: DatasetSchema, make: (properties: string) => T): FromProfile<T> {
  // Stored values were shaped once already; shaping again orders them, and fits them to the
  // API's properties limit (PROPERTIES_MAX_LENGTH, the same as PERSONALIZE_LIMITS) should the
  // merged record outgrow it.
  const shaped = shapeProperties(schema, profileValues(profile), { shaped: true });
  const json = propertiesJson(shaped);
  if (shaped.missing.length > 0 || json === undefined) return { held: true, missing: shaped.missing };
  return { held: false, value: make(json), dropped: shaped.dropped };
}

export function buildItemFromProfile(profile: Profile, schema: DatasetSchema): FromProfile<PersonalizeItem> {
  return fromProfile(profile, schema, (properties) => ({ itemId: profile.id, properties }));
}

export function buildUserFromProfile(profile: Profile, schema: DatasetSchema): FromProfile<PersonalizeUser> {
  return fromProfile(profile, schema, (properties) => ({ userId: profile.id, properties }));
}
