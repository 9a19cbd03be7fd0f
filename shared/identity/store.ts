import { QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Source } from '../../schemas/canonical.js';
import { batchGetAll, batchWriteAll } from '../aws/dynamo-batch.js';

/** A session -> user link, as stored in the identity table (one item per session). */
export interface IdentityLink {
  sessionId: string;
  userId: string;
  /** Event time (epoch ms) of the message that carried the link. */
  linkedAt: number;
  eventId: string;
  source: Source;
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

export function isReservedKey(sessionId: string): boolean {
  return sessionId.startsWith(PROFILE_KEY_PREFIX);
}

export class DynamoIdentityStore implements IdentityStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async getLinks(sessionIds: readonly string[]): Promise<Map<string, IdentityLink>> {
    const found = new Map<string, IdentityLink>();
    const keys = [...new Set(sessionIds)].filter((sessionId) => !isReservedKey(sessionId)).map((sessionId) => ({ sessionId }));
    for (const item of await batchGetAll(this.client, this.tableName, keys)) {
      const link = toLink(item);
      if (link) found.set(link.sessionId, link);
    }
    return found;
  }

  async putLinks(links: readonly IdentityLink[]): Promise<void> {
    // A session id spelled like a profile key would replace that profile: such sessions stay unlinked.
    const requests = links.filter((link) => !isReservedKey(link.sessionId)).map((link) => ({ PutRequest: { Item: { ...link } } }));
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
    const requests = removed.map((link) => ({ DeleteRequest: { Key: { [IDENTITY_TABLE_KEYS.partitionKey]: link.sessionId } } }));
    await batchWriteAll(this.client, this.tableName, requests, 'deletes');
    return removed;
  }
}

function toLink(item: Record<string, unknown>): IdentityLink | undefined {
  const { sessionId, userId, linkedAt, eventId, source } = item;
  if (typeof sessionId !== 'string' || typeof userId !== 'string') return undefined;
  return {
    sessionId,
    userId,
    linkedAt: typeof linkedAt === 'number' ? linkedAt : 0,
    eventId: typeof eventId === 'string' ? eventId : '',
    source: (typeof source === 'string' ? source : 'native') as Source,
  };
}
