import type { Entry } from '../../entry.js';
import type { DeletionRegistry } from '../../deletion.js';
import type { LinkCache } from '../../identity/cache.js';
import { linkCarriedBy, stitchBatch } from '../../identity/stitch.js';
import { claimsOf, type IdentityStore } from '../../identity/store.js';
import { inEveryTarget, type ProfileStore } from '../../profile/store.js';
import { decideBatchConsent, decideStitchedConsent, type ConsentDeps, type ConsentVerdicts } from '../consent-step.js';
import type { BatchCounts } from '../report.js';
import { orRetry } from './retry.js';

/** Entries kept from Personalize for want of consent, with the reason. */
export type Denied = ReadonlyMap<Entry, string>;

const NONE_DENIED: Denied = new Map();

/**
 * Stage 2, consent, before identity: a message without the consent Personalize needs carries no
 * link either. Unset (CONSENT_* not configured): nothing is denied.
 */
export async function consentStage(entries: readonly Entry[], consent: ConsentDeps | undefined): Promise<{ verdicts?: ConsentVerdicts; counts: BatchCounts }> {
  if (!consent) return { counts: {} };
  const verdicts = await orRetry('consent', () => decideBatchConsent(entries, consent));
  return { verdicts, counts: { consentOptOuts: verdicts.optedOut.length } };
}

export function deniedBy(verdicts: ConsentVerdicts | undefined): Denied {
  return verdicts?.denied ?? NONE_DENIED;
}

export interface StitchDeps {
  identity: IdentityStore;
  linkCache: LinkCache;
  consent?: ConsentDeps;
}

/**
 * Stage 3, stitch: the batch's links recorded before anything that relies on them is forwarded,
 * and anonymous interactions given their session's user; then those judged by that user's consent.
 */
export async function stitchStage(entries: readonly Entry[], verdicts: ConsentVerdicts | undefined, deps: StitchDeps): Promise<BatchCounts> {
  const denied = deniedBy(verdicts);
  const allowed = denied.size === 0 ? entries : entries.filter((e) => !denied.has(e));
  const stitch = await orRetry('identity table', () => stitchBatch(allowed, deps.identity, deps.linkCache));
  if (deps.consent && verdicts) {
    const consent = deps.consent;
    await orRetry('consent', () => decideStitchedConsent(entries, consent, verdicts));
  }
  return {
    linksRecorded: stitch.linksRecorded,
    linkConflicts: stitch.linkConflicts,
    stitched: stitch.stitched,
    anonymous: stitch.anonymous,
    identityLookups: stitch.lookups,
  };
}

export interface DeletionDeps {
  identity: IdentityStore;
  linkCache: LinkCache;
  profiles: ProfileStore;
  deletions?: DeletionRegistry;
  consent?: ConsentDeps;
  /** The other targets, whose stored profiles a deletion removes too. */
  settings: { targets?: ReadonlyMap<string, unknown> | undefined };
}

/** True when `delete` messages can be carried out; otherwise they are dead-lettered. */
export function canDelete(deps: DeletionDeps): boolean {
  return deps.deletions !== undefined && deps.identity.deleteLinksOfUser !== undefined;
}

/**
 * Stage 4, deletion requests, after this batch's links are recorded so that a link it carries goes
 * too: the registry first (from then on exports leave the user out, even while link removal is
 * retried), then the links, the sessions that were only this user's, stored consent and profiles.
 */
export async function deletionStage(entries: readonly Entry[], deps: DeletionDeps): Promise<BatchCounts> {
  const requests = new Map<string, number>();
  for (const { message } of entries) {
    if (message.kind === 'delete') requests.set(message.userId, Math.max(requests.get(message.userId) ?? 0, message.timestamp));
  }
  const { deletions } = deps;
  if (!deletions || !deps.identity.deleteLinksOfUser || requests.size === 0) return {};
  const deleteLinks = deps.identity.deleteLinksOfUser.bind(deps.identity);
  let linksDeleted = 0;
  await orRetry('deletion', async () => {
    for (const [userId, requestedAt] of requests) {
      await deletions.record(userId, requestedAt);
      const batchSessions = entries.flatMap((e) => {
        const link = linkCarriedBy(e);
        return link?.userId === userId ? [link.sessionId] : [];
      });
      const removed = await deleteLinks(userId, batchSessions);
      // A session someone else also claimed is theirs now; the rest were only this user's.
      const ownSessions = removed.filter((l) => claimsOf(l).every((c) => c.userId === userId)).map((l) => l.sessionId);
      if (ownSessions.length > 0) await deletions.recordSessions?.(ownSessions, requestedAt);
      await deps.consent?.store?.deleteConsentsOf(userId, ownSessions);
      // Only this container's cache can be cleared; others keep a link up to IDENTITY_CACHE_TTL_SECONDS.
      for (const sessionId of [...batchSessions, ...removed.map((l) => l.sessionId)]) deps.linkCache.delete(sessionId);
      linksDeleted += removed.length;
    }
    // And the stored profiles; this batch's earlier updates of those users are voided by the pre-flight.
    // Every target's: a person deleted is deleted for every dataset group (docs/targets.md).
    const keys = [...requests.keys()].map((id) => ({ kind: 'user' as const, id }));
    await deps.profiles.deleteProfiles(inEveryTarget(keys, deps.settings.targets?.keys() ?? []));
  });
  return { linksDeleted };
}
