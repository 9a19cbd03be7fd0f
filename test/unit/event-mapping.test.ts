import { describe, expect, it } from 'vitest';
import { EventMappingError, loadEventMapping, mapEvent, parseEventMapping, readPath, type EventMapping } from '../../shared/event-mapping.js';

const bundled = loadEventMapping({});

function errorOf(input: unknown): EventMappingError {
  try {
    parseEventMapping(input);
  } catch (error) {
    if (error instanceof EventMappingError) return error;
    throw error;
  }
  throw new Error('expected the mapping to be rejected');
}

describe('loading the mapping', () => {
  it('parses the bundled mapping', () => {
    expect(bundled.unmapped).toBe('passthrough');
    expect(bundled.events['Product Viewed']).toEqual({ eventType: 'View' });
    expect(bundled.events['Order Completed']).toEqual({ eventType: 'Purchase', eventValue: 'price', perProduct: true });
  });

  it('uses EVENT_MAPPING when it is set, and the bundled mapping when it is blank', () => {
    const inline = loadEventMapping({ EVENT_MAPPING: '{"unmapped":"reject","events":{"Tapped":{"eventType":"Click"}}}' });
    expect(inline).toEqual({ unmapped: 'reject', events: { Tapped: { eventType: 'Click' } }, traits: {}, itemProperties: {} });
    expect(loadEventMapping({ EVENT_MAPPING: '  ' })).toEqual(bundled);
  });

  it('names EVENT_MAPPING when it is not JSON', () => {
    expect(() => loadEventMapping({ EVENT_MAPPING: '{events:' })).toThrow(/^EVENT_MAPPING is not valid JSON: /);
  });

  it('names the entry and the field of an invalid entry', () => {
    expect(errorOf({ events: { 'Order Completed': { eventType: '' } } }).message).toMatch(/entry "Order Completed" field eventType: /);
    expect(errorOf({ events: { 'Order Completed': { eventType: 'Purchase', eventValue: 5 } } }).message).toMatch(/entry "Order Completed" field eventValue: /);
    expect(errorOf({ events: { 'Order Completed': { eventType: 'Purchase', perProduct: 'yes' } } }).message).toMatch(/entry "Order Completed" field perProduct: /);
    expect(errorOf({ events: { 'Video Content Playing': { eventType: 'Watch', oncePerSeconds: 0 } } }).message).toMatch(/entry "Video Content Playing" field oncePerSeconds: /);
  });

  it('rejects an unknown key in an entry, naming the entry and the key', () => {
    const { message } = errorOf({ events: { 'Product Viewed': { eventType: 'View', evenValue: 'price' } } });
    expect(message).toMatch(/entry "Product Viewed": .*"evenValue"/);
  });

  it('rejects an unknown top-level key, naming it', () => {
    const { message } = errorOf({ events: {}, unmaped: 'reject' });
    expect(message).toMatch(/\(root\): .*"unmaped"/);
  });

  it('rejects an unknown unmapped policy and a missing events map', () => {
    expect(errorOf({ unmapped: 'drop', events: {} }).message).toMatch(/unmapped: /);
    expect(errorOf({}).message).toMatch(/events: /);
  });

  it('lists every problem in one error, prefixed with where the mapping came from', () => {
    let message = '';
    try {
      parseEventMapping({ events: { A: { eventType: '' }, B: { eventType: 'X', perProduct: 1 } } }, 'my-mapping.json');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^my-mapping.json is invalid: /);
    expect(message).toMatch(/entry "A" field eventType/);
    expect(message).toMatch(/entry "B" field perProduct/);
  });
});

