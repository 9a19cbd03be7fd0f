import { PROFILE_KEY_PREFIX } from '../identity/store.js';
import { type Profile, type ProfileKey } from './profile.js';

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
