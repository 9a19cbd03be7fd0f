import { gunzipSync } from 'node:zlib';
import type { Item as PersonalizeItem, User as PersonalizeUser } from '@aws-sdk/client-personalize-events';
import pThrottle from 'p-throttle';
import { canonicalMessageSchema, dedupeKey, type CanonicalMessage } from '../../schemas/canonical.js';
import { decideConsent, policyRequiresConsent, type ConsentPolicy } from '../consent/policy.js';
import { consentKeyOf, type ConsentStore } from '../consent/store.js';
import type { ArchiveKind } from '../archive.js';
import type { StoredObject } from '../storage.js';
import type { RecordRef } from '../decode.js';
import { NO_DELETED_USERS, type DeletedUsers } from '../deletion.js';
import { daysFrom, isExportDate } from '../util/dates.js';
import type { DatasetSchemas } from '../personalize/dataset-schema.js';
import {
  coalesceLatest,
  forwardAll,
  type EventOutbound,
  type Outbound,
  type PersonalizeSender,
} from '../personalize/forward.js';
import { buildEvent, buildItem, buildUser } from '../personalize/requests.js';
import type { Entry } from '../entry.js';

/**
 * Replay: re-sends archived events straight to Personalize (to seed a new dataset group, or after
 * an outage of the tracker), with the SAME eventIds, so Personalize does not use repeats in
 * training (FACTS §1b). Requests are built and grouped exactly as the processor does: PutEvents
 * per (userId, sessionId), at most 10 per call; items and users coalesced to the latest per id.
 *
 * - Reads only: nothing is written to the archive or the stream, so the nightly export never sees
 *   a replayed event twice.
 * - Resumable: objects are sent one at a time in key order; after each, a checkpoint records that
 *   every listed object up to that key is done (written atomically by the store). A restart skips
 *   them. The object in flight when the run stopped is sent again (same eventIds).
 * - Objects written into the range after the first listing (late batches, redriven records) have a
 *   newer last-modified time than the listing and are sent even when their key sorts earlier.
 * - Users in the deletion registry are left out.
 * - What Personalize refuses (or the pre-flight would refuse) goes to a local report, not the DLQ.
 */

export const REPLAY_KINDS = ['interactions', 'items', 'users'] as const satisfies readonly ArchiveKind[];
export type ReplayKind = (typeof REPLAY_KINDS)[number];

/** Ranges longer than this are almost surely a typo; split them into several runs. */
export const MAX_REPLAY_DAYS = 366;

export type ListedObject = Pick<StoredObject, 'key' | 'lastModified'>;

export interface ArchiveReader {
  list(prefix: string): Promise<ListedObject[]>;
  get(key: string): Promise<Buffer>;
}

export interface Checkpoint {
  version: 1;
  from: string;
  to: string;
  kinds: ReplayKind[];
  startedAt: string;
  updatedAt: string;
  /** Every listed object whose key sorts at or before this, and not modified after listedUpTo, is done. */
  through?: string;
  /** Newest last-modified time (epoch ms) of the objects listed when `through` was valid. */
  listedUpTo: number;
  objectsDone: number;
  eventsSent: number;
  itemsSent: number;
  usersSent: number;
  rejected: number;
  finished: boolean;
}

export interface CheckpointStore {
  load(): Promise<Checkpoint | undefined>;
  /** Must replace the previous checkpoint atomically: a crash leaves the old one or the new one. */
  save(checkpoint: Checkpoint): Promise<void>;
}

export interface ReplayRejection {
  key: string;
  eventId: string;
  kind: string;
  stage: 'invalid' | 'preflight' | 'personalize';
  reason: string;
}

export interface RejectionSink {
  write(rejections: readonly ReplayRejection[]): Promise<void>;
}

export interface ReplayProgress {
  objectsDone: number;
  objectsPending: number;
  key: string;
  eventsSent: number;
}

export interface ReplaySettings {
  from: string;
  to: string;
  kinds: readonly ReplayKind[];
  trackingId: string;
  itemsDatasetArn?: string;
  usersDatasetArn?: string;
  schemas: DatasetSchemas;
  /** PutEvents calls in flight. */
  forwardConcurrency: number;
}

export interface ReplayDeps {
  archive: ArchiveReader;
  /** Already paced (pacedSender for PutEvents, SdkPersonalizeSender for PutItems/PutUsers). */
  sender: PersonalizeSender;
  checkpoint: CheckpointStore;
  rejections: RejectionSink;
  deletedUsers?: () => Promise<DeletedUsers>;
  /** The consent rule and the stored consent (README "Consent"): users who now deny are left out. */
  consent?: { policy: ConsentPolicy; store: ConsentStore };
  /** Stops before the next object (the one in flight is finished). */
  signal?: AbortSignal;
  onProgress?: (progress: ReplayProgress) => void;
  now?: () => number;
}

