import type { Item as PersonalizeItem, User as PersonalizeUser } from '@aws-sdk/client-personalize-events';
import type { Entry } from '../../entry.js';
import type { DatasetSchemas } from '../../personalize/dataset-schema.js';
import type { Outbound } from '../../personalize/forward.js';
import { buildItemFromProfile, buildUserFromProfile, type FromProfile } from '../../personalize/requests.js';
import { mergeBatchProfiles, type ProfileUpdateEntry } from '../../profile/batch.js';
import type { ProfileStore } from '../../profile/store.js';
import { countReason, type BatchCounts } from '../report.js';
import { orRetry } from './retry.js';

export interface MergedProfiles {
  items: Outbound<PersonalizeItem>[];
  users: Outbound<PersonalizeUser>[];
  counts: BatchCounts;
}

/**
 * Stage 6, profiles: every item/user update merged into its stored record (one read and one write
 * set per batch); PutItems/PutUsers replace a record, so a complete record is sent whole. One still
 * missing a field the dataset schema requires is held: stored, neither sent nor dead-lettered,
 * until a later update completes it.
 */
export async function profileStage(updates: readonly ProfileUpdateEntry<Entry>[], store: ProfileStore, schemas: DatasetSchemas): Promise<MergedProfiles> {
  const merged = await orRetry('profile store', () => mergeBatchProfiles(store, updates));
  const counts = { superseded: 0, profilesHeld: 0, propertiesDropped: 0, droppedPropertyReasons: {} as Record<string, number> };
  const items: Outbound<PersonalizeItem>[] = [];
  const users: Outbound<PersonalizeUser>[] = [];
  const sendable = <T>(built: FromProfile<T>): built is Extract<FromProfile<T>, { held: false }> => {
    if (built.held) {
      counts.profilesHeld++;
      return false;
    }
    for (const d of built.dropped) {
      counts.propertiesDropped++;
      countReason(counts.droppedPropertyReasons, d.summary);
    }
    return true;
  };
  for (const { profile, entry, updates: merges } of merged.merged) {
    counts.superseded += merges - 1;
    if (profile.kind === 'item') {
      const item = buildItemFromProfile(profile, schemas.items);
      if (sendable(item)) items.push({ entry, payload: item.value });
    } else {
      const user = buildUserFromProfile(profile, schemas.users);
      if (sendable(user)) users.push({ entry, payload: user.value });
    }
  }
  return { items, users, counts };
}
