import { BatchGetCommand, BatchWriteCommand, QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { Source } from '../../schemas/canonical.js';

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

/** BatchGetItem takes 100 keys, BatchWriteItem 25 items per call (DynamoDB API limits). */
const GET_CHUNK = 100;
const WRITE_CHUNK = 25;
/** Unprocessed keys/items are retried with backoff; the SDK already retried the calls themselves. */
const UNPROCESSED_ATTEMPTS = 6;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export class DynamoIdentityStore implements IdentityStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async getLinks(sessionIds: readonly string[]): Promise<Map<string, IdentityLink>> {
    const found = new Map<string, IdentityLink>();
    await Promise.all(
      chunk([...new Set(sessionIds)], GET_CHUNK).map(async (ids) => {
        let keys: Record<string, unknown>[] = ids.map((sessionId) => ({ sessionId }));
        for (let attempt = 0; keys.length > 0; attempt++) {
          if (attempt >= UNPROCESSED_ATTEMPTS) throw new Error(`table ${this.tableName}: ${keys.length} keys still unprocessed after ${attempt} attempts`);
          if (attempt > 0) await sleep(50 * 2 ** attempt);
          const out = await this.client.send(
            new BatchGetCommand({ RequestItems: { [this.tableName]: { Keys: keys, ConsistentRead: true } } }),
          );
          for (const item of out.Responses?.[this.tableName] ?? []) {
            const link = toLink(item);
            if (link) found.set(link.sessionId, link);
          }
          keys = (out.UnprocessedKeys?.[this.tableName]?.Keys as Record<string, unknown>[] | undefined) ?? [];
        }
      }),
    );
    return found;
  }

  async putLinks(links: readonly IdentityLink[]): Promise<void> {
    await Promise.all(
      chunk(links, WRITE_CHUNK).map(async (group) => {
        let requests = group.map((link) => ({ PutRequest: { Item: { ...link } } }));
        for (let attempt = 0; requests.length > 0; attempt++) {
          if (attempt >= UNPROCESSED_ATTEMPTS) throw new Error(`table ${this.tableName}: ${requests.length} writes still unprocessed after ${attempt} attempts`);
          if (attempt > 0) await sleep(50 * 2 ** attempt);
          const out = await this.client.send(new BatchWriteCommand({ RequestItems: { [this.tableName]: requests } }));
          requests = (out.UnprocessedItems?.[this.tableName] as typeof requests | undefined) ?? [];
        }
      }),
    );
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
    await Promise.all(
      chunk(removed, WRITE_CHUNK).map(async (group) => {
        let requests = group.map((link) => ({ DeleteRequest: { Key: { [IDENTITY_TABLE_KEYS.partitionKey]: link.sessionId } } }));
        for (let attempt = 0; requests.length > 0; attempt++) {
          if (attempt >= UNPROCESSED_ATTEMPTS) throw new Error(`table ${this.tableName}: ${requests.length} deletes still unprocessed after ${attempt} attempts`);
          if (attempt > 0) await sleep(50 * 2 ** attempt);
          const out = await this.client.send(new BatchWriteCommand({ RequestItems: { [this.tableName]: requests } }));
          requests = (out.UnprocessedItems?.[this.tableName] as typeof requests | undefined) ?? [];
        }
      }),
    );
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
