import { messageTarget } from '../../schemas/canonical.js';
import type { KinesisStreamBatchResponse, KinesisStreamRecord } from 'aws-lambda';
import { TARGETS_PREFIX, type ArchiveStore, type SequenceRange } from '../archive.js';
import type { RecordRef } from '../decode.js';
import type { Entry } from '../entry.js';
import { DEFAULT_TARGET } from '../targets.js';
import { streamsInteractions, type BulkMode } from '../bulk-mode.js';
import type { DeletionRegistry } from '../deletion.js';
import type { DeadLetterQueue } from '../dlq.js';
import type { EventMapping } from '../event-mapping.js';
import type { LinkCache } from '../identity/cache.js';
import type { IdentityStore } from '../identity/store.js';
import type { DatasetSchema } from '../personalize/dataset-schema.js';
import type { PersonalizeSender } from '../personalize/forward.js';
import type { PiiPolicy } from '../pii.js';
import { targetProfileStore, type ProfileStore } from '../profile/store.js';
import type { ConsentDeps } from './consent-step.js';
import { addCounts, emptyReport, type BatchReport, type TargetCounts } from './report.js';
import { archiveStage, forwardedRecordStage, sequenceRangeOf } from './stages/archive.js';
import { DeadLetters, deadLetterStage } from './stages/dead-letters.js';
import { decodeStage } from './stages/decode.js';
import { forwardStage } from './stages/forward.js';
import { canDelete, consentStage, deletionStage, deniedBy, stitchStage, type Denied } from './stages/identity.js';
import { preflightStage, type Preflighted } from './stages/preflight.js';
import { profileStage, type MergedProfiles } from './stages/profiles.js';
import { RetryBatch } from './stages/retry.js';

export type { BatchReport } from './report.js';

/** The settings of a target by name (undefined: not configured here); the default target is the settings themselves. */
export function targetSettings(settings: ProcessorSettings, name: string | undefined): TargetSettings | undefined {
  return name === undefined || name === DEFAULT_TARGET ? settings : settings.targets?.get(name);
}

/** The batch's entries per target, the default first; identity, consent and deletion messages go with the default. */
function entriesByTarget(entries: readonly Entry[]): Map<string, Entry[]> {
  const byTarget = new Map<string, Entry[]>([[DEFAULT_TARGET, []]]);
  for (const entry of entries) {
    const name = messageTarget(entry.message) ?? DEFAULT_TARGET;
    let list = byTarget.get(name);
    if (!list) byTarget.set(name, (list = []));
    list.push(entry);
  }
  return byTarget;
}

/** Whether a user's deletion comes after this entry in the batch; undefined when the batch deletes no one. */
function deletedLaterIn(entries: readonly Entry[]): ((entry: Entry, userId: string) => boolean) | undefined {
  const lastDeletion = new Map<string, number>();
  entries.forEach((e, i) => {
    if (e.message.kind === 'delete') lastDeletion.set(e.message.userId, i);
  });
  // Most batches delete no one: no order to keep then.
  if (lastDeletion.size === 0) return undefined;
  const order = new Map(entries.map((e, i) => [e, i]));
  return (entry, userId) => {
    const at = lastDeletion.get(userId);
    return at !== undefined && order.get(entry)! < at;
  };
}

/** A target's archive: the default keeps the top-level layout, another lives under targets/<name>/. */
function archiveOf(archive: ArchiveStore, name: string): ArchiveStore {
  return name === DEFAULT_TARGET ? archive : { put: (key, body) => archive.put(`${TARGETS_PREFIX}${name}/${key}`, body) };
}

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
  /**
   * The other targets (docs/targets.md), by name: messages the collector stamped with a target get
   * its tracker, datasets, schemas and mapping, and their own archive prefix and profiles. Unset
   * or empty: one target, the settings above.
   */
  targets?: ReadonlyMap<string, TargetSettings>;
}

/** What is specific to one target. */
export type TargetSettings = Pick<ProcessorSettings, 'trackingId' | 'itemsDatasetArn' | 'usersDatasetArn' | 'schemas' | 'mapping'> & {
  /** Unset: the deployment's (a target being bootstrapped streams no interactions while another does). */
  bulkMode?: BulkMode | undefined;
};

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

export interface BatchOutcome {
  response: KinesisStreamBatchResponse;
  report: BatchReport;
}

/**
 * The processor's core: a Kinesis batch in, a partial batch response out, as named stages
 * (./stages/): decode -> consent -> stitch -> delete -> pre-flight -> profiles -> archive ->
 * forward -> forwarded record -> dead letters. Each returns its counts. A transient failure (a
 * store, the archive, Personalize throttling or 5xx, the DLQ) makes records retries, so Lambda
 * retries from the lowest one; bad data goes to the DLQ with its reason.
 */
