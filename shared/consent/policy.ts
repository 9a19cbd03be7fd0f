import type { ConsentSignal } from '../../schemas/canonical.js';

/**
 * The consent rule: one pure decision, applied alike by the processor, the export, redrive and
 * replay (README "Consent"). No I/O here; the stored state lives in shared/consent/store.ts.
 *
 * Vocabulary (FACTS §10): `categories` are Segment consent category ids
 * (`context.consent.categoryPreferences`), `purposes` mParticle GDPR purposes
 * (`consent_state.gdpr.<purpose>.consented`), `dataSaleOptOut` mParticle's CCPA
 * `data_sale_opt_out.consented` (true: the user opted out of the sale of their data).
 */

export type { ConsentSignal };

export interface ConsentPolicy {
  /** Segment category ids Personalize needs, matched exactly (case-sensitive): Segment's ids are configured names, compared as given. */
  requiredCategories: readonly string[];
  /** mParticle GDPR purposes Personalize needs, matched ignoring case: mParticle's SDKs lowercase purpose names. */
  requiredPurposes: readonly string[];
  /** CCPA: a data-sale opt-out denies. Off by default (README "Consent"): Personalize is the business's own processor, not a buyer. */
  honourDataSaleOptOut: boolean;
  /** An event with no consent signal at all (or none for a required vocabulary): forwarded (`allow`, as Segment does) or not. */
  noSignal: 'allow' | 'deny';
  /** A denied event in the archive: kept with its consent state (a late opt-in can still count) or dropped. */
  archive: 'keep' | 'drop';
  /** An opt-out schedules the user's deletion from Personalize (CreateDataDeletionJob). */
  deleteOnOptOut: boolean;
}

/** Consent not enforced: what every deployment had before consent existed. */
export const NO_CONSENT_POLICY: ConsentPolicy = {
  requiredCategories: [],
  requiredPurposes: [],
  honourDataSaleOptOut: false,
  noSignal: 'allow',
  archive: 'keep',
  deleteOnOptOut: false,
};

/** One stated choice and when it was made (epoch ms): the signal's `at`, else its event's timestamp. */
export interface ConsentFlag {
  value: boolean;
  at: number;
}

/**
 * The latest known choice per category, purpose and the data-sale opt-out, each with its own time:
 * what the store keeps per user and per session, and what resolveConsent gives for one event.
 * Purpose keys are lowercase.
 */
export interface StoredConsent {
  categories: Record<string, ConsentFlag>;
  purposes: Record<string, ConsentFlag>;
  /** `value: true`: opted out of the sale of their data. */
  dataSaleOptOut?: ConsentFlag;
}

export type ConsentDecision =
  | { allowed: true; basis: 'granted' | 'no-signal-allowed' | 'not-required' }
  | { allowed: false; reason: string };

/** Anything a decision can read: a signal as sent, or a stored / resolved state. */
export type ConsentInput = ConsentSignal | StoredConsent;

export function policyRequiresConsent(policy: ConsentPolicy): boolean {
  return policy.requiredCategories.length > 0 || policy.requiredPurposes.length > 0 || policy.honourDataSaleOptOut;
}

const flagValue = (v: boolean | ConsentFlag | undefined): boolean | undefined => (typeof v === 'object' ? v.value : v);

function lowerKeys<T>(record: Record<string, T> | undefined): Map<string, T> {
  const out = new Map<string, T>();
  // A stated false beats a true under another spelling of the same purpose: deny is the safe side.
  for (const [k, v] of Object.entries(record ?? {})) {
    const key = k.toLowerCase();
    const prev = out.get(key);
    if (prev === undefined || flagValue(v as boolean | ConsentFlag | undefined) === false) out.set(key, v);
  }
  return out;
}

function isEmpty(consent: ConsentInput | undefined): boolean {
  if (consent === undefined) return true;
  return Object.keys(consent.categories ?? {}).length === 0 && Object.keys(consent.purposes ?? {}).length === 0 && consent.dataSaleOptOut === undefined;
}

/**
 * The rule. In order:
 * 1. Nothing required: allowed ('not-required'), whatever the signal.
 * 2. No signal at all (undefined, or no category, purpose or data-sale statement): CONSENT_NO_SIGNAL.
 * 3. Data-sale opt-out stated true, and honoured: denied.
 * 4. Per vocabulary with requirements (categories, purposes): a signal stating none of that
 *    vocabulary (an mParticle event has no Segment categories) is "no signal" for it
 *    (CONSENT_NO_SIGNAL); a signal stating some of it must state every required one as granted:
 *    a required one left out is denied (a consent object naming other categories but not this one
 *    is no consent to it), one stated false is denied.
 * 5. Otherwise allowed: 'granted' if some requirement was checked against a statement, else 'no-signal-allowed'.
 */
