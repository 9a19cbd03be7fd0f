import type { DeadLetterStage } from '../dlq.js';

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
  /** Per target other than the default (docs/targets.md): what reached it; absent with one target. */
  byTarget?: Record<string, TargetCounts>;
  failure?: string;
}

export function emptyReport(kinesisRecords: number): BatchReport {
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

/** What reached one target in a batch. */
export interface TargetCounts {
  archivedRecords: number;
  forwardedEvents: number;
  forwardedItems: number;
  forwardedUsers: number;
}

/** Counts keys of the report: numbers, or counts by reason. */
type CountKeys = { [K in keyof BatchReport]-?: BatchReport[K] extends number | Record<string, number> | Partial<Record<string, number>> ? K : never }[keyof BatchReport];

/** What a stage counted: added to the batch's report (numbers summed, reasons merged). */
export type BatchCounts = Partial<Pick<BatchReport, Exclude<CountKeys, 'kinesisRecords'>>>;

/** Adds a stage's counts to the report and returns them. */
export function addCounts<C extends BatchCounts>(report: BatchReport, counts: C): C {
  const target = report as unknown as Record<string, number | Record<string, number>>;
  const source = counts as Record<string, number | Record<string, number> | undefined>;
  // for...in, not Object.entries: this runs for every stage of every batch (issue 17).
  for (const key in source) {
    const value = source[key];
    if (value === undefined) continue;
    if (typeof value === 'number') {
      target[key] = ((target[key] as number | undefined) ?? 0) + value;
      continue;
    }
    const into = (target[key] ??= {}) as Record<string, number>;
    for (const reason in value) into[reason] = (into[reason] ?? 0) + value[reason]!;
  }
  return counts;
}

/** Adds one to `reason` in a by-reason count. */
export function countReason(counts: Record<string, number>, reason: string, n = 1): void {
  counts[reason] = (counts[reason] ?? 0) + n;
}
