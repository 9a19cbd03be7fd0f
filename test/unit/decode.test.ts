import { createHash } from 'node:crypto';
import type { KinesisStreamRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { kplAggregate } from '../support/kpl.js';
import { decodeKinesisRecord, decodeMessage, MAX_LABEL_CHARS, MAX_NESTING_DEPTH, payloadLabels, type DecodeResult, type RecordRef } from '../../shared/decode.js';


const KPL_MAGIC = Buffer.from('f3899ac2', 'hex');
const NOW = Date.now();
const REF: RecordRef = { shardId: 'shardId-000000000001', sequenceNumber: '49600000000000000000000000000000000000000000000000000001', partitionKey: 'pk', arrivedAt: 1_700_000_000_250 };

function kinesisRecord(data: Buffer, sequenceNumber = REF.sequenceNumber, partitionKey = 'outer-key'): KinesisStreamRecord {
  return {
    kinesis: {
      kinesisSchemaVersion: '1.0',
      partitionKey,
      sequenceNumber,
      data: data.toString('base64'),
      approximateArrivalTimestamp: 1_700_000_000.25,
    },
    eventSource: 'aws:kinesis',
    eventVersion: '1.0',
    eventID: `shardId-000000000001:${sequenceNumber}`,
    eventName: 'aws:kinesis:record',
    invokeIdentityArn: 'arn:aws:iam::000000000000:role/test',
    awsRegion: 'us-east-1',
    eventSourceARN: 'arn:aws:kinesis:us-east-1:000000000000:stream/test',
  };
}

async function aggregate(records: { partitionKey: string; data: Buffer }[]): Promise<Buffer[]> {
  return (await kplAggregate(records)).map((r) => r.data);
}

const md5 = (bytes: Buffer): Buffer => createHash('md5').update(bytes).digest();

function view(eventId: string | undefined, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { kind: 'interaction', ...(eventId !== undefined && { eventId }), sessionId: 's-1', eventType: 'View', itemId: 'sku-1', timestamp: NOW - 60_000, ...extra };
}

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

function rejection(result: DecodeResult | undefined): Extract<DecodeResult, { ok: false }> {
  if (!result || result.ok) throw new Error(`expected a rejection, got ${JSON.stringify(result)}`);
  return result;
}

function accepted(result: DecodeResult | undefined): Extract<DecodeResult, { ok: true }> {
  if (!result?.ok) throw new Error(`expected a message, got ${JSON.stringify(result)}`);
  return result;
}

describe('decodeKinesisRecord', () => {
  it('decodes a plain record into one message that keeps the record position and arrival time', () => {
    const results = decodeKinesisRecord(kinesisRecord(json(view('e-1'))));
    expect(results).toHaveLength(1);
    const { message, ref } = accepted(results[0]);
    expect(message).toMatchObject({ kind: 'interaction', eventId: 'e-1', sessionId: 's-1', source: 'native' });
    expect(ref).toEqual({ shardId: 'shardId-000000000001', sequenceNumber: REF.sequenceNumber, partitionKey: 'outer-key', arrivedAt: 1_700_000_000_250 });
    expect(ref.subSequenceNumber).toBeUndefined();
  });

  it('splits a KPL-aggregated record into its user records with sub-sequence numbers and their own partition keys', async () => {
    const [encoded, ...more] = await aggregate([
      { partitionKey: 'session-a', data: json(view('kpl-1', { sessionId: 'session-a' })) },
      { partitionKey: 'session-b', data: json(view('kpl-2', { sessionId: 'session-b' })) },
      { partitionKey: 'session-a', data: json(view('kpl-3', { sessionId: 'session-a' })) },
    ]);
    expect(more).toHaveLength(0);
    const results = decodeKinesisRecord(kinesisRecord(encoded!));
    expect(results.map((r) => accepted(r).message.eventId)).toEqual(['kpl-1', 'kpl-2', 'kpl-3']);
    expect(results.map((r) => r.ref.subSequenceNumber)).toEqual([0, 1, 2]);
    expect(results.map((r) => r.ref.partitionKey)).toEqual(['session-a', 'session-b', 'session-a']);
    expect(new Set(results.map((r) => r.ref.sequenceNumber))).toEqual(new Set([REF.sequenceNumber]));
  });

  it('keeps a bad user record inside an aggregate as its own rejection next to the good ones', async () => {
    const [encoded] = await aggregate([
      { partitionKey: 'a', data: json(view('good-1')) },
      { partitionKey: 'a', data: Buffer.from('{not json') },
      { partitionKey: 'a', data: json(view('good-2')) },
    ]);
    const results = decodeKinesisRecord(kinesisRecord(encoded!));
    expect(results.map((r) => r.ok)).toEqual([true, false, true]);
    const bad = rejection(results[1]);
    expect(bad.reason).toMatch(/not valid JSON/);
    expect(bad.ref.subSequenceNumber).toBe(1);
    expect(bad.payload).toBe('{not json');
  });

  describe('a corrupt KPL record becomes exactly one decode failure, never an exception', () => {
    const cases: [string, () => Promise<Buffer>][] = [
      [
        'magic bytes followed by garbage (with a matching checksum)',
        () => {
          const garbage = Buffer.from('hello, these bytes are not a protobuf!!');
          return Promise.resolve(Buffer.concat([KPL_MAGIC, garbage, md5(garbage)]));
        },
      ],
      [
        'a checksum that does not match',
        async () => {
          const [encoded] = await aggregate([{ partitionKey: 'a', data: json(view('x')) }]);
          const corrupt = Buffer.from(encoded!);
          corrupt[corrupt.length - 1]! ^= 0xff;
          return corrupt;
        },
      ],
      [
        'a truncated aggregate',
        async () => {
          const [encoded] = await aggregate([
            { partitionKey: 'a', data: json(view('x')) },
            { partitionKey: 'b', data: json(view('y')) },
          ]);
          return encoded!.subarray(0, encoded!.length - 20);
        },
      ],
      ['the magic bytes alone', () => Promise.resolve(KPL_MAGIC)],
      [
        'an aggregate holding no user records',
        () => {
          const emptyProtobuf = Buffer.alloc(0);
          return Promise.resolve(Buffer.concat([KPL_MAGIC, emptyProtobuf, md5(emptyProtobuf)]));
        },
      ],
    ];
    for (const [name, build] of cases) {
      it(name, async () => {
        const data = await build();
        let results: DecodeResult[] = [];
        expect(() => (results = decodeKinesisRecord(kinesisRecord(data)))).not.toThrow();
        expect(results).toHaveLength(1);
        const failure = rejection(results[0]);
        expect(failure.stage).toBe('decode');
        expect(failure.reason).toMatch(/^KPL aggregated record is corrupt: .+/);
        // The whole record is kept, byte for byte, for the dead-letter queue.
        expect(failure.payloadEncoding).toBe('base64');
        expect(Buffer.from(failure.payload, 'base64').equals(data)).toBe(true);
        expect(failure.ref.sequenceNumber).toBe(REF.sequenceNumber);
      });
    }
  });

  it('rejects an empty record', () => {
    const results = decodeKinesisRecord(kinesisRecord(Buffer.alloc(0)));
    expect(results).toHaveLength(1);
    expect(rejection(results[0])).toMatchObject({ stage: 'decode', reason: 'record is empty' });
  });
});

describe('decodeMessage rejections', () => {
  it('keeps a non-UTF-8 payload as base64 so no byte is lost', () => {
    const bytes = Buffer.from([0x7b, 0xff, 0xfe, 0x00, 0xc3, 0x28, 0x7d]);
    const failure = rejection(decodeMessage(bytes, REF));
    expect(failure).toMatchObject({ stage: 'decode', reason: 'record is not valid UTF-8', payloadEncoding: 'base64' });
    expect(Buffer.from(failure.payload, 'base64').equals(bytes)).toBe(true);
  });

  it('rejects text that is not JSON, with the parser message, keeping the text', () => {
    const failure = rejection(decodeMessage(Buffer.from('{"kind": "interaction",'), REF));
    expect(failure.stage).toBe('decode');
    expect(failure.reason).toMatch(/^record is not valid JSON: /);
    expect(failure).toMatchObject({ payload: '{"kind": "interaction",', payloadEncoding: 'utf8' });
  });

  it.each([
    ['[1,2,3]', 'an array'],
    ['null', 'null'],
    ['42', 'number'],
    ['"a string"', 'string'],
    ['true', 'boolean'],
  ])('rejects the JSON value %s: a record must be an object', (text, got) => {
    const failure = rejection(decodeMessage(Buffer.from(text), REF));
    expect(failure.reason).toBe(`record must be a JSON object, got ${got}`);
  });

  it('rejects 100k nested arrays without overflowing the stack', () => {
    const deep = Buffer.from(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    expect(rejection(decodeMessage(deep, REF)).reason).toBe(`record nests deeper than ${MAX_NESTING_DEPTH} levels`);
  });

  it('rejects a message without an eventId whose content nests 100k levels deep', () => {
    const deep = Buffer.from(`{"kind":"interaction","x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    expect(rejection(decodeMessage(deep, REF)).reason).toBe(`record nests deeper than ${MAX_NESTING_DEPTH} levels`);
  });

  it(`accepts nesting up to ${MAX_NESTING_DEPTH} levels and rejects one more; brackets inside strings do not count`, () => {
    // message (1) > properties (2) > arrays from level 3 on.
    const nested = (levels: number) =>
      Buffer.from(
        JSON.stringify(view('depth', { properties: { device: 'PLACEHOLDER', note: '[[[[{{{{'.repeat(50) } })).replace(
          '"PLACEHOLDER"',
          `${'['.repeat(levels - 2)}${']'.repeat(levels - 2)}`,
        ),
      );
    expect(decodeMessage(nested(MAX_NESTING_DEPTH), REF).ok).toBe(true);
    expect(rejection(decodeMessage(nested(MAX_NESTING_DEPTH + 1), REF)).reason).toMatch(/nests deeper/);
  });

  it('rejects a valid message with its own eventId whose properties nest 100k levels deep (it could never be re-serialized)', () => {
    const text = JSON.stringify(view('deep-1', { properties: { device: 'PLACEHOLDER' } })).replace(
      '"PLACEHOLDER"',
      `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
    );
    const failure = rejection(decodeMessage(Buffer.from(text), REF));
    expect(failure.reason).toBe(`record nests deeper than ${MAX_NESTING_DEPTH} levels`);
    expect(failure.payload === text).toBe(true);
  });

  it('accepts ordinary nesting such as a list of products', () => {
    const message = view('nested-ok', { properties: { products: [{ sku: 'a', tags: [['x'], ['y']] }], context: { page: { url: 'https://x' } } } });
    expect(accepted(decodeMessage(json(message), REF)).message.eventId).toBe('nested-ok');
  });

  it('rejects a record over 1 MiB', () => {
    const failure = rejection(decodeMessage(Buffer.alloc(1024 * 1024 + 1, 0x20), REF));
    expect(failure.reason).toMatch(/1048577 bytes, limit 1048576/);
  });
});

describe('eventId', () => {
  it('is a content hash when the message has none, stable under key order', () => {
    const a = accepted(decodeMessage(Buffer.from('{"kind":"interaction","sessionId":"s","eventType":"View","timestamp":' + (NOW - 1000) + ',"properties":{"a":1,"b":2}}'), REF));
    const b = accepted(decodeMessage(Buffer.from('{"properties":{"b":2,"a":1},"timestamp":' + (NOW - 1000) + ',"eventType":"View","sessionId":"s","kind":"interaction"}'), REF));
    expect(a.message.eventId).toMatch(/^h-[0-9a-f]{40}$/);
    expect(b.message.eventId).toBe(a.message.eventId);
  });

  it('differs when the content differs', () => {
    const a = accepted(decodeMessage(json(view(undefined)), REF));
    const b = accepted(decodeMessage(json(view(undefined, { itemId: 'sku-2' })), REF));
    const c = accepted(decodeMessage(json(view(undefined, { properties: { device: 'ios' } })), REF));
    expect(new Set([a.message.eventId, b.message.eventId, c.message.eventId]).size).toBe(3);
  });

  it('is the message’s own id when it has one', () => {
    expect(accepted(decodeMessage(json(view('my-id')), REF)).message.eventId).toBe('my-id');
  });
});

describe('validation errors carry field paths', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['sessionId "null"', { sessionId: 'null' }, 'sessionId'],
    ['timestamp in seconds', { timestamp: Math.floor(NOW / 1000) }, 'timestamp'],
    ['userId of 257 characters', { userId: 'u'.repeat(257) }, 'userId'],
    ['26 impressions', { impression: Array.from({ length: 26 }, (_, i) => `i${i}`) }, 'impression'],
    ['recommendationId of 41 characters', { recommendationId: 'r'.repeat(41) }, 'recommendationId'],
  ];
  for (const [name, extra, path] of cases) {
    it(`${name} -> ${path}`, () => {
      const failure = rejection(decodeMessage(json(view('v-1', { source: 'segment', ...extra })), REF));
      expect(failure.stage).toBe('validate');
      expect(failure.errors?.map((e) => e.path)).toEqual([path]);
      expect(failure.reason.startsWith(`${path}: `)).toBe(true);
      expect(failure.source).toBe('segment');
      expect(failure.payloadEncoding).toBe('utf8');
    });
  }

  it('at the limits (256-character userId, 25 impressions, 40-character recommendationId) the message is valid', () => {
    const message = view('v-ok', {
      userId: 'u'.repeat(256),
      impression: Array.from({ length: 25 }, (_, i) => `i${i}`),
      recommendationId: 'r'.repeat(40),
    });
    expect(decodeMessage(json(message), REF).ok).toBe(true);
  });

  it('lists every bad field of one message', () => {
    const failure = rejection(decodeMessage(json(view('v-2', { sessionId: 'undefined', timestamp: 1_700_000_000 })), REF));
    expect(failure.errors?.map((e) => e.path).sort()).toEqual(['sessionId', 'timestamp']);
  });
});

