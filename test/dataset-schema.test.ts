import { describe, expect, it } from 'vitest';
import {
  DatasetSchemaError,
  csvHeader,
  csvValue,
  loadDatasetSchemas,
  parseDatasetSchema,
  plainNumber,
  propertiesJson,
  shapeProperties,
  toEpochSeconds,
  toPropertyKey,
  type DatasetField,
  type DatasetType,
} from '../shared/personalize/dataset-schema.js';

const NS = 'com.amazonaws.personalize.schema';
const avro = (name: DatasetType, fields: unknown[]) => ({ type: 'record', name, namespace: NS, fields, version: '1.0' });
const interactionBase = [
  { name: 'USER_ID', type: 'string' },
  { name: 'ITEM_ID', type: 'string' },
  { name: 'TIMESTAMP', type: 'long' },
];
const itemsWith = (...fields: unknown[]) => avro('Items', [{ name: 'ITEM_ID', type: 'string' }, ...fields]);
const usersWith = (...fields: unknown[]) => avro('Users', [{ name: 'USER_ID', type: 'string' }, ...fields]);
const cat = (name: string, nullable = true) => ({ name, type: nullable ? ['null', 'string'] : 'string', categorical: true });

const schemas = loadDatasetSchemas();
const { interactions, items, users } = schemas;
const field = (name: string): DatasetField => {
  const found = [...interactions.fields, ...items.fields, ...users.fields].find((f) => f.name === name);
  if (!found) throw new Error(`no field ${name}`);
  return found;
};

describe('shipped dataset schemas', () => {
  it('parse, with CSV columns in schema order and the API top-level fields kept out of properties', () => {
    expect(csvHeader(interactions)).toEqual([
      'USER_ID',
      'ITEM_ID',
      'EVENT_TYPE',
      'EVENT_VALUE',
      'TIMESTAMP',
      'IMPRESSION',
      'RECOMMENDATION_ID',
      'EVENT_ATTRIBUTION_SOURCE',
      'DEVICE',
      'DISCOUNT',
    ]);
    expect(interactions.metadata.map((f) => f.name)).toEqual(['DEVICE', 'DISCOUNT']);
    expect(items.metadata.map((f) => f.propertyKey)).toEqual([
      'categoryL1',
      'categoryL2',
      'price',
      'brand',
      'inStock',
      'creationTimestamp',
      'description',
    ]);
    expect(users.metadata.map((f) => f.propertyKey)).toEqual(['membershipType', 'country']);
  });

  it('describe each field: type, nullability, categorical/textual and reserved flags', () => {
    expect(field('EVENT_VALUE')).toMatchObject({ type: 'float', nullable: true, reserved: true, categorical: false });
    expect(field('CATEGORY_L1')).toMatchObject({ type: 'string', nullable: false, categorical: true, reserved: false });
    expect(field('DESCRIPTION')).toMatchObject({ textual: true, nullable: true });
    expect(field('CREATION_TIMESTAMP')).toMatchObject({ type: 'long', reserved: true, propertyKey: 'creationTimestamp' });
    expect(field('IN_STOCK')).toMatchObject({ type: 'boolean', nullable: true });
  });

  it('can be replaced by overrides, given as objects or JSON strings', () => {
    const custom = loadDatasetSchemas({ users: JSON.stringify(usersWith(cat('TIER'))) });
    expect(custom.users.metadata.map((f) => f.name)).toEqual(['TIER']);
    expect(custom.items).toEqual(items);
  });
});