export async function processBatch(records: readonly KinesisStreamRecord[], deps: ProcessorDeps): Promise<BatchOutcome> {
  const report = emptyReport(records.length);
  if (records.length === 0) return { response: { batchItemFailures: [] }, report };
  const { settings } = deps;
  const dead = new DeadLetters(deps.now ?? Date.now);
  try {
    const { entries, counts: decoded } = decodeStage(records, { ...settings, targetOf: (name) => targetSettings(settings, name) }, dead);
    addCounts(report, decoded);
    const consent = await consentStage(entries, deps.consent);
    addCounts(report, consent.counts);
    addCounts(report, await stitchStage(entries, consent.verdicts, deps));
    addCounts(report, await deletionStage(entries, deps));
    // From here on per target (one, unless TARGETS_FILE declares more): all archived before any is forwarded.
    const parts = await checkPerTarget(entries, deniedBy(consent.verdicts), deps, dead, report);
    const range = sequenceRangeOf(records, parts.flatMap((p) => p.preflighted.accepted));
    for (const part of parts) part.counts.archivedRecords = addCounts(report, await archiveStage(part.preflighted.accepted, range, part.archive)).archivedRecords ?? 0;
    const retries = await forwardPerTarget(parts, range, deps, dead, report);
    addCounts(report, await deadLetterStage(dead, retries, deps.dlq));
    const failedSequences = [...new Set(retries.map((r) => r.sequenceNumber))];
    report.retried = failedSequences.length;
    return { response: { batchItemFailures: failedSequences.map((itemIdentifier) => ({ itemIdentifier })) }, report };
  } catch (error) {
    if (!(error instanceof RetryBatch)) throw error;
    report.failure = error.message;
    report.retried = records.length;
    return { response: { batchItemFailures: [{ itemIdentifier: records[0]!.kinesis.sequenceNumber }] }, report };
  }
}

interface TargetPart {
  name: string;
  target: TargetSettings;
  preflighted: Preflighted;
  profiles: MergedProfiles;
  archive: ArchiveStore;
  counts: TargetCounts;
}

/** Pre-flight and profile merge of each target's entries, with its schemas and mapping. */
async function checkPerTarget(entries: readonly Entry[], denied: Denied, deps: ProcessorDeps, dead: DeadLetters, report: BatchReport): Promise<TargetPart[]> {
  const archiveDenied = deps.consent?.policy.archive !== 'drop';
  const parts: TargetPart[] = [];
  const byTarget = entriesByTarget(entries);
  // Only another target's updates need it: the default's are voided by its own delete messages.
  const deletedLater = byTarget.size > 1 ? deletedLaterIn(entries) : undefined;
  for (const [name, list] of byTarget) {
    const target = targetSettings(deps.settings, name)!;
    const checks = { mapping: target.mapping, schemas: target.schemas };
    // The delete messages are in the default's list; another target's updates they void are told apart here.
    const voided = name === DEFAULT_TARGET ? undefined : deletedLater;
    const preflighted = preflightStage(list, { checks, denied, archiveDenied, canDelete: canDelete(deps), ...(voided && { deletedLater: voided }) }, dead);
    addCounts(report, preflighted.counts);
    const store = name === DEFAULT_TARGET ? deps.profiles : targetProfileStore(deps.profiles, name);
    const profiles = await profileStage(preflighted.profileUpdates, store, target.schemas);
    addCounts(report, profiles.counts);
    const counts = { archivedRecords: 0, forwardedEvents: 0, forwardedItems: 0, forwardedUsers: 0 };
    parts.push({ name, target, preflighted, profiles, archive: archiveOf(deps.archive, name), counts });
  }
  return parts;
}

/** Forward and the record of what PutEvents accepted, per target; returns the records to retry. */
async function forwardPerTarget(parts: readonly TargetPart[], range: SequenceRange, deps: ProcessorDeps, dead: DeadLetters, report: BatchReport): Promise<RecordRef[]> {
  const { settings } = deps;
  const retries: RecordRef[] = [];
  for (const { name, target, preflighted, profiles, archive, counts } of parts) {
    const streamInteractions = streamsInteractions(target.bulkMode ?? settings.bulkMode ?? 'complement');
    const plan = { events: preflighted.events, items: profiles.items, users: profiles.users };
    const forwarded = await forwardStage(plan, deps.personalize, { ...target, forwardConcurrency: settings.forwardConcurrency, streamInteractions }, dead);
    addCounts(report, forwarded.counts);
    addCounts(report, await forwardedRecordStage(forwarded.deliveredEvents, range, archive));
    retries.push(...forwarded.retries);
    if (name === DEFAULT_TARGET) continue;
    counts.forwardedEvents = forwarded.counts.forwardedEvents ?? 0;
    counts.forwardedItems = forwarded.counts.forwardedItems ?? 0;
    counts.forwardedUsers = forwarded.counts.forwardedUsers ?? 0;
    (report.byTarget ??= {})[name] = counts;
  }
  return retries;
}