export interface ReplaySummary {
  objectsListed: number;
  /** Done by an earlier run, per the checkpoint. */
  objectsSkipped: number;
  objectsDone: number;
  eventsSent: number;
  itemsSent: number;
  usersSent: number;
  putEventsCalls: number;
  putItemsCalls: number;
  putUsersCalls: number;
  rejected: number;
  /** Archive lines that are not canonical messages (kept out, counted). */
  malformedLines: number;
  /** Records of users in the deletion registry, left out. */
  deletedUserRecords: number;
  /** Records without the consent Personalize needs: judged so when processed, or their user denies now. */
  consentDeniedRecords: number;
  /** Items/users not sent because no dataset ARN is configured. */
  notConfigured: number;
  /** Item/user versions replaced by a later one in the same object. */
  superseded: number;
  interrupted: boolean;
  finished: boolean;
}

export class ReplayError extends Error {
  override name = 'ReplayError';
}

// ---------------------------------------------------------------------------------------------
// Pure part

/** Every UTC day from..to inclusive; throws on bad dates or a reversed or overlong range. */
export function daysBetween(from: string, to: string): string[] {
  if (!isExportDate(from)) throw new ReplayError(`--from must be a date YYYY-MM-DD, got ${from}`);
  if (!isExportDate(to)) throw new ReplayError(`--to must be a date YYYY-MM-DD, got ${to}`);
  if (to < from) throw new ReplayError(`--to ${to} is before --from ${from}`);
  const span = (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86_400_000 + 1;
  if (span > MAX_REPLAY_DAYS) throw new ReplayError(`the range ${from}..${to} is longer than ${MAX_REPLAY_DAYS} days: replay it in parts`);
  return daysFrom(from, to);
}

/** The archive prefixes a replay reads (archive layout: shared/archive.ts). */
export function replayPrefixes(days: readonly string[], kinds: readonly ReplayKind[]): string[] {
  return kinds.flatMap((kind) => days.map((day) => `archive/${kind}/dt=${day}/`));
}

/** Objects still to send, in key order. */
export function pendingObjects(listing: readonly ListedObject[], checkpoint: Pick<Checkpoint, 'through' | 'listedUpTo'> | undefined): ListedObject[] {
  const through = checkpoint?.through;
  return [...listing]
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .filter((o) => through === undefined || o.key > through || o.lastModified > checkpoint!.listedUpTo);
}

const KIND_OF: Record<ReplayKind, CanonicalMessage['kind']> = { interactions: 'interaction', items: 'item', users: 'user' };

export function kindOfKey(key: string): ReplayKind | undefined {
  const folder = key.split('/')[1];
  return REPLAY_KINDS.find((k) => k === folder);
}

export interface ParsedObject {
  messages: { message: CanonicalMessage; ref: RecordRef; consentDenied?: string }[];
  malformed: ReplayRejection[];
}

/** The archived lines of one object as canonical messages (the stream position kept for grouping). */
export function parseArchiveObject(key: string, gzipped: Buffer): ParsedObject {
  const kind = kindOfKey(key);
  const out: ParsedObject = { messages: [], malformed: [] };
  const lines = gunzipSync(gzipped).toString('utf8').split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const bad = (reason: string, eventId = `line ${i + 1}`) => out.malformed.push({ key, eventId, kind: kind ?? 'unknown', stage: 'invalid', reason });
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      return bad('not JSON');
    }
    const parsed = canonicalMessageSchema.safeParse(value);
    if (!parsed.success) return bad(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; '));
    if (kind === undefined || parsed.data.kind !== KIND_OF[kind]) return bad(`a ${parsed.data.kind} message under ${kind ?? 'an unknown'} folder`, parsed.data.eventId);
    const { stream, consentDenied } = value as { stream?: { shardId?: unknown; sequenceNumber?: unknown; arrivedAt?: unknown }; consentDenied?: unknown };
    out.messages.push({
      message: parsed.data,
      // The processor's consent verdict on the line (README "Consent").
      ...(typeof consentDenied === 'string' && { consentDenied }),
      ref: {
        shardId: typeof stream?.shardId === 'string' ? stream.shardId : 'shardId-unknown',
        sequenceNumber: typeof stream?.sequenceNumber === 'string' ? stream.sequenceNumber : '0',
        partitionKey: '',
        arrivedAt: typeof stream?.arrivedAt === 'number' ? stream.arrivedAt : 0,
      },
    });
  });
  return out;
}

