import type { RecordRef } from '../../decode.js';
import type { Entry } from '../../entry.js';
import { forwardAll, type ForwardPlan, type ForwardTarget, type PersonalizeSender } from '../../personalize/forward.js';
import type { BatchCounts } from '../report.js';
import type { DeadLetters } from './dead-letters.js';

export interface Forwarded {
  /** Events PutEvents accepted (for the forwarded record). */
  deliveredEvents: Entry[];
  /** Records to retry: throttled or failing after the SDK's retries. */
  retries: RecordRef[];
  counts: BatchCounts;
}

/** Stage 8, forward: to Personalize; what it refuses as invalid is dead-lettered, what failed is retried. */
export async function forwardStage(plan: ForwardPlan, sender: PersonalizeSender, target: ForwardTarget, dead: DeadLetters): Promise<Forwarded> {
  const outcome = await forwardAll(plan, sender, target);
  const { events, items, users } = outcome;
  let rejectedByPersonalize = 0;
  const retries: RecordRef[] = [];
  for (const result of [events, items, users]) {
    for (const { entry, reason } of result.rejected) {
      rejectedByPersonalize++;
      dead.reject(entry, 'personalize', reason);
    }
    for (const entry of result.failed) retries.push(entry.ref);
  }
  return {
    deliveredEvents: events.delivered,
    retries,
    counts: {
      putEventsCalls: events.calls,
      putItemsCalls: items.calls,
      putUsersCalls: users.calls,
      forwardedEvents: events.delivered.length,
      forwardedItems: items.delivered.length,
      forwardedUsers: users.delivered.length,
      profilesSent: (target.itemsDatasetArn ? plan.items.length : 0) + (target.usersDatasetArn ? plan.users.length : 0),
      notConfigured: outcome.notConfigured,
      notStreamed: outcome.notStreamed,
      rejectedByPersonalize,
    },
  };
}
