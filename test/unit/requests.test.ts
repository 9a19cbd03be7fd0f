import { describe, expect, it } from 'vitest';
import type { InteractionMessage, ItemMessage, UserMessage } from '../../schemas/canonical.js';
import { loadDatasetSchemas, type DatasetField, type DatasetSchema } from '../../shared/personalize/dataset-schema.js';
import { buildEvent, buildItem, buildUser, PERSONALIZE_LIMITS, RESERVED_EVENT_PROPERTY_KEYS, sentAtOf, type Built } from '../../shared/personalize/requests.js';

const schemas = loadDatasetSchemas();
const T = 1_700_000_123_987;

function interaction(extra: Partial<InteractionMessage> = {}): InteractionMessage {
  return { kind: 'interaction', source: 'native', eventId: 'e-1', sessionId: 's-1', eventType: 'View', itemId: 'sku-1', timestamp: T, ...extra };
}
const item = (properties: Record<string, unknown>): ItemMessage => ({ kind: 'item', source: 'feed', eventId: 'i-1', itemId: 'sku-1', timestamp: T, properties });
const user = (properties: Record<string, unknown>): UserMessage => ({ kind: 'user', source: 'feed', eventId: 'u-1', userId: 'user-1', timestamp: T, properties });

function ok<T>(built: Built<T>): Extract<Built<T>, { ok: true }> {
  if (!built.ok) throw new Error(`expected a request, got: ${built.reason}`);
  return built;
}
function failed<T>(built: Built<T>): Extract<Built<T>, { ok: false }> {
  if (built.ok) throw new Error('expected a rejection');
  return built;
}
/** The request's properties JSON string (the SDK types it loosely). */
function propertiesOf(request: { properties?: unknown }): string {
  if (typeof request.properties !== 'string') throw new Error('expected a properties string');
  return request.properties;
}
const parsed = (request: { properties?: unknown }): unknown => JSON.parse(propertiesOf(request));

describe('buildEvent', () => {
  it('maps every field, with sentAt in whole epoch seconds of the event time', () => {
    const { value, dropped } = ok(
      buildEvent(
        interaction({
          eventValue: 4.5,
          recommendationId: 'rec-1',
          impression: ['sku-1', 'sku-2'],
          eventAttributionSource: 'email campaign',
          properties: { device: 'ios', discount: 'yes' },
        }),
        schemas.interactions,
        'user-1',
      ),
    );
    expect(value).toEqual({
      eventId: 'e-1',
      eventType: 'View',
      sentAt: new Date(1_700_000_123_000),
      itemId: 'sku-1',
      eventValue: 4.5,
      properties: '{"device":"ios","discount":"yes"}',
      recommendationId: 'rec-1',
      impression: ['sku-1', 'sku-2'],
      metricAttribution: { eventAttributionSource: 'email campaign' },
    });
    expect(dropped).toEqual([]);
    expect(sentAtOf(T).getTime() / 1000).toBe(1_700_000_123);
  });

  it('leaves out optional fields the message does not have, and sends no empty properties', () => {
    const { value } = ok(buildEvent(interaction({ itemId: undefined }), schemas.interactions));
    expect(Object.keys(value).sort()).toEqual(['eventId', 'eventType', 'sentAt']);
  });

  it('sends only the schema’s property keys, and reports every dropped key', () => {
    const { value, dropped } = ok(
      buildEvent(interaction({ properties: { DEVICE: 'android', colour: 'red', price: 12, nested: { a: 1 } } }), schemas.interactions),
    );
    expect(parsed(value)).toEqual({ device: 'android' });
    expect(dropped.map((d) => d.key).sort()).toEqual(['colour', 'nested', 'price']);
    for (const d of dropped) expect(d.reason.startsWith(`${d.key}: `)).toBe(true);
  });

  it('never puts a reserved key into properties, in any spelling', () => {
    const reserved = {
      userId: 'u',
      SESSION_ID: 's',
      eventType: 'Buy',
      timestamp: 1,
      recommendationId: 'r',
      IMPRESSION: 'a|b',
      user_id: 'u2',
      ITEM_ID: 'x',
      eventValue: 3,
    };
    const { value, dropped } = ok(buildEvent(interaction({ properties: { ...reserved, device: 'web' } }), schemas.interactions));
    expect(parsed(value)).toEqual({ device: 'web' });
    expect(dropped.map((d) => d.key).sort()).toEqual(Object.keys(reserved).sort());
  });

  it('drops a reserved key even from a schema that (wrongly) declares it as metadata', () => {
    const sessionField: DatasetField = { name: 'SESSION_ID', type: 'string', nullable: true, categorical: false, textual: false, reserved: false, propertyKey: 'sessionId' };
    const deviceField = schemas.interactions.metadata.find((f) => f.name === 'DEVICE')!;
    const unchecked: DatasetSchema = { type: 'Interactions', fields: [...schemas.interactions.fields, sessionField], metadata: [deviceField, sessionField] };
    const { value, dropped } = ok(buildEvent(interaction({ properties: { sessionId: 'other', device: 'tv' } }), unchecked));
    const properties = parsed(value) as Record<string, unknown>;
    expect(Object.keys(properties).map((k) => k.toLowerCase()).filter((k) => RESERVED_EVENT_PROPERTY_KEYS.has(k))).toEqual([]);
    expect(properties).toEqual({ device: 'tv' });
    expect(dropped).toEqual([
      { key: 'sessionId', reason: 'sessionId is a reserved PutEvents property key', summary: 'Interactions property sessionId: a reserved PutEvents property key' },
    ]);
  });

  it('fits properties into 1,024 characters by dropping the largest value', () => {
    const { value, dropped } = ok(buildEvent(interaction({ properties: { device: 'd'.repeat(1000), discount: 'x'.repeat(900) } }), schemas.interactions));
    expect(propertiesOf(value).length).toBeLessThanOrEqual(PERSONALIZE_LIMITS.eventPropertiesChars);
    expect(parsed(value)).toEqual({ discount: 'x'.repeat(900) });
    expect(dropped.map((d) => d.key)).toEqual(['device']);
  });

  it('rejects an event over 10 KB, naming the size', () => {
    // Valid field by field (25 ids of 256 characters), but 3-byte characters make it ~19 KB.
    const impression = Array.from({ length: 25 }, (_, i) => `${i}`.padEnd(256, '€'));
    const rejection = failed(buildEvent(interaction({ impression }), schemas.interactions, 'user-1'));
    expect(rejection.errors).toEqual([{ path: '(event)', message: expect.stringMatching(/^event is \d+ bytes, limit 10240$/) as string }]);
    expect(rejection.reason).toMatch(/^\(event\): event is \d+ bytes/);
  });

  it('accepts a large event that stays within 10 KB', () => {
    const impression = Array.from({ length: 25 }, (_, i) => `${i}`.padEnd(256, 'x'));
    const built = ok(buildEvent(interaction({ impression }), schemas.interactions, 'u'));
    expect(Buffer.byteLength(JSON.stringify(built.value))).toBeLessThan(PERSONALIZE_LIMITS.eventBytes);
  });
});