describe('mapEvent', () => {
  it('translates a mapped name', () => {
    expect(mapEvent(bundled, 'Product Viewed', {}, undefined)).toEqual({ ok: true, eventType: 'View', entry: { eventType: 'View' } });
  });

  it('takes eventValue from the mapped property, numeric strings too', () => {
    expect(mapEvent(bundled, 'Product Added', { price: 12.5 }, undefined)).toMatchObject({ ok: true, eventType: 'AddToCart', eventValue: 12.5 });
    expect(mapEvent(bundled, 'Product Added', { price: ' 7.25 ' }, undefined)).toMatchObject({ eventValue: 7.25 });
    expect(mapEvent(bundled, 'Product Reviewed', { rating: '4' }, undefined)).toMatchObject({ eventType: 'Rating', eventValue: 4 });
  });

  it('follows a dotted path', () => {
    const mapping = parseEventMapping({ events: { Bought: { eventType: 'Purchase', eventValue: 'product.price' } } });
    expect(mapEvent(mapping, 'Bought', { product: { price: 30 } }, undefined)).toMatchObject({ eventValue: 30 });
  });

  it('keeps the message’s own eventValue over the mapped property', () => {
    expect(mapEvent(bundled, 'Product Added', { price: 12.5 }, 3)).toMatchObject({ eventValue: 3 });
    expect(mapEvent(bundled, 'Product Added', { price: 12.5 }, 0)).toMatchObject({ eventValue: 0 });
  });

  it('leaves eventValue out when the property is missing or not a finite number', () => {
    for (const price of [undefined, 'free', '', '   ', 'Infinity', null, true, { amount: 1 }]) {
      const mapped = mapEvent(bundled, 'Product Added', { price }, undefined);
      expect(mapped).toMatchObject({ ok: true, eventType: 'AddToCart' });
      expect(mapped).not.toHaveProperty('eventValue');
    }
    expect(mapEvent(bundled, 'Product Added', undefined, undefined)).not.toHaveProperty('eventValue');
  });

  it('passes an unmapped name through unchanged, with its own eventValue', () => {
    expect(mapEvent(bundled, 'Video Played', { price: 9 }, undefined)).toEqual({ ok: true, eventType: 'Video Played' });
    expect(mapEvent(bundled, 'Video Played', {}, 2)).toEqual({ ok: true, eventType: 'Video Played', eventValue: 2 });
  });

  it('rejects an unmapped name when the mapping says so, with a reason naming it', () => {
    const strict: EventMapping = { ...bundled, unmapped: 'reject' };
    expect(mapEvent(strict, 'Video Played', {}, undefined)).toEqual({ ok: false, reason: 'eventType "Video Played" has no entry in the event mapping' });
    expect(mapEvent(strict, 'Product Viewed', {}, undefined)).toMatchObject({ ok: true, eventType: 'View' });
  });

  it('treats names of Object.prototype members as unmapped', () => {
    const strict: EventMapping = { ...bundled, unmapped: 'reject' };
    for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      expect(mapEvent(bundled, name, {}, undefined)).toEqual({ ok: true, eventType: name });
      expect(mapEvent(strict, name, {}, undefined).ok).toBe(false);
    }
  });
});

describe('readPath', () => {
  it('reads own properties along a dotted path', () => {
    expect(readPath({ a: { b: { c: 3 } } }, 'a.b.c')).toBe(3);
    expect(readPath({ a: [10, 20] }, 'a.1')).toBe(20);
    expect(readPath({ a: 1 }, 'a.b')).toBeUndefined();
    expect(readPath(undefined, 'a')).toBeUndefined();
  });

  it('never reads inherited properties', () => {
    const source: Record<string, unknown> = { product: { name: 'x' } };
    for (const path of ['__proto__', 'constructor', 'toString', 'product.constructor', 'product.__proto__', 'product.hasOwnProperty', 'constructor.name']) {
      expect(readPath(source, path)).toBeUndefined();
    }
  });

  it('reads a "__proto__" key only when the object really has it as its own (as JSON.parse makes it)', () => {
    const source = JSON.parse('{"__proto__": {"price": 5}}') as Record<string, unknown>;
    expect(readPath(source, '__proto__.price')).toBe(5);
    expect(readPath({}, '__proto__.price')).toBeUndefined();
  });
});
