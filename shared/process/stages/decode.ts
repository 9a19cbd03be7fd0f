import type { KinesisStreamRecord } from 'aws-lambda';
import { dedupeKey, messageTarget } from '../../../schemas/canonical.js';
import { decodeKinesisRecord } from '../../decode.js';
import type { Entry } from '../../entry.js';
import type { EventMapping } from '../../event-mapping.js';
import { mapInteraction } from '../../personalize/preflight.js';
import { applyPrivacyPolicy, type AllowTargets, type PiiPolicy } from '../../pii.js';
import type { DatasetSchemas } from '../../personalize/dataset-schema.js';
import type { BatchCounts } from '../report.js';
import type { DeadLetters } from './dead-letters.js';

export interface DecodeSettings {
  mapping: EventMapping;
  schemas: DatasetSchemas;
  pii?: PiiPolicy | undefined;
  /** The mapping and schemas of the target a message is stamped with (undefined: not configured here). */
  targetOf?: (name: string) => { mapping: EventMapping; schemas: DatasetSchemas } | undefined;
}

/**
 * Stage 1, decode: records to valid canonical messages (KPL aggregates unpacked), source event
 * names mapped to Personalize event types, re-sends in the batch dropped (dedupeKey), and the
 * privacy policy applied before anything is stored or sent: the archive is kept for years, and
 * Personalize is a third store. What is invalid is dead-lettered with its reason.
 */
export function decodeStage(records: readonly KinesisStreamRecord[], settings: DecodeSettings, dead: DeadLetters): { entries: Entry[]; counts: BatchCounts } {
  const counts = { messages: 0, invalid: 0, duplicates: 0, propertiesNotAllowed: 0 };
  // What the privacy policy keeps, per target (its schemas and renames): built once per batch and target.
  const privacy = new Map<object, AllowTargets>();
  const privacyOf = (target: { mapping: EventMapping; schemas: DatasetSchemas }): AllowTargets => {
    let allow = privacy.get(target);
    if (!allow) privacy.set(target, (allow = { schemas: target.schemas, renames: { items: target.mapping.itemProperties, users: target.mapping.traits } }));
    return allow;
  };
  const entries: Entry[] = [];
  const seen = new Set<string>();
  for (const record of records) {
    for (const decoded of decodeKinesisRecord(record)) {
      counts.messages++;
      if (!decoded.ok) {
        counts.invalid++;
        dead.rejectDecoded(decoded);
        continue;
      }
      const entry: Entry = { ref: decoded.ref, message: decoded.message };
      const targetName = messageTarget(entry.message);
      const target = targetName === undefined ? settings : settings.targetOf?.(targetName);
      if (target === undefined) {
        counts.invalid++;
        dead.reject(entry, 'validate', `target ${targetName} is not configured in this processor (TARGETS_FILE)`, [{ path: 'target', message: 'not a configured target' }]);
        continue;
      }
      if (entry.message.kind === 'interaction') {
        const mapped = mapInteraction(target.mapping, entry.message);
        if (!mapped.ok) {
          counts.invalid++;
          dead.reject(entry, 'validate', mapped.reason, mapped.errors);
          continue;
        }
        entry.message = mapped.message;
      }
      const key = dedupeKey(entry.message);
      if (seen.has(key)) {
        counts.duplicates++;
        continue;
      }
      seen.add(key);
      if (settings.pii) {
        const filtered = applyPrivacyPolicy(entry.message, settings.pii, privacyOf(target));
        entry.message = filtered.message;
        counts.propertiesNotAllowed += filtered.notAllowed;
      }
      entries.push(entry);
    }
  }
  return { entries, counts };
}
