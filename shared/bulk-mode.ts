/**
 * What the nightly bulk import is for, per deployment (docs/bulk-modes.md). Personalize keeps PUT
 * (PutEvents) and bulk interactions side by side and no documented rule deduplicates between them
 * (FACTS §9, docs/personalize-bulk-and-stream.md §1), so each interaction must reach it by exactly
 * one path:
 * - complement: a live tracker streams every interaction; the import carries only what PutEvents
 *   never accepted (the `forwarded/` record says what it did) and anonymous history under its user;
 * - bootstrap: a new dataset group before its tracker goes live: the whole archive, FULL, backfilled;
 * - bulk-only: no tracker; every interaction goes by the nightly import.
 */
export const BULK_MODES = ['complement', 'bootstrap', 'bulk-only'] as const;
export type BulkMode = (typeof BULK_MODES)[number];

/** Interactions go to PutEvents only when a tracker is live. */
export function streamsInteractions(mode: BulkMode): boolean {
  return mode === 'complement';
}

export interface BulkRunRequest {
  bulkMode: BulkMode;
  /** The import mode asked for: auto picks FULL only for a dataset's first import. */
  mode: 'auto' | 'FULL' | 'INCREMENTAL';
  anonymous: 'skip' | 'session-as-user';
  /** Days in the run (more than one only in bootstrap). */
  days: number;
  /** Objects of the `forwarded/` record in the run's days: PutEvents accepted interactions then. */
  forwardedObjects: number;
}

/**
 * The combinations that would put an interaction into Personalize twice, or wipe bulk data, with
 * why; undefined when the run may go ahead.
 */
export function bulkRunRefusal(run: BulkRunRequest): string | undefined {
  const { bulkMode, mode } = run;
  if (run.days > 1 && bulkMode !== 'bootstrap') {
    return `a range of days is exported only in bootstrap mode (one FULL import of the whole history); BULK_MODE is ${bulkMode}: export one day at a time`;
  }
  if (bulkMode === 'bootstrap' && mode === 'INCREMENTAL') {
    return 'bootstrap imports the whole archive with FULL (it replaces the dataset\'s bulk data, never its PUT data, FACTS §4d); INCREMENTAL would add it on top of earlier bulk imports';
  }
  if (bulkMode !== 'bootstrap' && mode === 'FULL') {
    return `FULL replaces all of the dataset's bulk data with this one day (FACTS §4d); in ${bulkMode} mode the daily import is INCREMENTAL after the first (auto). To re-import the whole history, run bootstrap over every day`;
  }
  if (bulkMode !== 'bootstrap' && run.anonymous === 'session-as-user') {
    return `session-as-user is refused in ${bulkMode} mode: when a login for the session arrives later, the re-export imports the same events under the user while the rows under the session id stay in Personalize (a delta cannot retract them); use it only with bootstrap, whose FULL import replaces them`;
  }
  if (bulkMode !== 'complement' && run.forwardedObjects > 0) {
    return `${run.forwardedObjects} objects under forwarded/ record interactions of these days that PutEvents already accepted: ${bulkMode} would import them a second time. ` +
      (bulkMode === 'bootstrap' ? 'Bootstrap only the days before the tracker went live (--to), or use complement' : 'A tracker is live: use BULK_MODE=complement');
  }
  return undefined;
}
