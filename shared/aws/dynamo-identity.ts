import { QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Source } from '../../schemas/canonical.js';
import { latestClaim, type LinkClaim } from '../identity/attribution.js';
import { claimsOf, IDENTITY_TABLE_KEYS, isReservedKey, type IdentityLink, type IdentityStore } from '../identity/store.js';
import { batchGetAll, batchWriteAll } from './dynamo-batch.js';

/** The identity store in DynamoDB: one item per session, a user index for deletions. */

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