describe('parseDatasetSchema errors name the schema and the field', () => {
  it('rejects a type Personalize does not allow', () => {
    expect(() => parseDatasetSchema(itemsWith({ name: 'PRICE', type: 'decimal' }), 'Items')).toThrow(
      /^items schema: field PRICE: type 'decimal' is not one of float, double, int, long, string, boolean/,
    );
  });

  it('rejects nested records, arrays and maps: schemas are flat', () => {
    const nested = { type: 'record', name: 'Address', fields: [{ name: 'CITY', type: 'string' }] };
    expect(() => parseDatasetSchema(usersWith({ name: 'ADDRESS', type: nested }), 'Users')).toThrow(
      /users schema: field ADDRESS: nested record is not allowed/,
    );
    expect(() => parseDatasetSchema(itemsWith({ name: 'TAGS', type: { type: 'array', items: 'string' } }), 'Items')).toThrow(
      /field TAGS: array is not allowed.*separated by "\|"/,
    );
    expect(() => parseDatasetSchema(itemsWith({ name: 'TAGS', type: ['null', { type: 'map', values: 'int' }] }), 'Items')).toThrow(
      /field TAGS: nested types are not allowed/,
    );
  });

  it('accepts ["null", T] unions in either order but no other unions', () => {
    const ok = parseDatasetSchema(itemsWith({ name: 'PRICE', type: ['float', 'null'] }), 'Items');
    expect(ok.metadata[0]).toMatchObject({ name: 'PRICE', type: 'float', nullable: true });
    expect(() => parseDatasetSchema(itemsWith({ name: 'PRICE', type: ['int', 'string'] }), 'Items')).toThrow(
      /field PRICE: union \["int","string"\] must be \["null", T\]/,
    );
    expect(() => parseDatasetSchema(itemsWith({ name: 'PRICE', type: 'null' }), 'Items')).toThrow(/field PRICE: type 'null' alone/);
  });

  it('rejects names that only differ by underscores or case, and exact duplicates', () => {
    expect(() => parseDatasetSchema(itemsWith(cat('GENRES_FIELD_1'), cat('GENRESFIELD1')), 'Items')).toThrow(
      /items schema: field GENRESFIELD1: conflicts with GENRES_FIELD_1/,
    );
    expect(() => parseDatasetSchema(itemsWith(cat('GENRE'), cat('genre')), 'Items')).toThrow(/field genre: conflicts with GENRE/);
    expect(() => parseDatasetSchema(itemsWith(cat('GENRE'), cat('GENRE')), 'Items')).toThrow(/field GENRE: duplicate field name/);
  });

  it('rejects names that are not alphanumeric', () => {
    expect(() => parseDatasetSchema(itemsWith(cat('GENRE-2')), 'Items')).toThrow(/field #2: name "GENRE-2" must be letters, digits/);
  });

  it('requires the required fields of each dataset type', () => {
    expect(() => parseDatasetSchema(avro('Interactions', interactionBase.slice(0, 2)), 'Interactions')).toThrow(
      /^interactions schema: missing required field TIMESTAMP \(long\)$/,
    );
    expect(() => parseDatasetSchema(avro('Items', [cat('GENRE')]), 'Items')).toThrow(/items schema: missing required field ITEM_ID/);
    expect(() => parseDatasetSchema(avro('Users', [{ name: 'USER_ID', type: 'string' }]), 'Users')).toThrow(
      /users schema: needs at least one metadata field besides USER_ID/,
    );
  });

  it('requires reserved fields to have their fixed type and nullability', () => {
    const withTimestamp = (type: unknown) =>
      avro('Interactions', [...interactionBase.slice(0, 2), { name: 'TIMESTAMP', type }]);
    expect(() => parseDatasetSchema(withTimestamp('int'), 'Interactions')).toThrow(
      /field TIMESTAMP: reserved field must have type 'long', got 'int'/,
    );
    expect(() => parseDatasetSchema(withTimestamp(['null', 'long']), 'Interactions')).toThrow(
      /field TIMESTAMP: required field must not be nullable/,
    );
    expect(() => parseDatasetSchema(itemsWith({ name: 'CREATION_TIMESTAMP', type: 'string' }), 'Items')).toThrow(
      /field CREATION_TIMESTAMP: reserved field must have type 'long'/,
    );
  });

  it('rejects a categorical EVENT_TYPE', () => {
    const schema = avro('Interactions', [...interactionBase, { name: 'EVENT_TYPE', type: 'string', categorical: true }]);
    expect(() => parseDatasetSchema(schema, 'Interactions')).toThrow(
      /interactions schema: field EVENT_TYPE: reserved field must not be categorical/,
    );
  });

  it('rejects reserved names spelled differently', () => {
    const schema = avro('Interactions', [...interactionBase, { name: 'event_type', type: 'string' }]);
    expect(() => parseDatasetSchema(schema, 'Interactions')).toThrow(/field event_type: looks like the reserved field EVENT_TYPE/);
  });

  it('allows one textual field, in Items only', () => {
    const two = itemsWith({ name: 'DESCRIPTION', type: 'string', textual: true }, { name: 'TITLE', type: 'string', textual: true });
    expect(() => parseDatasetSchema(two, 'Items')).toThrow(
      /items schema: field TITLE: only one textual field is allowed \(DESCRIPTION is already textual\)/,
    );
    expect(() => parseDatasetSchema(usersWith({ name: 'BIO', type: 'string', textual: true }), 'Users')).toThrow(
      /users schema: field BIO: textual fields are only allowed in the Items dataset/,
    );
  });

  it('allows categorical and textual only on strings, and not both at once', () => {
    expect(() => parseDatasetSchema(itemsWith({ name: 'PRICE', type: 'float', categorical: true }), 'Items')).toThrow(
      /field PRICE: categorical is only allowed on string fields, not float/,
    );
    expect(() => parseDatasetSchema(itemsWith({ name: 'X', type: 'string', categorical: true, textual: true }), 'Items')).toThrow(
      /field X: a field cannot be both categorical and textual/,
    );
  });

  it('enforces the metadata field limits (Interactions 5, Users 25)', () => {
    const six = ['A', 'B', 'C', 'D', 'E', 'F'].map((n) => cat(`CTX_${n}`));
    expect(() => parseDatasetSchema(avro('Interactions', [...interactionBase, ...six]), 'Interactions')).toThrow(
      /^interactions schema: field CTX_F: too many metadata fields \(6\); at most 5/,
    );
    expect(() => parseDatasetSchema(avro('Interactions', [...interactionBase, ...six.slice(0, 5)]), 'Interactions')).not.toThrow();
    const many = Array.from({ length: 26 }, (_, i) => cat(`TRAIT_${i + 1}`));
    expect(() => parseDatasetSchema(usersWith(...many), 'Users')).toThrow(/field TRAIT_26: too many metadata fields \(26\); at most 25/);
  });

  it('rejects an Interactions metadata field whose key PutEvents forbids in properties', () => {
    const schema = avro('Interactions', [...interactionBase, cat('SESSION_ID')]);
    expect(() => parseDatasetSchema(schema, 'Interactions')).toThrow(/field SESSION_ID: its properties key 'sessionId' is not allowed/);
  });

  it('checks record type, namespace and name', () => {
    const wrong = { ...itemsWith(cat('GENRE')), namespace: 'com.example', name: 'Item' };
    expect(() => parseDatasetSchema(wrong, 'Items')).toThrow(
      /^items schema: namespace must be "com.amazonaws.personalize.schema", got "com.example"; name must be "Items"/,
    );
    expect(() => parseDatasetSchema([], 'Items')).toThrow(/items schema: must be a JSON object/);
    expect(() => parseDatasetSchema('{nope', 'Items')).toThrow(/items schema: not valid JSON/);
  });

  it('reports every problem at once in a DatasetSchemaError', () => {
    try {
      parseDatasetSchema(itemsWith({ name: 'PRICE', type: 'decimal' }, { name: 'TAGS', type: { type: 'array', items: 'string' } }), 'Items');
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(DatasetSchemaError);
      expect((error as DatasetSchemaError).issues).toHaveLength(2);
    }
  });
});

describe('shapeProperties', () => {
  it('matches camelCase, UPPER_SNAKE and snake_case keys and emits camelCase in schema order', () => {
    const shaped = shapeProperties(items, { in_stock: true, BRAND: 'Acme', categoryL1: 'Shoes', category_l2: 'Running' });
    expect(shaped.properties).toEqual({ categoryL1: 'Shoes', categoryL2: 'Running', brand: 'Acme', inStock: true });
    expect(Object.keys(shaped.properties)).toEqual(['categoryL1', 'categoryL2', 'brand', 'inStock']);
    expect(shaped.dropped).toEqual([]);
  });

  it('joins categorical arrays with |, splitting, trimming and de-duplicating the pieces', () => {
    expect(shapeProperties(items, { categoryL2: ['Running', 'Trail'] }).properties.categoryL2).toBe('Running|Trail');
    expect(shapeProperties(items, { categoryL2: ['a | b', 'b', '', null, 'c'] }).properties.categoryL2).toBe('a|b|c');
    expect(shapeProperties(items, { categoryL2: ' Running| Trail ' }).properties.categoryL2).toBe('Running|Trail');
  });

  it('stringifies numbers and booleans given for categorical strings', () => {
    const shaped = shapeProperties(interactions, { discount: true, device: 5, DEVICE_X: 1 });
    expect(shaped.properties).toEqual({ device: '5', discount: 'true' });
  });

  it('drops an over-long categorical value, saying how long it was and the limit', () => {
    const long = Array.from({ length: 200 }, (_, i) => `cat${i}`);
    const shaped = shapeProperties(items, { categoryL2: long, brand: 'x'.repeat(1000) });
    expect(shaped.properties).toEqual({ brand: 'x'.repeat(1000) });
    expect(shaped.dropped.map((d) => d.key)).toEqual(['categoryL2']);
    expect(shaped.dropped[0]?.reason).toMatch(
      /^categoryL2: 1289 characters for CATEGORY_L2 \(string, categorical\), over the 1000-character limit/,
    );
  });

  it('drops values of the wrong type with the key, the expected type and what it got', () => {
    const shaped = shapeProperties(items, {
      price: 'abc',
      inStock: 'yes',
      brand: { name: 'Acme' },
      categoryL1: ['ok', { bad: 1 }],
      description: ['a'],
    });
    expect(shaped.properties).toEqual({});
    expect(shaped.dropped.map((d) => d.reason)).toEqual([
      'price: expected a number for PRICE (float), got string "abc"',
      'inStock: expected true or false for IN_STOCK (boolean), got string "yes"',
      'brand: expected a string, number, boolean or an array of them for BRAND (string, categorical), got an object',
      'categoryL1: expected a string, number, boolean or an array of them for CATEGORY_L1 (string, categorical), got an array holding an object',
      'description: expected a string for DESCRIPTION (string, textual), got an array',
    ]);
  });

  it('shows only a short preview of a rejected long value', () => {
    const [drop] = shapeProperties(items, { price: 'secret'.repeat(100) }).dropped;
    expect(drop?.reason).toContain('(600 characters)');
    expect(drop?.reason.length).toBeLessThan(120);
  });

  it('accepts numeric strings for number fields but not hex, Infinity or NaN', () => {
    expect(shapeProperties(items, { price: '12.5' }).properties.price).toBe(12.5);
    expect(shapeProperties(items, { price: ' 7 ' }).properties.price).toBe(7);
    expect(shapeProperties(items, { price: '1e3' }).properties.price).toBe(1000);
    for (const price of ['0x10', 'Infinity', '1,5', Number.NaN, Number.POSITIVE_INFINITY, true]) {
      expect(shapeProperties(items, { price }).dropped).toHaveLength(1);
    }
    expect(shapeProperties(items, { price: 1e39 }).dropped[0]?.reason).toMatch(/overflows PRICE \(float\)/);
  });

  it('requires whole numbers in range for int and long fields', () => {
    const schema = parseDatasetSchema(itemsWith({ name: 'QUANTITY', type: 'int' }, { name: 'VIEWS', type: 'long' }), 'Items');
    expect(shapeProperties(schema, { quantity: '12', views: 2 ** 40 }).properties).toEqual({ quantity: 12, views: 2 ** 40 });
    const shaped = shapeProperties(schema, { quantity: 12.5, QUANTITY_: 1 });
    expect(shaped.dropped[0]?.reason).toBe('quantity: expected an integer for QUANTITY (int), got number 12.5');
    expect(shapeProperties(schema, { quantity: 3e9 }).dropped[0]?.reason).toMatch(/3000000000 is outside the 32-bit integer range/);
    expect(shapeProperties(schema, { views: 2 ** 60 }).dropped[0]?.reason).toMatch(/outside the range of exactly representable/);
  });

  it('converts CREATION_TIMESTAMP from epoch milliseconds or ISO-8601 to epoch seconds', () => {
    const at = (creationTimestamp: unknown) => shapeProperties(items, { creationTimestamp }).properties.creationTimestamp;
    expect(at(1_700_000_000_999)).toBe(1_700_000_000);
    expect(at('1700000000999')).toBe(1_700_000_000);
    expect(at('2024-01-01T00:00:00Z')).toBe(1_704_067_200);
    expect(at('2024-01-01T00:00:00.750Z')).toBe(1_704_067_200);
    expect(at('2024-01-01')).toBe(1_704_067_200);
    expect(at('2024-01-01T05:30:00+05:30')).toBe(1_704_067_200);
  });

  it('refuses CREATION_TIMESTAMP values that look like seconds, lack a zone or are not dates', () => {
    const reason = (creationTimestamp: unknown) => shapeProperties(items, { creationTimestamp }).dropped[0]?.reason;
    expect(reason(1_700_000_000)).toMatch(/^creationTimestamp: CREATION_TIMESTAMP \(long\): 1700000000 is not epoch milliseconds/);
    expect(reason('2024-01-01T10:00:00')).toMatch(/expected epoch milliseconds or an ISO-8601 date-time with a zone/);
    expect(reason('2024-02-30')).toMatch(/is not a valid date/);
    expect(reason('yesterday')).toMatch(/got string "yesterday"/);
    expect(toEpochSeconds(1_700_000_000_000)).toBe(1_700_000_000);
    expect(toEpochSeconds(1_700_000_000)).toBeUndefined();
  });

  it('accepts booleans and "true"/"false" strings for boolean fields', () => {
    expect(shapeProperties(items, { inStock: false }).properties).toEqual({ inStock: false });
    expect(shapeProperties(items, { inStock: ' TRUE ' }).properties).toEqual({ inStock: true });
    expect(shapeProperties(items, { inStock: 'false' }).properties).toEqual({ inStock: false });
    expect(shapeProperties(items, { inStock: 1 }).dropped).toHaveLength(1);
  });

  it('keeps textual values up to 20,000 characters, 7,000 for Chinese/Japanese text', () => {
    expect(shapeProperties(items, { description: 'a'.repeat(20_000) }).properties.description).toHaveLength(20_000);
    expect(shapeProperties(items, { description: 'a'.repeat(20_001) }).dropped[0]?.reason).toMatch(
      /^description: 20001 characters for DESCRIPTION \(string, textual\), over the 20000-character limit/,
    );
    expect(shapeProperties(items, { description: '靴'.repeat(7_001) }).dropped[0]?.reason).toMatch(
      /over the 7000-character limit for textual values in Chinese\/Japanese/,
    );
  });

  it('omits null, undefined and empty values without counting them as dropped', () => {
    const shaped = shapeProperties(items, { brand: null, categoryL2: undefined, description: '  ', categoryL1: [], price: '' });
    expect(shaped).toMatchObject({ properties: {}, dropped: [] });
    expect(shapeProperties(items, undefined)).toMatchObject({ properties: {}, dropped: [] });
  });

  it('drops and lists unknown keys and the request\'s own top-level fields', () => {
    const shaped = shapeProperties(interactions, { sku: 'x', colour: 'red', itemId: 'i1', eventValue: 3, device: 'ios' });
    expect(shaped.properties).toEqual({ device: 'ios' });
    expect(shaped.dropped).toEqual([
      { key: 'sku', reason: 'sku: not a field of the Interactions schema', summary: 'not a field of the Interactions schema' },
      { key: 'colour', reason: 'colour: not a field of the Interactions schema', summary: 'not a field of the Interactions schema' },
      {
        key: 'itemId',
        reason: 'itemId: ITEM_ID is a top-level field of the request, not a property',
        summary: 'Interactions ITEM_ID: a top-level field of the request, not a property',
      },
      {
        key: 'eventValue',
        reason: 'eventValue: EVENT_VALUE is a top-level field of the request, not a property',
        summary: 'Interactions EVENT_VALUE: a top-level field of the request, not a property',
      },
    ]);
    expect(shapeProperties(items, { itemId: 'i1' }).dropped).toHaveLength(1);
  });

  it('keeps the first of two keys naming the same field and drops the other', () => {
    const shaped = shapeProperties(items, { categoryL1: 'a', CATEGORY_L1: 'b' });
    expect(shaped.properties).toEqual({ categoryL1: 'a' });
    expect(shaped.dropped).toEqual([
      { key: 'CATEGORY_L1', reason: 'CATEGORY_L1: CATEGORY_L1 already set from key categoryL1', summary: 'Items CATEGORY_L1: set by two keys, the first kept' },
    ]);
  });

  it('ignores __proto__ and constructor keys without polluting any prototype', () => {
    const hostile = JSON.parse('{"__proto__": {"polluted": "yes"}, "constructor": {"prototype": {"polluted": "yes"}}, "brand": "Acme"}') as Record<
      string,
      unknown
    >;
    const shaped = shapeProperties(items, hostile);
    expect(shaped.properties).toEqual({ brand: 'Acme' });
    expect(Object.getPrototypeOf(shaped.properties)).toBe(Object.prototype);
    expect(shaped.dropped.map((d) => d.key)).toEqual(['__proto__', 'constructor']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(propertiesJson(shaped)).toBe('{"brand":"Acme"}');
  });

  it('drops the largest values until the JSON fits the API limit (1024 for PutEvents)', () => {
    const shaped = shapeProperties(interactions, { device: 'd'.repeat(600), discount: 'y'.repeat(500) });
    expect(shaped.properties).toEqual({ discount: 'y'.repeat(500) });
    expect(shaped.dropped).toEqual([
      {
        key: 'device',
        reason: 'device: dropped so the properties JSON (1127 characters) fits the 1024-character limit (PutEvents, FACTS §1b); this entry took 611',
        summary: 'Interactions DEVICE: dropped so the properties JSON fits the 1024-character limit (PutEvents, FACTS §1b)',
      },
    ]);
    expect(shapeProperties(items, { brand: 'Acme', categoryL1: 'Shoes' }, { maxJsonLength: 20 }).properties).toEqual({ brand: 'Acme' });
  });

  it('lists non-nullable metadata fields that got no value', () => {
    expect(shapeProperties(items, { brand: 'Acme', price: 3 }).missing).toEqual(['CATEGORY_L1', 'CREATION_TIMESTAMP']);
    expect(shapeProperties(interactions, {}).missing).toEqual([]);
  });

  it('summarises every drop without the input key or value: dataset, schema field and rule only', () => {
    const email = 'ada.lovelace@example.com';
    const quoted = `say "${email}" twice`;
    const quantities = parseDatasetSchema(itemsWith({ name: 'QUANTITY', type: 'int' }), 'Items');
    const shaped = shapeProperties(items, {
      [email]: 'x',
      [`"${email}"`]: quoted,
      price: quoted,
      inStock: email,
      categoryL1: [{ [email]: 1 }],
      creationTimestamp: 1_700_000_000,
      brand: quoted.repeat(100),
      item_id: email,
    });
    shaped.dropped.push(...shapeProperties(quantities, { quantity: 44_207_946_000 }).dropped);
    expect(shaped.dropped).toHaveLength(9);
    for (const d of shaped.dropped) {
      expect(d.summary).not.toContain(email);
      expect(d.summary).not.toContain('"');
      expect(d.summary).not.toContain(d.key === 'price' ? 'price' : d.key === 'inStock' ? 'inStock' : email);
      expect(d.summary).not.toMatch(/\d{5,}/);
    }
    expect(new Set(shaped.dropped.map((d) => d.summary))).toEqual(
      new Set([
        'not a field of the Items schema',
        'Items PRICE (float): expected a number',
        'Items IN_STOCK (boolean): expected true or false',
        'Items CATEGORY_L1 (string, categorical): expected a string, number, boolean or an array of them',
        'Items QUANTITY (int): outside the 32-bit integer range',
        'Items CREATION_TIMESTAMP (long): not epoch milliseconds between 1973 and 3000 (epoch seconds sent as milliseconds?)',
        'Items BRAND (string, categorical): over the 1000-character limit for categorical values',
        'Items ITEM_ID: a top-level field of the request, not a property',
      ]),
    );
    // The reason, for the dead-letter record, still names the key and previews the value.
    expect(shaped.dropped.find((d) => d.key === 'price')?.reason).toContain('got string');
  });

  it('never throws on input that is not an object', () => {
    const shaped = shapeProperties(items, ['x'] as unknown as Record<string, unknown>);
    expect(shaped.properties).toEqual({});
    expect(shaped.dropped[0]?.reason).toBe('(properties): expected an object, got an array');
  });
});

describe('propertiesJson', () => {
  it('is undefined when nothing is left, because the API wants at least one character', () => {
    expect(propertiesJson(shapeProperties(users, {}))).toBeUndefined();
    expect(propertiesJson(shapeProperties(users, { unknown: 1 }))).toBeUndefined();
  });

  it('is the JSON of the shaped properties otherwise', () => {
    const json = propertiesJson(shapeProperties(users, { membership_type: ['gold', 'student'], country: 'DE' }));
    expect(json).toBe('{"membershipType":"gold|student","country":"DE"}');
  });
});

describe('csvValue and csvHeader', () => {
  it('writes lowercase booleans, plain decimals, pipes for arrays and empty for null', () => {
    expect(csvValue(field('IN_STOCK'), true)).toBe('true');
    expect(csvValue(field('IN_STOCK'), 'FALSE')).toBe('false');
    expect(csvValue(field('PRICE'), 19.99)).toBe('19.99');
    expect(csvValue(field('PRICE'), 1e21)).toBe('1000000000000000000000');
    expect(csvValue(field('PRICE'), 1.5e-7)).toBe('0.00000015');
    expect(csvValue(field('PRICE'), -0)).toBe('0');
    expect(csvValue(field('IMPRESSION'), ['i1', 'i2', null])).toBe('i1|i2');
    expect(csvValue(field('BRAND'), null)).toBe('');
    expect(csvValue(field('BRAND'), undefined)).toBe('');
    expect(csvValue(field('CATEGORY_L1'), 'Shoes|Running')).toBe('Shoes|Running');
  });

  it('takes shaped properties as they are, without converting units twice', () => {
    const shaped = shapeProperties(items, { creationTimestamp: 1_700_000_000_999 });
    expect(csvValue(field('CREATION_TIMESTAMP'), shaped.properties.creationTimestamp)).toBe('1700000000');
  });

  it('throws on a non-finite number, which only a bug could produce', () => {
    expect(() => csvValue(field('PRICE'), Number.NaN)).toThrow(/PRICE: NaN is not a finite number/);
  });

  it('heads the CSV with the field names in schema order', () => {
    expect(csvHeader(users)).toEqual(['USER_ID', 'MEMBERSHIP_TYPE', 'COUNTRY']);
  });
});

describe('naming helpers', () => {
  it('derives camelCase property keys from UPPER_SNAKE names', () => {
    expect(toPropertyKey('CREATION_TIMESTAMP')).toBe('creationTimestamp');
    expect(toPropertyKey('CATEGORY_L1')).toBe('categoryL1');
    expect(toPropertyKey('NUMBER_OF_RATINGS')).toBe('numberOfRatings');
    expect(toPropertyKey('GENRES')).toBe('genres');
    expect(toPropertyKey('numberOfRatings')).toBe('numberOfRatings');
  });

  it('prints numbers without exponents', () => {
    expect(plainNumber(-1.25e-8)).toBe('-0.0000000125');
    expect(plainNumber(1.5e22)).toBe('15000000000000000000000');
    expect(plainNumber(123.456)).toBe('123.456');
  });
});
