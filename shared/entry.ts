import type { CanonicalMessage } from '../schemas/canonical.js';
import type { RecordRef } from './decode.js';

/** One accepted message travelling through a batch: where it came from and what we learned. */
export interface Entry {
  ref: RecordRef;
  message: CanonicalMessage;
  /** The userId an anonymous interaction was stitched to. */
  userId?: string;
  stitched?: boolean;
  /** Why consent keeps it from Personalize (README "Consent"); archived on the line as `consentDenied`. */
  consentDenied?: string;
}

/** The userId an interaction is sent with: its own, or the stitched one. */
export function effectiveUserId(entry: Entry): string | undefined {
  const m = entry.message;
  if (m.kind !== 'interaction') return undefined;
  return m.userId ?? entry.userId;
}
