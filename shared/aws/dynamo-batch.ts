import { setTimeout as sleep } from 'node:timers/promises';
import { BatchGetCommand, BatchWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { chunk } from '../util/batching.js';

/**
 * BatchGetItem / BatchWriteItem over any number of keys or requests: split to the API's limits
 * (100 keys, 25 writes per call), the chunks sent concurrently, and what DynamoDB leaves
 * unprocessed (UnprocessedKeys / UnprocessedItems, under load) retried with backoff. The SDK has
 * already retried the calls themselves; a remainder still unprocessed after the last attempt is an
 * error naming the table, so the caller fails its batch and Lambda retries it.
 */

export const GET_CHUNK = 100;
export const WRITE_CHUNK = 25;
export const UNPROCESSED_ATTEMPTS = 6;

export type DynamoKey = Record<string, unknown>;
export type WriteRequest = { PutRequest: { Item: Record<string, unknown> } } | { DeleteRequest: { Key: DynamoKey } };


/** Every item found for the keys (strongly consistent reads unless told otherwise), in no particular order. */
export async function batchGetAll(
  client: DynamoDBDocumentClient,
  tableName: string,
  keys: readonly DynamoKey[],
  options: { consistentRead?: boolean } = {},
): Promise<Record<string, unknown>[]> {
  const found: Record<string, unknown>[] = [];
  await Promise.all(
    chunk(keys, GET_CHUNK).map(async (group) => {
      let pending: DynamoKey[] = group;
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt >= UNPROCESSED_ATTEMPTS) throw new Error(`table ${tableName}: ${pending.length} keys still unprocessed after ${attempt} attempts`);
        if (attempt > 0) await sleep(50 * 2 ** attempt);
        const out = await client.send(
          new BatchGetCommand({ RequestItems: { [tableName]: { Keys: pending, ConsistentRead: options.consistentRead ?? true } } }),
        );
        found.push(...(out.Responses?.[tableName] ?? []));
        pending = (out.UnprocessedKeys?.[tableName]?.Keys as DynamoKey[] | undefined) ?? [];
      }
    }),
  );
  return found;
}

/** Puts and deletes, 25 per call; `what` names them in the error ("writes", "deletes"). */
export async function batchWriteAll(
  client: DynamoDBDocumentClient,
  tableName: string,
  requests: readonly WriteRequest[],
  what = 'writes',
): Promise<void> {
  await Promise.all(
    chunk(requests, WRITE_CHUNK).map(async (group) => {
      let pending: WriteRequest[] = group;
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (attempt >= UNPROCESSED_ATTEMPTS) throw new Error(`table ${tableName}: ${pending.length} ${what} still unprocessed after ${attempt} attempts`);
        if (attempt > 0) await sleep(50 * 2 ** attempt);
        const out = await client.send(new BatchWriteCommand({ RequestItems: { [tableName]: pending } }));
        pending = (out.UnprocessedItems?.[tableName] as WriteRequest[] | undefined) ?? [];
      }
    }),
  );
}
