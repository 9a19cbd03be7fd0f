import * as crypto from 'node:crypto';
import { collectorTestSettings } from './support/collector.js';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { matchesAnyKey, safeEqual, segmentSignature, verifySegmentSignature } from '../shared/collect/auth.js';
import { routeKinds } from '../shared/collect/http-contract.js';
import { collect, COLLECTOR_PATHS, type CollectorDeps, type StreamWriter } from '../shared/collect/collector.js';
import type { CollectorSecrets } from '../shared/collect/secrets.js';
import type { PutOutcome, StreamRecord } from '../shared/stream-producer.js';

// Every secret comparison must go through timingSafeEqual: count its calls.
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return { ...actual, timingSafeEqual: vi.fn(actual.timingSafeEqual) };
});

/**
 * Every route x every way of presenting a wrong credential: only the valid cell gets in, through
 * the deployed Lambda handler (middy, header normalisation) with an in-memory stream.
 */

const SECRETS: CollectorSecrets = {
  trackerWriteKeys: ['tracker-key-1', 'tracker-key-2'],
  serverWriteKeys: ['server-key-1'],
  privacyApiKeys: ['privacy-key-1'],
  segmentSharedSecret: 'segment-shared-secret',
  mparticleAuthorization: 'Basic bXA6c2VjcmV0',
  feedApiKeys: ['feed-key-1'],
};

class CountingStream implements StreamWriter {
  records = 0;
  put(records: readonly StreamRecord[]): Promise<PutOutcome> {
    this.records += records.length;
    return Promise.resolve({ stored: records.map((_, i) => i), failed: [], calls: 1 });
  }
}

const stream = new CountingStream();
const deps: CollectorDeps = {
  stream,
  secrets: () => Promise.resolve(SECRETS),
  settings: collectorTestSettings(),
};

const time = new Date(Date.now() - 3_600_000).toISOString();
const track = { anonymousId: 'auth-anon', event: 'Product Viewed', messageId: 'auth-1', timestamp: time, properties: { product_id: 'sku-1' } };

/** A body each route accepts. */
function validBody(path: string): string {
  // Short paths (/v1/t, /v1/b, ...) are the same doors as the long ones.
  switch (routeKinds[path]) {
    case 'batch':
    case 'import':
      return JSON.stringify({ batch: [{ type: 'track', ...track }] });
    case 'track':
      return JSON.stringify(track);
    case 'page':
    case 'screen':
      return JSON.stringify({ ...track, event: undefined, name: 'Product' });
    case 'identify':
      return JSON.stringify({ anonymousId: 'auth-anon', userId: 'auth-user', messageId: 'auth-id', timestamp: time, traits: { membershipType: 'gold' } });
    case 'alias':
      return JSON.stringify({ previousId: 'auth-anon', userId: 'auth-user', messageId: 'auth-alias', timestamp: time });
    case 'group':
      return JSON.stringify({ userId: 'auth-user', groupId: 'g-1', messageId: 'auth-group', timestamp: time });
    case 'segment-webhook':
      return JSON.stringify({ type: 'track', ...track, receivedAt: time });
    case 'mparticle-webhook':
      return JSON.stringify({
        mpid: 1,
        events: [{ event_type: 'custom_event', data: { event_name: 'Product Viewed', source_message_id: 'auth-mp', session_uuid: 's', timestamp_unixtime_ms: Date.parse(time), custom_attributes: { product_id: 'sku-1' } } }],
      });
    case 'items-feed':
      return JSON.stringify({ items: [{ itemId: 'sku-1', properties: { categoryL1: 'shoes', price: 1, creationTimestamp: Date.parse(time) } }] });
    case 'users-feed':
      return JSON.stringify({ users: [{ userId: 'auth-user', properties: { membershipType: 'gold' } }] });
    case 'privacy-delete':
      return JSON.stringify({ userIds: ['auth-user'] });
    default:
      throw new Error(`no body for ${path}`);
  }
}

type Door = 'tracker' | 'segment' | 'mparticle' | 'feed' | 'privacy';
const doorOf = (path: string): Door =>
  path === '/v1/webhooks/segment'
    ? 'segment'
    : path === '/v1/webhooks/mparticle'
      ? 'mparticle'
      : path === '/v1/items' || path === '/v1/users'
        ? 'feed'
        : path === '/v1/privacy/delete'
          ? 'privacy'
          : 'tracker';

const basic = (user: string) => `Basic ${Buffer.from(`${user}:`).toString('base64')}`;
/** One character changed: a near miss, same length. */
const nearMiss = (s: string) => `${s.slice(0, -1)}${s.endsWith('0') ? '1' : '0'}`;

const CELLS = ['no credentials', 'wrong key', 'key for another route', 'wrong signature', 'signature over a different body', 'valid'] as const;
type Cell = (typeof CELLS)[number];

