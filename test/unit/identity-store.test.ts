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
import { type IdentityLink } from '../../shared/identity/store.js';
import { DynamoIdentityStore } from '../../shared/aws/dynamo-identity.js';

const TABLE = 'identity-prod';

type Key = { sessionId: string };
type PutRequest = { PutRequest: { Item: Record<string, unknown> } };

/**
 * A DynamoDBDocumentClient stand-in: answers BatchGet/BatchWrite from a Map, and can leave part of
 * each request unprocessed for the first N calls, as DynamoDB does under load.
 */
class FakeDocumentClient {
  readonly items = new Map<string, Record<string, unknown>>();
  readonly gets: BatchGetCommandInput[] = [];
  readonly writes: BatchWriteCommandInput[] = [];
  /** How many of the next calls leave every other key/item unprocessed. */
  partialCalls = 0;
  /** Every call leaves everything unprocessed. */
  neverProcess = false;

  readonly send = (command: unknown): Promise<BatchGetCommandOutput | BatchWriteCommandOutput> => {
    const $metadata = {};
    if (command instanceof BatchGetCommand) {
      this.gets.push(command.input);
      const request = command.input.RequestItems?.[TABLE];
      const keys = (request?.Keys ?? []) as Key[];
      const [now, later] = this.split(keys);
      const Responses = { [TABLE]: now.flatMap((k) => this.items.get(k.sessionId) ?? []) };
      return Promise.resolve({ $metadata, Responses, ...(later.length > 0 && { UnprocessedKeys: { [TABLE]: { ...request, Keys: later } } }) });
    }
    if (command instanceof BatchWriteCommand) {
      this.writes.push(command.input);
      const requests = (command.input.RequestItems?.[TABLE] ?? []) as PutRequest[];
      const [now, later] = this.split(requests);
      for (const r of now) this.items.set(String(r.PutRequest.Item.sessionId), r.PutRequest.Item);
      return Promise.resolve({ $metadata, ...(later.length > 0 && { UnprocessedItems: { [TABLE]: later } }) });
    }
    return Promise.reject(new Error('unexpected command'));
  };

  private split<T>(all: T[]): [T[], T[]] {
    if (this.neverProcess) return [[], all];
    if (this.partialCalls <= 0) return [all, []];
    this.partialCalls--;
    return [all.filter((_, i) => i % 2 === 0), all.filter((_, i) => i % 2 === 1)];
  }
}

const link = (i: number): IdentityLink => ({ sessionId: `s${i}`, userId: `u${i}`, linkedAt: 1_700_000_000_000 + i, eventId: `e${i}`, source: 'segment' });

function setup() {
  const client = new FakeDocumentClient();
  const store = new DynamoIdentityStore(client as unknown as DynamoDBDocumentClient, TABLE);
  return { client, store };
}

const keysOf = (input: BatchGetCommandInput): string[] => ((input.RequestItems?.[TABLE]?.Keys ?? []) as Key[]).map((k) => k.sessionId);
const writesOf = (input: BatchWriteCommandInput): PutRequest[] => (input.RequestItems?.[TABLE] ?? []) as PutRequest[];

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('DynamoIdentityStore.getLinks', () => {
  it('reads 250 sessions in BatchGet calls of at most 100 keys, consistently, and returns the links found', async () => {
    const { client, store } = setup();
    for (let i = 0; i < 250; i += 2) client.items.set(`s${i}`, { ...link(i) });
    const ids = Array.from({ length: 250 }, (_, i) => `s${i}`);
    const found = await store.getLinks([...ids, 's1', 's2']);
    expect(client.gets.map((g) => keysOf(g).length)).toEqual([100, 100, 50]);
    expect(client.gets.flatMap(keysOf).sort()).toEqual([...ids].sort());
    expect(client.gets.every((g) => g.RequestItems?.[TABLE]?.ConsistentRead === true)).toBe(true);
    expect(found.size).toBe(125);
    expect(found.get('s4')).toEqual(link(4));
    expect(found.has('s5')).toBe(false);
  });

  it('makes no call for no sessions', async () => {
    const { client, store } = setup();
    expect((await store.getLinks([])).size).toBe(0);
    expect(client.gets).toEqual([]);
  });

  it('retries UnprocessedKeys, after a backoff, until every key is read', async () => {
    const { client, store } = setup();
    for (let i = 0; i < 8; i++) client.items.set(`s${i}`, { ...link(i) });
    client.partialCalls = 2;
    const pending = store.getLinks(Array.from({ length: 8 }, (_, i) => `s${i}`));
    await vi.advanceTimersByTimeAsync(0);
    expect(client.gets).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(99);
    expect(client.gets).toHaveLength(1);
    await vi.runAllTimersAsync();
    const found = await pending;
    expect(client.gets.map((g) => keysOf(g).length)).toEqual([8, 4, 2]);
    expect(found.size).toBe(8);
  });

  it('gives up after its attempts with an error naming the table', async () => {
    const { client, store } = setup();
    client.neverProcess = true;
    const pending = store.getLinks(['s1', 's2', 's3']);
    const failed = expect(pending).rejects.toThrow(new RegExp(`${TABLE}.*3 keys still unprocessed after 6 attempts`));
    await vi.runAllTimersAsync();
    await failed;
    expect(client.gets).toHaveLength(6);
  });

  it('skips stored items that are not links, and fills missing optional attributes', async () => {
    const { client, store } = setup();
    client.items.set('s1', { sessionId: 's1' });
    client.items.set('s2', { sessionId: 's2', userId: 'u2' });
    const found = await store.getLinks(['s1', 's2']);
    expect([...found.keys()]).toEqual(['s2']);
    expect(found.get('s2')).toEqual({ sessionId: 's2', userId: 'u2', linkedAt: 0, eventId: '', source: 'native' });
  });
});

