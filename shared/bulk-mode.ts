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
