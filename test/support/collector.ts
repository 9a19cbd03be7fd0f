import type { CollectorSettings } from '../../shared/collect/collector.js';
import { loadEventMapping } from '../../shared/event-mapping.js';

/**
 * The collector's settings at their documented defaults (COLLECTOR_* in README), for tests and
 * benchmarks that drive `collect()` without the environment; `overrides` replace single settings.
 */
export function collectorTestSettings(overrides: Partial<CollectorSettings> = {}): CollectorSettings {
  return {
    maxBodyBytes: 512_000,
    maxMessageBytes: 32_768,
    maxMessages: 4_000,
    maxExpandedPerMessage: 250,
    maxRecordsPerRequest: 10_000,
    clockSkewToleranceMs: 60_000,
    publicProfileUpdates: 'drop',
    mapping: loadEventMapping({}),
    ...overrides,
  };
}
