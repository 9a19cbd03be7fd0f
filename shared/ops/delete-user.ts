import { userIdSchema } from '../../schemas/canonical.js';
import { claimsOf, type IdentityLink, type IdentityStore } from '../identity/store.js';
import type { DeletionRegistry } from '../deletion.js';
import { inEveryTarget, type ProfileStore } from '../profile/store.js';

/**
 * A user's deletion, carried out directly (the delete-user tool), with the same effect as a
 * `delete` message through the processor: the deletion is recorded in the registry (every later
 * export leaves the user out), then every identity link of the user is removed (so the user's old
 * anonymous sessions are no longer attributed to them), then the user's stored profile (the merged
 * record PutUsers is built from).
 */

export interface DeleteUserDeps {
  identity: Required<Pick<IdentityStore, 'deleteLinksOfUser'>>;
  profiles: Pick<ProfileStore, 'deleteProfiles'>;
  registry: DeletionRegistry;
  /** The other targets (TARGETS_FILE), whose stored profiles of the user go too (docs/targets.md). */
  targets?: readonly string[];
  now?: () => number;
}

export interface DeleteUserResult {
  userId: string;
  requestedAt: number;
  linksRemoved: IdentityLink[];
}

export class InvalidUserIdError extends Error {
  override name = 'InvalidUserIdError';
}

export async function deleteUser(userId: string, deps: DeleteUserDeps): Promise<DeleteUserResult> {
  const valid = userIdSchema.safeParse(userId);
  if (!valid.success) throw new InvalidUserIdError(`not a userId: ${valid.error.issues.map((i) => i.message).join('; ')}`);
  const requestedAt = (deps.now ?? Date.now)();
  // The registry first: if removing links fails, running the tool again finishes the job.
  await deps.registry.record(userId, requestedAt);
  const linksRemoved = await deps.identity.deleteLinksOfUser(userId);
  // As the processor does: sessions no one else claimed are registered so exports leave them out.
  const ownSessions = linksRemoved.filter((l) => claimsOf(l).every((c) => c.userId === userId)).map((l) => l.sessionId);
  if (ownSessions.length > 0) await deps.registry.recordSessions?.(ownSessions, requestedAt);
  await deps.profiles.deleteProfiles(inEveryTarget([{ kind: 'user', id: userId }], deps.targets ?? []));
  return { userId, requestedAt, linksRemoved };
}