export function decideConsent(policy: ConsentPolicy, consent: ConsentInput | undefined): ConsentDecision {
  if (!policyRequiresConsent(policy)) return { allowed: true, basis: 'not-required' };
  if (isEmpty(consent) || consent === undefined) {
    return policy.noSignal === 'deny' ? { allowed: false, reason: 'no consent signal (CONSENT_NO_SIGNAL=deny)' } : { allowed: true, basis: 'no-signal-allowed' };
  }
  let checked = false;
  const optOut = flagValue(consent.dataSaleOptOut);
  if (policy.honourDataSaleOptOut && optOut !== undefined) {
    if (optOut) return { allowed: false, reason: 'data sale opt-out (CCPA) set' };
    checked = true;
  }
  const categories: Record<string, boolean | ConsentFlag> = consent.categories ?? {};
  const vocabularies: { what: string; required: readonly string[]; stated: Map<string, boolean | ConsentFlag>; fold: (k: string) => string }[] = [
    { what: 'category', required: policy.requiredCategories, stated: new Map(Object.entries(categories)), fold: (k: string) => k },
    { what: 'purpose', required: policy.requiredPurposes, stated: lowerKeys<boolean | ConsentFlag>(consent.purposes), fold: (k: string) => k.toLowerCase() },
  ];
  for (const { what, required, stated, fold } of vocabularies) {
    if (required.length === 0) continue;
    if (stated.size === 0) {
      if (policy.noSignal === 'deny') return { allowed: false, reason: `no consent ${what} signal (CONSENT_NO_SIGNAL=deny)` };
      continue;
    }
    for (const name of required) {
      const value = flagValue(stated.get(fold(name)));
      if (value === undefined) return { allowed: false, reason: `consent ${what} ${name} not stated` };
      if (!value) return { allowed: false, reason: `consent ${what} ${name} not granted` };
    }
    checked = true;
  }
  return { allowed: true, basis: checked ? 'granted' : 'no-signal-allowed' };
}

/** The state a signal states, each choice at `signal.at` if the source gave one, else at `eventTime`. */
export function consentFromSignal(signal: ConsentSignal, eventTime: number): StoredConsent {
  const at = signal.at ?? eventTime;
  const flags = (record: Record<string, boolean> | undefined, fold: (k: string) => string) => {
    const out: Record<string, ConsentFlag> = {};
    for (const [k, value] of Object.entries(record ?? {})) out[fold(k)] = pick(out[fold(k)], { value, at }, false)!;
    return out;
  };
  return {
    categories: flags(signal.categories, (k) => k),
    purposes: flags(signal.purposes, (k) => k.toLowerCase()),
    ...(signal.dataSaleOptOut !== undefined && { dataSaleOptOut: { value: signal.dataSaleOptOut, at } }),
  };
}

/**
 * Of two choices for the same key, the later one (by `at`, the time the user made it, not when it
 * arrived); at the same time the restrictive one (a denial, or a data-sale opt-out). So merging is
 * order-free: an older signal arriving after a newer one changes nothing, and a retried merge neither.
 */
function pick(a: ConsentFlag | undefined, b: ConsentFlag | undefined, restrictiveWhen: boolean): ConsentFlag | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  if (a.at !== b.at) return a.at > b.at ? a : b;
  return a.value === restrictiveWhen ? a : b;
}

function mergeFlags(a: Record<string, ConsentFlag>, b: Record<string, ConsentFlag>): Record<string, ConsentFlag> {
  const out: Record<string, ConsentFlag> = { ...a };
  for (const [k, flag] of Object.entries(b)) out[k] = pick(out[k], flag, false)!;
  return out;
}

/** Latest choice per key of two states (see pick): commutative, associative, idempotent. */
export function mergeStored(a: StoredConsent | undefined, b: StoredConsent | undefined): StoredConsent | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  const sale = pick(a.dataSaleOptOut, b.dataSaleOptOut, true);
  return {
    categories: mergeFlags(a.categories, b.categories),
    purposes: mergeFlags(a.purposes, b.purposes),
    ...(sale && { dataSaleOptOut: sale }),
  };
}

/** A stored state updated with a signal of an event at `eventTime`: per key, the latest choice wins (see pick). */
export function mergeConsent(older: StoredConsent | undefined, newer: ConsentSignal, eventTime: number): StoredConsent {
  return mergeStored(older, consentFromSignal(newer, eventTime))!;
}

