import { describe, expect, it } from 'vitest';
import { ConfigError, consentPolicyFromEnv, readExportEnv, readProcessorEnv } from '../../shared/config.js';
import {
  NO_CONSENT_POLICY,
  consentFromSignal,
  consentUpdatedAt,
  decideConsent,
  isOptOut,
  mergeConsent,
  mergeStored,
  resolveConsent,
  type ConsentPolicy,
  type StoredConsent,
} from '../../shared/consent/policy.js';
import { redriveEnvSchema } from '../../shared/ops/redrive-runtime.js';
import { replayEnvSchema } from '../../shared/ops/replay-runtime.js';
import { parseEnv } from '../../shared/config.js';
import { MemoryConsentStore } from '../support/memory-ports.js';

const T = 1_750_000_000_000;
const policy = (p: Partial<ConsentPolicy>): ConsentPolicy => ({ ...NO_CONSENT_POLICY, ...p });
const needs = policy({ requiredCategories: ['Personalization'] });

describe('decideConsent', () => {
  it('nothing required: everything allowed, whatever the signal (the default)', () => {
    expect(decideConsent(NO_CONSENT_POLICY, undefined)).toEqual({ allowed: true, basis: 'not-required' });
    expect(decideConsent(policy({ noSignal: 'deny' }), { categories: { Personalization: false } })).toEqual({ allowed: true, basis: 'not-required' });
  });

  it('granted: every required category true', () => {
    expect(decideConsent(policy({ requiredCategories: ['Personalization', 'Analytics'] }), { categories: { Personalization: true, Analytics: true, Ads: false } })).toEqual({
      allowed: true,
      basis: 'granted',
    });
  });

  it('denied: a required category false, named in the reason', () => {
    expect(decideConsent(needs, { categories: { Personalization: false, Analytics: true } })).toEqual({
      allowed: false,
      reason: 'consent category Personalization not granted',
    });
  });

  it('missing: a consent object that does not name a required category denies it, even under noSignal=allow', () => {
    expect(decideConsent(needs, { categories: { Analytics: true } })).toEqual({ allowed: false, reason: 'consent category Personalization not stated' });
  });

  it('categories match case-sensitively', () => {
    expect(decideConsent(needs, { categories: { personalization: true } })).toEqual({ allowed: false, reason: 'consent category Personalization not stated' });
  });

  it('no signal: allowed or denied by CONSENT_NO_SIGNAL; an empty consent object is no signal', () => {
    expect(decideConsent(needs, undefined)).toEqual({ allowed: true, basis: 'no-signal-allowed' });
    expect(decideConsent(needs, { categories: {} })).toEqual({ allowed: true, basis: 'no-signal-allowed' });
    expect(decideConsent(policy({ requiredCategories: ['Personalization'], noSignal: 'deny' }), undefined)).toEqual({
      allowed: false,
      reason: 'no consent signal (CONSENT_NO_SIGNAL=deny)',
    });
  });

  it('purposes: all required granted, matched ignoring case', () => {
    const p = policy({ requiredPurposes: ['personalization'] });
    expect(decideConsent(p, { purposes: { Personalization: true } })).toEqual({ allowed: true, basis: 'granted' });
    expect(decideConsent(p, { purposes: { personalization: false } })).toEqual({ allowed: false, reason: 'consent purpose personalization not granted' });
    expect(decideConsent(p, { purposes: { analytics: true } })).toEqual({ allowed: false, reason: 'consent purpose personalization not stated' });
  });

  it('a vocabulary the signal does not speak (mParticle has no Segment categories) is no signal for it', () => {
    const both = policy({ requiredCategories: ['Personalization'], requiredPurposes: ['personalization'] });
    expect(decideConsent(both, { purposes: { personalization: true } })).toEqual({ allowed: true, basis: 'granted' });
    expect(decideConsent({ ...both, noSignal: 'deny' }, { purposes: { personalization: true } })).toEqual({
      allowed: false,
      reason: 'no consent category signal (CONSENT_NO_SIGNAL=deny)',
    });
  });

  it('data-sale opt-out: denies when honoured, ignored otherwise', () => {
    const honour = policy({ honourDataSaleOptOut: true });
    expect(decideConsent(honour, { dataSaleOptOut: true })).toEqual({ allowed: false, reason: 'data sale opt-out (CCPA) set' });
    expect(decideConsent(honour, { dataSaleOptOut: false })).toEqual({ allowed: true, basis: 'granted' });
    expect(decideConsent(honour, { purposes: { x: true } })).toEqual({ allowed: true, basis: 'no-signal-allowed' });
    expect(decideConsent(needs, { categories: { Personalization: true }, dataSaleOptOut: true })).toEqual({ allowed: true, basis: 'granted' });
  });

  it('reads stored states as well as signals', () => {
    const stored = consentFromSignal({ categories: { Personalization: false } }, T);
    expect(decideConsent(needs, stored)).toEqual({ allowed: false, reason: 'consent category Personalization not granted' });
  });
});

