import { QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Source } from '../../schemas/canonical.js';
import { batchGetAll, batchWriteAll } from '../aws/dynamo-batch.js';
import { latestClaim, type LinkClaim } from './attribution.js';

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

/** The port the stitcher uses; the DynamoDB adapter below is the production one. */
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

export class DynamoIdentityStore implements IdentityStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
    /** IDENTITY_LINK_TTL_DAYS: links expire this long after their last write; 0 keeps them until the user is deleted. */
    private readonly linkTtlDays = 0,
    private readonly now: () => number = Date.now,
  ) {}

  async getLinks(sessionIds: readonly string[]): Promise<Map<string, IdentityLink>> {
    const found = new Map<string, IdentityLink>();
    const keys = [...new Set(sessionIds)].filter((sessionId) => !isReservedKey(sessionId)).map((sessionId) => ({ sessionId }));
    const nowSeconds = Math.floor(this.now() / 1000);
    for (const item of await batchGetAll(this.client, this.tableName, keys)) {
      // DynamoDB removes expired items lazily (within days): an expired link is already gone.
      if (typeof item.expiresAt === 'number' && item.expiresAt <= nowSeconds) continue;
      const link = toLink(item);
      if (link) found.set(link.sessionId, link);
    }
    return found;
  }

  async putLinks(links: readonly IdentityLink[]): Promise<void> {
    // A session id spelled like a profile key would replace that profile: such sessions stay unlinked.
    // Expiry counts from the write, not the login: a replayed old link must not arrive expired.
    const expiresAt = this.linkTtlDays > 0 ? Math.floor(this.now() / 1000) + this.linkTtlDays * 86_400 : undefined;
    const requests = links
      .filter((link) => !isReservedKey(link.sessionId))
      .map((link) => ({ PutRequest: { Item: { ...link, ...(expiresAt !== undefined && { expiresAt }) } } }));
    await batchWriteAll(this.client, this.tableName, requests);
  }

  async deleteLinksOfUser(userId: string, alsoSessions: readonly string[] = []): Promise<IdentityLink[]> {
    const owned = new Map<string, IdentityLink>();
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: IDENTITY_TABLE_KEYS.userIndex,
          KeyConditionExpression: '#user = :user',
          ExpressionAttributeNames: { '#user': IDENTITY_TABLE_KEYS.userIndexKey },
          ExpressionAttributeValues: { ':user': userId },
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) {
        const link = toLink(item);
        if (link?.userId === userId) owned.set(link.sessionId, link);
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    const unseen = alsoSessions.filter((s) => !owned.has(s));
    if (unseen.length > 0) {
      for (const link of (await this.getLinks(unseen)).values()) if (link.userId === userId) owned.set(link.sessionId, link);
    }
    const removed = [...owned.values()];
    // A session other people also logged in on keeps their claims; the latest of those owns it now.
    // (A session where the user is only an older claim is not in the user index: that claim can
    // only attribute events from before the later login, and exports drop the deleted user's rows.)
    const kept: IdentityLink[] = [];
    const deletes: { DeleteRequest: { Key: Record<string, string> } }[] = [];
    for (const link of removed) {
      const others = claimsOf(link).filter((c) => c.userId !== userId);
      const owner = latestClaim(others);
      if (owner) kept.push({ ...link, userId: owner.userId, linkedAt: owner.linkedAt, claims: others });
      else deletes.push({ DeleteRequest: { Key: { [IDENTITY_TABLE_KEYS.partitionKey]: link.sessionId } } });
    }
    await batchWriteAll(this.client, this.tableName, deletes, 'deletes');
    if (kept.length > 0) await this.putLinks(kept);
    return removed;
  }
}

function toClaims(value: unknown): LinkClaim[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const claims = value.flatMap((c: unknown) => {
    const { userId, linkedAt } = (c ?? {}) as Partial<LinkClaim>;
    return typeof userId === 'string' && typeof linkedAt === 'number' ? [{ userId, linkedAt }] : [];
  });
  return claims.length > 0 ? claims : undefined;
}

function toLink(item: Record<string, unknown>): IdentityLink | undefined {
  const { sessionId, userId, linkedAt, eventId, source } = item;
  if (typeof sessionId !== 'string' || typeof userId !== 'string') return undefined;
  const claims = toClaims(item.claims);
  return {
    sessionId,
    userId,
    linkedAt: typeof linkedAt === 'number' ? linkedAt : 0,
    eventId: typeof eventId === 'string' ? eventId : '',
    source: (typeof source === 'string' ? source : 'native') as Source,
    ...(claims && { claims }),
  };
}
