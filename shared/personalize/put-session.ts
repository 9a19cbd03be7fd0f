import { hash } from 'node:crypto';

/**
 * The PutEvents sessionId of an event sent with a userId (docs/bulk-modes.md "Anonymous history").
 *
 * Personalize merges a session's anonymous PUT events into a user at the next full retraining once
 * one PUT event carries both ids (FACTS §1d). The nightly export already attributes anonymous
 * history by the pipeline's own rule (shared/identity/attribution.ts) and imports it under the
 * user; a merge by Personalize on top would count those events twice, and a login the export has
 * not seen yet would be merged by a rule that ignores shared devices. So an event that has a user
 * never names the anonymous session: it names a session derived from it, one per (session), that
 * no anonymous event uses. Anonymous events keep the real sessionId for real-time recommendations.
 */
export function knownUserSessionId(sessionId: string): string {
  // 'u.' + 43 base64url characters: far below the 256-character sessionId limit (FACTS §1a).
  // crypto.hash: one call instead of a Hash object per PutEvents call (issue 17); the same digest.
  return `u.${hash('sha256', sessionId, 'base64url')}`;
}