/**
 * PutEvents paced to `perSecond` calls (FACTS §3: 1000/s per dataset group, shared with the live
 * tracker, so replays should take less). PutItems/PutUsers pass through: SdkPersonalizeSender paces them.
 */
export function pacedSender(sender: PersonalizeSender, perSecond: number): PersonalizeSender {
  if (!(perSecond > 0)) return sender;
  // Tenths of a second: smooth enough, and few timers.
  const throttle = perSecond >= 10 ? pThrottle({ limit: Math.floor(perSecond / 10), interval: 100 }) : pThrottle({ limit: 1, interval: Math.ceil(1000 / perSecond) });
  const putEvents = throttle((input: Parameters<PersonalizeSender['putEvents']>[0]) => sender.putEvents(input));
  return { putEvents: (input) => putEvents(input), putItems: (input) => sender.putItems(input), putUsers: (input) => sender.putUsers(input) };
}

// ---------------------------------------------------------------------------------------------
// The run

function emptySummary(): ReplaySummary {
  return {
    objectsListed: 0,
    objectsSkipped: 0,
    objectsDone: 0,
    eventsSent: 0,
    itemsSent: 0,
    usersSent: 0,
    putEventsCalls: 0,
    putItemsCalls: 0,
    putUsersCalls: 0,
    rejected: 0,
    malformedLines: 0,
    deletedUserRecords: 0,
    consentDeniedRecords: 0,
    notConfigured: 0,
    superseded: 0,
    interrupted: false,
    finished: false,
  };
}

export async function replayArchive(deps: ReplayDeps, settings: ReplaySettings): Promise<ReplaySummary> {
  const now = deps.now ?? Date.now;
  const kinds = [...new Set(settings.kinds)].sort();
  if (kinds.length === 0) throw new ReplayError('no kind to replay');
  const days = daysBetween(settings.from, settings.to);
  const summary = emptySummary();

  const listing = (await Promise.all(replayPrefixes(days, kinds).map((prefix) => deps.archive.list(prefix)))).flat();
  summary.objectsListed = listing.length;
  const newestListed = listing.reduce((max, o) => Math.max(max, o.lastModified), 0);

  let checkpoint = await deps.checkpoint.load();
  if (checkpoint && (checkpoint.from !== settings.from || checkpoint.to !== settings.to || checkpoint.kinds.join(',') !== kinds.join(','))) {
    throw new ReplayError(
      `the checkpoint is for --from ${checkpoint.from} --to ${checkpoint.to} --kind ${checkpoint.kinds.join(',')}: use another --checkpoint file, or delete it to start over`,
    );
  }
  checkpoint ??= {
    version: 1,
    from: settings.from,
    to: settings.to,
    kinds,
    startedAt: new Date(now()).toISOString(),
    updatedAt: new Date(now()).toISOString(),
    listedUpTo: newestListed,
    objectsDone: 0,
    eventsSent: 0,
    itemsSent: 0,
    usersSent: 0,
    rejected: 0,
    finished: false,
  };
  const pending = pendingObjects(listing, checkpoint);
  summary.objectsSkipped = listing.length - pending.length;
  const deleted = (await deps.deletedUsers?.()) ?? NO_DELETED_USERS;

  for (const object of pending) {
    if (deps.signal?.aborted) {
      summary.interrupted = true;
      break;
    }
    const sent = await sendObject(object.key, deps, settings, deleted, summary);
    checkpoint = {
      ...checkpoint,
      through: checkpoint.through === undefined || object.key > checkpoint.through ? object.key : checkpoint.through,
      updatedAt: new Date(now()).toISOString(),
      objectsDone: checkpoint.objectsDone + 1,
      eventsSent: checkpoint.eventsSent + sent.events,
      itemsSent: checkpoint.itemsSent + sent.items,
      usersSent: checkpoint.usersSent + sent.users,
      rejected: checkpoint.rejected + sent.rejected,
      finished: false,
    };
    await deps.checkpoint.save(checkpoint);
    summary.objectsDone++;
    deps.onProgress?.({ objectsDone: summary.objectsDone, objectsPending: pending.length, key: object.key, eventsSent: summary.eventsSent });
  }
  if (!summary.interrupted) {
    // Everything listed is done: later objects are those modified after this listing.
    const through = pending.reduce<string | undefined>((max, o) => (max === undefined || o.key > max ? o.key : max), checkpoint.through);
    checkpoint = {
      ...checkpoint,
      ...(through !== undefined && { through }),
      listedUpTo: Math.max(checkpoint.listedUpTo, newestListed),
      updatedAt: new Date(now()).toISOString(),
      finished: true,
    };
    await deps.checkpoint.save(checkpoint);
    summary.finished = true;
  }
  return summary;
}