describe('buildItem', () => {
  const complete = { categoryL1: 'shoes', price: '19.90', creationTimestamp: 1_690_000_000_000, brand: 'Acme', colour: 'red' };

  it('builds the properties JSON in schema order, converting units, and reports unknown keys', () => {
    const { value, dropped } = ok(buildItem(item(complete), schemas.items));
    expect(value.itemId).toBe('sku-1');
    expect(value.properties).toBe('{"categoryL1":"shoes","price":19.9,"brand":"Acme","creationTimestamp":1690000000}');
    expect(dropped.map((d) => d.key)).toEqual(['colour']);
  });

  it('rejects an item missing required schema fields, naming each (PutItems replaces the whole record)', () => {
    const { reason, errors } = failed(buildItem(item({ categoryL1: 'shoes' }), schemas.items));
    expect(errors.map((e) => e.path)).toEqual(['properties']);
    expect(reason).toMatch(/PRICE/);
    expect(reason).toMatch(/CREATION_TIMESTAMP/);
    expect(reason).not.toMatch(/CATEGORY_L1/);
  });

  it('rejects a required field whose value cannot be used', () => {
    expect(failed(buildItem(item({ ...complete, price: 'cheap' }), schemas.items)).reason).toMatch(/PRICE/);
  });

  it('keeps properties within 32,000 characters, dropping an optional value that does not fit', () => {
    // 20,000 characters is within the textual limit, but each quote doubles when JSON-escaped.
    const { value, dropped } = ok(buildItem(item({ ...complete, description: '"'.repeat(20_000) }), schemas.items));
    expect(propertiesOf(value).length).toBeLessThanOrEqual(PERSONALIZE_LIMITS.itemPropertiesChars);
    expect(parsed(value)).not.toHaveProperty('description');
    expect(dropped.map((d) => d.key)).toContain('description');
  });

  it('keeps a long description that fits', () => {
    const { value } = ok(buildItem(item({ ...complete, description: 'word '.repeat(3_000) }), schemas.items));
    expect((parsed(value) as { description: string }).description).toHaveLength(15_000);
  });
});

describe('buildUser', () => {
  it('builds the properties JSON from the schema', () => {
    const { value, dropped } = ok(buildUser(user({ membershipType: 'gold', COUNTRY: 'FR', email: 'x@example.com' }), schemas.users));
    expect(value).toEqual({ userId: 'user-1', properties: '{"membershipType":"gold","country":"FR"}' });
    expect(dropped.map((d) => d.key)).toEqual(['email']);
  });

  it('rejects a user missing a required schema field', () => {
    const { reason } = failed(buildUser(user({ country: 'FR' }), schemas.users));
    expect(reason).toMatch(/^properties: MEMBERSHIP_TYPE required by the Users dataset schema/);
  });

  it('rejects a user with no properties at all', () => {
    expect(failed(buildUser(user({}), schemas.users)).reason).toMatch(/MEMBERSHIP_TYPE/);
  });
});
