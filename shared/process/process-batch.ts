import type { Item as PersonalizeItem, User as PersonalizeUser } from '@aws-sdk/client-personalize-events';
import type { KinesisStreamBatchResponse, KinesisStreamRecord } from 'aws-lambda';
import pMap from 'p-map';
import { dedupeKey } from '../../schemas/canonical.js';
import { buildArchiveObjects, buildForwardedObjects, type ArchiveStore } from '../archive.js';
import { decodeKinesisRecord, type RecordRef } from '../decode.js';
import type { DeadLetterQueue, DeadLetterRecord, DeadLetterStage } from '../dlq.js';
import { mapEvent, type EventMapping } from '../event-mapping.js';
import type { LinkCache } from '../identity/cache.js';
import { linkCarriedBy, stitchBatch } from '../identity/stitch.js';
import { claimsOf, type IdentityStore } from '../identity/store.js';
import type { DatasetSchema } from '../personalize/dataset-schema.js';
import {
  forwardEvents,
  forwardUpserts,
  type EventOutbound,
  type ForwardResult,
  type Outbound,
  type PersonalizeSender,
} from '../personalize/forward.js';
import {
  buildEvent,
  buildItemFromProfile,
  buildUserFromProfile,
  shapeProfileUpdate,
  type Built,
  type FromProfile,
} from '../personalize/requests.js';
import { applyPrivacyPolicy, type AllowTargets, type PiiPolicy } from '../pii.js';
import { mergeBatchProfiles, type MergedBatch, type ProfileUpdateEntry } from '../profile/batch.js';
import type { ProfileStore } from '../profile/store.js';
import { streamsInteractions, type BulkMode } from '../bulk-mode.js';
import { decideBatchConsent, decideStitchedConsent, type ConsentDeps, type ConsentVerdicts } from './consent-step.js';
import { effectiveUserId, type Entry } from './entry.js';

export interface ProcessorSettings {
  trackingId: string;
  itemsDatasetArn?: string;
  usersDatasetArn?: string;
  forwardConcurrency: number;
  schemas: { interactions: DatasetSchema; items: DatasetSchema; users: DatasetSchema };
  mapping: EventMapping;
  /**
   * What the nightly bulk import is for (docs/bulk-modes.md). Interactions go to PutEvents only in
   * `complement`; in `bootstrap` and `bulk-only` no tracker is live and the import carries them.
   * Default complement.
   */
  bulkMode?: BulkMode;
  /**
   * Applied before the archive and Personalize (shared/pii.ts): in allow mode only what the dataset
   * schemas (and PII_ALLOW_FIELDS) keep, then PII fields dropped or hashed. Unset: properties kept as sent.
   */
  pii?: PiiPolicy;
}

/** Where deletion requests are recorded so every later export leaves the user out (shared/deletion.ts). */
export interface DeletionRegistry {
  record(userId: string, requestedAt: number): Promise<void>;
  /** The user's anonymous sessions whose links were removed (no one else's claim left): exports leave them out too. */
  recordSessions?(sessionIds: readonly string[], requestedAt: number): Promise<void>;
}

