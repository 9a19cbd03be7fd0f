import { GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mergeStored, sameConsent, type ConsentFlag, type StoredConsent } from '../consent/policy.js';
import { consentKeyOf, consentTableKey, type ConsentChange, type ConsentKey, type ConsentStore, type ConsentUpdate } from '../consent/store.js';
import { IDENTITY_TABLE_KEYS } from '../identity/store.js';
import { batchGetAll, batchWriteAll } from './dynamo-batch.js';

/** Writes that lost a race are re-read and merged again this many times before the batch fails. */
export const CONSENT_WRITE_ATTEMPTS = 8;
const WRITE_CONCURRENCY = 16;

interface StoredItem {
  consent: StoredConsent | undefined;
  /** Revision the conditional write expects; undefined: no item (or none written by this store). */
  rev: number | undefined;
}

/**
 * Read-merge-write, each write a PutItem conditioned on the revision read (or on no item).
 * Why not BatchWriteItem: it takes no conditions, and a user's consent arrives on several shards
 * at once (each session's events have their own partition key), so an unconditional write could
 * put back an older state. Why not one UpdateItem per signal conditioned on time: a signal states
 * several keys, some newer and some older than what is stored, and one condition cannot take the
 * newer part only. A lost race re-reads and merges again, which is safe because the merge is
 * order-free (latest per key, ties to the denial). Keys whose merged state is unchanged (the
 * common case: every event repeats the same consent object) are not written at all.
 */
export class DynamoConsentStore implements ConsentStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
    /** Days a session's state lives after its last change (DynamoDB TTL on expiresAt), as IDENTITY_LINK_TTL_DAYS for links; 0: kept. Users' states never expire. */
    private readonly sessionTtlDays = 0,
    private readonly now: () => number = Date.now,
  ) {}

  async getConsents(keys: readonly ConsentKey[]): Promise<Map<string, StoredConsent>> {
    const unique = new Map(keys.map((k) => [consentTableKey(k), k]));
    const tableKeys = [...unique.keys()].map((k) => ({ [IDENTITY_TABLE_KEYS.partitionKey]: k }));
    const found = new Map<string, StoredConsent>();
    for (const item of await batchGetAll(this.client, this.tableName, tableKeys)) {
      const key = unique.get(String(item[IDENTITY_TABLE_KEYS.partitionKey]));
      const { consent } = this.toStored(item);
      if (key && consent) found.set(consentKeyOf(key), consent);
    }
    return found;
  }

  async putConsents(updates: readonly ConsentUpdate[]): Promise<ConsentChange[]> {
    // Several updates of one key in a batch: merged first, one write.
    const byKey = new Map<string, ConsentUpdate>();
    for (const u of updates) {
      const k = consentTableKey(u);
      const prev = byKey.get(k);
      byKey.set(k, { kind: u.kind, id: u.id, consent: mergeStored(prev?.consent, u.consent)! });
    }
    if (byKey.size === 0) return [];
    const current = new Map<string, StoredItem>();
    const tableKeys = [...byKey.keys()].map((k) => ({ [IDENTITY_TABLE_KEYS.partitionKey]: k }));
    for (const item of await batchGetAll(this.client, this.tableName, tableKeys)) {
      current.set(String(item[IDENTITY_TABLE_KEYS.partitionKey]), this.toStored(item));
    }
    const changes: ConsentChange[] = [];
    const pending = [...byKey.entries()];
    const worker = async () => {
      for (let next = pending.shift(); next; next = pending.shift()) {
        const [tableKey, update] = next;
        const change = await this.writeOne(tableKey, update, current.get(tableKey) ?? { consent: undefined, rev: undefined });
        if (change) changes.push(change);
      }
    };
    await Promise.all(Array.from({ length: Math.min(WRITE_CONCURRENCY, pending.length) }, worker));
    return changes;
  }

  async deleteConsentsOf(userId: string, sessionIds: readonly string[]): Promise<void> {
    const keys = new Set([consentTableKey({ kind: 'user', id: userId }), ...sessionIds.map((id) => consentTableKey({ kind: 'session', id }))]);
    const requests = [...keys].map((k) => ({ DeleteRequest: { Key: { [IDENTITY_TABLE_KEYS.partitionKey]: k } } }));
    await batchWriteAll(this.client, this.tableName, requests, 'deletes');
  }

  private async writeOne(tableKey: string, update: ConsentUpdate, read: StoredItem): Promise<ConsentChange | undefined> {
    let stored = read;
    for (let attempt = 0; attempt < CONSENT_WRITE_ATTEMPTS; attempt++) {
      const after = mergeStored(stored.consent, update.consent)!;
      if (sameConsent(stored.consent, after)) return undefined;
      const expiresAt = update.kind === 'session' && this.sessionTtlDays > 0 ? Math.floor(this.now() / 1000) + this.sessionTtlDays * 86_400 : undefined;
      try {
        await this.client.send(
          new PutCommand({
            TableName: this.tableName,
            Item: {
              [IDENTITY_TABLE_KEYS.partitionKey]: tableKey,
              consentKind: update.kind,
              consentId: update.id,
              // JSON: category and purpose names are arbitrary strings, and one parse checks the whole state.
              consent: JSON.stringify(after),
              rev: (stored.rev ?? 0) + 1,
              ...(expiresAt !== undefined && { expiresAt }),
            },
            ConditionExpression: stored.rev === undefined ? 'attribute_not_exists(#rev)' : '#rev = :rev',
            ExpressionAttributeNames: { '#rev': 'rev' },
            ...(stored.rev !== undefined && { ExpressionAttributeValues: { ':rev': stored.rev } }),
          }),
        );
        return { key: { kind: update.kind, id: update.id }, before: stored.consent, after };
      } catch (error) {
        if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
        const got = await this.client.send(
          new GetCommand({ TableName: this.tableName, Key: { [IDENTITY_TABLE_KEYS.partitionKey]: tableKey }, ConsistentRead: true }),
        );
        stored = got.Item ? this.toStored(got.Item) : { consent: undefined, rev: undefined };
      }
    }
    throw new Error(`table ${this.tableName}: consent of ${update.kind} still contended after ${CONSENT_WRITE_ATTEMPTS} attempts`);
  }

  /** An item as a state; an expired session state (DynamoDB removes them lazily) or an unreadable one is none, but its revision is kept for the next write's condition. */
  private toStored(item: Record<string, unknown>): StoredItem {
    const rev = typeof item.rev === 'number' ? item.rev : undefined;
    if (typeof item.expiresAt === 'number' && item.expiresAt <= Math.floor(this.now() / 1000)) return { consent: undefined, rev };
    return { consent: parseStoredConsent(item.consent), rev };
  }
}

function toFlag(value: unknown): ConsentFlag | undefined {
  const { value: v, at } = (value ?? {}) as Partial<ConsentFlag>;
  return typeof v === 'boolean' && typeof at === 'number' ? { value: v, at } : undefined;
}

function toFlags(value: unknown): Record<string, ConsentFlag> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return {};
  const out: Record<string, ConsentFlag> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const flag = toFlag(v);
    if (flag) out[k] = flag;
  }
  return out;
}

/** A stored JSON state; anything unreadable counts as no state (as toProfile does for profiles). */
export function parseStoredConsent(json: unknown): StoredConsent | undefined {
  if (typeof json !== 'string') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
  const { categories, purposes, dataSaleOptOut } = parsed as Record<string, unknown>;
  const sale = toFlag(dataSaleOptOut);
  return { categories: toFlags(categories), purposes: toFlags(purposes), ...(sale && { dataSaleOptOut: sale }) };
}
