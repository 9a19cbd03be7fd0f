import type { Event as PersonalizeEvent, Item as PersonalizeItem, User as PersonalizeUser } from '@aws-sdk/client-personalize-events';
import type { KinesisStreamBatchResponse, KinesisStreamRecord } from 'aws-lambda';
import pMap from 'p-map';
import { buildArchiveObjects, type ArchiveStore } from '../archive.js';
import { decodeKinesisRecord, type RecordRef } from '../decode.js';
import type { DeadLetterQueue, DeadLetterRecord, DeadLetterStage } from '../dlq.js';
import { mapEvent, type EventMapping } from '../event-mapping.js';
import type { LinkCache } from '../identity/cache.js';
import { linkCarriedBy, stitchBatch } from '../identity/stitch.js';
import type { IdentityStore } from '../identity/store.js';
import type { DatasetSchema } from '../personalize/dataset-schema.js';
import {
  coalesceLatest,
  forwardEvents,
  forwardUpserts,
  type EventOutbound,
  type ForwardResult,
  type Outbound,
  type PersonalizeSender,
} from '../personalize/forward.js';
import { buildEvent, buildItem, buildUser, type Built } from '../personalize/requests.js';
import { withoutPii, type PiiPolicy } from '../pii.js';
import { effectiveUserId, type Entry } from './entry.js';

export interface ProcessorSettings {
  trackingId: string;
  itemsDatasetArn?: string;
  usersDatasetArn?: string;
  forwardConcurrency: number;
  schemas: { interactions: DatasetSchema; items: DatasetSchema; users: DatasetSchema };
  mapping: EventMapping;
  /** PII fields dropped or hashed before the archive and Personalize (unset: properties kept as sent). */
  pii?: PiiPolicy;
}

/** Where deletion requests are recorded so every later export leaves the user out (shared/deletion.ts). */
export interface DeletionRegistry {
  record(userId: string, requestedAt: number): Promise<void>;
}

export interface ProcessorDeps {
  identity: IdentityStore;
  /** Unset: `delete` messages are dead-lettered (nothing is lost; redrive them once configured). */
  deletions?: DeletionRegistry;
  linkCache: LinkCache;
  archive: ArchiveStore;
  dlq: DeadLetterQueue;
  personalize: PersonalizeSender;
  settings: ProcessorSettings;
  now?: () => number;
}

/** What happened to one batch: every input is forwarded, filtered with a counted reason, in the DLQ, or retried. */
export interface BatchReport {
  kinesisRecords: number;
  messages: number;
  invalid: number;
  duplicates: number;
  interactions: number;
  items: number;
  users: number;
  links: number;
  /** Deletion requests carried out (links removed, deletion recorded); nothing is sent to Personalize. */
  deletions: number;
  /** Identity links removed by those requests. */
  linksDeleted: number;
  linksRecorded: number;
  linkConflicts: number;
  stitched: number;
  anonymous: number;
  identityLookups: number;
  archivedObjects: number;
  archivedRecords: number;
  forwardedEvents: number;
  forwardedItems: number;
  forwardedUsers: number;
  putEventsCalls: number;
  putItemsCalls: number;
  putUsersCalls: number;
  /** Item/user versions replaced by a later version of the same id in the batch. */
  superseded: number;
  /** Items/users archived but not sent because no dataset ARN is configured (the nightly export carries them). */
  notConfigured: number;
  propertiesDropped: number;
  droppedPropertyReasons: Record<string, number>;
  rejectedByPersonalize: number;
  deadLettered: number;
  deadLetterByStage: Partial<Record<DeadLetterStage, number>>;
  /** Kinesis records reported back for Lambda to retry. */
  retried: number;
  failure?: string;
}

function emptyReport(kinesisRecords: number): BatchReport {
  return {
    kinesisRecords,
    messages: 0,
    invalid: 0,
    duplicates: 0,
    interactions: 0,
    items: 0,
    users: 0,
    links: 0,
    deletions: 0,
    linksDeleted: 0,
    linksRecorded: 0,
    linkConflicts: 0,
    stitched: 0,
    anonymous: 0,
    identityLookups: 0,
    archivedObjects: 0,
    archivedRecords: 0,
    forwardedEvents: 0,
    forwardedItems: 0,
    forwardedUsers: 0,
    putEventsCalls: 0,
    putItemsCalls: 0,
    putUsersCalls: 0,
    superseded: 0,
    notConfigured: 0,
    propertiesDropped: 0,
    droppedPropertyReasons: {},
    rejectedByPersonalize: 0,
    deadLettered: 0,
    deadLetterByStage: {},
    retried: 0,
  };
}