/** The object's users whose stored consent denies Personalize now (an opt-out since the line was archived). */
async function consentDeniedUsers(parsed: ParsedObject, consent: ReplayDeps['consent']): Promise<Set<string>> {
  if (consent === undefined || !policyRequiresConsent(consent.policy)) return new Set();
  const users = [...new Set(parsed.messages.flatMap(({ message: m }) => ('userId' in m && m.userId !== undefined ? [m.userId] : [])))];
  const states = await consent.store.getConsents(users.map((id) => ({ kind: 'user' as const, id })));
  return new Set(
    users.filter((id) => {
      const state = states.get(consentKeyOf({ kind: 'user', id }));
      return state !== undefined && !decideConsent(consent.policy, state).allowed;
    }),
  );
}

/** Sends one archive object; throws ReplayError when part of it could not be delivered (retry later). */
async function sendObject(
  key: string,
  deps: ReplayDeps,
  settings: ReplaySettings,
  deleted: DeletedUsers,
  summary: ReplaySummary,
): Promise<{ events: number; items: number; users: number; rejected: number }> {
  const parsed = parseArchiveObject(key, await deps.archive.get(key));
  summary.malformedLines += parsed.malformed.length;
  const rejections: ReplayRejection[] = [...parsed.malformed];
  const events: EventOutbound[] = [];
  const items: Outbound<PersonalizeItem>[] = [];
  const users: Outbound<PersonalizeUser>[] = [];
  const seen = new Set<string>();
  const deniedUsers = await consentDeniedUsers(parsed, deps.consent);
  for (const { message: m, ref, consentDenied } of parsed.messages) {
    // Re-sends of one message (dedupeKey), not different entities sharing an eventId.
    if (seen.has(dedupeKey(m))) continue;
    seen.add(dedupeKey(m));
    if ('userId' in m && m.userId !== undefined && deleted.isDeleted(m.userId)) {
      summary.deletedUserRecords++;
      continue;
    }
    if (consentDenied !== undefined || ('userId' in m && m.userId !== undefined && deniedUsers.has(m.userId))) {
      summary.consentDeniedRecords++;
      continue;
    }
    const entry: Entry = { ref, message: m };
    const reject = (reason: string) => rejections.push({ key, eventId: m.eventId, kind: m.kind, stage: 'preflight', reason });
    if (m.kind === 'interaction') {
      // The archived userId is the stitched one when the event was stitched.
      const built = buildEvent(m, settings.schemas.interactions, m.userId);
      if (built.ok) events.push({ entry, payload: built.value, sessionId: m.sessionId, userId: m.userId });
      else reject(built.reason);
    } else if (m.kind === 'item') {
      const built = buildItem(m, settings.schemas.items);
      if (built.ok) items.push({ entry, payload: built.value });
      else reject(built.reason);
    } else if (m.kind === 'user') {
      const built = buildUser(m, settings.schemas.users);
      if (built.ok) users.push({ entry, payload: built.value });
      else reject(built.reason);
    }
  }

  const itemPlan = coalesceLatest(items, (o) => o.payload.itemId ?? '');
  const userPlan = coalesceLatest(users, (o) => o.payload.userId ?? '');
  summary.superseded += itemPlan.superseded.length + userPlan.superseded.length;
  const target = { ...settings, streamInteractions: true };
  const outcome = await forwardAll({ events, items: itemPlan.latest, users: userPlan.latest }, deps.sender, target);
  summary.notConfigured += outcome.notConfigured;
  const { events: eventResult, items: itemResult, users: userResult } = outcome;
  summary.putEventsCalls += eventResult.calls;
  summary.putItemsCalls += itemResult.calls;
  summary.putUsersCalls += userResult.calls;
  summary.eventsSent += eventResult.delivered.length;
  summary.itemsSent += itemResult.delivered.length;
  summary.usersSent += userResult.delivered.length;
  for (const result of [eventResult, itemResult, userResult]) {
    for (const { entry, reason } of result.rejected) {
      rejections.push({ key, eventId: entry.message.eventId, kind: entry.message.kind, stage: 'personalize', reason });
    }
  }
  const rejectedCount = rejections.length - parsed.malformed.length;
  summary.rejected += rejectedCount;
  if (rejections.length > 0) await deps.rejections.write(rejections);
  const failed = eventResult.failed.length + itemResult.failed.length + userResult.failed.length;
  if (failed > 0) {
    throw new ReplayError(`${failed} records of ${key} were not delivered (throttled or failing after the SDK's retries); run the same command again to resume from this object`);
  }
  return { events: eventResult.delivered.length, items: itemResult.delivered.length, users: userResult.delivered.length, rejected: rejectedCount };
}
