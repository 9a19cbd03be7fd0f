import type { Entry } from '../../entry.js';
import { effectiveUserId } from '../../entry.js';
import type { EventOutbound } from '../../personalize/forward.js';
import { renameProperties } from '../../event-mapping.js';
import { preflightMessage, type MessageChecks } from '../../personalize/preflight.js';
import type { Built } from '../../personalize/requests.js';
import type { ProfileUpdateEntry } from '../../profile/batch.js';
import { countReason, type BatchCounts } from '../report.js';
import type { DeadLetters } from './dead-letters.js';
import type { Denied } from './identity.js';

export interface PreflightOptions {
  checks: MessageChecks;
  denied: Denied;
  /** CONSENT_ARCHIVE: a denied message is archived with its verdict (`keep`) or not at all (`drop`). */
  archiveDenied: boolean;
  /** False: `delete` messages are dead-lettered (no registry or store that can delete). */
  canDelete: boolean;
  /**
   * A target other than the default: whether the user is deleted later in the batch (the delete
   * messages are in the default's entries), which voids this update as it does the default's.
   */
  deletedLater?: (entry: Entry, userId: string) => boolean;
}

export interface Preflighted {
  /** What the archive keeps: every entry not refused. */
  accepted: Entry[];
  events: EventOutbound[];
  /** Item/user partial updates, in stream order, to merge into the stored records. */
  profileUpdates: ProfileUpdateEntry<Entry>[];
  counts: BatchCounts;
}

/**
 * Stage 5, pre-flight: every message checked against every Personalize limit now, so that what
 * would be refused goes to the DLQ with its field instead of failing a call. Denied messages are
 * never sent; a deletion voids the user's earlier updates in the batch.
 */
export function preflightStage(entries: readonly Entry[], options: PreflightOptions, dead: DeadLetters): Preflighted {
  const counts = {
    invalid: 0,
    interactions: 0,
    items: 0,
    users: 0,
    links: 0,
    consents: 0,
    deletions: 0,
    superseded: 0,
    propertiesDropped: 0,
    droppedPropertyReasons: {} as Record<string, number>,
    consentDenied: {} as Record<string, number>,
  };
  const accepted: Entry[] = [];
  const events: EventOutbound[] = [];
  let profileUpdates: ProfileUpdateEntry<Entry>[] = [];
  for (const entry of entries) {
    const m = entry.message;
    const deniedFor = options.denied.get(entry);
    if (deniedFor !== undefined) {
      countReason(counts.consentDenied, deniedFor);
      if (options.archiveDenied) {
        entry.consentDenied = deniedFor;
        accepted.push(entry);
      }
      continue;
    }
    const userId = effectiveUserId(entry);
    const preflight = preflightMessage(m, options.checks, userId);
    let built: Built<unknown> | undefined;
    switch (preflight.kind) {
      case 'interaction':
        counts.interactions++;
        if (preflight.built.ok && m.kind === 'interaction') events.push({ entry, payload: preflight.built.value, sessionId: m.sessionId, userId });
        built = preflight.built;
        break;
      // Partial updates: checked alone here, merged into the stored record by the profile stage.
      case 'item':
      case 'user':
        if (preflight.kind === 'item') counts.items++;
        else counts.users++;
        if (preflight.built.ok && (m.kind === 'item' || m.kind === 'user')) {
          const id = m.kind === 'item' ? m.itemId : m.userId;
          profileUpdates.push({ entry, key: { kind: m.kind, id }, update: { properties: preflight.built.value, timestamp: m.timestamp } });
          // Archived under the target's names, as interactions are archived mapped: the export and
          // the Athena path read the archive and shape it by the schema without the mapping.
          const renamed = renameProperties(m.properties, m.kind === 'item' ? options.checks.mapping.itemProperties : options.checks.mapping.traits);
          if (renamed !== m.properties) entry.message = { ...m, properties: renamed };
        }
        built = preflight.built;
        break;
      case 'none':
        if (m.kind === 'identify' || m.kind === 'alias') counts.links++;
        else if (m.kind === 'consent') counts.consents++;
        else if (m.kind === 'delete') {
          if (!options.canDelete) {
            counts.invalid++;
            dead.reject(entry, 'validate', 'deletion requests need a deletion registry and an identity store that can delete links (processor configuration)');
            continue;
          }
          // Archived under identity/ as an audit record; never forwarded. The user's updates earlier
          // in the batch are void (their stored profile was just removed); later ones start a new one.
          counts.deletions++;
          const before = profileUpdates.length;
          profileUpdates = profileUpdates.filter((u) => u.key.kind !== 'user' || u.key.id !== m.userId);
          counts.superseded += before - profileUpdates.length;
        }
        break;
    }
    if (built && !built.ok) {
      counts.invalid++;
      dead.reject(entry, 'preflight', built.reason, built.errors);
      continue;
    }
    if (built) {
      for (const d of built.dropped) {
        counts.propertiesDropped++;
        // The summary, not the reason: the reason names the payload's key and previews its value.
        countReason(counts.droppedPropertyReasons, d.summary);
      }
    }
    accepted.push(entry);
  }
  const { deletedLater } = options;
  if (deletedLater) {
    const before = profileUpdates.length;
    profileUpdates = profileUpdates.filter((u) => u.key.kind !== 'user' || !deletedLater(u.entry, u.key.id));
    counts.superseded += before - profileUpdates.length;
  }
  return { accepted, events, profileUpdates, counts };
}
