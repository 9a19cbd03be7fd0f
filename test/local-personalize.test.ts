import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  InvalidInputException,
  PersonalizeEventsClient,
  PutEventsCommand,
  PutItemsCommand,
  PutUsersCommand,
  type Event,
  type PutEventsCommandInput,
  type PutItemsCommandInput,
  type PutUsersCommandInput,
} from '@aws-sdk/client-personalize-events';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  startLocalPersonalize,
  type LocalPersonalize,
  type LocalPersonalizeOptions,
  type ReceivedCall,
} from '../local/personalize-server.js';
import { validatePutEvents, validatePutItems, formatValidationErrors } from '../local/personalize-validation.js';

const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
const ITEMS_ARN = 'arn:aws:personalize:us-east-1:123456789012:dataset/shop/ITEMS';
const USERS_ARN = 'arn:aws:personalize:us-east-1:123456789012:dataset/shop/USERS';
const SIGV4 = 'AWS4-HMAC-SHA256 Credential=local/20250101/us-east-1/personalize/aws4_request, Signature=00';

/** One attempt per call, so each server answer is seen as is. */
function clientFor(server: LocalPersonalize): PersonalizeEventsClient {
  return new PersonalizeEventsClient({ region: 'us-east-1', credentials, endpoint: server.url, maxAttempts: 1 });
}

/** The SDK's default retry configuration (standard mode, 3 attempts). */
function retryingClientFor(server: LocalPersonalize): PersonalizeEventsClient {
  return new PersonalizeEventsClient({ region: 'us-east-1', credentials, endpoint: server.url });
}

function event(overrides: Partial<Event> = {}): Event {
  return { eventId: 'e-1', eventType: 'View', itemId: 'item-1', sentAt: new Date(1_700_000_000_000), ...overrides };
}

function putEvents(overrides: Partial<PutEventsCommandInput> = {}): PutEventsCommand {
  return new PutEventsCommand({ trackingId: 'tracker-1', sessionId: 'session-1', eventList: [event()], ...overrides });
}

function putItems(overrides: Partial<PutItemsCommandInput> = {}): PutItemsCommand {
  return new PutItemsCommand({ datasetArn: ITEMS_ARN, items: [{ itemId: 'item-1', properties: '{"genres":"a|b"}' }], ...overrides });
}

function putUsers(overrides: Partial<PutUsersCommandInput> = {}): PutUsersCommand {
  return new PutUsersCommand({ datasetArn: USERS_ARN, users: [{ userId: 'user-1', properties: '{"tier":"gold"}' }], ...overrides });
}

/** A JSON object string of exactly `length` characters. */
function jsonOfLength(length: number, key = 'note'): string {
  const overhead = `{"${key}":""}`.length;
  return `{"${key}":"${'x'.repeat(length - overhead)}"}`;
}

const many = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));

/** Builds a `random` that returns the given values in turn, then 0.99 (no fault). */
function scripted(...values: number[]): () => number {
  return () => values.shift() ?? 0.99;
}

async function rawPost(url: string, body: string | Buffer, headers: Record<string, string> = { authorization: SIGV4 }) {
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  return { status: res.status, type: res.headers.get('x-amzn-errortype'), body: await res.text() };
}

/** Servers started by a test; closed after it. */
const started: LocalPersonalize[] = [];
async function start(options: LocalPersonalizeOptions = {}): Promise<LocalPersonalize> {
  const server = await startLocalPersonalize(options);
  started.push(server);
  return server;
}
afterEach(async () => {
  await Promise.all(started.splice(0).map((s) => s.close()));
});

