import type { KinesisStreamBatchResponse, KinesisStreamRecord } from 'aws-lambda';
import { TARGETS_PREFIX, type ArchiveStore } from '../archive.js';
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
import { addCounts, emptyReport, type BatchReport } from './report.js';
import { archiveStage, forwardedRecordStage, sequenceRangeOf } from './stages/archive.js';
import { DeadLetters, deadLetterStage } from './stages/dead-letters.js';
import { decodeStage } from './stages/decode.js';
import { forwardStage } from './stages/forward.js';
import { canDelete, consentStage, deletionStage, deniedBy, stitchStage } from './stages/identity.js';
import { preflightStage } from './stages/preflight.js';
import { profileStage } from './stages/profiles.js';
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
    const name = ('target' in entry.message ? entry.message.target : undefined) ?? DEFAULT_TARGET;
    let list = byTarget.get(name);
    if (!list) byTarget.set(name, (list = []));
    list.push(entry);
  }
  return byTarget;
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
export type TargetSettings = Pick<ProcessorSettings, 'trackingId' | 'itemsDatasetArn' | 'usersDatasetArn' | 'schemas' | 'mapping'>;

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
    const archiveDenied = deps.consent?.policy.archive !== 'drop';
    const denied = deniedBy(consent.verdicts);
    const targets = [...entriesByTarget(entries)].map(([name, list]) => ({ name, list, target: targetSettings(settings, name)! }));
    const parts = [];
    for (const { name, list, target } of targets) {
      const checks = { mapping: target.mapping, schemas: target.schemas };
      const preflighted = preflightStage(list, { checks, denied, archiveDenied, canDelete: canDelete(deps) }, dead);
      addCounts(report, preflighted.counts);
      const profiles = await profileStage(preflighted.profileUpdates, name === DEFAULT_TARGET ? deps.profiles : targetProfileStore(deps.profiles, name), target.schemas);
      addCounts(report, profiles.counts);
      parts.push({ name, target, preflighted, profiles, archive: archiveOf(deps.archive, name) });
    }
    const range = sequenceRangeOf(records, parts.flatMap((p) => p.preflighted.accepted));
    for (const part of parts) addCounts(report, await archiveStage(part.preflighted.accepted, range, part.archive));
    const streamInteractions = streamsInteractions(settings.bulkMode ?? 'complement');
    const retries: RecordRef[] = [];
    for (const { target, preflighted, profiles, archive } of parts) {
      const plan = { events: preflighted.events, items: profiles.items, users: profiles.users };
      const forwarded = await forwardStage(plan, deps.personalize, { ...target, forwardConcurrency: settings.forwardConcurrency, streamInteractions }, dead);
      addCounts(report, forwarded.counts);
      addCounts(report, await forwardedRecordStage(forwarded.deliveredEvents, range, archive));
      retries.push(...forwarded.retries);
    }
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
