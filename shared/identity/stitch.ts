import type { Entry } from '../process/entry.js';
import type { LinkCache } from './cache.js';
import type { IdentityLink, IdentityStore } from './store.js';

export interface StitchReport {
  /** New session -> user links written to the table. */
  linksRecorded: number;
  /** A session already linked to another user: first link wins, the newer claim is only counted. */
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
 * Identity stitching for one batch (DESIGN "identity"):
 * 1. look up every session the batch touches, cache first, then one batched read for the misses;
 * 2. record every new session -> user link the batch carries, in stream order, in one batched write;
 * 3. give each anonymous interaction the userId of its session's link, so an anonymous event
 *    *earlier* in the same batch than the login is attributed too.
 * One session claimed by two users: the first link recorded wins and stays (anonymous history
 * belongs to whoever identified first); the later claim is counted as a conflict. Events that
 * carry their own userId always keep it.
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

  const fresh: IdentityLink[] = [];
  let linkConflicts = 0;
  for (const link of carried) {
    const existing = known.get(link.sessionId);
    if (!existing) {
      known.set(link.sessionId, link);
      fresh.push(link);
    } else if (existing.userId !== link.userId) {
      linkConflicts++;
    }
  }
  if (fresh.length > 0) {
    await store.putLinks(fresh);
    for (const link of fresh) cache.setLink(link);
  }

  let stitched = 0;
  let anonymous = 0;
  for (const entry of entries) {
    const m = entry.message;
    if (m.kind !== 'interaction' || m.userId !== undefined) continue;
    const link = known.get(m.sessionId);
    if (link) {
      entry.userId = link.userId;
      entry.stitched = true;
      stitched++;
    } else {
      anonymous++;
    }
  }
  return { linksRecorded: fresh.length, linkConflicts, stitched, anonymous, lookups: misses.length };
}