describe('accepted calls', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'local-personalize-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('accepts a valid PutEvents from the real SDK and records it in memory, the NDJSON file and GET /_local/received', async () => {
    const recordFile = join(dir, 'nested', 'received.ndjson');
    const server = await start({ recordFile });
    const client = clientFor(server);
    const out = await client.send(
      putEvents({
        userId: 'user-1',
        eventList: [
          event({ eventValue: 4.5, properties: '{"discount":"yes"}', impression: ['item-1', 'item-2'] }),
          event({ eventId: 'e-2', eventType: 'Purchase', recommendationId: 'rec-1', metricAttribution: { eventAttributionSource: 'email campaign' } }),
        ],
      }),
    );
    expect(out.$metadata).toMatchObject({ httpStatusCode: 200, attempts: 1 });

    const calls = server.received('PutEvents');
    expect(calls).toHaveLength(1);
    const request = calls[0]?.request;
    expect(request).toMatchObject({ trackingId: 'tracker-1', sessionId: 'session-1', userId: 'user-1' });
    // The SDK sends sentAt as epoch seconds.
    expect(request?.eventList[0]).toMatchObject({ sentAt: 1_700_000_000, eventValue: 4.5, properties: '{"discount":"yes"}' });

    expect(server.receivedEvents().map((e) => [e.eventId, e.sessionId, e.userId, e.trackingId])).toEqual([
      ['e-1', 'session-1', 'user-1', 'tracker-1'],
      ['e-2', 'session-1', 'user-1', 'tracker-1'],
    ]);

    const lines = (await readFile(recordFile, 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(1);
    const fromFile = JSON.parse(lines[0] ?? '') as ReceivedCall;
    expect(fromFile).toEqual(calls[0]);
    expect(Date.parse(fromFile.receivedAt)).not.toBeNaN();

    const viaHttp = (await (await fetch(`${server.url}/_local/received?operation=PutEvents`)).json()) as ReceivedCall[];
    expect(viaHttp).toEqual(calls);
    const noItems = (await (await fetch(`${server.url}/_local/received?operation=PutItems`)).json()) as ReceivedCall[];
    expect(noItems).toEqual([]);
    expect(server.stats().PutEvents).toEqual({ accepted: 1, rejected: 0, throttled: 0, failed: 0 });
  });

  it('accepts valid PutItems and PutUsers and appends each call to the record file in order', async () => {
    const recordFile = join(dir, 'items-users.ndjson');
    const server = await start({ recordFile });
    const client = clientFor(server);
    await client.send(putItems());
    await client.send(putUsers());
    await client.send(putItems({ items: [{ itemId: 'item-2' }] }));

    expect(server.received().map((c) => c.operation)).toEqual(['PutItems', 'PutUsers', 'PutItems']);
    expect(server.received('PutUsers')[0]?.request.users).toEqual([{ userId: 'user-1', properties: '{"tier":"gold"}' }]);
    const fromFile = (await readFile(recordFile, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as ReceivedCall);
    expect(fromFile).toEqual(server.received());

    const stats = (await (await fetch(`${server.url}/_local/stats`)).json()) as ReturnType<LocalPersonalize['stats']>;
    expect(stats.PutItems.accepted).toBe(2);
    expect(stats.PutUsers.accepted).toBe(1);
  });

  it('is reachable through AWS_ENDPOINT_URL_PERSONALIZE_EVENTS with no endpoint option', async () => {
    const server = await start();
    const saved = process.env.AWS_ENDPOINT_URL_PERSONALIZE_EVENTS;
    process.env.AWS_ENDPOINT_URL_PERSONALIZE_EVENTS = server.env.AWS_ENDPOINT_URL_PERSONALIZE_EVENTS;
    try {
      const client = new PersonalizeEventsClient({ region: 'us-east-1', credentials, maxAttempts: 1 });
      await client.send(putEvents());
    } finally {
      if (saved === undefined) delete process.env.AWS_ENDPOINT_URL_PERSONALIZE_EVENTS;
      else process.env.AWS_ENDPOINT_URL_PERSONALIZE_EVENTS = saved;
    }
    expect(server.received()).toHaveLength(1);
  });

  it('accepts values exactly at every limit', async () => {
    const server = await start({ rates: false });
    const client = clientFor(server);
    const id = (c: string) => c.repeat(256);
    await client.send(
      putEvents({
        trackingId: id('t'),
        sessionId: id('s'),
        userId: id('u'),
        eventList: many(10, (i) =>
          event({
            eventId: `${i}`.padEnd(256, 'e'),
            eventType: id('v'),
            properties: jsonOfLength(1024),
            recommendationId: 'r'.repeat(40),
            impression: many(25, (j) => `item-${j}`),
          }),
        ),
      }),
    );
    await client.send(
      putItems({ items: many(10, (i) => ({ itemId: `${i}`.padEnd(256, 'i'), properties: jsonOfLength(32_000) })) }),
    );
    await client.send(putUsers({ users: many(10, (i) => ({ userId: `${i}`.padEnd(256, 'u'), properties: jsonOfLength(24_000) })) }));
    expect(server.stats().PutEvents.accepted + server.stats().PutItems.accepted + server.stats().PutUsers.accepted).toBe(3);
  });
});

