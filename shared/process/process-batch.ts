import type { KinesisStreamBatchResponse, KinesisStreamRecord } from 'aws-lambda';
import type { ArchiveStore } from '../archive.js';
import { streamsInteractions, type BulkMode } from '../bulk-mode.js';
import type { DeletionRegistry } from '../deletion.js';
import type { DeadLetterQueue } from '../dlq.js';
import type { EventMapping } from '../event-mapping.js';
import type { LinkCache } from '../identity/cache.js';
import type { IdentityStore } from '../identity/store.js';
import type { DatasetSchema } from '../personalize/dataset-schema.js';
import type { PersonalizeSender } from '../personalize/forward.js';
import type { PiiPolicy } from '../pii.js';
import type { ProfileStore } from '../profile/store.js';
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
    const { entries, counts: decoded } = decodeStage(records, settings, dead);
    addCounts(report, decoded);
    const consent = await consentStage(entries, deps.consent);
    addCounts(report, consent.counts);
    addCounts(report, await stitchStage(entries, consent.verdicts, deps));
    addCounts(report, await deletionStage(entries, deps));
    const checks = { mapping: settings.mapping, schemas: settings.schemas };
    const archiveDenied = deps.consent?.policy.archive !== 'drop';
    const preflighted = preflightStage(entries, { checks, denied: deniedBy(consent.verdicts), archiveDenied, canDelete: canDelete(deps) }, dead);
    addCounts(report, preflighted.counts);
    const profiles = await profileStage(preflighted.profileUpdates, deps.profiles, settings.schemas);
    addCounts(report, profiles.counts);
    const range = sequenceRangeOf(records, preflighted.accepted);
    addCounts(report, await archiveStage(preflighted.accepted, range, deps.archive));
    const plan = { events: preflighted.events, items: profiles.items, users: profiles.users };
    const target = { ...settings, streamInteractions: streamsInteractions(settings.bulkMode ?? 'complement') };
    const forwarded = await forwardStage(plan, deps.personalize, target, dead);
    addCounts(report, forwarded.counts);
    addCounts(report, await forwardedRecordStage(forwarded.deliveredEvents, range, deps.archive));
    const retries = forwarded.retries;
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