describe('DynamoIdentityStore.putLinks', () => {
  it('writes 60 links in BatchWrite calls of at most 25 items', async () => {
    const { client, store } = setup();
    const links = Array.from({ length: 60 }, (_, i) => link(i));
    await store.putLinks(links);
    expect(client.writes.map((w) => writesOf(w).length)).toEqual([25, 25, 10]);
    expect(client.items.size).toBe(60);
    expect(client.items.get('s7')).toEqual(link(7));
  });

  it('with IDENTITY_LINK_TTL_DAYS, stamps expiresAt from the write time and treats an expired link as gone; claims round-trip', async () => {
    const client = new FakeDocumentClient();
    let now = 1_800_000_000_000;
    const store = new DynamoIdentityStore(client as unknown as DynamoDBDocumentClient, TABLE, 30, () => now);
    const claims = [{ userId: 'u0', linkedAt: 1 }, { userId: 'u1', linkedAt: 2 }];
    await store.putLinks([{ ...link(1), claims }]);
    expect(client.items.get('s1')?.expiresAt).toBe(Math.floor(now / 1000) + 30 * 86_400);
    expect((await store.getLinks(['s1'])).get('s1')?.claims).toEqual(claims);
    now += 31 * 86_400_000;
    expect((await store.getLinks(['s1'])).size).toBe(0);
    // Without a TTL nothing is stamped.
    const plain = setup();
    await plain.store.putLinks([link(2)]);
    expect(plain.client.items.get('s2')).not.toHaveProperty('expiresAt');
  });

  it('makes no call for no links', async () => {
    const { client, store } = setup();
    await store.putLinks([]);
    expect(client.writes).toEqual([]);
  });

  it('retries UnprocessedItems until every link is written', async () => {
    const { client, store } = setup();
    client.partialCalls = 3;
    const pending = store.putLinks(Array.from({ length: 10 }, (_, i) => link(i)));
    await vi.runAllTimersAsync();
    await pending;
    expect(client.writes.map((w) => writesOf(w).length)).toEqual([10, 5, 2, 1]);
    expect(client.items.size).toBe(10);
  });

  it('gives up after its attempts with an error naming the table', async () => {
    const { client, store } = setup();
    client.neverProcess = true;
    const pending = store.putLinks([link(1), link(2)]);
    const failed = expect(pending).rejects.toThrow(new RegExp(`${TABLE}.*2 writes still unprocessed after 6 attempts`));
    await vi.runAllTimersAsync();
    await failed;
    expect(client.writes).toHaveLength(6);
  });

  it('passes a client error through', async () => {
    const failing = new DynamoIdentityStore({ send: () => Promise.reject(new Error('ProvisionedThroughputExceeded')) } as unknown as DynamoDBDocumentClient, TABLE);
    await expect(failing.putLinks([link(1)])).rejects.toThrow('ProvisionedThroughputExceeded');
  });
});
