import { describe, expect, it } from 'vitest';
import { checkPropertyRenames, EventMappingError, parseEventMapping, renameProperties } from '../../shared/event-mapping.js';
import { loadDatasetSchemas } from '../../shared/personalize/dataset-schema.js';
import { buildItemFromProfile, buildUserFromProfile, shapeProfileUpdate } from '../../shared/personalize/requests.js';
import { mergeProfile, profileKeyOf, sameProfile, type Profile, type ProfileKey } from '../../shared/profile/profile.js';

const schemas = loadDatasetSchemas();
const T = 1_790_000_000_000;
const U: ProfileKey = { kind: 'user', id: 'u-1' };

const merge = (...updates: [Record<string, string | number | boolean>, number][]): Profile | undefined =>
  updates.reduce<Profile | undefined>((p, [properties, timestamp]) => mergeProfile(p, U, { properties, timestamp }), undefined);

describe('mergeProfile: key by key, the newest event time wins', () => {
  it('adds the keys an update carries and keeps the others', () => {
    expect(merge([{ membershipType: 'gold' }, T], [{ country: 'FR' }, T + 1])).toEqual({
      kind: 'user',
      id: 'u-1',
      properties: { membershipType: { value: 'gold', at: T }, country: { value: 'FR', at: T + 1 } },
      updatedAt: T + 1,
    });
  });

  it('replaces a value with a newer one', () => {
    expect(merge([{ membershipType: 'gold' }, T], [{ membershipType: 'silver' }, T + 5])?.properties.membershipType).toEqual({ value: 'silver', at: T + 5 });
  });

  it('never lets an older update that arrives late overwrite a newer value, but lets it fill keys the record lacks', () => {
    const profile = merge([{ membershipType: 'gold' }, T + 10], [{ membershipType: 'silver', country: 'FR' }, T]);
    expect(profile?.properties).toEqual({ membershipType: { value: 'gold', at: T + 10 }, country: { value: 'FR', at: T } });
    // The record's time is its newest, whatever the arrival order.
    expect(profile?.updatedAt).toBe(T + 10);
  });

  it('lets the later message win on equal event times (stream order within a shard)', () => {
    expect(merge([{ membershipType: 'gold' }, T], [{ membershipType: 'silver' }, T])?.properties.membershipType?.value).toBe('silver');
  });

  it('is idempotent: merging the same updates again (a retried batch) changes nothing', () => {
    const once = merge([{ membershipType: 'gold' }, T], [{ country: 'FR' }, T + 1])!;
    const again = [[{ membershipType: 'gold' }, T], [{ country: 'FR' }, T + 1]].reduce<Profile>(
      (p, [properties, timestamp]) => mergeProfile(p, U, { properties: properties as Record<string, string>, timestamp: timestamp as number }),
      once,
    );
    expect(again).toEqual(once);
    expect(sameProfile(once, again)).toBe(true);
  });

  it('leaves its inputs alone and keeps hostile keys as plain data', () => {
    const before = merge([{ membershipType: 'gold' }, T])!;
    const snapshot = structuredClone(before);
    const after = mergeProfile(before, U, { properties: JSON.parse('{"__proto__":"x","country":"FR"}') as Record<string, string>, timestamp: T + 1 });
    expect(before).toEqual(snapshot);
    expect(Object.getPrototypeOf(after.properties)).toBe(Object.prototype);
    expect(Object.hasOwn(after.properties, '__proto__')).toBe(true);
  });

  it('sameProfile tells a changed record from an unchanged one', () => {
    const a = merge([{ membershipType: 'gold' }, T])!;
    expect(sameProfile(undefined, a)).toBe(false);
    expect(sameProfile(a, mergeProfile(a, U, { properties: { membershipType: 'gold' }, timestamp: T - 1 }))).toBe(true);
    expect(sameProfile(a, mergeProfile(a, U, { properties: { country: 'FR' }, timestamp: T - 1 }))).toBe(false);
    expect(sameProfile(a, mergeProfile(a, U, { properties: { membershipType: 'gold' }, timestamp: T + 1 }))).toBe(false);
  });

  it('keys profiles by kind and id without ambiguity', () => {
    expect(profileKeyOf({ kind: 'user', id: 'a#b' })).not.toBe(profileKeyOf({ kind: 'item', id: 'a#b' }));
  });
});

describe('a partial update checked alone (shapeProfileUpdate)', () => {
  it('accepts a required field missing, shaped to the dataset property keys', () => {
    expect(shapeProfileUpdate('user', { COUNTRY: 'DE', email_opt_in: true }, schemas.users)).toMatchObject({
      ok: true,
      value: { country: 'DE' },
      dropped: [{ key: 'email_opt_in' }],
    });
    expect(shapeProfileUpdate('item', { price: '9.5', creation_timestamp: '2026-01-02T00:00:00Z' }, schemas.items)).toMatchObject({
      ok: true,
      value: { price: 9.5, creationTimestamp: Date.parse('2026-01-02T00:00:00Z') / 1000 },
    });
  });

  it('refuses an unusable value of a required field, naming the property path', () => {
    const result = shapeProfileUpdate('item', { categoryL1: 'x', price: 'cheap' }, schemas.items);
    expect(result).toMatchObject({ ok: false, errors: [{ path: 'properties.price', message: expect.stringContaining('PRICE') as string }] });
    expect(result.ok ? '' : result.reason).toMatch(/^properties\.price: .*"cheap"/);
  });

  it('applies the renames first, and names the property as the message has it', () => {
    expect(shapeProfileUpdate('user', { plan: 'gold' }, schemas.users, { plan: 'membershipType' })).toMatchObject({ ok: true, value: { membershipType: 'gold' } });
    expect(shapeProfileUpdate('user', { plan: ['gold', { x: 1 }] }, schemas.users, { plan: 'membershipType' })).toMatchObject({
      ok: false,
      errors: [{ path: 'properties.plan', message: expect.stringContaining('MEMBERSHIP_TYPE') as string }],
    });
  });

  it('drops an unusable value of an optional field, as for any message', () => {
    expect(shapeProfileUpdate('user', { membershipType: 'gold', country: { nested: true } }, schemas.users)).toMatchObject({
      ok: true,
      value: { membershipType: 'gold' },
      dropped: [{ key: 'country' }],
    });
  });

  it('refuses an update with no property the schema knows', () => {
    expect(shapeProfileUpdate('user', { favouriteColour: 'red' }, schemas.users)).toMatchObject({ ok: false, reason: expect.stringContaining('no user property matches') as string });
  });
});

