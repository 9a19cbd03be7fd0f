import type { Source } from '../../schemas/canonical.js';
import { type LinkClaim } from './attribution.js';

/**
 * A session -> user link, as stored in the identity table (one item per session). `userId` and
 * `linkedAt` are the latest login on the session (what the user index shows); `claims` are every
 * login on it, newest 20 (shared/identity/attribution.ts decides which one an event belongs to).
 */
export interface IdentityLink {
  sessionId: string;
  userId: string;
  /** Event time (epoch ms) of the message that carried the (latest) link. */
  linkedAt: number;
  eventId: string;
  source: Source;
  /** Absent on links written before claims were kept: the link itself is the only claim. */
  claims?: LinkClaim[];
}

export function claimsOf(link: IdentityLink | undefined): LinkClaim[] {
  if (link === undefined) return [];
  return link.claims && link.claims.length > 0 ? link.claims : [{ userId: link.userId, linkedAt: link.linkedAt }];
}

/** The port the stitcher uses; the DynamoDB adapter is shared/aws/dynamo-identity.ts. */
export interface IdentityStore {
  getLinks(sessionIds: readonly string[]): Promise<Map<string, IdentityLink>>;
  putLinks(links: readonly IdentityLink[]): Promise<void>;
  /**
   * Removes every link of a user (a deletion request) and returns the removed links.
   * `alsoSessions`: sessions just linked (this batch) that the user index, read eventually
   * consistently, may not show yet; they are read consistently and removed if they are the user's.
   * Optional so in-memory stores of tests and benchmarks need not have it; the processor
   * dead-letters a deletion request when its store cannot delete.
   */
  deleteLinksOfUser?(userId: string, alsoSessions?: readonly string[]): Promise<IdentityLink[]>;
}

export const IDENTITY_TABLE_KEYS = {
  partitionKey: 'sessionId',
  userIndex: 'byUser',
  userIndexKey: 'userId',
} as const;

/**
 * The table also holds the latest merged profile of every user and item (shared/profile/store.ts),
 * one item each under the partition key `profile#user#<userId>` / `profile#item#<itemId>`, with no
 * `userId` attribute (so the byUser index and deleteLinksOfUser never see them). Session ids with
 * this prefix are therefore never linked: a link would replace a profile.
 */
export const PROFILE_KEY_PREFIX = 'profile#';
/** Consent states, the same way (shared/consent/store.ts): `consent#user#<userId>` / `consent#session#<sessionId>`. */
export const CONSENT_KEY_PREFIX = 'consent#';

export function isReservedKey(sessionId: string): boolean {
  return sessionId.startsWith(PROFILE_KEY_PREFIX) || sessionId.startsWith(CONSENT_KEY_PREFIX);
}