export interface BatchOutcome {
  response: KinesisStreamBatchResponse;
  report: BatchReport;
}

const ARCHIVE_CONCURRENCY = 4;

/**
 * The processor's core: a Kinesis batch in, a partial batch response out.
 * decode -> validate -> map -> dedupe -> stitch -> pre-flight -> archive -> forward -> DLQ.
 * Transient failures (identity table, archive, Personalize throttling/5xx, DLQ) are reported as
 * batchItemFailures so Lambda retries from the lowest one; bad data goes to the DLQ with its reason.
 */
export async function processBatch(records: readonly KinesisStreamRecord[], deps: ProcessorDeps): Promise<BatchOutcome> {
  const now = deps.now ?? Date.now;
  const { settings } = deps;
  const report = emptyReport(records.length);
  if (records.length === 0) return { response: { batchItemFailures: [] }, report };

  const deadLetters: { ref: RecordRef; record: DeadLetterRecord }[] = [];
  const toDeadLetter = (ref: RecordRef, stage: DeadLetterStage, reason: string, extra: Partial<DeadLetterRecord>) => {
    deadLetters.push({
      ref,
      record: {
        reason,
        stage,
        source: extra.source ?? 'unknown',
        receivedAt: new Date(ref.arrivedAt).toISOString(),
        payload: extra.payload ?? '',
        shardId: ref.shardId,
        sequenceNumber: ref.sequenceNumber,
        ...(ref.subSequenceNumber !== undefined && { subSequenceNumber: ref.subSequenceNumber }),
        ...extra,
        failedAt: new Date(now()).toISOString(),
      },
    });
  };
  const rejectEntry = (entry: Entry, stage: DeadLetterStage, reason: string, errors?: DeadLetterRecord['errors']) =>
    toDeadLetter(entry.ref, stage, reason, {
      source: entry.message.source,
      payload: JSON.stringify(entry.message),
      eventId: entry.message.eventId,
      kind: entry.message.kind,
      ...(errors && { errors }),
    });

  // Decode and validate; map source event names to Personalize event types; dedupe by eventId.
  const entries: Entry[] = [];
  const seen = new Set<string>();
  for (const record of records) {
    for (const decoded of decodeKinesisRecord(record)) {
      report.messages++;
      if (!decoded.ok) {
        report.invalid++;
        toDeadLetter(decoded.ref, decoded.stage, decoded.reason, {
          payload: decoded.payload,
          ...(decoded.payloadEncoding === 'base64' && { payloadEncoding: 'base64' }),
          ...(decoded.source !== undefined && { source: decoded.source }),
          ...(decoded.errors && { errors: decoded.errors }),
        });
        continue;
      }
      const entry: Entry = { ref: decoded.ref, message: decoded.message };
      if (entry.message.kind === 'interaction') {
        const mapped = mapEvent(settings.mapping, entry.message.eventType, entry.message.properties, entry.message.eventValue);
        if (!mapped.ok) {
          report.invalid++;
          rejectEntry(entry, 'validate', mapped.reason, [{ path: 'eventType', message: mapped.reason }]);
          continue;
        }
        entry.message = { ...entry.message, eventType: mapped.eventType, ...(mapped.eventValue !== undefined && { eventValue: mapped.eventValue }) };
      }
      if (seen.has(entry.message.eventId)) {
        report.duplicates++;
        continue;
      }
      seen.add(entry.message.eventId);
      // Before anything is stored or sent: the archive is kept for years, and Personalize is a third store.
      if (settings.pii) entry.message = withoutPii(entry.message, settings.pii);
      entries.push(entry);
    }
  }

  const failAll = (reason: string): BatchOutcome => {
    report.failure = reason;
    report.retried = records.length;
    return { response: { batchItemFailures: [{ itemIdentifier: records[0]!.kinesis.sequenceNumber }] }, report };
  };

  // Identity first: links must be recorded before anything that relies on them is forwarded.
  try {
    const stitch = await stitchBatch(entries, deps.identity, deps.linkCache);
    report.linksRecorded = stitch.linksRecorded;
    report.linkConflicts = stitch.linkConflicts;
    report.stitched = stitch.stitched;
    report.anonymous = stitch.anonymous;
    report.identityLookups = stitch.lookups;
  } catch (error) {
    return failAll(`identity table: ${(error as Error).message}`);
  }

  // Deletion requests, after this batch's links are recorded so that a link it carries goes too.
  const { deletions } = deps;
  const deleteLinks = deps.identity.deleteLinksOfUser?.bind(deps.identity);
  const canDelete = deletions !== undefined && deleteLinks !== undefined;
  const deletionRequests = new Map<string, number>();
  for (const { message } of entries) {
    if (message.kind === 'delete') deletionRequests.set(message.userId, Math.max(deletionRequests.get(message.userId) ?? 0, message.timestamp));
  }
  if (canDelete && deletionRequests.size > 0) {
    try {
      for (const [userId, requestedAt] of deletionRequests) {
        // The registry first: from then on exports leave the user out, even while link removal is retried.
        await deletions.record(userId, requestedAt);
        const batchSessions = entries.flatMap((e) => {
          const link = linkCarriedBy(e);
          return link?.userId === userId ? [link.sessionId] : [];
        });
        const removed = await deleteLinks(userId, batchSessions);
        // Only this container's cache can be cleared; others keep a link up to IDENTITY_CACHE_TTL_SECONDS.
        for (const sessionId of [...batchSessions, ...removed.map((l) => l.sessionId)]) deps.linkCache.delete(sessionId);
        report.linksDeleted += removed.length;
      }
    } catch (error) {
      return failAll(`deletion: ${(error as Error).message}`);
    }
  }

  // Pre-flight every Personalize limit; what would be rejected goes to the DLQ now, with its field.
  const accepted: Entry[] = [];
  const events: EventOutbound[] = [];
  const items: Outbound<PersonalizeItem>[] = [];
  const users: Outbound<PersonalizeUser>[] = [];
  const countDropped = (built: Built<unknown>) => {
    if (!built.ok) return;
    for (const d of built.dropped) {
      report.propertiesDropped++;
      const key = reasonKey(d.reason);
      report.droppedPropertyReasons[key] = (report.droppedPropertyReasons[key] ?? 0) + 1;
    }
  };
  for (const entry of entries) {
    const m = entry.message;
    let built: Built<PersonalizeEvent | PersonalizeItem | PersonalizeUser> | undefined;
    switch (m.kind) {
      case 'interaction': {
        report.interactions++;
        const userId = effectiveUserId(entry);
        const event = buildEvent(m, settings.schemas.interactions, userId);
        if (event.ok) events.push({ entry, payload: event.value, sessionId: m.sessionId, userId });
        built = event;
        break;
      }
      case 'item': {
        report.items++;
        const item = buildItem(m, settings.schemas.items);
        if (item.ok) items.push({ entry, payload: item.value });
        built = item;
        break;
      }
      case 'user': {
        report.users++;
        const user = buildUser(m, settings.schemas.users);
        if (user.ok) users.push({ entry, payload: user.value });
        built = user;
        break;
      }
      case 'identify':
      case 'alias':
        report.links++;
        break;
      case 'delete':
        if (!canDelete) {
          report.invalid++;
          rejectEntry(entry, 'validate', 'deletion requests need a deletion registry and an identity store that can delete links (processor configuration)');
          continue;
        }
        // Archived under identity/ as an audit record; never forwarded.
        report.deletions++;
        break;
    }
    if (built && !built.ok) {
      report.invalid++;
      rejectEntry(entry, 'preflight', built.reason, built.errors);
      continue;
    }
    if (built) countDropped(built);
    accepted.push(entry);
  }

  // Archive before forwarding: the archive is the system of record.
  const objects = buildArchiveObjects(accepted, {
    shardId: accepted[0]?.ref.shardId ?? records[0]!.eventID.split(':')[0] ?? 'shardId-unknown',
    firstSequenceNumber: records[0]!.kinesis.sequenceNumber,
    lastSequenceNumber: records[records.length - 1]!.kinesis.sequenceNumber,
  });
  try {
    await pMap(objects, (o) => deps.archive.put(o.key, o.body), { concurrency: ARCHIVE_CONCURRENCY });
    report.archivedObjects = objects.length;
    report.archivedRecords = objects.reduce((n, o) => n + o.records, 0);
  } catch (error) {
    return failAll(`archive: ${(error as Error).message}`);
  }

  // Forward. Items/users: only the latest version per id; none at all without a dataset ARN.
  const itemPlan = coalesceLatest(items, (o) => o.payload.itemId ?? '');
  const userPlan = coalesceLatest(users, (o) => o.payload.userId ?? '');
  report.superseded = itemPlan.superseded.length + userPlan.superseded.length;
  const skipped = (plan: { latest: unknown[] }) => {
    report.notConfigured += plan.latest.length;
    return Promise.resolve<ForwardResult>({ calls: 0, delivered: [], rejected: [], failed: [] });
  };
  const { itemsDatasetArn, usersDatasetArn } = settings;
  const [eventResult, itemResult, userResult] = await Promise.all([
    forwardEvents(events, deps.personalize, settings.trackingId, settings.forwardConcurrency),
    itemsDatasetArn
      ? forwardUpserts(itemPlan.latest, (list) => deps.personalize.putItems({ datasetArn: itemsDatasetArn, items: list }))
      : skipped(itemPlan),
    usersDatasetArn
      ? forwardUpserts(userPlan.latest, (list) => deps.personalize.putUsers({ datasetArn: usersDatasetArn, users: list }))
      : skipped(userPlan),
  ]);
  report.putEventsCalls = eventResult.calls;
  report.putItemsCalls = itemResult.calls;
  report.putUsersCalls = userResult.calls;
  report.forwardedEvents = eventResult.delivered.length;
  report.forwardedItems = itemResult.delivered.length;
  report.forwardedUsers = userResult.delivered.length;
  const transient: RecordRef[] = [];
  for (const result of [eventResult, itemResult, userResult]) {
    for (const { entry, reason } of result.rejected) {
      report.rejectedByPersonalize++;
      rejectEntry(entry, 'personalize', reason);
    }
    transient.push(...result.failed.map((e) => e.ref));
  }

  // Dead letters before the first retried record only: everything from there on is redone by the retry.
  const firstRetry = lowestSequence(transient);
  const dueNow = deadLetters.filter((d) => firstRetry === undefined || BigInt(d.ref.sequenceNumber) < firstRetry);
  if (dueNow.length > 0) {
    const notQueued = new Set(await deps.dlq.send(dueNow.map((d) => d.record)));
    for (const d of dueNow) {
      if (notQueued.has(d.record)) transient.push(d.ref);
      else {
        report.deadLettered++;
        report.deadLetterByStage[d.record.stage] = (report.deadLetterByStage[d.record.stage] ?? 0) + 1;
      }
    }
  }

  const failedSequences = [...new Set(transient.map((r) => r.sequenceNumber))];
  report.retried = failedSequences.length;
  return { response: { batchItemFailures: failedSequences.map((itemIdentifier) => ({ itemIdentifier })) }, report };
}

/**
 * A dropped-property reason as a metric key: quoted values blanked, so keys do not grow with values.
 * Memoised: the same few reasons recur on every event of a batch, and the regex was a visible cost.
 */
const reasonKeys = new Map<string, string>();
function reasonKey(reason: string): string {
  let key = reasonKeys.get(reason);
  if (key === undefined) {
    key = reason.replace(/"[^"]*"/g, '""').slice(0, 120);
    // Bounded: reasons carry caller-chosen key names.
    if (reasonKeys.size >= 10_000) reasonKeys.clear();
    reasonKeys.set(reason, key);
  }
  return key;
}

function lowestSequence(refs: readonly RecordRef[]): bigint | undefined {
  let lowest: bigint | undefined;
  for (const ref of refs) {
    const n = BigInt(ref.sequenceNumber);
    if (lowest === undefined || n < lowest) lowest = n;
  }
  return lowest;
}