/**
 * An event whose every field is within its length limit (lengths count characters) but which
 * serializes to more than 10 KB (FACTS §1c): 25 impression ids of 256 three-byte characters.
 */
function oversizedEvent(): Event {
  return event({ impression: many(25, (j) => `${j}`.padEnd(256, '€')) });
}

describe('limits: the real SDK gets InvalidInputException naming the field', () => {
  let server: LocalPersonalize;
  let client: PersonalizeEventsClient;
  beforeAll(async () => {
    server = await startLocalPersonalize({ rates: false });
    client = clientFor(server);
  });
  afterAll(async () => {
    await server.close();
  });

  // The SDK does not check constraints client-side, so every case reaches the server.
  const noSentAt = undefined as unknown as Date;
  const cases: [string, () => PutEventsCommand | PutItemsCommand | PutUsersCommand, string][] = [
    ['11 events', () => putEvents({ eventList: many(11, () => event()) }), 'eventList: size 11 exceeds 10'],
    ['no events', () => putEvents({ eventList: [] }), 'eventList: size 0 is below 1'],
    ['trackingId missing', () => putEvents({ trackingId: undefined }), 'trackingId: required'],
    ['trackingId 257', () => putEvents({ trackingId: 't'.repeat(257) }), 'trackingId: length 257 exceeds 256'],
    ['sessionId empty', () => putEvents({ sessionId: '' }), 'sessionId: length 0 is below 1'],
    ['userId 257', () => putEvents({ userId: 'u'.repeat(257) }), 'userId: length 257 exceeds 256'],
    ['properties 1025 chars', () => putEvents({ eventList: [event(), event({ properties: jsonOfLength(1025) })] }), 'eventList.1.properties: length 1025 exceeds 1024'],
    ['reserved key userId', () => putEvents({ eventList: [event({ properties: '{"userId":"u-1"}' })] }), 'eventList.0.properties: reserved key "userId"'],
    ['reserved key USERID', () => putEvents({ eventList: [event({ properties: '{"USERID":"u-1"}' })] }), 'eventList.0.properties: reserved key "USERID"'],
    ['reserved key Timestamp', () => putEvents({ eventList: [event({ properties: '{"Timestamp":1}' })] }), 'reserved key "Timestamp"'],
    ['properties not JSON', () => putEvents({ eventList: [event({ properties: '{nope' })] }), 'eventList.0.properties: is not valid JSON'],
    ['properties a JSON array', () => putEvents({ eventList: [event({ properties: '[1,2]' })] }), 'eventList.0.properties: must be a JSON object, got array'],
    ['impression 26', () => putEvents({ eventList: [event({ impression: many(26, (i) => `i${i}`) })] }), 'eventList.0.impression: size 26 exceeds 25'],
    ['impression id 257', () => putEvents({ eventList: [event({ impression: ['ok', 'i'.repeat(257)] })] }), 'eventList.0.impression.1: length 257 exceeds 256'],
    ['recommendationId 41', () => putEvents({ eventList: [event({ recommendationId: 'r'.repeat(41) })] }), 'eventList.0.recommendationId: length 41 exceeds 40'],
    ['itemId 257', () => putEvents({ eventList: [event({ itemId: 'i'.repeat(257) })] }), 'eventList.0.itemId: length 257 exceeds 256'],
    ['eventId 257', () => putEvents({ eventList: [event({ eventId: 'e'.repeat(257) })] }), 'eventList.0.eventId: length 257 exceeds 256'],
    ['eventType missing', () => putEvents({ eventList: [event({ eventType: undefined })] }), 'eventList.0.eventType: required'],
    ['sentAt missing', () => putEvents({ eventList: [event({ sentAt: noSentAt })] }), 'eventList.0.sentAt: required'],
    ['attribution source blank', () => putEvents({ eventList: [event({ metricAttribution: { eventAttributionSource: '   ' } })] }), 'eventList.0.metricAttribution.eventAttributionSource: must be printable ASCII'],
    ['attribution source non-ASCII', () => putEvents({ eventList: [event({ metricAttribution: { eventAttributionSource: 'café' } })] }), 'eventAttributionSource: must be printable ASCII'],
    ['event over 10 KB', () => putEvents({ eventList: [oversizedEvent()] }), 'eventList.0: size 19'],
    ['datasetArn bad', () => putItems({ datasetArn: 'dataset/shop/ITEMS' }), 'datasetArn: does not match'],
    ['datasetArn of another service', () => putItems({ datasetArn: 'arn:aws:s3:::bucket/key' }), 'datasetArn: does not match'],
    ['datasetArn missing', () => putUsers({ datasetArn: undefined }), 'datasetArn: required'],
    ['datasetArn 257', () => putItems({ datasetArn: `${ITEMS_ARN}${'x'.repeat(257 - ITEMS_ARN.length)}` }), 'datasetArn: length 257 exceeds 256'],
    ['11 items', () => putItems({ items: many(11, (i) => ({ itemId: `i${i}` })) }), 'items: size 11 exceeds 10'],
    ['item properties over 32,000', () => putItems({ items: [{ itemId: 'i', properties: jsonOfLength(32_001) }] }), 'items.0.properties: length 32001 exceeds 32000'],
    ['item properties a bare string', () => putItems({ items: [{ itemId: 'i', properties: '"genres"' }] }), 'items.0.properties: must be a JSON object, got string'],
    ['itemId missing', () => putItems({ items: [{ itemId: 'ok' }, { itemId: undefined }] }), 'items.1.itemId: required'],
    ['item itemId 257', () => putItems({ items: [{ itemId: 'i'.repeat(257) }] }), 'items.0.itemId: length 257 exceeds 256'],
    ['11 users', () => putUsers({ users: many(11, (i) => ({ userId: `u${i}` })) }), 'users: size 11 exceeds 10'],
    ['user properties over 24,000', () => putUsers({ users: [{ userId: 'u', properties: jsonOfLength(24_001) }] }), 'users.0.properties: length 24001 exceeds 24000'],
    ['userId 257', () => putUsers({ users: [{ userId: 'u'.repeat(257) }] }), 'users.0.userId: length 257 exceeds 256'],
  ];

  it.each(cases)('rejects %s', async (_name, command, expected) => {
    // The command union is sent through one client; send() accepts each of them.
    const err: unknown = await client.send(command() as PutEventsCommand).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputException);
    expect(err).toMatchObject({ name: 'InvalidInputException', $fault: 'client', $metadata: { httpStatusCode: 400 } });
    expect((err as Error).message).toContain(expected);
  });

  it('records and counts nothing for rejected calls', () => {
    expect(server.received()).toEqual([]);
    const s = server.stats();
    expect(s.PutEvents.rejected + s.PutItems.rejected + s.PutUsers.rejected).toBe(cases.length);
    expect(s.PutEvents.accepted + s.PutItems.accepted + s.PutUsers.accepted).toBe(0);
  });
});

