import type { Entry } from '../entry.js';
import type { LinkCache } from './cache.js';
import { addClaim, latestClaim, userAt } from './attribution.js';
import { claimsOf, type IdentityLink, type IdentityStore } from './store.js';

export interface StitchReport {
  /** Session -> user links written to the table (a new session, or a new login on a known one). */
  linksRecorded: number;
  /** A login on a session another user had claimed (a shared device, a passed-on link, or a hijack attempt): it owns the session from its own time on. */
  linkConflicts: number;
  /** Anonymous interactions that got a userId from a link. */
  stitched: number;
  /** Anonymous interactions whose session has no link (yet). */
  anonymous: number;
  /** Table lookups made (cache misses). */
  lookups: number;
}

/** The link a message carries, if any: identify, alias, or an interaction with both ids. */
export function linkCarriedBy(entry: Entry): IdentityLink | undefined {
  const m = entry.message;
  const common = { linkedAt: m.timestamp, eventId: m.eventId, source: m.source };
  switch (m.kind) {
    case 'identify':
      return { sessionId: m.sessionId, userId: m.userId, ...common };
    case 'alias':
      return { sessionId: m.previousId, userId: m.userId, ...common };
    case 'interaction':
      return m.userId === undefined ? undefined : { sessionId: m.sessionId, userId: m.userId, ...common };
    default:
      return undefined;
  }
}

/**
 * Identity stitching for one batch (README "Identity stitching"):
 * 1. look up every session the batch touches, cache first, then one batched read for the misses;
 * 2. add every login the batch carries to its session's claims, in stream order, and write the
 *    changed sessions in one batched write;
 * 3. give each anonymous interaction the user its session's claims assign to its time
 *    (`userAt`: the next login after the event, else the latest before), so an anonymous event
 *    earlier in the same batch than the login is attributed too, and a session claimed first by
 *    someone else is taken over by a later login from its own time on.
 * Events that carry their own userId always keep it.
 */
export async function stitchBatch(entries: readonly Entry[], store: IdentityStore, cache: LinkCache): Promise<StitchReport> {
  const carried: IdentityLink[] = [];
  const sessions = new Set<string>();
  for (const entry of entries) {
    const link = linkCarriedBy(entry);
    if (link) {
      carried.push(link);
      sessions.add(link.sessionId);
    } else if (entry.message.kind === 'interaction') {
      sessions.add(entry.message.sessionId);
    }
  }
  const known = new Map<string, IdentityLink>();
  const misses: string[] = [];
  for (const sessionId of sessions) {
    const cached = cache.get(sessionId);
    if (cached === undefined) misses.push(sessionId);
    else if (cached !== null) known.set(sessionId, cached);
  }
  if (misses.length > 0) {
    const fetched = await store.getLinks(misses);
    for (const sessionId of misses) {
      const link = fetched.get(sessionId);
      if (link) {
        known.set(sessionId, link);
        cache.setLink(link);
      } else {
        cache.setMissing(sessionId);
      }
    }
  }

  const changed = new Map<string, IdentityLink>();
  let linkConflicts = 0;
  for (const link of carried) {
    const existing = known.get(link.sessionId);
    const claims = addClaim(claimsOf(existing), { userId: link.userId, linkedAt: link.linkedAt });
    if (claims === undefined) continue;
    if (existing && claimsOf(existing).some((c) => c.userId !== link.userId)) linkConflicts++;
    const owner = latestClaim(claims)!;
    // The item's own fields describe the latest login (the user index shows the session's current owner).
    const latest = owner.linkedAt === link.linkedAt && owner.userId === link.userId ? link : (existing ?? link);
    const next: IdentityLink = { ...latest, userId: owner.userId, linkedAt: owner.linkedAt, claims };
    known.set(link.sessionId, next);
    changed.set(link.sessionId, next);
  }
  if (changed.size > 0) {
    await store.putLinks([...changed.values()]);
    for (const link of changed.values()) cache.setLink(link);
  }

  let stitched = 0;
  let anonymous = 0;
  for (const entry of entries) {
    const m = entry.message;
    if (m.kind !== 'interaction' || m.userId !== undefined) continue;
    const userId = userAt(claimsOf(known.get(m.sessionId)), m.timestamp);
    if (userId !== undefined) {
      entry.userId = userId;
      entry.stitched = true;
      stitched++;
    } else {
      anonymous++;
    }
  }
  return { linksRecorded: changed.size, linkConflicts, stitched, anonymous, lookups: misses.length };
}
