import { profileKeyOf, type Profile, type ProfileKey } from './profile.js';
import { PROFILE_KEY_PREFIX } from '../identity/store.js';

/** The port the processor and the deletion tools use; the DynamoDB adapter is shared/aws/dynamo-profiles.ts. */
export interface ProfileStore {
  /** The stored records of these keys, by profileKeyOf; absent keys have none. */
  getProfiles(keys: readonly ProfileKey[]): Promise<Map<string, Profile>>;
  /** Replaces the stored records of these keys. */
  putProfiles(profiles: readonly Profile[]): Promise<void>;
  /** Removes the records (a user's deletion); absent ones are no error. */
  deleteProfiles(keys: readonly ProfileKey[]): Promise<void>;
}

/** The partition key of a profile in the identity table: `profile#user#<userId>`, `profile#item#<itemId>`. */
export function profileTableKey(key: ProfileKey): string {
  return `${PROFILE_KEY_PREFIX}${key.kind}#${key.id}`;
}

const targetPrefix = (target: string) => `${target}\u0001`;

/** These keys in the default target and in each other target named: one delete reaches a person's records in all of them. */
export function inEveryTarget(keys: readonly ProfileKey[], targets: Iterable<string>): ProfileKey[] {
  const out = [...keys];
  for (const target of targets) for (const k of keys) out.push({ ...k, id: `${targetPrefix(target)}${k.id}` });
  return out;
}

/**
 * The profiles of one target other than the default (docs/targets.md), in the same table: its ids
 * carry the target's name and U+0001, which no valid id contains (control characters are refused
 * at the door), so they never meet the default target's records.
 */
export function targetProfileStore(store: ProfileStore, target: string): ProfileStore {
  const prefix = targetPrefix(target);
  const inner = <K extends ProfileKey>(k: K): K => ({ ...k, id: `${prefix}${k.id}` });
  return {
    async getProfiles(keys) {
      const out = new Map<string, Profile>();
      for (const stored of (await store.getProfiles(keys.map(inner))).values()) {
        const profile = { ...stored, id: stored.id.slice(prefix.length) };
        out.set(profileKeyOf(profile), profile);
      }
      return out;
    },
    putProfiles: (profiles) => store.putProfiles(profiles.map(inner)),
    deleteProfiles: (keys) => store.deleteProfiles(keys.map(inner)),
  };
}