describe('validation functions', () => {
  it('reports wrong JSON types with the field path', () => {
    const errors = validatePutEvents({ trackingId: 5, sessionId: 's', eventList: [{ eventType: 'V', sentAt: '2024-01-01', eventValue: 'high', properties: { a: 1 } }] });
    expect(errors).toEqual([
      { path: 'trackingId', reason: 'expected a string, got number' },
      { path: 'eventList.0.sentAt', reason: 'expected a number, got string' },
      { path: 'eventList.0.eventValue', reason: 'expected a number, got string' },
      { path: 'eventList.0.properties', reason: 'expected a string, got object' },
    ]);
    expect(validatePutItems([])).toEqual([{ path: 'body', reason: 'expected a JSON object, got array' }]);
  });

  it('counts length in code points, as Smithy does', () => {
    const emoji = '😀'.repeat(256); // 512 UTF-16 units
    expect(validatePutItems({ datasetArn: ITEMS_ARN, items: [{ itemId: emoji }] })).toEqual([]);
    expect(validatePutItems({ datasetArn: ITEMS_ARN, items: [{ itemId: `${emoji}x` }] })).toEqual([
      { path: 'items.0.itemId', reason: 'length 257 exceeds 256' },
    ]);
  });

  it('lists every error in one message, up to ten', () => {
    const errors = Array.from({ length: 12 }, (_, i) => ({ path: `items.${i}.itemId`, reason: 'required' }));
    const message = formatValidationErrors(errors);
    expect(message).toMatch(/^12 validation errors detected: items\.0\.itemId: required; /);
    expect(message).toContain('items.9.itemId: required; and 2 more');
    expect(message).not.toContain('items.10');
  });
});

