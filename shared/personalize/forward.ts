import type { Event as PersonalizeEvent, Item as PersonalizeItem, PutEventsCommandInput, PutItemsCommandInput, PutUsersCommandInput, User as PersonalizeUser } from '@aws-sdk/client-personalize-events';
import { chunk } from '../util/batching.js';
import type { Entry } from '../entry.js';
import { knownUserSessionId } from './put-session.js';
import { PERSONALIZE_LIMITS } from './requests.js';

/** The port the forwarder uses; the SDK adapter is shared/aws/personalize.ts. */
export interface PersonalizeSender {
  putEvents(input: PutEventsCommandInput): Promise<void>;
  putItems(input: PutItemsCommandInput): Promise<void>;
  putUsers(input: PutUsersCommandInput): Promise<void>;
}

/** Personalize's verdict on bad data: retrying cannot help, so it is isolated and dead-lettered. */
export function isInvalidInput(error: unknown): boolean {
  return error instanceof Error && error.name === 'InvalidInputException';
}

export interface Outbound<T> {
  entry: Entry;
  payload: T;
}

export interface ForwardResult {
  calls: number;
  delivered: Entry[];
  /** Rejected by Personalize as invalid, isolated to the offending entry. */
  rejected: { entry: Entry; reason: string }[];
  /** Throttled or failed after the SDK's retries: Lambda must retry these. */
  failed: Entry[];
}

function emptyResult(): ForwardResult {
  return { calls: 0, delivered: [], rejected: [], failed: [] };
}

function merge(into: ForwardResult, from: ForwardResult): void {
  into.calls += from.calls;
  into.delivered.push(...from.delivered);
  into.rejected.push(...from.rejected);
  into.failed.push(...from.failed);
}

/**
 * Sends one call; on InvalidInputException splits it in halves until the offending entries are
 * alone, so only they are rejected and the rest are delivered.
 */
async function sendIsolating<T>(group: Outbound<T>[], send: (payloads: T[]) => Promise<void>): Promise<ForwardResult> {
  const result = emptyResult();
  result.calls++;
  try {
    await send(group.map((o) => o.payload));
    result.delivered.push(...group.map((o) => o.entry));
  } catch (error) {
    if (!isInvalidInput(error)) {
      result.failed.push(...group.map((o) => o.entry));
    } else if (group.length === 1) {
      result.rejected.push({ entry: group[0]!.entry, reason: `Personalize rejected the record: ${(error as Error).message}` });
    } else {
      const middle = Math.ceil(group.length / 2);
      merge(result, await sendIsolating(group.slice(0, middle), send));
      merge(result, await sendIsolating(group.slice(middle), send));
    }
  }
  return result;
}

export interface EventOutbound extends Outbound<PersonalizeEvent> {
  sessionId: string;
  userId: string | undefined;
}

/** PutEvents grouped by (userId, sessionId), in stream order, at most 10 per call, bounded concurrency. */
export function planEventCalls(events: readonly EventOutbound[]): EventOutbound[][] {
  // Nested maps, not a joined key: ids are free text (no separator is safe), and serialising a key
  // per event was a visible cost. Groups keep the order of their first event.
  const index = new Map<string | undefined, Map<string, EventOutbound[]>>();
  const groups: EventOutbound[][] = [];
  for (const event of events) {
    let bySession = index.get(event.userId);
    if (!bySession) index.set(event.userId, (bySession = new Map<string, EventOutbound[]>()));
    let group = bySession.get(event.sessionId);
    if (!group) {
      bySession.set(event.sessionId, (group = []));
      groups.push(group);
    }
    group.push(event);
  }
  return groups.flatMap((group) => chunk(group, PERSONALIZE_LIMITS.perCall));
}

