import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { IDENTITY_TABLE_KEYS } from '../identity/store.js';
import { profileKeyOf, type Profile, type ProfileKey, type ProfileKind, type ProfileValue } from '../profile/profile.js';
import { profileTableKey, type ProfileStore } from '../profile/store.js';
import { batchGetAll, batchWriteAll } from './dynamo-batch.js';

/**
 * Profiles in the identity table, next to the session links (see PROFILE_KEY_PREFIX): one item per
 * user or item, read with one BatchGetItem and written with one BatchWriteItem set per batch.
 *
 * No conditional writes: item and user messages are partitioned by itemId/userId on the stream
 * (partitionKeyOf), so one shard, and so one processor invocation at a time, owns each record;
 * a retried batch merges the same updates again, which changes nothing (mergeProfile keeps the
 * newest value per key). The delete-user tool racing a live update is the one exception, and the
 * deletion registry still keeps the user out of every export.
 *
 * The properties are stored as one JSON string: DynamoDB numbers cannot hold every double a
 * `double` field accepts (their exponent range is smaller), and JSON keeps them exactly.
 */
export class DynamoProfileStore implements ProfileStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async getProfiles(keys: readonly ProfileKey[]): Promise<Map<string, Profile>> {
    const tableKeys = [...new Set(keys.map(profileTableKey))].map((k) => ({ [IDENTITY_TABLE_KEYS.partitionKey]: k }));
    const found = new Map<string, Profile>();
    for (const item of await batchGetAll(this.client, this.tableName, tableKeys)) {
      const profile = toProfile(item);
      if (profile) found.set(profileKeyOf(profile), profile);
    }
    return found;
  }

  async putProfiles(profiles: readonly Profile[]): Promise<void> {
    const requests = profiles.map((p) => ({
      PutRequest: {
        Item: {
          [IDENTITY_TABLE_KEYS.partitionKey]: profileTableKey(p),
          profileKind: p.kind,
          profileId: p.id,
          updatedAt: p.updatedAt,
          properties: JSON.stringify(p.properties),
        },
      },
    }));
    await batchWriteAll(this.client, this.tableName, requests);
  }

  async deleteProfiles(keys: readonly ProfileKey[]): Promise<void> {
    const requests = [...new Set(keys.map(profileTableKey))].map((k) => ({ DeleteRequest: { Key: { [IDENTITY_TABLE_KEYS.partitionKey]: k } } }));
    await batchWriteAll(this.client, this.tableName, requests, 'deletes');
  }
}

const KINDS: readonly string[] = ['user', 'item'] satisfies ProfileKind[];

/** A stored item as a profile; anything else at such a key (unreadable, foreign) counts as no record. */
function toProfile(item: Record<string, unknown>): Profile | undefined {
  const { profileKind, profileId, updatedAt, properties } = item;
  if (typeof profileKind !== 'string' || !KINDS.includes(profileKind) || typeof profileId !== 'string') return undefined;
  if (typeof updatedAt !== 'number' || typeof properties !== 'string') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(properties);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const values = new Map<string, ProfileValue>();
  for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
    const { value, at } = (entry ?? {}) as Partial<ProfileValue>;
    const scalar = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
    if (scalar && typeof at === 'number') values.set(name, { value, at });
  }
  return { kind: profileKind as ProfileKind, id: profileId, properties: Object.fromEntries(values), updatedAt };
}
