import { describe, expect, it } from 'vitest';
import { bulkRunRefusal, streamsInteractions, type BulkRunRequest } from '../../shared/bulk-mode.js';

const run = (over: Partial<BulkRunRequest>): BulkRunRequest => ({ bulkMode: 'complement', mode: 'auto', anonymous: 'skip', days: 1, forwardedObjects: 0, ...over });

describe('bulk modes', () => {
  it('streams interactions to PutEvents only when a tracker is live (complement)', () => {
    expect(streamsInteractions('complement')).toBe(true);
    expect(streamsInteractions('bootstrap')).toBe(false);
    expect(streamsInteractions('bulk-only')).toBe(false);
  });

  it('lets the everyday runs of each mode go ahead', () => {
    expect(bulkRunRefusal(run({}))).toBeUndefined();
    expect(bulkRunRefusal(run({ forwardedObjects: 12 }))).toBeUndefined();
    expect(bulkRunRefusal(run({ mode: 'INCREMENTAL' }))).toBeUndefined();
    expect(bulkRunRefusal(run({ bulkMode: 'bulk-only' }))).toBeUndefined();
    expect(bulkRunRefusal(run({ bulkMode: 'bootstrap', mode: 'FULL', days: 300, anonymous: 'session-as-user' }))).toBeUndefined();
  });

  it('refuses, with the reason, every run that would put an interaction into Personalize twice or wipe its bulk data', () => {
    const refusals: [Partial<BulkRunRequest>, RegExp][] = [
      [{ mode: 'FULL' }, /FULL replaces all of the dataset's bulk data with this one day/],
      [{ bulkMode: 'bulk-only', mode: 'FULL' }, /in bulk-only mode the daily import is INCREMENTAL/],
      [{ bulkMode: 'bootstrap', mode: 'INCREMENTAL' }, /bootstrap imports the whole archive with FULL/],
      [{ anonymous: 'session-as-user' }, /session-as-user is refused in complement mode/],
      [{ bulkMode: 'bulk-only', anonymous: 'session-as-user' }, /session-as-user is refused in bulk-only mode/],
      [{ bulkMode: 'bulk-only', forwardedObjects: 3 }, /3 objects under forwarded\/ .* use BULK_MODE=complement/],
      [{ bulkMode: 'bootstrap', forwardedObjects: 1, days: 30 }, /Bootstrap only the days before the tracker went live/],
      [{ days: 2 }, /a range of days is exported only in bootstrap mode/],
    ];
    for (const [over, reason] of refusals) expect(bulkRunRefusal(run(over)), JSON.stringify(over)).toMatch(reason);
  });
});
