import { fileURLToPath } from 'node:url';
import { loadEventMapping } from '../../shared/event-mapping.js';
import { loadDatasetSchemas } from '../../shared/personalize/dataset-schema.js';
import type { TargetSettings } from '../../shared/process/process-batch.js';
import { DEFAULT_TARGET, parseTargets, type Target } from '../../shared/targets.js';

/**
 * The synthetic day fed to two targets (docs/targets.md), declared as a targets file would declare
 * them (schemas/targets/example.json) and read by the product's own parser: the retail default
 * takes everything; a second dataset group for the iOS app takes the app's interactions (the
 * Segment adapter's `properties.device`, about a third of the day's sessions) and every catalog and
 * profile update (the feeds), since its recommenders need the same catalog. The second target uses
 * the deployment's schemas and event mapping: the synthetic day is retail clickstream.
 */

export const SECOND_TARGET = 'ios-app';

export const TWO_TARGETS_DOCUMENT = {
  $comment: 'bench/requests.ts --two-targets: the retail default plus a dataset group for the iOS app.',
  targets: [
    { name: DEFAULT_TARGET, routes: [{ all: true }] },
    {
      name: SECOND_TARGET,
      trackingId: 'bench-ios-app-tracking-id',
      datasetGroupArn: 'arn:aws:personalize:us-east-1:000000000000:dataset-group/bench-ios-app',
      datasets: {
        interactions: 'arn:aws:personalize:us-east-1:000000000000:dataset/bench-ios-app/INTERACTIONS',
        items: 'arn:aws:personalize:us-east-1:000000000000:dataset/bench-ios-app/ITEMS',
        users: 'arn:aws:personalize:us-east-1:000000000000:dataset/bench-ios-app/USERS',
      },
      routes: [{ match: { path: 'properties.device', equals: ['ios'] } }, { sources: ['feed'] }],
    },
  ],
} as const;

/** The two targets, parsed and validated as TARGETS_FILE would be (paths relative to schemas/targets/). */
export function twoTargets(): Target[] {
  const baseDir = fileURLToPath(new URL('../../schemas/targets/', import.meta.url));
  return parseTargets(TWO_TARGETS_DOCUMENT, baseDir, { schemas: loadDatasetSchemas(), mapping: loadEventMapping({}) }, 'bench two targets');
}

/** The processor's settings of the targets other than the default, as its runtime builds them from the file. */
export function processorTargets(targets: readonly Target[]): Map<string, TargetSettings> {
  const out = new Map<string, TargetSettings>();
  for (const t of targets) {
    if (t.name === DEFAULT_TARGET) continue;
    out.set(t.name, { trackingId: t.trackingId ?? '', itemsDatasetArn: t.itemsDatasetArn, usersDatasetArn: t.usersDatasetArn, schemas: t.schemas, mapping: t.mapping });
  }
  return out;
}
