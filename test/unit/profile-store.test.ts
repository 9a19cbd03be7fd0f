import {
  BatchGetCommand,
  BatchWriteCommand,
  type BatchGetCommandInput,
  type BatchGetCommandOutput,
  type BatchWriteCommandInput,
  type BatchWriteCommandOutput,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DynamoIdentityStore } from '../../shared/aws/dynamo-identity.js';
import type { Profile } from '../../shared/profile/profile.js';
import { profileTableKey } from '../../shared/profile/store.js';
import { DynamoProfileStore } from '../../shared/aws/dynamo-profiles.js';

const TABLE = 'identity-prod';

type Key = { sessionId: string };
type WriteRequest = { PutRequest?: { Item: Record<string, unknown> }; DeleteRequest?: { Key: Key } };

/** BatchGet/BatchWrite (puts and deletes) from a Map; the first N calls leave every other key/request unprocessed. */
class FakeDocumentClient {
  readonly items = new Map<string, Record<string, unknown>>();
  readonly gets: BatchGetCommandInput[] = [];
  readonly writes: BatchWriteCommandInput[] = [];
  partialCalls = 0;

  readonly send = (command: unknown): Promise<BatchGetCommandOutput | BatchWriteCommandOutput> => {
    const $metadata = {};
    if (command instanceof BatchGetCommand) {
      this.gets.push(command.input);
      const request = command.input.RequestItems?.[TABLE];
      const [now, later] = this.split((request?.Keys ?? []) as Key[]);
      const Responses = { [TABLE]: now.flatMap((k) => this.items.get(k.sessionId) ?? []) };
      return Promise.resolve({ $metadata, Responses, ...(later.length > 0 && { UnprocessedKeys: { [TABLE]: { ...request, Keys: later } } }) });
    }
    if (command instanceof BatchWriteCommand) {
      this.writes.push(command.input);
      const [now, later] = this.split((command.input.RequestItems?.[TABLE] ?? []) as WriteRequest[]);
      for (const r of now) {
        if (r.PutRequest) this.items.set(String(r.PutRequest.Item.sessionId), r.PutRequest.Item);
        if (r.DeleteRequest) this.items.delete(r.DeleteRequest.Key.sessionId);
      }
      return Promise.resolve({ $metadata, ...(later.length > 0 && { UnprocessedItems: { [TABLE]: later } }) });
    }
    return Promise.reject(new Error('unexpected command'));
  };

  private split<T>(all: T[]): [T[], T[]] {
    if (this.partialCalls <= 0) return [all, []];
    this.partialCalls--;
    return [all.filter((_, i) => i % 2 === 0), all.filter((_, i) => i % 2 === 1)];
  }
}

function setup() {
  const client = new FakeDocumentClient();
  const store = new DynamoProfileStore(client as unknown as DynamoDBDocumentClient, TABLE);
  return { client, store };
}

