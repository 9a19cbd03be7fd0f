import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, readProcessorEnv } from '../../shared/config.js';
import { applyPiiPolicy, applyPiiPolicyDetailed, DEFAULT_PII_FIELDS, parsePiiFields, piiPolicy, PiiPolicyError, withoutPii } from '../../shared/pii.js';
import { processorDepsFromEnv } from '../../shared/process/runtime.js';

const env = {
  PERSONALIZE_TRACKING_ID: 't',
  IDENTITY_TABLE: 'identity',
  ARCHIVE_BUCKET: 'archive',
  DLQ_URL: 'http://127.0.0.1:1/queue/dlq',
};

const hmac = (key: string, value: string) => createHmac('sha256', key).update(value).digest('hex');

describe('applyPiiPolicy', () => {
  it('drops the default PII fields whatever their case or underscores, and keeps the rest', () => {
    const out = applyPiiPolicy(
      { email: 'a@example.com', EMAIL_ADDRESS: 'kept: not a listed name', Phone: '+33 6', first_name: 'Ada', LastName: 'L', address: { city: 'Paris' }, ip: '10.0.0.1', membershipType: 'gold' },
      piiPolicy(),
    );
    expect(out).toEqual({ EMAIL_ADDRESS: 'kept: not a listed name', membershipType: 'gold' });
  });

  it('looks inside nested objects and arrays of objects', () => {
    const { properties, dropped } = applyPiiPolicyDetailed({ contact: { email: 'a@example.com', channel: 'sms' }, people: [{ firstName: 'A', role: 'x' }] }, piiPolicy());
    expect(properties).toEqual({ contact: { channel: 'sms' }, people: [{ role: 'x' }] });
    expect(dropped).toBe(2);
  });

  it('hashes with HMAC-SHA256 of the trimmed, lower-cased value in hash mode: stable, keyed, not the value', () => {
    const policy = piiPolicy({ mode: 'hash', hashKey: 'k-1' });
    const out = applyPiiPolicy({ email: '  A@Example.com ', membershipType: 'gold', address: { city: 'Paris' } }, policy);
    expect(out.email).toBe(hmac('k-1', 'a@example.com'));
    expect(out.address).toBe(hmac('k-1', JSON.stringify({ city: 'Paris' })));
    expect(out.membershipType).toBe('gold');
    expect(applyPiiPolicy({ email: 'a@example.com' }, piiPolicy({ mode: 'hash', hashKey: 'k-2' })).email).not.toBe(out.email);
  });

  it('takes a configured field list and returns the same object when nothing matches', () => {
    const policy = piiPolicy({ fields: parsePiiFields(' loyaltyNumber , birth_date ') });
    expect(applyPiiPolicy({ loyalty_number: '123', BirthDate: '1990', email: 'kept' }, policy)).toEqual({ email: 'kept' });
    const untouched = { membershipType: 'gold' };
    expect(applyPiiPolicy(untouched, piiPolicy())).toBe(untouched);
    expect(parsePiiFields(undefined)).toEqual([...DEFAULT_PII_FIELDS]);
    expect(parsePiiFields('  ')).toEqual([...DEFAULT_PII_FIELDS]);
  });

  it('refuses hash mode without a key', () => {
    expect(() => piiPolicy({ mode: 'hash' })).toThrow(PiiPolicyError);
    expect(() => piiPolicy({ mode: 'hash', hashKey: '  ' })).toThrow(/PII_HASH_KEY/);
  });

  it('copies prototype keys as plain data, never onto a prototype', () => {
    const hostile = JSON.parse('{"__proto__":{"polluted":true},"email":"a@example.com","nested":{"constructor":{"prototype":{"polluted":true}}}}') as Record<string, unknown>;
    const out = applyPiiPolicy(hostile, piiPolicy());
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.keys(out)).toEqual(['__proto__', 'nested']);
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });

  it('applies to properties and identify traits of canonical messages, leaving ids alone', () => {
    const message = { kind: 'identify', eventId: 'e', sessionId: 's', userId: 'jo@example.com', timestamp: 1, traits: { email: 'jo@example.com', plan: 'gold' } };
    expect(withoutPii(message, piiPolicy())).toEqual({ ...message, traits: { plan: 'gold' } });
    const alias = { kind: 'alias', eventId: 'a', previousId: 'p', userId: 'u', timestamp: 1 };
    expect(withoutPii(alias, piiPolicy())).toBe(alias);
  });
});

describe('PII configuration', () => {
  it('defaults to dropping the default fields', () => {
    const config = readProcessorEnv(env);
    expect(config).toMatchObject({ PII_MODE: 'drop' });
    expect(config.PII_FIELDS).toBeUndefined();
    expect(processorDepsFromEnv(env).settings.pii).toEqual(piiPolicy());
  });

  it('fails at start, naming PII_HASH_KEY, when hash mode has no key', () => {
    expect(() => readProcessorEnv({ ...env, PII_MODE: 'hash' })).toThrow(ConfigError);
    expect(() => readProcessorEnv({ ...env, PII_MODE: 'hash' })).toThrow(/PII_HASH_KEY/);
    expect(() => readProcessorEnv({ ...env, PII_MODE: 'mask' })).toThrow(/PII_MODE/);
    expect(processorDepsFromEnv({ ...env, PII_MODE: 'hash', PII_HASH_KEY: 'k', PII_FIELDS: 'email' }).settings.pii).toEqual(piiPolicy({ mode: 'hash', hashKey: 'k', fields: ['email'] }));
  });
});