describe('protocol errors and hostile input', () => {
  it('answers 403 MissingAuthenticationTokenException without a SigV4 Authorization header', async () => {
    const server = await start();
    const res = await rawPost(`${server.url}/events`, '{}', {});
    expect(res).toMatchObject({ status: 403, type: 'MissingAuthenticationTokenException' });
    const basic = await rawPost(`${server.url}/events`, '{}', { authorization: 'Basic abc' });
    expect(basic.status).toBe(403);
  });

  it('answers 404 UnknownOperationException for unknown paths and methods', async () => {
    const server = await start();
    expect(await rawPost(`${server.url}/actions`, '{}')).toMatchObject({ status: 404, type: 'UnknownOperationException' });
    const get = await fetch(`${server.url}/events`, { headers: { authorization: SIGV4 } });
    expect(get.status).toBe(404);
    expect(get.headers.get('x-amzn-errortype')).toBe('UnknownOperationException');
  });

  it('answers malformed JSON with 400 SerializationException and keeps serving', async () => {
    const server = await start();
    const res = await rawPost(`${server.url}/events`, '{"trackingId": "t", "eventList": [');
    expect(res).toMatchObject({ status: 400, type: 'SerializationException' });
    expect(JSON.parse(res.body)).toHaveProperty('message');
    const wrongType = await rawPost(`${server.url}/items`, '[1,2,3]');
    expect(wrongType).toMatchObject({ status: 400, type: 'InvalidInputException' });
    expect(wrongType.body).toContain('body: expected a JSON object');

    await clientFor(server).send(putEvents());
    expect(server.stats().PutEvents).toEqual({ accepted: 1, rejected: 1, throttled: 0, failed: 0 });
    expect(server.stats().PutItems.rejected).toBe(1);
  });

  it('answers a body over the 6 MB cap with 413 and keeps serving', async () => {
    const server = await start();
    const res = await rawPost(`${server.url}/events`, Buffer.alloc(7 * 1024 * 1024, 0x20));
    expect(res).toMatchObject({ status: 413, type: 'RequestEntityTooLargeException' });
    await clientFor(server).send(putEvents());
    expect(server.received()).toHaveLength(1);
  });

  it('cuts a connection streaming far past the cap, or hanging up mid-body, and keeps serving', async () => {
    const server = await start({ maxBodyBytes: 1000 });
    const cut = await new Promise<string>((resolve) => {
      const req = request(`${server.url}/events`, { method: 'POST', headers: { authorization: SIGV4 } }, (res) => {
        res.resume();
        resolve(`answered ${res.statusCode}`);
      });
      req.on('error', () => resolve('cut'));
      req.end(Buffer.alloc(100_000, 0x20));
    });
    expect(cut).toBe('cut');
    await new Promise<void>((resolve) => {
      const req = request(`${server.url}/events`, { method: 'POST', headers: { authorization: SIGV4, 'content-length': '500' } });
      req.on('error', () => resolve());
      req.write('{"trackingId":', () => {
        req.destroy();
        resolve();
      });
    });
    await clientFor(server).send(putEvents());
    expect(server.received()).toHaveLength(1);
  });
});

