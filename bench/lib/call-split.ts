import { PutEventsCommand, PutItemsCommand, PutUsersCommand, type PersonalizeEventsClient } from '@aws-sdk/client-personalize-events';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { BatchGetCommand, BatchWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { IDENTITY_TABLE_KEYS } from '../../shared/identity/store.js';

/**
 * Who each counted AWS call was for, when one pipeline feeds several targets (docs/targets.md):
 * the in-memory clients (fake-aws.ts) count calls per operation; these pass-through wrappers,
 * put between the product's adapters and those clients, also count them per scope — a target's
 * name, or `identity` for the session links every target shares — and per kind of call. They
 * read the request only; what the client answers is untouched.
 */

export type SplitKind =
  | 'PutEvents'
  | 'PutItems'
  | 'PutUsers'
  | 'BatchGetItem'
  | 'BatchWriteItem'
  | 'keysRead'
  | 'archive'
  | 'forwarded';

/** The scope of the identity table's session links (shared by every target). */
export const IDENTITY_SCOPE = 'identity';

export class CallSplit {
  readonly counts = new Map<string, number>();

  add(scope: string, kind: SplitKind, n = 1): void {
    const key = `${scope}\u0000${kind}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }

  get(scope: string, kind: SplitKind): number {
    return this.counts.get(`${scope}\u0000${kind}`) ?? 0;
  }

  /** The sum over every scope but `except`. */
  total(kind: SplitKind, except?: string): number {
    let n = 0;
    for (const [key, value] of this.counts) {
      const [scope, k] = key.split('\u0000');
      if (k === kind && scope !== except) n += value;
    }
    return n;
  }
}

interface Sends {
  send(command: unknown): Promise<unknown>;
}

function passThrough(inner: Sends, count: (command: unknown) => void): Sends {
  return {
    send(command: unknown) {
      count(command);
      return inner.send(command);
    },
  };
}

/** Personalize: the target is the call's tracking id (PutEvents) or dataset (PutItems, PutUsers). */
export function splitPersonalize(inner: PersonalizeEventsClient, split: CallSplit, targetOf: (trackingIdOrDatasetArn: string | undefined) => string): PersonalizeEventsClient {
  return passThrough(inner, (command) => {
    if (command instanceof PutEventsCommand) split.add(targetOf(command.input.trackingId), 'PutEvents');
    else if (command instanceof PutItemsCommand) split.add(targetOf(command.input.datasetArn), 'PutItems');
    else if (command instanceof PutUsersCommand) split.add(targetOf(command.input.datasetArn), 'PutUsers');
  }) as unknown as PersonalizeEventsClient;
}

/**
 * DynamoDB: each call counted for the one scope `scopeOf` gives its keys (the table's partition
 * key): the identity store's session ids are `identity`'s; a profile store's keys carry the
 * target (see profileScope). A call whose keys span scopes would be a bench error: it throws.
 */
export function splitDynamo(inner: DynamoDBDocumentClient, split: CallSplit, scopeOf: (key: string) => string): DynamoDBDocumentClient {
  const keyOf = (item: Record<string, unknown> | undefined) => String(item?.[IDENTITY_TABLE_KEYS.partitionKey]);
  const one = (keys: readonly string[]): string => {
    const scopes = new Set(keys.map(scopeOf));
    if (scopes.size !== 1) throw new Error(`call split: one DynamoDB call for ${scopes.size} scopes (${[...scopes].join(', ')})`);
    return [...scopes][0]!;
  };
  return passThrough(inner, (command) => {
    if (command instanceof BatchGetCommand) {
      const keys = Object.values(command.input.RequestItems ?? {}).flatMap((r) => (r.Keys ?? []).map(keyOf));
      const scope = one(keys);
      split.add(scope, 'BatchGetItem');
      split.add(scope, 'keysRead', keys.length);
    } else if (command instanceof BatchWriteCommand) {
      const keys = Object.values(command.input.RequestItems ?? {}).flatMap((requests) => requests.map((r) => keyOf(r.PutRequest?.Item ?? r.DeleteRequest?.Key)));
      split.add(one(keys), 'BatchWriteItem');
    }
  }) as unknown as DynamoDBDocumentClient;
}

/** A profile record's target: `profile#<kind>#<target>\u0001<id>` for a target other than the default (targetProfileStore). */
export function profileScope(defaultTarget: string): (key: string) => string {
  return (key) => {
    const separator = key.indexOf('\u0001');
    if (separator < 0) return defaultTarget;
    const head = key.slice(0, separator);
    return head.slice(head.lastIndexOf('#') + 1);
  };
}

/** S3: `targets/<name>/...` is that target's, anything else the default's; archive or forwarded record by the key's folder. */
export function splitS3(inner: S3Client, split: CallSplit, defaultTarget: string): S3Client {
  return passThrough(inner, (command) => {
    if (!(command instanceof PutObjectCommand)) return;
    const key = command.input.Key ?? '';
    const rooted = /^targets\/([^/]+)\/(.*)$/.exec(key);
    const target = rooted ? rooted[1]! : defaultTarget;
    const rest = rooted ? rooted[2]! : key;
    split.add(target, rest.startsWith('forwarded/') ? 'forwarded' : 'archive');
  }) as unknown as S3Client;
}