describe('a merged profile as a PutUsers/PutItems record', () => {
  it('is held while a required field has no value, and built whole once it has', () => {
    const partial = merge([{ country: 'DE' }, T])!;
    expect(buildUserFromProfile(partial, schemas.users)).toEqual({ held: true, missing: ['MEMBERSHIP_TYPE'] });
    const complete = mergeProfile(partial, U, { properties: { membershipType: 'gold' }, timestamp: T + 1 });
    expect(buildUserFromProfile(complete, schemas.users)).toEqual({
      held: false,
      value: { userId: 'u-1', properties: JSON.stringify({ membershipType: 'gold', country: 'DE' }) },
      dropped: [],
    });
  });

  it('takes the stored CREATION_TIMESTAMP as the seconds it was shaped to', () => {
    const shaped = shapeProfileUpdate('item', { categoryL1: 'shoes', price: 5, creationTimestamp: T }, schemas.items);
    if (!shaped.ok) throw new Error(shaped.reason);
    const profile = mergeProfile(undefined, { kind: 'item', id: 'sku-1' }, { properties: shaped.value, timestamp: T });
    const built = buildItemFromProfile(profile, schemas.items);
    expect(built).toMatchObject({ held: false, value: { itemId: 'sku-1' } });
    expect(JSON.parse(built.held ? '{}' : String(built.value.properties ?? '{}'))).toEqual({ categoryL1: 'shoes', price: 5, creationTimestamp: Math.floor(T / 1000) });
  });
});

describe('trait and item property renames (event mapping)', () => {
  it('renames source names, keeps the others and their order', () => {
    expect(renameProperties({ plan: 'gold', country: 'DE' }, { plan: 'membershipType' })).toEqual({ membershipType: 'gold', country: 'DE' });
    const untouched = { country: 'DE' };
    expect(renameProperties(untouched, { plan: 'membershipType' })).toBe(untouched);
  });

  it('does not apply a rename whose target is taken: the explicit value wins and the source name stays (dropped later)', () => {
    expect(renameProperties({ plan: 'gold', membershipType: 'silver' }, { plan: 'membershipType' })).toEqual({ plan: 'gold', membershipType: 'silver' });
    expect(renameProperties({ plan: 'gold', tier: 'silver' }, { plan: 'membershipType', tier: 'membershipType' })).toEqual({ membershipType: 'gold', tier: 'silver' });
  });

  it('looks names up as own entries only', () => {
    expect(renameProperties({ constructor: 'x', toString: 'y' }, { plan: 'membershipType' })).toEqual({ constructor: 'x', toString: 'y' });
  });

  it('parses traits and itemProperties, empty by default, and names a bad entry', () => {
    const mapping = parseEventMapping({ events: {}, traits: { plan: 'membershipType' }, itemProperties: { category: 'CATEGORY_L1' } });
    expect(mapping).toMatchObject({ traits: { plan: 'membershipType' }, itemProperties: { category: 'CATEGORY_L1' } });
    expect(parseEventMapping({ events: {} })).toMatchObject({ traits: {}, itemProperties: {} });
    expect(() => parseEventMapping({ events: {}, traits: { plan: '' } })).toThrow(/traits entry "plan": /);
    expect(() => parseEventMapping({ events: {}, itemProperties: { category: 7 } })).toThrow(/itemProperties entry "category": /);
  });

  it('checks at start-up that every target is a property of its dataset schema, naming the entry', () => {
    const ok = parseEventMapping({ events: {}, traits: { plan: 'MEMBERSHIP_TYPE' }, itemProperties: { category: 'categoryL1' } });
    expect(() => checkPropertyRenames(ok, schemas)).not.toThrow();
    const typo = parseEventMapping({ events: {}, traits: { plan: 'membershipTyp' } });
    expect(() => checkPropertyRenames(typo, schemas, 'EVENT_MAPPING')).toThrow(EventMappingError);
    expect(() => checkPropertyRenames(typo, schemas, 'EVENT_MAPPING')).toThrow(
      /^EVENT_MAPPING is invalid: traits entry "plan": "membershipTyp" is not a property of the Users dataset schema \(its properties: membershipType, country\)/,
    );
    // USER_ID is the request's own field, not a property.
    expect(() => checkPropertyRenames(parseEventMapping({ events: {}, traits: { id: 'USER_ID' } }), schemas)).toThrow(/traits entry "id"/);
    expect(() => checkPropertyRenames(parseEventMapping({ events: {}, itemProperties: { cat: 'genre' } }), schemas)).toThrow(/itemProperties entry "cat": "genre" is not a property of the Items/);
    // Archived updates are renamed already and replay renames again: a chain would move a value twice.
    expect(() => checkPropertyRenames(parseEventMapping({ events: {}, traits: { tier: 'plan', plan: 'membershipType' } }), schemas)).toThrow(
      /traits entry "tier": "plan" is itself renamed \(entry "plan"\)/,
    );
  });
});
