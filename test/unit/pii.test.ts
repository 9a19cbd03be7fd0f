import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, readProcessorEnv } from '../../shared/config.js';
import { loadDatasetSchemas, parseDatasetSchema } from '../../shared/personalize/dataset-schema.js';
import {
  allowedProperties,
  applyPiiPolicy,
  applyPiiPolicyDetailed,
  applyPrivacyPolicy,
  DEFAULT_PII_FIELDS,
  parseAllowFields,
  parsePiiFields,
  piiPolicy,
  PiiPolicyError,
  withoutPii,
} from '../../shared/pii.js';
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
  it('defaults to allow mode, with the default deny-list and no extra allowed fields', () => {
    const config = readProcessorEnv(env);
    expect(config).toMatchObject({ PII_MODE: 'allow' });
    expect(config.PII_FIELDS).toBeUndefined();
    expect(config.PII_ALLOW_FIELDS).toBeUndefined();
    const policy = processorDepsFromEnv(env).settings.pii;
    expect(policy).toEqual(piiPolicy());
    expect(policy).toMatchObject({ mode: 'allow', allowFields: new Set() });
  });

  it('reads PII_ALLOW_FIELDS, keeps drop and hash as deny-list modes, and takes an optional hash key in allow mode', () => {
    expect(processorDepsFromEnv({ ...env, PII_ALLOW_FIELDS: ' loyalty_tier , Favourite-Colour ' }).settings.pii?.allowFields).toEqual(new Set(['loyaltytier', 'favouritecolour']));
    expect(processorDepsFromEnv({ ...env, PII_MODE: 'drop' }).settings.pii).toEqual(piiPolicy({ mode: 'drop' }));
    expect(processorDepsFromEnv({ ...env, PII_MODE: 'allow', PII_HASH_KEY: 'k' }).settings.pii).toEqual(piiPolicy({ mode: 'allow', hashKey: 'k' }));
    expect(parseAllowFields(undefined)).toEqual([]);
    expect(parseAllowFields(' , ')).toEqual([]);
  });

  it('fails at start, naming PII_HASH_KEY, when hash mode has no key', () => {
    expect(() => readProcessorEnv({ ...env, PII_MODE: 'hash' })).toThrow(ConfigError);
    expect(() => readProcessorEnv({ ...env, PII_MODE: 'hash' })).toThrow(/PII_HASH_KEY/);
    expect(() => readProcessorEnv({ ...env, PII_MODE: 'mask' })).toThrow(/PII_MODE/);
    expect(processorDepsFromEnv({ ...env, PII_MODE: 'hash', PII_HASH_KEY: 'k', PII_FIELDS: 'email' }).settings.pii).toEqual(piiPolicy({ mode: 'hash', hashKey: 'k', fields: ['email'] }));
  });
});

