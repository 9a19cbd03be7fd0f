import { describe, expect, it } from 'vitest';
import { loadEventMapping } from '../../../shared/event-mapping.js';
import { fromItemsFeed, fromUsersFeed } from '../../../shared/adapters/feeds.js';
import type { AdapterContext } from '../../../shared/adapters/types.js';

const RECEIVED_AT = Date.parse('2024-05-14T06:00:03.000Z');
const ctx: AdapterContext = { receivedAt: RECEIVED_AT, mapping: loadEventMapping({}) };

const catalog = {
  items: [
    {
      itemId: 'NP-4711-BLU',
      timestamp: '2024-05-14T05:58:00Z',
      properties: { categoryL1: 'Footwear', categoryL2: 'Trail', brand: 'Northpeak', price: 129.9, genres: ['running', 'trail'], creationTimestamp: 1698912000 },
    },
    { itemId: 'NP-2210-GRN', timestamp: 1715666280000, properties: { categoryL1: 'Apparel', brand: 'Northpeak', price: 49.5 }, eventId: 'pim-export-20240514-000812' },
    { itemId: 7731, properties: { categoryL1: 'Accessories', price: 19.99 } },
  ],
};

describe('items feed', () => {
  it('ISO and epoch-ms timestamps, numeric ids, and the receive time as version time when none is given', () => {
    const result = fromItemsFeed(catalog, ctx);
    expect(result.rejections).toEqual([]);
    expect(result.messages.map((m) => m.index)).toEqual([0, 1, 2]);
    const [a, b, c] = result.messages.map((m) => m.message);
    expect(a).toMatchObject({ kind: 'item', source: 'feed', itemId: 'NP-4711-BLU', timestamp: Date.parse('2024-05-14T05:58:00Z'), properties: catalog.items[0]!.properties });
    expect(b).toMatchObject({ kind: 'item', itemId: 'NP-2210-GRN', timestamp: 1715666280000, eventId: 'pim-export-20240514-000812' });
    expect(c).toMatchObject({ kind: 'item', itemId: '7731', timestamp: RECEIVED_AT });
    expect(a!.eventId).toMatch(/^h-[0-9a-f]{40}$/);
  });

  it('default eventIds: a resend of the same version keeps its id, a later version without a timestamp gets a new one', () => {
    const first = fromItemsFeed(catalog, ctx).messages.map((m) => m.message.eventId);
    const resend = fromItemsFeed(structuredClone(catalog), ctx).messages.map((m) => m.message.eventId);
    const later = fromItemsFeed(catalog, { ...ctx, receivedAt: RECEIVED_AT + 86_400_000 }).messages.map((m) => m.message.eventId);
    expect(resend).toEqual(first);
    // Entries 0 and 1 carry their own version time; entry 2 is versioned by its receive time.
    expect(later.slice(0, 2)).toEqual(first.slice(0, 2));
    expect(later[2]).not.toBe(first[2]);
  });

  it('bad entries are rejected with their index and field paths, the rest accepted', () => {
    const body = {
      items: [
        catalog.items[0],
        { properties: { brand: 'X' } },
        { itemId: 'A-1', properties: ['red'] },
        { itemId: 'A-2', timestamp: '14/05/2024' },
        { itemId: 'A-3', timestamp: 1715666280 },
        { itemId: 'x'.repeat(257) },
        'A-4',
      ],
    };
    const result = fromItemsFeed(body, ctx);
    expect(result.messages.map((m) => m.index)).toEqual([0]);
    expect(result.rejections.map((r) => [r.index, r.errors?.map((e) => e.path)])).toEqual([
      [1, ['itemId']],
      [2, ['properties']],
      [3, ['timestamp']],
      [4, ['timestamp']],
      [5, ['itemId']],
      [6, ['(entry)']],
    ]);
    expect(result.rejections[3]!.reason).toContain('epoch seconds');
  });
});

describe('users feed', () => {
  it('profile upserts with properties; an entry without properties is an empty profile', () => {
    const result = fromUsersFeed(
      {
        users: [
          { userId: 'cus_8812094', timestamp: '2024-05-14T05:00:00+02:00', properties: { membershipType: 'loyalty', gender: 'F', ageGroup: '35-44' } },
          { userId: 'cus_1000001' },
        ],
      },
      ctx,
    );
    expect(result.rejections).toEqual([]);
    expect(result.messages.map((m) => m.message)).toMatchObject([
      { kind: 'user', source: 'feed', userId: 'cus_8812094', timestamp: Date.parse('2024-05-14T03:00:00Z'), properties: { membershipType: 'loyalty' } },
      { kind: 'user', userId: 'cus_1000001', timestamp: RECEIVED_AT, properties: {} },
    ]);
  });

  it('literal "null" user ids are refused', () => {
    const result = fromUsersFeed({ users: [{ userId: 'null', properties: {} }] }, ctx);
    expect(result.rejections).toMatchObject([{ index: 0, errors: [{ path: 'userId' }] }]);
  });
});

describe('feeds hostile input', () => {
  it.each([
    ['null', null],
    ['an array', [catalog.items[0]]],
    ['a string', 'items'],
    ['the wrong list', { users: [] }],
    ['a non-array list', { items: 'x' }],
  ])('an items body that is %s -> one request-level rejection', (_label, body) => {
    const result = fromItemsFeed(body, ctx);
    expect(result.messages).toEqual([]);
    expect(result.rejections).toHaveLength(1);
    expect(result.rejections[0]!.index).toBe(-1);
  });

  it('__proto__ keys pollute nothing', () => {
    const body = JSON.parse('{"users":[{"userId":"u1","__proto__":{"userId":"evil"},"properties":{"__proto__":{"polluted":true},"tier":"gold"}}],"__proto__":{"users":[]}}') as unknown;
    const result = fromUsersFeed(body, ctx);
    expect(result.messages.map((m) => m.message)).toMatchObject([{ userId: 'u1', properties: { tier: 'gold' } }]);
    expect(Object.keys(result.messages[0]!.message.kind === 'user' ? result.messages[0]!.message.properties : {})).toEqual(['tier']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
