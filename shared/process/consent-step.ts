import type { CanonicalMessage, ConsentSignal } from '../../schemas/canonical.js';
import {
  decideConsent,
  isOptOut,
  mergeConsent,
  policyRequiresConsent,
  resolveConsent,
  sameConsent,
  type ConsentPolicy,
  type StoredConsent,
} from '../consent/policy.js';
import { consentKeyOf, type ConsentKey, type ConsentStore, type ConsentUpdate } from '../consent/store.js';
import type { Entry } from '../entry.js';

/**
 * The processor's consent step (README "Consent"): the latest consent of each session and user in
 * the batch, merged from the stored state and every signal the batch carries, decides for each
 * message about a person whether it may reach Personalize. One rule (shared/consent/policy.ts) for
 * every path: the archive keeps the verdict on the line, so the export, replay and redrive apply it
 * too.
 */

export interface ConsentDeps {
  policy: ConsentPolicy;
  /** The latest consent per user and session; unset: only the signals on the messages count. */
  store?: ConsentStore;
  /** CONSENT_OPT_OUT_DELETION: schedules Personalize's data deletion job for a user who opted out. */
  scheduleDeletion?(userId: string, at: number): Promise<void>;
}

export interface ConsentVerdicts {
  /** Entries kept from Personalize, with the reason. */
  denied: Map<Entry, string>;
  /** Users whose consent turned from allowed to denied in this batch. */
  optedOut: string[];
  stored: Map<string, StoredConsent>;
}

const PERSONAL = new Set<CanonicalMessage['kind']>(['interaction', 'user', 'identify', 'alias', 'consent']);

function signalOf(m: CanonicalMessage): ConsentSignal | undefined {
  return 'consent' in m ? m.consent : undefined;
}

function sessionOf(m: CanonicalMessage): string | undefined {
  return 'sessionId' in m ? m.sessionId : m.kind === 'alias' ? m.previousId : undefined;
}

function userOf(entry: Entry): string | undefined {
  const m = entry.message;
  return ('userId' in m ? m.userId : undefined) ?? entry.userId;
}

/**
 * Decides every message about a person, before stitching. Reads the stored states of the batch's
 * sessions and users, merges the batch's signals into them, schedules a deletion for each opt-out
 * and only then stores the new states (a retried batch must still see the flip).
 */
export async function decideBatchConsent(entries: readonly Entry[], deps: ConsentDeps): Promise<ConsentVerdicts> {
  const verdicts: ConsentVerdicts = { denied: new Map(), optedOut: [], stored: new Map() };
  const personal = entries.filter((e) => PERSONAL.has(e.message.kind));
  const carriesSignal = personal.some((e) => signalOf(e.message) !== undefined);
  if (personal.length === 0 || (!carriesSignal && !policyRequiresConsent(deps.policy))) return verdicts;

  const keys = new Map<string, ConsentKey>();
  const keysOf = (entry: Entry): ConsentKey[] => {
    const session = sessionOf(entry.message);
    const user = userOf(entry);
    return [...(session !== undefined ? [{ kind: 'session' as const, id: session }] : []), ...(user !== undefined ? [{ kind: 'user' as const, id: user }] : [])];
  };
  for (const entry of personal) for (const key of keysOf(entry)) keys.set(consentKeyOf(key), key);
  const before = deps.store ? await deps.store.getConsents([...keys.values()]) : new Map<string, StoredConsent>();

  // Every signal of the batch, merged by its own time (the merge does not depend on order).
  const after = new Map(before);
  for (const entry of personal) {
    const signal = signalOf(entry.message);
    if (signal === undefined) continue;
    for (const key of keysOf(entry)) {
      const id = consentKeyOf(key);
      after.set(id, mergeConsent(after.get(id), signal, entry.message.timestamp));
    }
  }
  verdicts.stored = after;
  // A consent change is itself never forwarded: only the messages it governs are judged.
  judge(personal.filter((e) => e.message.kind !== 'consent'), deps.policy, after, verdicts);

  const updates: ConsentUpdate[] = [];
  for (const [id, state] of after) {
    if (sameConsent(state, before.get(id))) continue;
    const key = keys.get(id)!;
    updates.push({ ...key, consent: state });
    if (key.kind === 'user' && isOptOut(deps.policy, before.get(id), state)) verdicts.optedOut.push(key.id);
  }
  if (deps.scheduleDeletion) {
    const at = Math.max(0, ...personal.map((e) => e.message.timestamp));
    for (const userId of verdicts.optedOut) await deps.scheduleDeletion(userId, at);
  }
  if (deps.store && updates.length > 0) await deps.store.putConsents(updates);
  return verdicts;
}

/** After stitching: an anonymous interaction given a user is judged by that user's consent too. */
export async function decideStitchedConsent(entries: readonly Entry[], deps: ConsentDeps, verdicts: ConsentVerdicts): Promise<void> {
  if (!policyRequiresConsent(deps.policy)) return;
  const stitched = entries.filter((e) => e.stitched === true && e.userId !== undefined && !verdicts.denied.has(e));
  if (stitched.length === 0) return;
  const missing = [...new Set(stitched.map((e) => e.userId!))].map((id) => ({ kind: 'user' as const, id })).filter((k) => !verdicts.stored.has(consentKeyOf(k)));
  if (deps.store && missing.length > 0) for (const [id, state] of await deps.store.getConsents(missing)) verdicts.stored.set(id, state);
  judge(stitched, deps.policy, verdicts.stored, verdicts);
}

function judge(entries: readonly Entry[], policy: ConsentPolicy, states: ReadonlyMap<string, StoredConsent>, verdicts: ConsentVerdicts): void {
  for (const entry of entries) {
    const m = entry.message;
    const session = sessionOf(m);
    const user = userOf(entry);
    const state = resolveConsent(
      signalOf(m),
      m.timestamp,
      session !== undefined ? states.get(consentKeyOf({ kind: 'session', id: session })) : undefined,
      user !== undefined ? states.get(consentKeyOf({ kind: 'user', id: user })) : undefined,
    );
    const decision = decideConsent(policy, state);
    if (!decision.allowed) verdicts.denied.set(entry, decision.reason);
  }
}