describe('rate limits (FACTS §3)', () => {
  it('lets 10 PutItems through in one second and throttles the 11th, then refills', async () => {
    let clock = 0;
    const server = await start({ now: () => clock });
    const client = clientFor(server);
    for (let i = 0; i < 10; i++) await client.send(putItems());
    const err: unknown = await client.send(putItems()).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'ThrottlingException', message: 'Rate exceeded', $metadata: { httpStatusCode: 429 } });
    // Buckets are per operation.
    await client.send(putUsers());
    await client.send(putEvents());

    clock += 100; // one token back at 10/s
    await client.send(putItems());
    await expect(client.send(putItems())).rejects.toMatchObject({ name: 'ThrottlingException' });
    expect(server.stats().PutItems).toEqual({ accepted: 11, rejected: 0, throttled: 2, failed: 0 });
  });

  it('throttles a real-time burst of PutItems beyond 10 per second', async () => {
    const server = await start();
    const client = clientFor(server);
    const results = await Promise.allSettled(many(20, () => client.send(putItems())));
    const accepted = results.filter((r) => r.status === 'fulfilled').length;
    expect(accepted).toBeGreaterThanOrEqual(10);
    expect(accepted).toBeLessThan(20);
    expect(server.stats().PutItems.throttled).toBe(20 - accepted);
  });

  it('applies configured rates and none with rates: false', async () => {
    const clock = 0;
    const limited = await start({ rates: { PutUsers: 2 }, now: () => clock });
    const client = clientFor(limited);
    await client.send(putUsers());
    await client.send(putUsers());
    await expect(client.send(putUsers())).rejects.toMatchObject({ name: 'ThrottlingException' });

    const unlimited = await start({ rates: false, now: () => clock });
    const free = clientFor(unlimited);
    for (let i = 0; i < 15; i++) await free.send(putItems());
    expect(unlimited.stats().PutItems.accepted).toBe(15);

    limited.setRates(false);
    await client.send(putUsers());
  });
});

