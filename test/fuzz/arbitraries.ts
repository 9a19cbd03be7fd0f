import fc from 'fast-check';

/**
 * Generators of hostile input for the fuzz tests: shaped like what each door expects (so the input
 * gets past the first check and reaches the deeper code), with any field replaced by something
 * hostile: wrong types, unicode edge cases, prototype keys, numbers out of range, bad times, huge
 * and deep values. Bodies are built as text so they can also carry what JSON.stringify cannot
 * write (1e999, -0, 30-digit integers) and be cut short.
 */

/** `npm test` runs a fixed seed; `npm run fuzz` (FUZZ_NUM_RUNS, FUZZ_SEED) runs longer or elsewhere. */
export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20_261_123);

export function fuzzParams(defaultRuns: number): { seed: number; numRuns: number; endOnFailure: boolean } {
  const override = Number(process.env.FUZZ_NUM_RUNS);
  return { seed: FUZZ_SEED, numRuns: Number.isInteger(override) && override > 0 ? override : defaultRuns, endOnFailure: true };
}

/** A test's time limit: generous for the fixed counts, growing with FUZZ_NUM_RUNS for long runs. */
export function fuzzTimeout(defaultRuns: number, msPerRun = 3): number {
  return Math.max(120_000, fuzzParams(defaultRuns).numRuns * msPerRun * 4);
}

/** Object.prototype as it was when the suite started: anything new on it is pollution. */
export const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();

export function assertNoPollution(): void {
  const now = Object.getOwnPropertyNames(Object.prototype).sort();
  if (now.join(',') !== prototypeKeys.join(',')) throw new Error(`Object.prototype changed: ${now.join(',')}`);
  const probe = {} as Record<string, unknown>;
  for (const key of ['polluted', 'isAdmin', 'eventId', 'kind', 'toString']) {
    if (key !== 'toString' && probe[key] !== undefined) throw new Error(`({}).${key} is set: prototype pollution`);
  }
  if (typeof probe.toString !== 'function') throw new Error('Object.prototype.toString was replaced');
}

// ------------------------------------------------------------------------------------------------
// Leaves

const EDGE_CHARACTERS = [
  '\uD800', // lone high surrogate
  '\uDFFF', // lone low surrogate
  '\uD83D\uDE00', // a real pair (emoji)
  '\u202E', // right-to-left override
  '\u200F', // right-to-left mark
  '\u0627\u0644\u0639', // Arabic (RTL) text
  '\u200B', // zero-width space
  '\u200D', // zero-width joiner
  '\uFEFF', // BOM
  '\uFFFE', // noncharacter
  '\uFFFF',
  '\u0000',
  '\u0301', // combining accent
  '\n',
  '"',
  '\\',
  '%00',
  '<script>',
];

const SPECIAL_STRINGS = [
  '',
  ' ',
  'null',
  'undefined',
  'NaN',
  'nan',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  '1e308',
  '-0',
  '0x10',
  '2024-02-31T00:00:00Z',
  '2024-13-01',
  '9999-12-31T23:59:59Z',
  '1970-01-01T00:00:00Z',
  '+275760-09-13T00:00:00.000Z',
  '00000000000000001700000000000',
  '1700000000',
  'T',
  'Z',
];

export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 16, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 8, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  { weight: 12, arbitrary: fc.array(fc.constantFrom(...EDGE_CHARACTERS, 'a', 'sku-1', ' '), { minLength: 1, maxLength: 8 }).map((a) => a.join('')) },
  { weight: 12, arbitrary: fc.constantFrom(...SPECIAL_STRINGS) },
  // Long ones, rarely (they are slow to build): past id limits (256), properties (1,024), one message (32 KB).
  { weight: 1, arbitrary: fc.constantFrom(257, 1_025, 5_000, 33_000).map((n) => 'x'.repeat(n)) },
);

/** Number tokens written into the body text as they are (JSON.stringify cannot write most of them). */
const NUMBER_TOKENS = ['1e999', '-1e999', '1e308', '-1e308', '-0', '0.5', '1.0', '5e-324', '1e-400', '9007199254740993', '123456789012345678901234567890', '-1', '0'];
const TOKEN = '\u0001N:';

export const hostileNumber: fc.Arbitrary<number | string> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(...NUMBER_TOKENS).map((t) => `${TOKEN}${t}\u0001`),
  fc.constantFrom(Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2 ** 31, -(2 ** 31)),
);

const NOW = Date.now();

/** Times as sources send them, good and bad. */
export const hostileTime: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 10, arbitrary: fc.integer({ min: NOW - 7 * 86_400_000, max: NOW }).map((t) => new Date(t).toISOString()) },
  { weight: 8, arbitrary: fc.integer({ min: NOW - 7 * 86_400_000, max: NOW }) },
  { weight: 1, arbitrary: fc.integer({ min: Math.floor(NOW / 1000) - 86_400, max: Math.floor(NOW / 1000) }) },
  { weight: 1, arbitrary: fc.constantFrom(NOW + 3 * 86_400_000, -1, 0, 1.5, 946_684_799_999, 8.64e15 + 1) },
  { weight: 2, arbitrary: hostileString },
  { weight: 1, arbitrary: hostileNumber },
  { weight: 1, arbitrary: fc.constantFrom(null, true, [], {}) },
);