describe('allow mode (applyPrivacyPolicy)', () => {
  const schemas = loadDatasetSchemas();
  const targets = { schemas, renames: { users: { plan: 'membershipType' }, items: { category: 'categoryL1' } } };
  const base = { source: 'segment', timestamp: 1 };

  it('keeps only the keys the target dataset schema knows, in any of the spellings the processor matches', () => {
    const message = { ...base, kind: 'interaction', eventId: 'e', sessionId: 's', eventType: 'View', properties: { DEVICE: 'ios', discount_: 'yes', product_id: 'sku-1', price: 3, contact_phone: '+44 20 7946 0000' } };
    const { message: out, notAllowed } = applyPrivacyPolicy(message, piiPolicy(), targets);
    expect(out.properties).toEqual({ DEVICE: 'ios', discount_: 'yes' });
    expect(notAllowed).toBe(3);
    expect(message.properties).toHaveProperty('contact_phone'); // the input is not changed
  });

  it('keys the users schema for user properties and identify traits, through the event mapping\'s renames', () => {
    const user = { ...base, kind: 'user', eventId: 'u', userId: 'u1', properties: { plan: 'gold', country: 'DE', mobile: '+44 7700 900000', 'ada@example.com': true } };
    expect(applyPrivacyPolicy(user, piiPolicy(), targets)).toMatchObject({ message: { properties: { plan: 'gold', country: 'DE' } }, notAllowed: 2 });
    const identify = { ...base, kind: 'identify', eventId: 'i', sessionId: 's', userId: 'u1', traits: { membership_type: 'gold', contact_phone: '1' } };
    expect(applyPrivacyPolicy(identify, piiPolicy(), targets)).toMatchObject({ message: { traits: { membership_type: 'gold' } }, notAllowed: 1 });
    const item = { ...base, kind: 'item', eventId: 'i', itemId: 'sku-1', properties: { category: 'shoes', price: 3, CREATION_TIMESTAMP: 1, supplierEmail: 'x@example.com' } };
    expect(applyPrivacyPolicy(item, piiPolicy(), targets)).toMatchObject({ message: { properties: { category: 'shoes', price: 3, CREATION_TIMESTAMP: 1 } }, notAllowed: 1 });
  });

  it('keeps PII_ALLOW_FIELDS whatever the schema says, and nothing but flat values under a schema key', () => {
    const policy = piiPolicy({ allowFields: ['loyalty_tier', 'campaign'] });
    const message = { ...base, kind: 'interaction', eventId: 'e', sessionId: 's', eventType: 'View', properties: { loyaltyTier: 3, campaign: { id: 'c-1', email: 'a@example.com' }, device: { owner: 'ada@example.com' }, discount: ['a', 'b'], price: 1 } };
    const { message: out, notAllowed, dropped } = applyPrivacyPolicy(message, policy, targets);
    // The nested e-mail of an allowed extra is still deny-listed; an object under a column name is no column value.
    expect(out.properties).toEqual({ loyaltyTier: 3, campaign: { id: 'c-1' }, discount: ['a', 'b'] });
    expect({ notAllowed, dropped }).toEqual({ notAllowed: 2, dropped: 1 });
  });

  it('still applies the deny-list to what the schema keeps: dropped, or hashed when a key is set', () => {
    const users = parseDatasetSchema(
      { type: 'record', name: 'Users', namespace: 'com.amazonaws.personalize.schema', fields: [{ name: 'USER_ID', type: 'string' }, { name: 'EMAIL', type: ['null', 'string'] }, { name: 'MEMBERSHIP_TYPE', type: 'string' }] },
      'Users',
    );
    const withEmail = { schemas: { ...schemas, users } };
    const user = { ...base, kind: 'user', eventId: 'u', userId: 'u1', properties: { email: 'Ada@Example.com', membershipType: 'gold', phone: '1' } };
    expect(applyPrivacyPolicy(user, piiPolicy(), withEmail)).toMatchObject({ message: { properties: { membershipType: 'gold' } }, notAllowed: 1, dropped: 1 });
    const hashed = applyPrivacyPolicy(user, piiPolicy({ hashKey: 'k' }), withEmail);
    expect(hashed.message.properties).toEqual({ email: hmac('k', 'ada@example.com'), membershipType: 'gold' });
    expect(hashed).toMatchObject({ notAllowed: 1, hashed: 1 });
  });

  it('returns the same message when everything is allowed, and leaves maps no dataset takes to PII_ALLOW_FIELDS', () => {
    const clean = { ...base, kind: 'user', eventId: 'u', userId: 'u1', properties: { membershipType: 'gold' } };
    expect(applyPrivacyPolicy(clean, piiPolicy(), targets).message).toBe(clean);
    const alias = { ...base, kind: 'alias', eventId: 'a', previousId: 'p', userId: 'u' };
    expect(applyPrivacyPolicy(alias, piiPolicy(), targets).message).toBe(alias);
    // Traits on an interaction (not a canonical field; defensive): no dataset keeps them.
    const odd = { ...base, kind: 'interaction', eventId: 'e', sessionId: 's', eventType: 'View', traits: { device: 'ios', plan: 'x' } };
    expect(applyPrivacyPolicy(odd, piiPolicy({ allowFields: ['plan'] }), targets).message.traits).toEqual({ plan: 'x' });
    expect(allowedProperties({ device: 'ios' }, piiPolicy())).toEqual({ properties: {}, notAllowed: 1 });
  });

  it('copies hostile keys as data, never onto a prototype', () => {
    const hostile = JSON.parse('{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"device":"ios"}') as Record<string, unknown>;
    const { properties } = allowedProperties(hostile, piiPolicy({ allowFields: ['__proto__'] }), schemas.interactions);
    expect(Object.getPrototypeOf(properties)).toBe(Object.prototype);
    expect(Object.keys(properties)).toEqual(['__proto__', 'device']);
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });

  it('in drop and hash modes is the deny-list alone: unknown keys stay', () => {
    const message = { ...base, kind: 'user', eventId: 'u', userId: 'u1', properties: { email: 'a@example.com', favouriteColour: 'red' } };
    expect(applyPrivacyPolicy(message, piiPolicy({ mode: 'drop' }), targets)).toMatchObject({ message: { properties: { favouriteColour: 'red' } }, notAllowed: 0, dropped: 1 });
    expect(applyPrivacyPolicy(message, piiPolicy({ mode: 'drop' }), targets).message).toEqual(withoutPii(message, piiPolicy({ mode: 'drop' })));
  });
});