describe('a rejected payload is labelled with what it claims to be (eventId, kind, source)', () => {
  it('a validate failure carries the payload\'s eventId, kind and source', () => {
    const failure = rejection(decodeMessage(json(view('bad-1', { source: 'segment', sessionId: 'null' })), REF));
    expect(failure).toMatchObject({ stage: 'validate', eventId: 'bad-1', kind: 'interaction', source: 'segment' });
  });

  it('a message without an eventId is labelled with the content hash the processor would give it', () => {
    const bad = view(undefined, { sessionId: 'undefined' });
    const failure = rejection(decodeMessage(json(bad), REF));
    expect(failure.eventId).toMatch(/^h-[0-9a-f]{40}$/);
    // Stable: a redrive of the same bytes labels it the same way.
    expect(rejection(decodeMessage(json(bad), REF)).eventId).toBe(failure.eventId);
  });

  it('labels a payload whose kind is not one the schema knows, and leaves out fields that are not non-blank strings', () => {
    const failure = rejection(decodeMessage(json({ kind: 'clickz', eventId: 42, source: '   ', sessionId: 's' }), REF));
    expect(failure.stage).toBe('validate');
    expect(failure.kind).toBe('clickz');
    expect(failure.eventId).toBeUndefined();
    expect(failure.source).toBeUndefined();
  });

  it(`cuts labels to ${MAX_LABEL_CHARS} characters, never between the halves of a surrogate pair`, () => {
    const failure = rejection(decodeMessage(json(view('e'.repeat(1_000), { source: `${'s'.repeat(MAX_LABEL_CHARS - 1)}👍`, kind: 'k'.repeat(300) })), REF));
    expect(failure.eventId).toBe('e'.repeat(MAX_LABEL_CHARS));
    expect(failure.kind).toBe('k'.repeat(MAX_LABEL_CHARS));
    expect(failure.source).toBe('s'.repeat(MAX_LABEL_CHARS - 1));
  });

  it('decode failures carry no labels: nothing was parsed', () => {
    for (const text of ['{"kind":"interaction","eventId":"x",', '["interaction"]', '"kind"']) {
      const failure = rejection(decodeMessage(Buffer.from(text), REF));
      expect(failure.stage).toBe('decode');
      expect(failure).not.toHaveProperty('eventId');
      expect(failure).not.toHaveProperty('kind');
      expect(failure).not.toHaveProperty('source');
    }
  });

  it('payloadLabels reads own string fields of an object only', () => {
    expect(payloadLabels({ eventId: 'e', kind: 'item', source: 'feed', other: 'x' })).toEqual({ eventId: 'e', kind: 'item', source: 'feed' });
    expect(payloadLabels(Object.create({ eventId: 'inherited' }) as object)).toEqual({});
    expect(payloadLabels(JSON.parse('{"__proto__":{"kind":"x"},"source":{"a":1}}'))).toEqual({});
    expect(payloadLabels(['e'])).toEqual({});
    expect(payloadLabels(null)).toEqual({});
    expect(payloadLabels('eventId')).toEqual({});
  });
});