const T = 1_790_000_000_000;
const user = (i: number): Profile => ({ kind: 'user', id: `u${i}`, properties: { membershipType: { value: 'gold', at: T + i }, country: { value: 'DE', at: T } }, updatedAt: T + i });
const keysOf = (input: BatchGetCommandInput): string[] => ((input.RequestItems?.[TABLE]?.Keys ?? []) as Key[]).map((k) => k.sessionId);

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('DynamoProfileStore', () => {
  it('keeps profiles in the identity table under profile#<kind>#<id>, without a userId attribute (the byUser index stays links only)', async () => {
    const { client, store } = setup();
    await store.putProfiles([user(1), { kind: 'item', id: 'sku-1', properties: { price: { value: 1e300, at: T } }, updatedAt: T }]);
    expect([...client.items.keys()].sort()).toEqual(['profile#item#sku-1', 'profile#user#u1']);
    expect(client.items.get('profile#user#u1')).toEqual({
      sessionId: 'profile#user#u1',
      profileKind: 'user',
      profileId: 'u1',
      updatedAt: T + 1,
      properties: JSON.stringify(user(1).properties),
    });
    expect(client.items.get('profile#user#u1')).not.toHaveProperty('userId');
    // Read back exactly, doubles beyond DynamoDB's number range included.
    const found = await store.getProfiles([{ kind: 'user', id: 'u1' }, { kind: 'item', id: 'sku-1' }, { kind: 'user', id: 'nobody' }]);
    expect(found.get('user#u1')).toEqual(user(1));
    expect(found.get('item#sku-1')?.properties.price?.value).toBe(1e300);
    expect(found.size).toBe(2);
  });

  it('reads 250 profiles in one consistent BatchGet set of at most 100 keys per call, and writes them 25 per call', async () => {
    const { client, store } = setup();
    const profiles = Array.from({ length: 250 }, (_, i) => user(i));
    await store.putProfiles(profiles);
    expect(client.writes.map((w) => (w.RequestItems?.[TABLE] ?? []).length)).toEqual(Array.from({ length: 10 }, () => 25));
    const found = await store.getProfiles([...profiles, user(3)].map(({ kind, id }) => ({ kind, id })));
    expect(client.gets.map((g) => keysOf(g).length)).toEqual([100, 100, 50]);
    expect(client.gets.every((g) => g.RequestItems?.[TABLE]?.ConsistentRead === true)).toBe(true);
    expect(found.size).toBe(250);
  });

  it('makes no call for no keys or records', async () => {
    const { client, store } = setup();
    expect((await store.getProfiles([])).size).toBe(0);
    await store.putProfiles([]);
    await store.deleteProfiles([]);
    expect([...client.gets, ...client.writes]).toEqual([]);
  });

  it('retries UnprocessedKeys and UnprocessedItems with backoff until all are done', async () => {
    const { client, store } = setup();
    client.partialCalls = 2;
    const writing = store.putProfiles(Array.from({ length: 8 }, (_, i) => user(i)));
    await vi.runAllTimersAsync();
    await writing;
    expect(client.writes.map((w) => (w.RequestItems?.[TABLE] ?? []).length)).toEqual([8, 4, 2]);
    client.partialCalls = 2;
    const reading = store.getProfiles(Array.from({ length: 8 }, (_, i) => ({ kind: 'user' as const, id: `u${i}` })));
    await vi.runAllTimersAsync();
    expect((await reading).size).toBe(8);
    expect(client.gets.map((g) => keysOf(g).length)).toEqual([8, 4, 2]);
  });

  it('deletes profiles, absent ones included', async () => {
    const { client, store } = setup();
    await store.putProfiles([user(1), user(2)]);
    await store.deleteProfiles([{ kind: 'user', id: 'u1' }, { kind: 'user', id: 'u9' }]);
    expect([...client.items.keys()]).toEqual(['profile#user#u2']);
  });

  it('treats anything unreadable at a profile key as no record', async () => {
    const { client, store } = setup();
    client.items.set('profile#user#a', { sessionId: 'profile#user#a', userId: 'x', linkedAt: 1 });
    client.items.set('profile#user#b', { sessionId: 'profile#user#b', profileKind: 'user', profileId: 'b', updatedAt: T, properties: '{not json' });
    client.items.set('profile#user#c', { sessionId: 'profile#user#c', profileKind: 'user', profileId: 'c', updatedAt: T, properties: '{"membershipType":{"value":{"x":1},"at":1},"country":{"value":"DE","at":2}}' });
    const found = await store.getProfiles(['a', 'b', 'c'].map((id) => ({ kind: 'user' as const, id })));
    expect([...found.keys()]).toEqual(['user#c']);
    expect(found.get('user#c')?.properties).toEqual({ country: { value: 'DE', at: 2 } });
  });

  it('shares the table with links without either reading the other: a session spelled like a profile key is never linked', async () => {
    const { client, store } = setup();
    const links = new DynamoIdentityStore(client as unknown as DynamoDBDocumentClient, TABLE);
    await store.putProfiles([user(1)]);
    const key = profileTableKey({ kind: 'user', id: 'u1' });
    await links.putLinks([{ sessionId: key, userId: 'attacker', linkedAt: T, eventId: 'e', source: 'segment' }]);
    expect((await links.getLinks([key])).size).toBe(0);
    expect((await store.getProfiles([{ kind: 'user', id: 'u1' }])).get('user#u1')).toEqual(user(1));
  });
});
