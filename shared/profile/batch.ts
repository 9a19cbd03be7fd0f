import { mergeProfile, profileKeyOf, sameProfile, type Profile, type ProfileKey, type ProfileUpdate } from './profile.js';
import type { ProfileStore } from './store.js';

/** One item/user update of a batch, in stream order, with what carried it (`E`: the processor's entry). */
export interface ProfileUpdateEntry<E> {
  entry: E;
  key: ProfileKey;
  update: ProfileUpdate;
}

export interface MergedProfile<E> {
  profile: Profile;
  /** The batch's last update of this id: it stands for the merged record (retry, dead letter). */
  entry: E;
  /** Updates of this id in the batch. */
  updates: number;
}

export interface MergedBatch<E> {
  /** One per id, in the order the batch first touched them. */
  merged: MergedProfile<E>[];
  /** Records written (changed by the batch). */
  written: number;
}

/**
 * Merges a batch's updates into the stored records: one read for every id the batch touches,
 * the updates applied in stream order, one write set for the records that changed. A retried
 * batch changes nothing it already merged, so nothing is written again.
 */
export async function mergeBatchProfiles<E>(store: ProfileStore, updates: readonly ProfileUpdateEntry<E>[]): Promise<MergedBatch<E>> {
  if (updates.length === 0) return { merged: [], written: 0 };
  const byKey = new Map<string, { key: ProfileKey; updates: ProfileUpdateEntry<E>[] }>();
  for (const u of updates) {
    const id = profileKeyOf(u.key);
    const group = byKey.get(id);
    if (group) group.updates.push(u);
    else byKey.set(id, { key: u.key, updates: [u] });
  }
  const stored = await store.getProfiles([...byKey.values()].map((g) => g.key));
  const merged: MergedProfile<E>[] = [];
  const changed: Profile[] = [];
  for (const [id, group] of byKey) {
    const before = stored.get(id);
    let profile = before;
    for (const { update } of group.updates) profile = mergeProfile(profile, group.key, update);
    merged.push({ profile: profile!, entry: group.updates[group.updates.length - 1]!.entry, updates: group.updates.length });
    if (!sameProfile(before, profile!)) changed.push(profile!);
  }
  if (changed.length > 0) await store.putProfiles(changed);
  return { merged, written: changed.length };
}
