/**
 * Profiles: the latest merged record of every user and item.
 *
 * Segment identify traits, mParticle user_attributes and feed entries are partial updates, but
 * PutUsers/PutItems replace the whole record (FACTS §2). So each update is merged into the stored
 * record, key by key, and the merged record is what Personalize receives. Pure: no I/O here.
 */

/** What a property value can be once shaped by the dataset schema (shapeProperties). */
export type ProfileScalar = string | number | boolean;

export type ProfileKind = 'user' | 'item';

export interface ProfileKey {
  kind: ProfileKind;
  id: string;
}

export interface ProfileValue {
  value: ProfileScalar;
  /** Event time (epoch ms) of the message that set the value. */
  at: number;
}

export interface Profile extends ProfileKey {
  /** Dataset property key (camelCase, as sent to Personalize) -> the newest value and its event time. */
  properties: Record<string, ProfileValue>;
  /** The newest event time merged into the record. */
  updatedAt: number;
}

export interface ProfileUpdate {
  /** Shaped values (dataset property keys, Personalize units); absent keys leave the stored value alone. */
  properties: Readonly<Record<string, ProfileScalar>>;
  /** The message's event time (epoch ms). */
  timestamp: number;
}

/** A profile's identity as one string (kinds contain no "#", so kind and id never run together). */
export function profileKeyOf(key: ProfileKey): string {
  return `${key.kind}#${key.id}`;
}

/**
 * Merges one update into a record (or into nothing). Each key keeps the value with the newest event
 * time, so an update that arrives late (an older message) cannot overwrite newer values; on equal
 * times the update wins, because within a shard it is the later statement of the same moment. Keys
 * the update does not carry are kept. The inputs are not modified.
 */
export function mergeProfile(current: Profile | undefined, key: ProfileKey, update: ProfileUpdate): Profile {
  // A Map, then own data properties: no key (not even "__proto__") can reach a prototype.
  const merged = new Map<string, ProfileValue>(current ? Object.entries(current.properties) : []);
  for (const [name, value] of Object.entries(update.properties)) {
    const previous = merged.get(name);
    if (previous === undefined || update.timestamp >= previous.at) merged.set(name, { value, at: update.timestamp });
  }
  return {
    kind: key.kind,
    id: key.id,
    properties: Object.fromEntries(merged),
    updatedAt: Math.max(current?.updatedAt ?? update.timestamp, update.timestamp),
  };
}

/** The values of a record, as input for shaping (property key -> value). */
export function profileValues(profile: Profile): Record<string, ProfileScalar> {
  return Object.fromEntries(Object.entries(profile.properties).map(([name, { value }]) => [name, value]));
}

/** Same values and times: writing it again would change nothing. */
export function sameProfile(a: Profile | undefined, b: Profile): boolean {
  if (a === undefined || a.updatedAt !== b.updatedAt) return false;
  const keys = Object.keys(b.properties);
  if (Object.keys(a.properties).length !== keys.length) return false;
  return keys.every((k) => {
    const x = Object.hasOwn(a.properties, k) ? a.properties[k] : undefined;
    const y = b.properties[k]!;
    return x !== undefined && x.at === y.at && x.value === y.value;
  });
}