/** When the state last changed: the latest `at` of its choices; undefined for an empty state. */
export function consentUpdatedAt(state: StoredConsent | undefined): number | undefined {
  if (state === undefined) return undefined;
  const times = [...Object.values(state.categories), ...Object.values(state.purposes), ...(state.dataSaleOptOut ? [state.dataSaleOptOut] : [])].map((f) => f.at);
  return times.length > 0 ? Math.max(...times) : undefined;
}

export function sameConsent(a: StoredConsent | undefined, b: StoredConsent | undefined): boolean {
  const norm = (s: StoredConsent | undefined) => {
    if (s === undefined) return '';
    const sorted = (r: Record<string, ConsentFlag>) => Object.keys(r).sort().map((k) => [k, r[k]!.value, r[k]!.at]);
    return JSON.stringify([sorted(s.categories), sorted(s.purposes), s.dataSaleOptOut ? [s.dataSaleOptOut.value, s.dataSaleOptOut.at] : null]);
  };
  return norm(a) === norm(b);
}

/**
 * The consent that governs one event at `eventTime`: its own signal, its session's stored state and
 * its user's stored state, merged per key (the latest choice wins across all three, whoever stated
 * it: a preference event on the user's phone counts for their web session too). Then, per key:
 * - a denial (or data-sale opt-out) counts whenever it was made: an opt-out stops forwarding from
 *   the moment it is known and keeps even earlier events out of later exports, replays and redrives;
 * - a grant counts only for events at or after its own time ("an opt-in applies from its own time
 *   on"): for an earlier event the latest choice made by the event's time counts instead, and if
 *   none is known the key is not stated for this event.
 * Undefined when nothing is known.
 */
export function resolveConsent(
  eventSignal: ConsentSignal | undefined,
  eventTime: number,
  storedSession: StoredConsent | undefined,
  storedUser: StoredConsent | undefined,
): StoredConsent | undefined {
  const own = eventSignal ? consentFromSignal(eventSignal, eventTime) : undefined;
  const sources = [own, storedSession, storedUser].filter((s): s is StoredConsent => s !== undefined);
  if (sources.length === 0) return undefined;
  const latest = sources.reduce<StoredConsent | undefined>((acc, s) => mergeStored(acc, s), undefined)!;
  // Only the latest choice per key is stored, so "the choice in force at eventTime" is known only
  // from the sources whose choice is no later than the event.
  const asOfEvent = sources.map((s) => restrictTo(s, eventTime)).reduce<StoredConsent | undefined>((acc, s) => mergeStored(acc, s), undefined)!;
  const resolve = (latestFlag: ConsentFlag | undefined, earlier: ConsentFlag | undefined, restrictiveWhen: boolean) => {
    if (latestFlag === undefined) return undefined;
    if (latestFlag.value === restrictiveWhen || latestFlag.at <= eventTime) return latestFlag;
    return earlier;
  };
  const keys = (r: Record<string, ConsentFlag>) => Object.keys(r);
  const flags = (latestR: Record<string, ConsentFlag>, earlierR: Record<string, ConsentFlag>) => {
    const out: Record<string, ConsentFlag> = {};
    for (const k of keys(latestR)) {
      const f = resolve(latestR[k], earlierR[k], false);
      if (f) out[k] = f;
    }
    return out;
  };
  const sale = resolve(latest.dataSaleOptOut, asOfEvent.dataSaleOptOut, true);
  return {
    categories: flags(latest.categories, asOfEvent.categories),
    purposes: flags(latest.purposes, asOfEvent.purposes),
    ...(sale && { dataSaleOptOut: sale }),
  };
}

function restrictTo(state: StoredConsent, until: number): StoredConsent {
  const keep = (r: Record<string, ConsentFlag>) => Object.fromEntries(Object.entries(r).filter(([, f]) => f.at <= until));
  return {
    categories: keep(state.categories),
    purposes: keep(state.purposes),
    ...(state.dataSaleOptOut && state.dataSaleOptOut.at <= until && { dataSaleOptOut: state.dataSaleOptOut }),
  };
}

/**
 * An opt-out: the decision on the state before a change allowed, the one after denies. Used to
 * schedule deletion (CONSENT_OPT_OUT_DELETION): a user forwarded so far (with consent, or without a
 * signal under CONSENT_NO_SIGNAL=allow) who now may not be. Never true when nothing is required.
 */
export function isOptOut(policy: ConsentPolicy, before: ConsentInput | undefined, after: ConsentInput | undefined): boolean {
  return decideConsent(policy, before).allowed && !decideConsent(policy, after).allowed;
}