export interface ProcessorDeps {
  identity: IdentityStore;
  /** The latest merged record of every user and item: updates are partial, PutUsers/PutItems replace. */
  profiles: ProfileStore;
  /** Unset: `delete` messages are dead-lettered (nothing is lost; redrive them once configured). */
  deletions?: DeletionRegistry;
  /** The consent rule and the latest consent per user and session (README "Consent"); unset: not enforced. */
  consent?: ConsentDeps;
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
  /** Explicit consent changes (`consent` messages): archived under identity/, never forwarded. */
  consents: number;
  /** Messages kept from Personalize for want of consent, by reason (archived with it, or dropped: CONSENT_ARCHIVE). */
  consentDenied: Record<string, number>;
  /** Users whose consent turned to a denial in this batch (a deletion is scheduled with CONSENT_OPT_OUT_DELETION). */
  consentOptOuts: number;
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
  /**
   * Item/user updates merged into a later update of the same id in the batch (one record is sent
   * or held per id), or made void by a deletion of the user later in the batch.
   */
  superseded: number;
  /** Merged item/user records still missing a field the dataset schema requires: stored, not sent, until an update completes them. */
  profilesHeld: number;
  /** Complete merged item/user records handed to PutItems/PutUsers. */
  profilesSent: number;
  /** Items/users archived but not sent because no dataset ARN is configured (the nightly export carries them). */
  notConfigured: number;
  /** Interactions archived but not sent because BULK_MODE is not complement (the nightly import carries them). */
  notStreamed: number;
  /** Objects of the record of what PutEvents accepted (`forwarded/`), written after the calls. */
  forwardedRecordObjects: number;
  propertiesDropped: number;
  /** Reason -> count; reasons name schema fields and our own words only, never a payload's keys or values. */
  droppedPropertyReasons: Record<string, number>;
  /** Property/trait keys removed before the archive because no dataset schema (or PII_ALLOW_FIELDS) keeps them (PII_MODE=allow). */
  propertiesNotAllowed: number;
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
    consents: 0,
    consentDenied: {},
    consentOptOuts: 0,
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
    profilesHeld: 0,
    profilesSent: 0,
    notConfigured: 0,
    notStreamed: 0,
    forwardedRecordObjects: 0,
    propertiesDropped: 0,
    droppedPropertyReasons: {},
    propertiesNotAllowed: 0,
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
  const privacyTargets: AllowTargets = {
    schemas: settings.schemas,
    renames: { items: settings.mapping.itemProperties, users: settings.mapping.traits },
  };
  const rejectEntry = (entry: Entry, stage: DeadLetterStage, reason: string, errors?: DeadLetterRecord['errors']) =>
    toDeadLetter(entry.ref, stage, reason, {
      source: entry.message.source,
      payload: JSON.stringify(entry.message),
      eventId: entry.message.eventId,
      kind: entry.message.kind,
      ...(errors && { errors }),
    });