/** Headers for one cell. Doors without a signature get a valid Segment signature instead of their own credential. */
function headersFor(door: Door, cell: Cell, body: string): Record<string, string> {
  const other = JSON.stringify({ type: 'track', ...track, messageId: 'someone-else' });
  switch (cell) {
    case 'no credentials':
      return {};
    case 'wrong key':
      return {
        tracker: { Authorization: basic('not-a-write-key') },
        segment: { 'X-Signature': segmentSignature(body, 'not-the-shared-secret') },
        mparticle: { Authorization: 'Basic bm90OnRoaXM=' },
        feed: { Authorization: 'Bearer not-a-feed-key' },
        privacy: { Authorization: 'Bearer not-a-privacy-key' },
      }[door];
    case 'key for another route':
      return {
        tracker: { Authorization: basic(SECRETS.feedApiKeys[0]!) },
        segment: { Authorization: basic(SECRETS.trackerWriteKeys[0]!) },
        mparticle: { Authorization: `Bearer ${SECRETS.feedApiKeys[0]!}` },
        feed: { Authorization: `Bearer ${SECRETS.trackerWriteKeys[0]!}`, 'x-api-key': SECRETS.mparticleAuthorization! },
        privacy: { Authorization: `Bearer ${SECRETS.serverWriteKeys[0]!}`, 'x-api-key': SECRETS.feedApiKeys[0]! },
      }[door];
    case 'wrong signature':
      return {
        tracker: { 'X-Signature': segmentSignature(body, SECRETS.segmentSharedSecret!), Authorization: basic(nearMiss(SECRETS.trackerWriteKeys[0]!)) },
        segment: { 'X-Signature': nearMiss(segmentSignature(body, SECRETS.segmentSharedSecret!)) },
        mparticle: { 'X-Signature': segmentSignature(body, SECRETS.segmentSharedSecret!), Authorization: nearMiss(SECRETS.mparticleAuthorization!) },
        feed: { 'X-Signature': segmentSignature(body, SECRETS.segmentSharedSecret!), Authorization: `Bearer ${nearMiss(SECRETS.feedApiKeys[0]!)}` },
        privacy: { 'X-Signature': segmentSignature(body, SECRETS.segmentSharedSecret!), Authorization: `Bearer ${nearMiss(SECRETS.privacyApiKeys[0]!)}` },
      }[door];
    case 'signature over a different body':
      return { 'X-Signature': segmentSignature(other, SECRETS.segmentSharedSecret!) };
    case 'valid':
      return {
        tracker: { Authorization: basic(SECRETS.trackerWriteKeys[1]!) },
        segment: { 'X-Signature': segmentSignature(body, SECRETS.segmentSharedSecret!) },
        mparticle: { Authorization: SECRETS.mparticleAuthorization! },
        feed: { Authorization: `Bearer ${SECRETS.feedApiKeys[0]!}` },
        privacy: { Authorization: `Bearer ${SECRETS.privacyApiKeys[0]!}` },
      }[door];
  }
}