const PROTO_KEYS = ['__proto__', 'constructor', 'prototype'];

export const hostileKey: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 8 }) },
  { weight: 2, arbitrary: fc.constantFrom(...PROTO_KEYS) },
  { weight: 1, arbitrary: hostileString },
);

const leaf: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: hostileString },
  { weight: 2, arbitrary: hostileNumber },
  { weight: 1, arbitrary: fc.constantFrom(null, true, false) },
);

/** Any JSON-ish value with hostile leaves and keys, small and shallow. */
export const hostileValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown; array: unknown[]; object: Record<string, unknown> }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(hostileKey, tie('value'), { maxKeys: 4 }),
})).value;

/** A value, or sometimes a hostile one in its place. */
function or<T>(good: fc.Arbitrary<T>, badWeight = 1): fc.Arbitrary<unknown> {
  // Mostly right, so a message usually gets past its first check and the deeper code runs.
  return fc.oneof({ weight: 12, arbitrary: good }, { weight: badWeight, arbitrary: hostileValue });
}

/** Adds hostile extra keys (prototype keys above all) to a record. */
function withExtraKeys(record: fc.Arbitrary<Record<string, unknown>>): fc.Arbitrary<Record<string, unknown>> {
  return fc.tuple(record, fc.dictionary(hostileKey, hostileValue, { maxKeys: 2 })).map(([r, extra]) => {
    const out = { ...r };
    for (const [k, v] of Object.entries(extra)) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    return out;
  });
}

const id = fc.oneof({ weight: 5, arbitrary: fc.stringMatching(/^[a-z0-9-]{1,12}$/) }, { weight: 2, arbitrary: hostileString }, { weight: 1, arbitrary: fc.integer() });

// ------------------------------------------------------------------------------------------------
// Door-shaped records

const productProps = withExtraKeys(
  fc.record(
    {
      product_id: or(id),
      sku: or(id),
      id: or(id),
      price: or(hostileNumber),
      quantity: or(fc.integer({ min: -2, max: 5 })),
      rating: or(hostileNumber),
    },
    { requiredKeys: [] },
  ),
);

export const propertiesArb: fc.Arbitrary<unknown> = or(
  withExtraKeys(
    fc.record(
      {
        product_id: or(id),
        item_id: or(id),
        price: or(hostileNumber),
        products: or(fc.array(or(productProps), { maxLength: 4 })),
        recommendation_id: or(fc.string({ maxLength: 50 })),
        impression: or(fc.oneof(fc.array(or(id), { maxLength: 30 }), fc.string({ maxLength: 40 }))),
        eventAttributionSource: or(fc.string({ maxLength: 20 })),
        device: or(hostileString),
        discount: or(hostileString),
        email: or(fc.constant('someone@example.com')),
        userId: or(id),
        timestamp: hostileTime,
      },
      { requiredKeys: [] },
    ),
  ),
);

const SEGMENT_EVENTS = ['Product Viewed', 'Product Clicked', 'Product Added', 'Order Completed', 'Checkout Started', 'Product Reviewed', 'Page Viewed', 'Something Else'];

export const segmentMessage: fc.Arbitrary<unknown> = or(
  withExtraKeys(
    fc.record(
      {
        type: or(fc.constantFrom('track', 'page', 'screen', 'identify', 'alias', 'group', 'delete')),
        messageId: or(id),
        anonymousId: or(id),
        userId: or(id),
        previousId: or(id),
        event: or(fc.constantFrom(...SEGMENT_EVENTS)),
        name: or(fc.string({ maxLength: 10 })),
        timestamp: hostileTime,
        originalTimestamp: hostileTime,
        sentAt: hostileTime,
        receivedAt: hostileTime,
        properties: propertiesArb,
        traits: or(withExtraKeys(fc.record({ membershipType: or(fc.constantFrom('gold', 'silver')), email: fc.constant('x@example.com'), address: or(fc.record({ city: hostileString })) }, { requiredKeys: [] }))),
        context: or(fc.record({ device: or(fc.record({ type: hostileString })), library: or(fc.record({ name: hostileString })) }, { requiredKeys: [] })),
      },
      { requiredKeys: [] },
    ),
  ),
  1,
);

export const segmentBatch: fc.Arbitrary<unknown> = or(
  withExtraKeys(fc.record({ batch: or(fc.array(segmentMessage, { maxLength: 12 })), sentAt: hostileTime, context: or(fc.record({ library: or(fc.record({ name: hostileString })) })) }, { requiredKeys: ['batch'] })),
  1,
);

