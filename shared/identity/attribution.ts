/**
 * Which user an anonymous event belongs to (README "Identity stitching"). A session can be claimed
 * by more than one login: a shared computer, a link with `?ajs_aid=` passed on, or an attacker who
 * identifies on a session first. The rule: an anonymous event belongs to the **next login after it**
 * on its session (the person who was browsing logged in next), else to the **latest login before
 * it**. So linking a session first captures nothing that happened after someone else's login on
 * it, and every later login takes the session over from its own time on. The same function decides
 * in real time (processor) and in the export's backfill.
 */

export interface LinkClaim {
  userId: string;
  /** Event time (epoch ms) of the login that claimed the session. */
  linkedAt: number;
}

/** Claims kept per session: the newest ones; an older claim can only move events that are older still. */
export const MAX_CLAIMS_PER_SESSION = 20;

/** Claims in time order (ties: as recorded). */
export function sortClaims(claims: readonly LinkClaim[]): LinkClaim[] {
  return [...claims].sort((a, b) => a.linkedAt - b.linkedAt);
}

/**
 * Adds a login to a session's claims. Returns undefined when it changes nothing (the same user
 * already claims the session from that time or earlier, with no other user's claim in between).
 */
export function addClaim(claims: readonly LinkClaim[], claim: LinkClaim): LinkClaim[] | undefined {
  const sorted = sortClaims(claims);
  let before: LinkClaim | undefined;
  let after: LinkClaim | undefined;
  for (const c of sorted) {
    if (c.linkedAt <= claim.linkedAt) before = c;
    else if (after === undefined) after = c;
  }
  // The same user's earlier claim already covers this login's time.
  if (before?.userId === claim.userId) return undefined;
  let next = sorted;
  // The same user's later claim, with nobody between: this login only moves it earlier.
  if (after?.userId === claim.userId) next = sorted.filter((c) => c !== after);
  next = sortClaims([...next, claim]);
  return next.length > MAX_CLAIMS_PER_SESSION ? next.slice(next.length - MAX_CLAIMS_PER_SESSION) : next;
}

/** The user an anonymous event at `eventTime` belongs to, or undefined without any claim. */
export function userAt(claims: readonly LinkClaim[], eventTime: number): string | undefined {
  let latestBefore: LinkClaim | undefined;
  let nextAfter: LinkClaim | undefined;
  for (const c of claims) {
    if (c.linkedAt >= eventTime) {
      if (nextAfter === undefined || c.linkedAt < nextAfter.linkedAt) nextAfter = c;
    } else if (latestBefore === undefined || c.linkedAt >= latestBefore.linkedAt) {
      latestBefore = c;
    }
  }
  return (nextAfter ?? latestBefore)?.userId;
}

/** The session's current owner: the latest claim (what the user index and real-time lookups show). */
export function latestClaim(claims: readonly LinkClaim[]): LinkClaim | undefined {
  let latest: LinkClaim | undefined;
  for (const c of claims) if (latest === undefined || c.linkedAt >= latest.linkedAt) latest = c;
  return latest;
}