function apiEvent(path: string, headers: Record<string, string>, body: string): APIGatewayProxyEventV2 {
  const now = Date.now();
  return {
    version: '2.0',
    routeKey: `POST ${path}`,
    rawPath: path,
    rawQueryString: '',
    headers: { 'Content-Type': 'application/json', ...headers },
    requestContext: {
      accountId: '000000000000',
      apiId: 'auth-matrix',
      domainName: 'localhost',
      domainPrefix: 'localhost',
      http: { method: 'POST', path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
      requestId: crypto.randomUUID(),
      routeKey: `POST ${path}`,
      stage: '$default',
      time: new Date(now).toISOString(),
      timeEpoch: now,
    },
    body,
    isBase64Encoded: false,
  };
}

const context = { functionName: 'collect', awsRequestId: 'auth', getRemainingTimeInMillis: () => 10_000 } as unknown as Context;
let handler: (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;
const saved = { POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL, POWERTOOLS_METRICS_DISABLED: process.env.POWERTOOLS_METRICS_DISABLED };

beforeAll(async () => {
  // Read when the handler's logger and metrics load: keep 80 requests' worth of lines out of the output.
  process.env.POWERTOOLS_LOG_LEVEL = 'ERROR';
  process.env.POWERTOOLS_METRICS_DISABLED = 'true';
  const handle = await import('../shared/collect/handle.js');
  handle.setCollectorDeps(deps);
  ({ handler } = await import('../functions/collect/handler.js'));
});

afterAll(async () => {
  (await import('../shared/collect/handle.js')).setCollectorDeps(undefined);
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

beforeEach(() => {
  stream.records = 0;
  vi.mocked(crypto.timingSafeEqual).mockClear();
});

describe('the auth matrix: every route x every credential', () => {
  it('covers every collector route', () => {
    expect(COLLECTOR_PATHS).toHaveLength(20);
  });

  for (const path of COLLECTOR_PATHS) {
    for (const cell of CELLS) {
      const expected = cell === 'valid' ? '2xx' : '401';
      it(`${path} with ${cell}: ${expected}${cell === 'valid' ? '' : ', nothing on the stream'}`, async () => {
        const body = validBody(path);
        const result = await handler(apiEvent(path, headersFor(doorOf(path), cell, body), body), context);
        if (cell === 'valid') {
          expect(result.statusCode, String(result.body)).toBeGreaterThanOrEqual(200);
          expect(result.statusCode).toBeLessThan(300);
          // group is filtered (accepted, not stored); every other valid body reaches the stream.
          if (routeKinds[path] !== 'group') expect(stream.records).toBeGreaterThan(0);
        } else {
          expect(result.statusCode, String(result.body)).toBe(401);
          expect(stream.records).toBe(0);
          expect(String(result.body)).not.toContain(SECRETS.segmentSharedSecret);
        }
      });
    }
  }

  it('takes a tracker write key from the body only when no Authorization header is sent (browser beacons)', async () => {
    const body = (writeKey: string) => JSON.stringify({ writeKey, batch: [{ type: 'track', ...track }] });
    const inBody = await handler(apiEvent('/v1/batch', {}, body(SECRETS.trackerWriteKeys[0]!)), context);
    expect(inBody.statusCode).toBe(200);
    const wrongInBody = await handler(apiEvent('/v1/batch', {}, body('nope')), context);
    expect(wrongInBody.statusCode).toBe(401);
    const wrongHeaderRightBody = await handler(apiEvent('/v1/batch', { Authorization: basic('nope') }, body(SECRETS.trackerWriteKeys[0]!)), context);
    expect(wrongHeaderRightBody.statusCode).toBe(401);
  });
});

describe('trust levels: what each credential class may send', () => {
  const deletion = JSON.stringify({ batch: [{ type: 'delete', userId: 'victim', messageId: 'del-1', timestamp: time }] });
  const profile = JSON.stringify({ batch: [{ type: 'identify', userId: 'victim', messageId: 'prof-1', timestamp: time, traits: { membershipType: 'banned' } }] });
  const send = async (path: string, headers: Record<string, string>, body: string) => {
    const result = await handler(apiEvent(path, headers, body), context);
    return { status: result.statusCode, body: JSON.parse(String(result.body)) as { rejected?: { reason: string }[]; filtered?: number } };
  };

  it('refuses a deletion from a public write key, on every tracker route, with the reason and nothing on the stream', async () => {
    for (const path of COLLECTOR_PATHS.filter((p) => routeKinds[p] === 'batch' || routeKinds[p] === 'import')) {
      stream.records = 0;
      const res = await send(path, { Authorization: basic(SECRETS.trackerWriteKeys[0]!) }, deletion);
      expect(res.status, path).toBe(400);
      expect(res.body.rejected?.[0]?.reason).toMatch(/public-key may not request deletions.*\/v1\/privacy\/delete/);
      expect(stream.records).toBe(0);
    }
    // The body's type does not win over a single-call route either.
    stream.records = 0;
    const single = await send('/v1/track', { Authorization: basic(SECRETS.trackerWriteKeys[0]!) }, JSON.stringify({ type: 'delete', userId: 'victim', messageId: 'del-2', timestamp: time }));
    expect(single.status).toBe(400);
    expect(stream.records).toBe(0);
  });

  it('takes a deletion from a server write key, the signed Segment webhook and the privacy route', async () => {
    expect((await send('/v1/batch', { Authorization: basic(SECRETS.serverWriteKeys[0]!) }, deletion)).status).toBe(200);
    const webhook = JSON.stringify({ type: 'delete', userId: 'victim', messageId: 'del-3', timestamp: time });
    expect((await send('/v1/webhooks/segment', { 'X-Signature': segmentSignature(webhook, SECRETS.segmentSharedSecret!) }, webhook)).status).toBe(200);
    stream.records = 0;
    expect((await send('/v1/privacy/delete', { Authorization: `Bearer ${SECRETS.privacyApiKeys[0]!}` }, JSON.stringify({ userIds: ['a', 'b'] }))).status).toBe(200);
    expect(stream.records).toBe(2);
  });

  it('filters profile updates from a public key by default (counted, not sent) and sends them from a server key', async () => {
    stream.records = 0;
    const fromPublic = await send('/v1/batch', { Authorization: basic(SECRETS.trackerWriteKeys[0]!) }, profile);
    expect(fromPublic).toMatchObject({ status: 200, body: { filtered: 1 } });
    expect(stream.records).toBe(0);
    const fromServer = await send('/v1/batch', { Authorization: basic(SECRETS.serverWriteKeys[0]!) }, profile);
    expect(fromServer).toMatchObject({ status: 200, body: { filtered: 0 } });
    expect(stream.records).toBe(1);
  });

  it('a privacy key opens only the privacy route, and the privacy route takes only deletions', async () => {
    expect((await send('/v1/batch', { Authorization: basic(SECRETS.privacyApiKeys[0]!) }, deletion)).status).toBe(401);
    expect((await send('/v1/privacy/delete', { Authorization: `Bearer ${SECRETS.trackerWriteKeys[0]!}` }, JSON.stringify({ userIds: ['a'] }))).status).toBe(401);
  });

  it('checks a header credential before inflating or parsing the body: a wrong key on a corrupt gzip body is 401', async () => {
    const event = apiEvent('/v1/batch', { Authorization: basic('nope'), 'Content-Encoding': 'gzip' }, Buffer.from('not gzip').toString('base64'));
    const result = await handler({ ...event, isBase64Encoded: true }, context);
    expect(result.statusCode).toBe(401);
  });
});

describe('constant-time comparison of secrets', () => {
  it('safeEqual: equal, unequal, different lengths, empty, without throwing', () => {
    expect(safeEqual('secret', 'secret')).toBe(true);
    expect(safeEqual('secret', 'secreT')).toBe(false);
    expect(safeEqual('short', 'a much longer value')).toBe(false);
    expect(safeEqual('', 'x')).toBe(false);
    expect(safeEqual(Buffer.from('abc'), 'abc')).toBe(true);
    expect(vi.mocked(crypto.timingSafeEqual)).toHaveBeenCalledTimes(5);
  });

  it('matchesAnyKey compares every configured key, whichever matches, and refuses empty candidates and keys', () => {
    const keys = ['k-1', 'k-2', 'k-3'];
    for (const candidate of ['k-1', 'k-3', 'nope']) {
      vi.mocked(crypto.timingSafeEqual).mockClear();
      expect(matchesAnyKey(candidate, keys)).toBe(candidate !== 'nope');
      expect(vi.mocked(crypto.timingSafeEqual)).toHaveBeenCalledTimes(3);
    }
    expect(matchesAnyKey('', keys)).toBe(false);
    expect(matchesAnyKey(undefined, keys)).toBe(false);
    expect(matchesAnyKey('', [''])).toBe(false);
    expect(matchesAnyKey('x', [])).toBe(false);
  });

  it('verifySegmentSignature: right, wrong, other body, other length, upper-case hex, no secret', () => {
    const raw = Buffer.from('{"type":"track"}');
    const signature = segmentSignature(raw, 's3cret');
    expect(verifySegmentSignature(raw, signature, 's3cret')).toBe(true);
    expect(verifySegmentSignature(raw, signature.toUpperCase(), 's3cret')).toBe(true);
    expect(verifySegmentSignature(raw, nearMiss(signature), 's3cret')).toBe(false);
    expect(verifySegmentSignature(Buffer.from('{"type":"track" }'), signature, 's3cret')).toBe(false);
    expect(verifySegmentSignature(raw, signature.slice(0, 10), 's3cret')).toBe(false);
    expect(verifySegmentSignature(raw, signature, 'other')).toBe(false);
    expect(vi.mocked(crypto.timingSafeEqual)).toHaveBeenCalledTimes(6);
    expect(verifySegmentSignature(raw, signature, '')).toBe(false);
    expect(verifySegmentSignature(raw, undefined, 's3cret')).toBe(false);
  });

  for (const door of ['tracker', 'segment', 'mparticle', 'feed', 'privacy'] as const) {
    const path = { tracker: '/v1/batch', segment: '/v1/webhooks/segment', mparticle: '/v1/webhooks/mparticle', feed: '/v1/items', privacy: '/v1/privacy/delete' }[door];
    it(`the ${door} door's check goes through timingSafeEqual, for a wrong credential as for the right one`, async () => {
      const body = validBody(path);
      for (const cell of ['wrong key', 'valid'] as const) {
        vi.mocked(crypto.timingSafeEqual).mockClear();
        const headers: Record<string, string | undefined> = {};
        for (const [k, v] of Object.entries(headersFor(door, cell, body))) headers[k.toLowerCase()] = v;
        const { response } = await collect({ method: 'POST', path, headers, rawBody: Buffer.from(body), receivedAt: Date.now() }, deps);
        expect(response.status).toBe(cell === 'valid' ? 200 : 401);
        expect(vi.mocked(crypto.timingSafeEqual)).toHaveBeenCalled();
      }
    });
  }
});