describe('mergeConsent: the latest choice per key, by the time it was made', () => {
  it('a newer signal replaces the keys it states and keeps the others', () => {
    const first = mergeConsent(undefined, { categories: { Personalization: true, Analytics: true } }, T);
    const second = mergeConsent(first, { categories: { Personalization: false } }, T + 1000);
    expect(second.categories).toEqual({ Personalization: { value: false, at: T + 1000 }, Analytics: { value: true, at: T } });
    expect(consentUpdatedAt(second)).toBe(T + 1000);
  });

  it('an older signal arriving after a newer one changes nothing', () => {
    const newer = mergeConsent(undefined, { categories: { Personalization: false } }, T + 1000);
    expect(mergeConsent(newer, { categories: { Personalization: true } }, T)).toEqual(newer);
  });

  it("the signal's own `at` is its time, before the event's", () => {
    const s = mergeConsent(undefined, { purposes: { Personalization: true }, at: T - 5000 }, T);
    expect(s.purposes).toEqual({ personalization: { value: true, at: T - 5000 } });
  });

  it('at the same time the denial wins, whichever arrives first; merging is order-free', () => {
    const grant = consentFromSignal({ categories: { P: true }, dataSaleOptOut: false }, T);
    const deny = consentFromSignal({ categories: { P: false }, dataSaleOptOut: true }, T);
    expect(mergeStored(grant, deny)).toEqual(deny);
    expect(mergeStored(deny, grant)).toEqual(deny);
  });
});

describe('resolveConsent: the consent governing one event', () => {
  const session: StoredConsent = consentFromSignal({ categories: { Personalization: true } }, T);

  it("the event's own signal, or else the stored state of its session and user", () => {
    expect(resolveConsent(undefined, T + 10, undefined, undefined)).toBeUndefined();
    expect(resolveConsent(undefined, T + 10, session, undefined)?.categories).toEqual({ Personalization: { value: true, at: T } });
    const user = consentFromSignal({ categories: { Personalization: false } }, T + 5);
    // The user's later opt-out (from another device) beats the session's earlier grant.
    expect(decideConsent(needs, resolveConsent(undefined, T + 10, session, user))).toMatchObject({ allowed: false });
  });

  it('an opt-out counts for events from before it (later exports, replays)', () => {
    const optOut = consentFromSignal({ categories: { Personalization: false } }, T + 100);
    expect(decideConsent(needs, resolveConsent({ categories: { Personalization: true } }, T, undefined, optOut))).toMatchObject({ allowed: false });
  });

  it('an opt-in counts from its own time on: an earlier event keeps the choice in force at its time', () => {
    const optIn = consentFromSignal({ categories: { Personalization: true } }, T + 100);
    const earlierDenial = consentFromSignal({ categories: { Personalization: false } }, T);
    // The event at T+50 carried a denial; the later grant does not reach back.
    expect(decideConsent(needs, resolveConsent({ categories: { Personalization: false } }, T + 50, optIn, undefined))).toMatchObject({ allowed: false });
    // No choice known at the event's time: not stated (so CONSENT_NO_SIGNAL decides).
    expect(resolveConsent(undefined, T + 50, optIn, undefined)).toEqual({ categories: {}, purposes: {} });
    expect(decideConsent({ ...needs, noSignal: 'deny' }, resolveConsent(undefined, T + 50, optIn, undefined))).toMatchObject({ allowed: false });
    // An event after the opt-in is allowed, though the session denied before it.
    expect(decideConsent(needs, resolveConsent(undefined, T + 200, earlierDenial, optIn))).toEqual({ allowed: true, basis: 'granted' });
    // A late-arriving grant made before the event counts (the archived event can be exported).
    expect(decideConsent(needs, resolveConsent(undefined, T + 150, optIn, undefined))).toEqual({ allowed: true, basis: 'granted' });
  });

  it('a data-sale opt-in (opt-out withdrawn) also counts from its own time on', () => {
    const honour = policy({ honourDataSaleOptOut: true });
    const optedOut = consentFromSignal({ dataSaleOptOut: true }, T);
    const optedBackIn = consentFromSignal({ dataSaleOptOut: false }, T + 100);
    expect(decideConsent(honour, resolveConsent(undefined, T + 50, optedOut, optedBackIn))).toMatchObject({ allowed: false });
    expect(decideConsent(honour, resolveConsent(undefined, T + 150, optedOut, optedBackIn))).toEqual({ allowed: true, basis: 'granted' });
  });
});

describe('isOptOut', () => {
  it('true when the decision flips from allowed to denied', () => {
    const granted = consentFromSignal({ categories: { Personalization: true } }, T);
    const denied = mergeConsent(granted, { categories: { Personalization: false } }, T + 1);
    expect(isOptOut(needs, granted, denied)).toBe(true);
    // Forwarded without a signal (allow), then denied: an opt-out too.
    expect(isOptOut(needs, undefined, denied)).toBe(true);
    expect(isOptOut(needs, denied, denied)).toBe(false);
    expect(isOptOut(needs, denied, granted)).toBe(false);
    expect(isOptOut(NO_CONSENT_POLICY, granted, denied)).toBe(false);
    expect(isOptOut({ ...needs, noSignal: 'deny' }, undefined, denied)).toBe(false);
  });
});

