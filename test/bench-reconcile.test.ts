import { beforeAll, describe, expect, it } from 'vitest';
import { reconcileDay, RECONCILE_SEED, type ReconcileResult, type ScenarioCounts } from '../bench/reconcile.js';
import { DAY_SIZES } from '../bench/lib/pipeline-data.js';

/**
 * bench/reconcile.ts on the quick synthetic day: through the real collector, processor and export,
 * each valid interaction reaches Personalize's training data exactly once in complement mode,
 * under the user the export attributes it to; the old design (before) counts them twice.
 */

let result: ReconcileResult;
const scenario = (name: ScenarioCounts['scenario']) => result.scenarios.find((s) => s.scenario === name)!;

beforeAll(async () => {
  result = await reconcileDay({ sessions: DAY_SIZES.quick, seed: RECONCILE_SEED, scenarios: ['before', 'complement'] });
}, 30_000);

describe('bench/reconcile.ts (quick day)', () => {
  it('complement: every attributable interaction once, under its user; none twice', () => {
    const after = scenario('complement');
    expect(result.attributable).toBeGreaterThan(0);
    expect(after.eventsWithTwoOrMoreCopies).toBe(0);
    expect(after.attributableWithoutCopy).toBe(0);
    expect(after.oneCopyOtherUser).toBe(0);
    expect(after.eventsByCopies[1]).toBe(result.attributable);
    // The backfill path is exercised: anonymous PUT events of a linked session go by the import.
    expect(after.bulkRows).toBeGreaterThan(0);
    expect(after.bulkRowsUnmatched).toBe(0);
  });

  it('before: the counter sees the doubles of the old design', () => {
    const before = scenario('before');
    expect(before.bulkRowsUnmatched).toBe(0);
    expect(before.eventsWithTwoOrMoreCopies).toBeGreaterThan(0);
    expect(before.bulkRowsIdenticalToStreamed).toBeGreaterThan(0);
  });
});