  // Decode and validate; map source event names to Personalize event types; drop re-sends (dedupeKey).
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
          ...(decoded.eventId !== undefined && { eventId: decoded.eventId }),
          ...(decoded.kind !== undefined && { kind: decoded.kind }),
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
        // Most events keep their type and value: copy the message only when the mapping changes it.
        const m = entry.message;
        const unchanged = mapped.eventType === m.eventType && (mapped.eventValue === undefined || (Object.hasOwn(m, 'eventValue') && Object.is(m.eventValue, mapped.eventValue)));
        if (!unchanged) entry.message = { ...m, eventType: mapped.eventType, ...(mapped.eventValue !== undefined && { eventValue: mapped.eventValue }) };
      }
      const key = dedupeKey(entry.message);
      if (seen.has(key)) {
        report.duplicates++;
        continue;
      }
      seen.add(key);
      // Before anything is stored or sent: the archive is kept for years, and Personalize is a third store.
      if (settings.pii) {
        const filtered = applyPrivacyPolicy(entry.message, settings.pii, privacyTargets);
        entry.message = filtered.message;
        report.propertiesNotAllowed += filtered.notAllowed;
      }
      entries.push(entry);
    }
  }

  const failAll = (reason: string): BatchOutcome => {
    report.failure = reason;
    report.retried = records.length;
    return { response: { batchItemFailures: [{ itemIdentifier: records[0]!.kinesis.sequenceNumber }] }, report };
  };

  // Consent before identity: a message without the required consent carries no link either.
  const consentDeps = deps.consent;
  let verdicts: ConsentVerdicts | undefined;
  if (consentDeps) {
    try {
      verdicts = await decideBatchConsent(entries, consentDeps);
      report.consentOptOuts = verdicts.optedOut.length;
    } catch (error) {
      return failAll(`consent: ${(error as Error).message}`);
    }
  }
  const denied = verdicts?.denied ?? new Map<Entry, string>();

  // Identity first: links must be recorded before anything that relies on them is forwarded.
  try {
    const stitch = await stitchBatch(denied.size === 0 ? entries : entries.filter((e) => !denied.has(e)), deps.identity, deps.linkCache);
    report.linksRecorded = stitch.linksRecorded;
    report.linkConflicts = stitch.linkConflicts;
    report.stitched = stitch.stitched;
    report.anonymous = stitch.anonymous;
    report.identityLookups = stitch.lookups;
  } catch (error) {
    return failAll(`identity table: ${(error as Error).message}`);
  }
  if (consentDeps && verdicts) {
    try {
      await decideStitchedConsent(entries, consentDeps, verdicts);
    } catch (error) {
      return failAll(`consent: ${(error as Error).message}`);
    }
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
        // A session someone else also claimed is theirs now; the rest were only this user's.
        const ownSessions = removed.filter((l) => claimsOf(l).every((c) => c.userId === userId)).map((l) => l.sessionId);
        if (ownSessions.length > 0) await deletions.recordSessions?.(ownSessions, requestedAt);
        await deps.consent?.store?.deleteConsentsOf(userId, ownSessions);
        // Only this container's cache can be cleared; others keep a link up to IDENTITY_CACHE_TTL_SECONDS.
        for (const sessionId of [...batchSessions, ...removed.map((l) => l.sessionId)]) deps.linkCache.delete(sessionId);
        report.linksDeleted += removed.length;
      }
      // And the stored profiles; this batch's earlier updates of those users are voided below.
      await deps.profiles.deleteProfiles([...deletionRequests.keys()].map((id) => ({ kind: 'user' as const, id })));
    } catch (error) {
      return failAll(`deletion: ${(error as Error).message}`);
    }
  }

  // Pre-flight every Personalize limit; what would be rejected goes to the DLQ now, with its field.
  const accepted: Entry[] = [];
  const events: EventOutbound[] = [];
  const items: Outbound<PersonalizeItem>[] = [];
  const users: Outbound<PersonalizeUser>[] = [];
  let profileUpdates: ProfileUpdateEntry<Entry>[] = [];
  const countDropped = (built: Built<unknown>) => {
    if (!built.ok) return;
    for (const d of built.dropped) {
      report.propertiesDropped++;
      // The summary, not the reason: the reason names the payload's key and previews its value.
      report.droppedPropertyReasons[d.summary] = (report.droppedPropertyReasons[d.summary] ?? 0) + 1;
    }
  };
  for (const entry of entries) {
    const m = entry.message;
    const deniedFor = denied.get(entry);
    if (deniedFor !== undefined) {
      // Never sent to Personalize; archived with the verdict unless CONSENT_ARCHIVE=drop.
      report.consentDenied[deniedFor] = (report.consentDenied[deniedFor] ?? 0) + 1;
      if (consentDeps?.policy.archive !== 'drop') {
        entry.consentDenied = deniedFor;
        accepted.push(entry);
      }
      continue;
    }
    let built: Built<unknown> | undefined;
    switch (m.kind) {
      case 'interaction': {
        report.interactions++;
        const userId = effectiveUserId(entry);
        const event = buildEvent(m, settings.schemas.interactions, userId);
        if (event.ok) events.push({ entry, payload: event.value, sessionId: m.sessionId, userId });
        built = event;
        break;
      }
      // Partial updates: checked alone here, merged into the stored record below (the archive keeps them as received).
      case 'item': {
        report.items++;
        const update = shapeProfileUpdate('item', m.properties, settings.schemas.items, settings.mapping.itemProperties);
        if (update.ok) profileUpdates.push({ entry, key: { kind: 'item', id: m.itemId }, update: { properties: update.value, timestamp: m.timestamp } });
        built = update;
        break;
      }
      case 'user': {
        report.users++;
        const update = shapeProfileUpdate('user', m.properties, settings.schemas.users, settings.mapping.traits);
        if (update.ok) profileUpdates.push({ entry, key: { kind: 'user', id: m.userId }, update: { properties: update.value, timestamp: m.timestamp } });
        built = update;
        break;
      }
      case 'identify':
      case 'alias':
        report.links++;
        break;
      case 'consent':
        report.consents++;
        break;
      case 'delete': {
        if (!canDelete) {
          report.invalid++;
          rejectEntry(entry, 'validate', 'deletion requests need a deletion registry and an identity store that can delete links (processor configuration)');
          continue;
        }
        // Archived under identity/ as an audit record; never forwarded. The user's updates earlier in
        // the batch are void (their stored profile was just removed); later ones start a new one.
        report.deletions++;
        const before = profileUpdates.length;
        profileUpdates = profileUpdates.filter((u) => u.key.kind !== 'user' || u.key.id !== m.userId);
        report.superseded += before - profileUpdates.length;
        break;
      }
    }
    if (built && !built.ok) {
      report.invalid++;
      rejectEntry(entry, 'preflight', built.reason, built.errors);
      continue;
    }
    if (built) countDropped(built);
    accepted.push(entry);
  }

  // Items and users: every update merged into its stored record (one read and one write set per
  // batch). A complete record is sent whole; one still missing a field the dataset schema requires
  // is held: stored, neither sent nor dead-lettered, until a later update completes it.
  let profiles: MergedBatch<Entry>;
  try {
    profiles = await mergeBatchProfiles(deps.profiles, profileUpdates);
  } catch (error) {
    return failAll(`profile store: ${(error as Error).message}`);
  }
  const countProfile = (built: FromProfile<unknown>) => {
    if (built.held) report.profilesHeld++;
    else countDropped({ ok: true, value: built.value, dropped: built.dropped });
  };
  for (const { profile, entry, updates } of profiles.merged) {
    report.superseded += updates - 1;
    if (profile.kind === 'item') {
      const item = buildItemFromProfile(profile, settings.schemas.items);
      countProfile(item);
      if (!item.held) items.push({ entry, payload: item.value });
    } else {
      const user = buildUserFromProfile(profile, settings.schemas.users);
      countProfile(user);
      if (!user.held) users.push({ entry, payload: user.value });
    }
  }

  // Archive before forwarding: the archive is the system of record.
  const batchRange = {
    shardId: accepted[0]?.ref.shardId ?? records[0]!.eventID.split(':')[0] ?? 'shardId-unknown',
    firstSequenceNumber: records[0]!.kinesis.sequenceNumber,
    lastSequenceNumber: records[records.length - 1]!.kinesis.sequenceNumber,
  };
  const objects = buildArchiveObjects(accepted, batchRange);
  try {
    await pMap(objects, (o) => deps.archive.put(o.key, o.body), { concurrency: ARCHIVE_CONCURRENCY });
    report.archivedObjects = objects.length;
    report.archivedRecords = objects.reduce((n, o) => n + o.records, 0);
  } catch (error) {
    return failAll(`archive: ${(error as Error).message}`);
  }

  // Forward. Items/users: one merged record per id; none at all without a dataset ARN.
  const skipped = (list: readonly unknown[]) => {
    report.notConfigured += list.length;
    return Promise.resolve<ForwardResult>({ calls: 0, delivered: [], rejected: [], failed: [] });
  };
  const { itemsDatasetArn, usersDatasetArn } = settings;
  report.profilesSent = (itemsDatasetArn ? items.length : 0) + (usersDatasetArn ? users.length : 0);
  const streaming = streamsInteractions(settings.bulkMode ?? 'complement');
  if (!streaming) report.notStreamed = events.length;
  const [eventResult, itemResult, userResult] = await Promise.all([
    streaming
      ? forwardEvents(events, deps.personalize, settings.trackingId, settings.forwardConcurrency)
      : Promise.resolve<ForwardResult>({ calls: 0, delivered: [], rejected: [], failed: [] }),
    itemsDatasetArn
      ? forwardUpserts(items, (list) => deps.personalize.putItems({ datasetArn: itemsDatasetArn, items: list }))
      : skipped(items),
    usersDatasetArn
      ? forwardUpserts(users, (list) => deps.personalize.putUsers({ datasetArn: usersDatasetArn, users: list }))
      : skipped(users),
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

  // What PutEvents accepted, kept so the bulk import leaves it out. Not written: the batch is
  // retried, and Personalize ignores a re-sent eventId in training (FACTS §1b), so nothing doubles.
  const forwardedObjects = buildForwardedObjects(eventResult.delivered, batchRange);
  try {
    await pMap(forwardedObjects, (o) => deps.archive.put(o.key, o.body), { concurrency: ARCHIVE_CONCURRENCY });
    report.forwardedRecordObjects = forwardedObjects.length;
  } catch (error) {
    return failAll(`forwarded record: ${(error as Error).message}`);
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

function lowestSequence(refs: readonly RecordRef[]): bigint | undefined {
  let lowest: bigint | undefined;
  for (const ref of refs) {
    const n = BigInt(ref.sequenceNumber);
    if (lowest === undefined || n < lowest) lowest = n;
  }
  return lowest;
}