describe('fault injection', () => {
  it('throttleRate 1 answers ThrottlingException (429)', async () => {
    const server = await start({ faults: { throttleRate: 1 } });
    await expect(clientFor(server).send(putEvents())).rejects.toMatchObject({
      name: 'ThrottlingException',
      $metadata: { httpStatusCode: 429 },
    });
    expect(server.stats().PutEvents).toEqual({ accepted: 0, rejected: 0, throttled: 1, failed: 0 });
    expect(server.received()).toEqual([]);
  });

  it('the SDK with default retries retries an injected throttle and succeeds', async () => {
    // First draw throttles, the retry's draw does not.
    const server = await start({ faults: { throttleRate: 0.5 }, random: scripted(0.1) });
    const out = await retryingClientFor(server).send(putEvents());
    expect(out.$metadata.attempts).toBe(2);
    expect(server.stats().PutEvents).toEqual({ accepted: 1, rejected: 0, throttled: 1, failed: 0 });
  });

  it('serverErrorRate answers a 500 the SDK treats as a retryable server error', async () => {
    const server = await start({ faults: { serverErrorRate: 1 } });
    const err: unknown = await retryingClientFor(server)
      .send(putItems())
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'InternalFailure', $fault: 'server', $metadata: { httpStatusCode: 500, attempts: 3 } });
    expect(server.stats().PutItems.failed).toBe(3);

    const recovering = await start({ faults: { serverErrorRate: 0.5 }, random: scripted(0.2, 0.3) });
    const out = await retryingClientFor(recovering).send(putItems());
    expect(out.$metadata.attempts).toBe(3);
    expect(recovering.stats().PutItems).toEqual({ accepted: 1, rejected: 0, throttled: 0, failed: 2 });
  });

  it('latencyMs delays every operation response', async () => {
    const server = await start({ faults: { latencyMs: 150 } });
    const client = clientFor(server);
    const t0 = performance.now();
    await client.send(putEvents());
    expect(performance.now() - t0).toBeGreaterThanOrEqual(145);
    server.setFaults({ latencyMs: 0 });
    const t1 = performance.now();
    await client.send(putEvents());
    expect(performance.now() - t1).toBeLessThan(145);
  });

  it('rejectEvent rejects chosen events as InvalidInputException and records nothing of that call', async () => {
    const seen: string[] = [];
    const server = await start({
      faults: {
        rejectEvent: (e, request) => {
          seen.push(request.sessionId);
          return e.itemId === 'banned' ? 'item is not in the catalog' : undefined;
        },
      },
    });
    const client = clientFor(server);
    const err: unknown = await client
      .send(putEvents({ eventList: [event(), event({ eventId: 'e-2', itemId: 'banned' })] }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputException);
    expect((err as Error).message).toContain('eventList.1: item is not in the catalog');
    expect(seen).toEqual(['session-1', 'session-1']);
    expect(server.received()).toEqual([]);

    await client.send(putEvents());
    server.setFaults({ rejectEvent: undefined });
    await client.send(putEvents({ eventList: [event({ itemId: 'banned' })] }));
    expect(server.receivedEvents().map((e) => e.itemId)).toEqual(['item-1', 'banned']);
  });

  it('a throwing rejectEvent hook becomes a 500, not a crash', async () => {
    const server = await start({
      faults: {
        rejectEvent: () => {
          throw new Error('hook bug');
        },
      },
    });
    await expect(clientFor(server).send(putEvents())).rejects.toMatchObject({ $metadata: { httpStatusCode: 500 } });
    server.setFaults({ rejectEvent: undefined });
    await clientFor(server).send(putEvents());
  });

  it('POST /_local/faults replaces the numeric faults at run time; POST /_local/reset clears records and stats', async () => {
    const server = await start();
    const client = clientFor(server);
    await client.send(putEvents());

    const set = await fetch(`${server.url}/_local/faults`, { method: 'POST', body: JSON.stringify({ throttleRate: 1 }) });
    expect(await set.json()).toEqual({ throttleRate: 1, serverErrorRate: 0, latencyMs: 0 });
    await expect(client.send(putEvents())).rejects.toMatchObject({ name: 'ThrottlingException' });

    const bad = await fetch(`${server.url}/_local/faults`, { method: 'POST', body: JSON.stringify({ throttleRate: 2 }) });
    expect(bad.status).toBe(400);
    expect(server.faults().throttleRate).toBe(1);

    await fetch(`${server.url}/_local/faults`, { method: 'POST', body: '{}' });
    await client.send(putEvents());
    expect(server.stats().PutEvents).toEqual({ accepted: 2, rejected: 0, throttled: 1, failed: 0 });

    const reset = await fetch(`${server.url}/_local/reset`, { method: 'POST' });
    expect(reset.status).toBe(200);
    expect(server.received()).toEqual([]);
    expect(server.stats().PutEvents.accepted).toBe(0);
  });

  it('refuses out-of-range faults given through the API', async () => {
    await expect(startLocalPersonalize({ faults: { serverErrorRate: -0.1 } })).rejects.toThrow(RangeError);
    const server = await start();
    expect(() => server.setFaults({ throttleRate: 1.5 })).toThrow(RangeError);
  });
});