const mparticleData = withExtraKeys(
  fc.record(
    {
      event_name: or(fc.constantFrom(...SEGMENT_EVENTS)),
      source_message_id: or(id),
      message_id: or(id),
      event_id: or(fc.oneof(fc.integer(), fc.constantFrom(`${TOKEN}9007199254740993\u0001`, `${TOKEN}123456789012345678901234567890\u0001`))),
      session_uuid: or(id),
      session_id: or(fc.integer()),
      timestamp_unixtime_ms: hostileTime,
      custom_attributes: or(withExtraKeys(fc.record({ product_id: or(id), sku: or(id), rating: or(hostileNumber) }, { requiredKeys: [] }))),
      product_action: or(fc.record({ action: or(fc.constantFrom('view_detail', 'purchase', 'add_to_cart', 'refund', 'checkout', 'bogus')), products: or(fc.array(or(productProps), { maxLength: 4 })) }, { requiredKeys: [] })),
    },
    { requiredKeys: [] },
  ),
);

export const mparticleBatch: fc.Arbitrary<unknown> = or(
  withExtraKeys(
    fc.record(
      {
        batch_id: or(fc.integer()),
        mpid: or(fc.oneof(fc.integer(), fc.constant(`${TOKEN}-9223372036854775808\u0001`))),
        source_request_id: or(id),
        user_identities: or(
          fc.oneof(
            fc.array(or(fc.record({ identity_type: or(fc.constantFrom('customer_id', 'email', 'other')), identity: or(id) })), { maxLength: 3 }),
            fc.dictionary(fc.constantFrom('customer_id', 'email', '__proto__'), or(id)),
          ),
        ),
        user_attributes: or(withExtraKeys(fc.record({ membership_type: or(fc.constantFrom('gold')), $gender: or(hostileString), email: fc.constant('y@example.com') }, { requiredKeys: [] }))),
        device_info: or(fc.record({ platform: or(hostileString) })),
        events: or(fc.array(or(fc.record({ event_type: or(fc.constantFrom('custom_event', 'commerce_event', 'screen_view', 'session_start', 'crash_report')), data: or(mparticleData) }, { requiredKeys: [] })), { maxLength: 10 })),
        timestamp_unixtime_ms: hostileTime,
      },
      { requiredKeys: ['events'] },
    ),
  ),
  1,
);

export const itemsFeed: fc.Arbitrary<unknown> = or(
  withExtraKeys(
    fc.record({
      items: or(
        fc.array(
          or(
            withExtraKeys(
              fc.record(
                {
                  itemId: or(id),
                  eventId: or(id),
                  timestamp: hostileTime,
                  properties: or(withExtraKeys(fc.record({ categoryL1: or(fc.constantFrom('shoes', 'bags')), CATEGORY_L2: or(hostileString), price: or(hostileNumber), creationTimestamp: hostileTime, inStock: or(fc.boolean()), description: or(hostileString), brand: or(fc.array(hostileString, { maxLength: 3 })) }, { requiredKeys: [] }))),
                },
                { requiredKeys: [] },
              ),
            ),
          ),
          { maxLength: 12 },
        ),
      ),
    }),
  ),
  1,
);

export const usersFeed: fc.Arbitrary<unknown> = or(
  withExtraKeys(
    fc.record({
      users: or(
        fc.array(
          or(
            withExtraKeys(
              fc.record(
                { userId: or(id), eventId: or(id), timestamp: hostileTime, properties: or(withExtraKeys(fc.record({ membershipType: or(fc.constantFrom('gold', 'silver')), country: or(hostileString), email: fc.constant('z@example.com') }, { requiredKeys: [] }))) },
                { requiredKeys: [] },
              ),
            ),
          ),
          { maxLength: 12 },
        ),
      ),
    }),
  ),
  1,
);

// ------------------------------------------------------------------------------------------------
// Bodies

/** JSON text of a generated value, with the number tokens written raw. */
export function toBodyText(value: unknown): string {
  const text = JSON.stringify(value) ?? 'null';
  return text.replace(/"\\u0001N:([^"\\]*)\\u0001"/g, '$1');
}

/** Nested arrays/objects this deep, as text (JSON.stringify would overflow building them). */
export function deeplyNested(depth: number, kind: 'array' | 'object'): string {
  return kind === 'array' ? `${'['.repeat(depth)}1${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

/**
 * A body for a door: mostly its own shape made hostile, else random JSON, deep nesting,
 * truncated text, a huge array or plain garbage.
 */
export function bodyFor(shape: fc.Arbitrary<unknown>, wrapDeep: (inner: string) => string): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 12, arbitrary: shape.map(toBodyText) },
    { weight: 2, arbitrary: fc.tuple(shape.map(toBodyText), fc.double({ min: 0, max: 1, noNaN: true })).map(([t, cut]) => t.slice(0, Math.floor(t.length * cut))) },
    { weight: 1, arbitrary: hostileValue.map(toBodyText) },
    { weight: 1, arbitrary: fc.json() },
    { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 20, max: 3_000 }), fc.constantFrom<'array' | 'object'>('array', 'object')).map(([d, k]) => wrapDeep(deeplyNested(d, k))) },
    { weight: 1, arbitrary: fc.integer({ min: 1_000, max: 20_000 }).map((n) => wrapDeep(`[${Array.from({ length: n }, () => '0').join(',')}]`)) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
    { weight: 1, arbitrary: fc.base64String({ maxLength: 40 }) },
  );
}