describe('consent configuration', () => {
  const PROCESSOR = {
    PERSONALIZE_TRACKING_ID: 'tracker-123',
    IDENTITY_TABLE: 'identity',
    ARCHIVE_BUCKET: 'archive-bucket',
    DLQ_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/personalize-dlq',
  };
  const CONSENT = {
    CONSENT_REQUIRED_CATEGORIES: ' Personalization, Analytics ,,Personalization',
    CONSENT_REQUIRED_PURPOSES: 'Personalization',
    CONSENT_DATA_SALE_OPT_OUT: 'honour',
    CONSENT_NO_SIGNAL: 'deny',
    CONSENT_ARCHIVE: 'drop',
    CONSENT_OPT_OUT_DELETION: 'true',
  };
  const EXPECTED: ConsentPolicy = {
    requiredCategories: ['Personalization', 'Analytics'],
    requiredPurposes: ['personalization'],
    honourDataSaleOptOut: true,
    noSignal: 'deny',
    archive: 'drop',
    deleteOnOptOut: true,
  };

  it('unset (or blank): consent not enforced, and the parsed configuration gains no values', () => {
    const parsed = readProcessorEnv(PROCESSOR);
    expect(Object.entries(parsed).filter(([k, v]) => k.startsWith('CONSENT_') && v !== undefined)).toEqual([]);
    expect(consentPolicyFromEnv(parsed)).toEqual(NO_CONSENT_POLICY);
    expect(consentPolicyFromEnv(readProcessorEnv({ ...PROCESSOR, CONSENT_NO_SIGNAL: ' ', CONSENT_REQUIRED_CATEGORIES: '' }))).toEqual(NO_CONSENT_POLICY);
  });

  it('the processor, export, redrive and replay read the same variables', () => {
    expect(consentPolicyFromEnv(readProcessorEnv({ ...PROCESSOR, ...CONSENT }))).toEqual(EXPECTED);
    expect(consentPolicyFromEnv(readExportEnv({ ARCHIVE_BUCKET: 'a', IDENTITY_TABLE: 'i', ...CONSENT }))).toEqual(EXPECTED);
    const redrive = parseEnv(redriveEnvSchema, { DLQ_URL: 'https://sqs.us-east-1.amazonaws.com/1/dlq', STREAM_NAME: 's', ARCHIVE_BUCKET: 'a', ...CONSENT }, 'redrive');
    expect(consentPolicyFromEnv(redrive)).toEqual(EXPECTED);
    expect(consentPolicyFromEnv(parseEnv(replayEnvSchema, { ARCHIVE_BUCKET: 'a', ...CONSENT }, 'replay'))).toEqual(EXPECTED);
  });

  it('a bad value is an error naming the variable', () => {
    const bad = { ...PROCESSOR, CONSENT_NO_SIGNAL: 'maybe', CONSENT_OPT_OUT_DELETION: 'yes', CONSENT_DATA_SALE_OPT_OUT: 'honor', CONSENT_ARCHIVE: 'delete' };
    expect(() => readProcessorEnv(bad)).toThrow(ConfigError);
    const message = (() => {
      try {
        readProcessorEnv(bad);
      } catch (error) {
        return (error as Error).message;
      }
      return '';
    })();
    expect(message).toContain('CONSENT_NO_SIGNAL must be allow or deny');
    expect(message).toContain('CONSENT_OPT_OUT_DELETION must be true or false');
    expect(message).toContain('CONSENT_DATA_SALE_OPT_OUT must be honour or ignore');
    expect(message).toContain('CONSENT_ARCHIVE must be keep or drop');
  });
});

describe('MemoryConsentStore', () => {
  it('merges by time, reports changes, deletes a user with their sessions', async () => {
    const store = new MemoryConsentStore();
    const grant = consentFromSignal({ categories: { P: true } }, T + 10);
    const older = consentFromSignal({ categories: { P: false } }, T);
    const first = await store.putConsents([{ kind: 'user', id: 'u1', consent: grant }, { kind: 'session', id: 's1', consent: grant }]);
    expect(first.map((c) => [c.key, c.before])).toEqual([
      [{ kind: 'user', id: 'u1' }, undefined],
      [{ kind: 'session', id: 's1' }, undefined],
    ]);
    expect(await store.putConsents([{ kind: 'user', id: 'u1', consent: older }])).toEqual([]);
    expect((await store.getConsents([{ kind: 'user', id: 'u1' }])).get('user#u1')).toEqual(grant);
    await store.deleteConsentsOf('u1', ['s1']);
    expect((await store.getConsents([{ kind: 'user', id: 'u1' }, { kind: 'session', id: 's1' }])).size).toBe(0);
  });
});
