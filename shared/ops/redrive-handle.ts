import { z } from 'zod';
import { logger, metrics, MetricUnit } from '../observability.js';
import { OUTCOMES, runRedrive, type RedriveSummary } from './redrive.js';
import { redriveRuntimeFromEnv, type RedriveRuntime } from './redrive-runtime.js';

/**
 * The redrive Lambda's core: invoked by hand (`{"max": 100, "dryRun": true}`) or by a schedule
 * (the EventBridge event carries neither field: the configured maximum, for real).
 */

let runtime: RedriveRuntime | undefined;

/** Replaces the adapters (tests). */
export function setRedriveRuntime(next: RedriveRuntime | undefined): void {
  runtime = next;
}

const inputSchema = z.looseObject({
  max: z.coerce.number().int().positive().optional(),
  dryRun: z.boolean().optional(),
});

/** Stops receiving while this much time is left, so the messages in hand are finished. */
const SAFETY_MARGIN_MS = 30_000;

export interface RemainingTime {
  getRemainingTimeInMillis(): number;
}

export async function redriveFromLambda(event: unknown, context: RemainingTime): Promise<RedriveSummary> {
  runtime ??= redriveRuntimeFromEnv();
  const parsed = inputSchema.safeParse(event ?? {});
  if (!parsed.success) throw new Error(`redrive input is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
  const summary = await runRedrive(
    { ...runtime.deps, shouldContinue: () => context.getRemainingTimeInMillis() > SAFETY_MARGIN_MS },
    { ...runtime.settings, ...(parsed.data.max !== undefined && { maxMessages: parsed.data.max }), dryRun: parsed.data.dryRun ?? false },
  );
  metrics.addMetric(summary.dryRun ? 'redrive_dryRunMessages' : 'redrive_messages', MetricUnit.Count, summary.messages);
  if (!summary.dryRun) {
    for (const outcome of OUTCOMES) {
      if (summary.outcomes[outcome] > 0) metrics.addMetric(`redrive_${outcome}`, MetricUnit.Count, summary.outcomes[outcome]);
    }
    if (summary.recordsPut > 0) metrics.addMetric('redrive_recordsPut', MetricUnit.Count, summary.recordsPut);
  }
  // Counts only: dead-letter reasons quote payload keys and values (that is their job in the queue),
  // so they stay out of the log line; the invocation's result carries them to the caller.
  const { byReason, newReasons, ...counts } = summary;
  logger.info('redrive finished', { summary: counts, reasons: Object.keys(byReason).length, newReasons: Object.keys(newReasons).length });
  return summary;
}
