import type { KinesisStreamRecord } from 'aws-lambda';
import { dedupeKey } from '../../../schemas/canonical.js';
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
  pii?: PiiPolicy;
}

/**
 * Stage 1, decode: records to valid canonical messages (KPL aggregates unpacked), source event
 * names mapped to Personalize event types, re-sends in the batch dropped (dedupeKey), and the
 * privacy policy applied before anything is stored or sent: the archive is kept for years, and
 * Personalize is a third store. What is invalid is dead-lettered with its reason.
 */
export function decodeStage(records: readonly KinesisStreamRecord[], settings: DecodeSettings, dead: DeadLetters): { entries: Entry[]; counts: BatchCounts } {
  const counts = { messages: 0, invalid: 0, duplicates: 0, propertiesNotAllowed: 0 };
  const privacyTargets: AllowTargets = {
    schemas: settings.schemas,
    renames: { items: settings.mapping.itemProperties, users: settings.mapping.traits },
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
      if (entry.message.kind === 'interaction') {
        const mapped = mapInteraction(settings.mapping, entry.message);
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
        const filtered = applyPrivacyPolicy(entry.message, settings.pii, privacyTargets);
        entry.message = filtered.message;
        counts.propertiesNotAllowed += filtered.notAllowed;
      }
      entries.push(entry);
    }
  }
  return { entries, counts };
}