export async function forwardEvents(
  events: readonly EventOutbound[],
  sender: PersonalizeSender,
  trackingId: string,
  concurrency: number,
): Promise<ForwardResult> {
  const calls = planEventCalls(events);
  const results: ForwardResult[] = new Array<ForwardResult>(calls.length);
  // At most `concurrency` calls in flight, started in plan order, the next as soon as one ends:
  // what p-limit did, without its promises and closures per call (issue 17).
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < calls.length) {
      const k = next++;
      const call = calls[k]!;
      const { sessionId, userId } = call[0]!;
      // With a user, never the anonymous session: Personalize would merge it (./put-session.ts).
      const putSessionId = userId === undefined ? sessionId : knownUserSessionId(sessionId);
      results[k] = await sendIsolating(call, (eventList) =>
        sender.putEvents({ trackingId, sessionId: putSessionId, ...(userId !== undefined && { userId }), eventList }),
      );
    }
  };
  const workers: Promise<void>[] = [];
  for (let w = 0; w < Math.min(Math.max(1, concurrency), calls.length); w++) workers.push(worker());
  await Promise.all(workers);
  const total = emptyResult();
  for (const r of results) merge(total, r);
  return total;
}

/** Latest version per id wins (event time, then stream order); the rest are superseded. */
export function coalesceLatest<T>(outbound: readonly Outbound<T>[], idOf: (o: Outbound<T>) => string): { latest: Outbound<T>[]; superseded: Entry[] } {
  const latest = new Map<string, Outbound<T>>();
  const superseded: Entry[] = [];
  for (const o of outbound) {
    const id = idOf(o);
    const current = latest.get(id);
    if (!current) {
      latest.set(id, o);
    } else if (o.entry.message.timestamp >= current.entry.message.timestamp) {
      superseded.push(current.entry);
      latest.set(id, o);
    } else {
      superseded.push(o.entry);
    }
  }
  return { latest: [...latest.values()], superseded };
}

export async function forwardUpserts<T extends PersonalizeItem | PersonalizeUser>(
  outbound: readonly Outbound<T>[],
  send: (payloads: T[]) => Promise<void>,
): Promise<ForwardResult> {
  const total = emptyResult();
  // Sequential: the sender paces these calls to the quota anyway.
  for (const call of chunk(outbound, PERSONALIZE_LIMITS.perCall)) merge(total, await sendIsolating(call, send));
  return total;
}

/** Where a batch goes: the tracker for events, the datasets for items and users (unset: not sent). */
export interface ForwardTarget {
  trackingId: string;
  itemsDatasetArn?: string | undefined;
  usersDatasetArn?: string | undefined;
  /** PutEvents calls in flight. */
  forwardConcurrency: number;
  /** False when the bulk import carries the interactions (BULK_MODE bootstrap, bulk-only). */
  streamInteractions: boolean;
}

/** What to send; items and users one record per id (merged or coalesced by the caller). */
export interface ForwardPlan {
  events: readonly EventOutbound[];
  items: readonly Outbound<PersonalizeItem>[];
  users: readonly Outbound<PersonalizeUser>[];
}

export interface ForwardOutcome {
  events: ForwardResult;
  items: ForwardResult;
  users: ForwardResult;
  /** Items/users not sent because their dataset ARN is not configured (the nightly export carries them). */
  notConfigured: number;
  /** Interactions not sent because the bulk import carries them. */
  notStreamed: number;
}

/**
 * The forward step the processor and the replay share: PutEvents grouped per (user, session),
 * PutItems and PutUsers in calls of 10, all three at once. Invalid records are isolated; the
 * caller decides what a rejection and a failure mean (the DLQ and a retry, or a report).
 */
export async function forwardAll(plan: ForwardPlan, sender: PersonalizeSender, target: ForwardTarget): Promise<ForwardOutcome> {
  const { itemsDatasetArn, usersDatasetArn } = target;
  const [events, items, users] = await Promise.all([
    target.streamInteractions && plan.events.length > 0 ? forwardEvents(plan.events, sender, target.trackingId, target.forwardConcurrency) : emptyResult(),
    itemsDatasetArn ? forwardUpserts(plan.items, (list) => sender.putItems({ datasetArn: itemsDatasetArn, items: list })) : emptyResult(),
    usersDatasetArn ? forwardUpserts(plan.users, (list) => sender.putUsers({ datasetArn: usersDatasetArn, users: list })) : emptyResult(),
  ]);
  return {
    events,
    items,
    users,
    notConfigured: (itemsDatasetArn ? 0 : plan.items.length) + (usersDatasetArn ? 0 : plan.users.length),
    notStreamed: target.streamInteractions ? 0 : plan.events.length,
  };
}
