import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadDatasetSchemas } from '../shared/personalize/dataset-schema.js';
import { processorDepsFromEnv } from '../shared/process/runtime.js';
import { segmentSignature } from '../shared/collect/auth.js';
import { LOCAL_CREDENTIALS, startLocalStack, type LocalStack } from '../local/stack.js';
import { useEmulators } from './support/env.js';
import { drainDlq, readArchive, isolatedStack } from './support/stack.js';

/**
 * No secrets and no raw PII in logs, and PII traits dropped (or hashed) before PutUsers and the
 * archive, over a full run of the local stack: HTTP doors, stream, processor, Personalize endpoint.
 */

useEmulators();

const SAVED = ['POWERTOOLS_LOG_LEVEL', 'POWERTOOLS_METRICS_DISABLED', 'PII_MODE', 'PII_HASH_KEY'].map((name) => [name, process.env[name]] as const);
const captured: string[] = [];
const restore: (() => void)[] = [];

/** Every write to stdout/stderr and every console call, from here on (kept, not printed). */
function captureOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    const original = stream.write.bind(stream);
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      captured.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
      const callback = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      callback?.();
      return true;
    });
    restore.push(() => (stream.write = original));
  }
  for (const method of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const) {
    const spy = vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
      captured.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a) ?? String(a))).join(' '));
    });
    restore.push(() => spy.mockRestore());
  }
}

/** The processor's `batch processed` log lines captured so far, parsed. */
function batchLines(): { counts?: Record<string, number>; droppedPropertyReasons?: Record<string, number> }[] {
  return captured
    .join('\n')
    .split('\n')
    .filter((line) => line.includes('"batch processed"'))
    .flatMap((line) => {
      try {
        return [JSON.parse(line.slice(line.indexOf('{'))) as { counts?: Record<string, number>; droppedPropertyReasons?: Record<string, number> }];
      } catch {
        return [];
      }
    });
}

let stack: LocalStack;
const basic = (key: string) => `Basic ${Buffer.from(`${key}:`).toString('base64')}`;
const recent = (s: number) => new Date(Date.now() - 3_600_000 + s * 1000).toISOString();

async function post(path: string, body: unknown, headers: Record<string, string>): Promise<number> {
  const raw = typeof body === 'string' ? body : JSON.stringify(body);
  const res = await fetch(`${stack.http.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: raw });
  await res.text();
  return res.status;
}

beforeAll(async () => {
  captureOutput();
  stack = await startLocalStack({
    ...isolatedStack('pii', 1),
    poller: { batchSize: 500, maxBatchingWindowMs: 100, pollIntervalMs: 50 },
    // Everything the pipeline would ever log, at the most talkative level.
    processorEnv: { POWERTOOLS_LOG_LEVEL: 'DEBUG', POWERTOOLS_METRICS_DISABLED: 'false' },
    log: (line) => console.error(line),
  });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  for (const undo of restore.reverse()) undo();
  for (const [name, value] of SAVED) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

describe('data protection on a full run', () => {
  const users = ['pii-user-ada', 'pii-user-grace'];
  const emails = ['ada.lovelace@example.com', 'grace.hopper@example.org'];

  it('drops PII traits before PutUsers and the archive (default policy: allow)', async () => {
    const identify = { anonymousId: 'pii-anon-1', userId: users[0], messageId: 'pii-identify-1', timestamp: recent(1), traits: { email: emails[0], phone: '+44 20 7946 0000', membershipType: 'gold' } };
    // Profile updates come from a server key (public keys' traits are dropped by default, SECURITY.md).
    expect(await post('/v1/identify', identify, { authorization: basic(LOCAL_CREDENTIALS.serverWriteKey) })).toBe(200);
    await stack.poller.idle(45_000);

    const sent = stack.personalize!.received('PutUsers').flatMap((c) => c.request.users);
    expect(sent).toContainEqual({ userId: users[0], properties: JSON.stringify({ membershipType: 'gold' }) });
    const archived = [...(await readArchive(stack.names.archiveBucket, 'archive/users/')).values()].flatMap((o) => o.records);
    const line = archived.find((r) => r.eventId === 'pii-identify-1:traits');
    expect(line).toMatchObject({ kind: 'user', userId: users[0], properties: { membershipType: 'gold' } });
    expect(JSON.stringify(archived)).not.toContain(emails[0]);
    expect(JSON.stringify(archived)).not.toContain('7946');
  }, 60_000);

  it('hashes them instead with PII_MODE=hash: PutUsers and the archive carry the HMAC, never the address', async () => {
    // A users schema with an EMAIL column, so the hash is what Personalize gets.
    const { setProcessorDeps } = await import('../shared/process/handle.js');
    const usersAvro = { type: 'record', name: 'Users', namespace: 'com.amazonaws.personalize.schema', version: '1.0', fields: [
      { name: 'USER_ID', type: 'string' },
      { name: 'MEMBERSHIP_TYPE', type: 'string', categorical: true },
      { name: 'EMAIL', type: ['null', 'string'] },
    ] };
    const deps = processorDepsFromEnv({ ...process.env, PII_MODE: 'hash', PII_HASH_KEY: 'pii-test-key' });
    setProcessorDeps({ ...deps, settings: { ...deps.settings, schemas: loadDatasetSchemas({ users: usersAvro }) } });
    try {
      const identify = { type: 'identify', anonymousId: 'pii-anon-2', userId: users[1], messageId: 'pii-identify-2', timestamp: recent(2), receivedAt: recent(3), traits: { email: emails[1], membershipType: 'silver' } };
      const raw = JSON.stringify(identify);
      expect(await post('/v1/webhooks/segment', raw, { 'x-signature': segmentSignature(raw, LOCAL_CREDENTIALS.segmentSharedSecret) })).toBe(200);
      await stack.poller.idle(45_000);
    } finally {
      setProcessorDeps(undefined);
    }
    const hash = createHmac('sha256', 'pii-test-key').update(emails[1]!).digest('hex');
    const sent = stack.personalize!.received('PutUsers').flatMap((c) => c.request.users).find((u) => u.userId === users[1]);
    expect(JSON.parse(sent?.properties ?? '{}')).toEqual({ membershipType: 'silver', email: hash });
    const archived = [...(await readArchive(stack.names.archiveBucket, 'archive/users/')).values()].flatMap((o) => o.records);
    expect(archived.find((r) => r.eventId === 'pii-identify-2:traits')).toMatchObject({ properties: { email: hash, membershipType: 'silver' } });
    expect(JSON.stringify(archived)).not.toContain(emails[1]);
  }, 60_000);

  it('allow mode (the default): contact_phone and mParticle $mobile are never archived; the schema fields still reach Personalize', async () => {
    const [phone, mobile] = ['+44 20 7946 0123', '+44 7700 900456'];
    const [tracked, webhooked] = ['pii-allow-user-1', 'pii-allow-user-2'];
    const server = { authorization: basic(LOCAL_CREDENTIALS.serverWriteKey) };
    const identify = { userId: tracked, messageId: 'pii-allow-identify', timestamp: recent(20), traits: { contact_phone: phone, membershipType: 'gold', country: 'DE' } };
    expect(await post('/v1/identify', identify, server)).toBe(200);
    const track = { anonymousId: 'pii-allow-anon', userId: tracked, event: 'Product Viewed', messageId: 'pii-allow-track', timestamp: recent(21), properties: { product_id: 'sku-allow-1', discount: 'yes', contact_phone: phone } };
    expect(await post('/v1/track', track, server)).toBe(200);
    const mparticle = {
      mpid: 8,
      user_identities: [{ identity_type: 'customer_id', identity: webhooked }],
      user_attributes: { $mobile: mobile, $country: 'FR', membership_type: 'silver' },
      events: [{ event_type: 'custom_event', data: { event_name: 'Product Viewed', source_message_id: 'pii-allow-mp', session_uuid: 'pii-allow-s', timestamp_unixtime_ms: Date.now() - 50_000, custom_attributes: { product_id: 'sku-allow-2', device: 'ios', contact_phone: phone } } }],
    };
    expect(await post('/v1/webhooks/mparticle', mparticle, { authorization: LOCAL_CREDENTIALS.mparticleAuthorization })).toBe(200);
    await stack.poller.idle(45_000);

    const archived = [...(await readArchive(stack.names.archiveBucket, 'archive/')).values()].flatMap((o) => o.records);
    const mine = archived.filter((r) => String(r.eventId).startsWith('pii-allow') || String(r.eventId).includes('pii-allow-mp') || [tracked, webhooked].includes((r as { userId?: string }).userId ?? ''));
    expect(mine.length).toBeGreaterThanOrEqual(4);
    const text = JSON.stringify(archived);
    for (const leaked of [phone, mobile, 'contact_phone', 'mobile', '7946 0123', '900456']) expect({ leaked, archived: text.includes(leaked) }).toEqual({ leaked, archived: false });
    expect(archived.find((r) => r.eventId === 'pii-allow-identify:traits')).toMatchObject({ properties: { membershipType: 'gold', country: 'DE' } });
    expect(mine.find((r) => r.kind === 'user' && (r as { userId?: string }).userId === webhooked)).toMatchObject({ properties: { membership_type: 'silver', country: 'FR' } });

    const users = stack.personalize!.received('PutUsers').flatMap((c) => c.request.users);
    expect(users).toContainEqual({ userId: tracked, properties: JSON.stringify({ membershipType: 'gold', country: 'DE' }) });
    expect(users).toContainEqual({ userId: webhooked, properties: JSON.stringify({ membershipType: 'silver', country: 'FR' }) });
    const events = new Map(stack.personalize!.receivedEvents().map((e) => [e.eventId, e]));
    expect(events.get('pii-allow-track')).toMatchObject({ itemId: 'sku-allow-1', properties: JSON.stringify({ discount: 'yes' }) });
    expect(events.get('pii-allow-mp')).toMatchObject({ itemId: 'sku-allow-2', properties: JSON.stringify({ device: 'ios' }) });

    // Counted in the batch line, by number only.
    const counts = batchLines().map((l) => l.counts?.propertiesNotAllowed ?? 0);
    expect(counts.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(4); // contact_phone x3, mobile
  }, 60_000);

  it('never logs a key or value from a payload: an e-mail as a property key, a value with a quote around an e-mail', async () => {
    const keyEmail = 'key.holder@example.net';
    const quotedEmail = 'quoted.value@example.net';
    const deadEmail = 'dead.letter@example.net';
    const feed = { authorization: `Bearer ${LOCAL_CREDENTIALS.feedApiKey}` };
    const server = { authorization: basic(LOCAL_CREDENTIALS.serverWriteKey) };
    const created = Date.now() - 10_000;
    const send = async (n: number) => {
      const track = { anonymousId: `pii-log-anon-${n}`, event: 'Product Viewed', messageId: `pii-log-track-${n}`, timestamp: recent(30 + n), properties: { product_id: 'sku-log', [keyEmail]: 'subscribed', [`"${keyEmail}"`]: 1, device: `web "${quotedEmail}"` } };
      expect(await post('/v1/track', track, server)).toBe(200);
      const items = [
        // An unusable optional value: dropped with a reason (inStock is boolean).
        { itemId: `pii-log-sku-${n}`, properties: { categoryL1: 'shoes', price: 3, creationTimestamp: created, inStock: `yes" ${quotedEmail} "`, brand: 'x'.repeat(990) + `"${quotedEmail}"` } },
        // An unusable required value: dead-lettered, its reason quoting the value.
        { itemId: `pii-log-dead-${n}`, properties: { categoryL1: 'shoes', price: `cheap "${deadEmail}"`, creationTimestamp: created } },
      ];
      expect(await post('/v1/items', { items }, feed)).toBe(200);
      await stack.poller.idle(45_000);
    };
    // Allow mode (the default) removes the e-mail key before the archive; the deny-list modes keep it,
    // so it reaches the schema shaping and its drop reason: run both.
    await send(1);
    const { setProcessorDeps } = await import('../shared/process/handle.js');
    setProcessorDeps(processorDepsFromEnv({ ...process.env, PII_MODE: 'drop' }));
    try {
      await send(2);
    } finally {
      setProcessorDeps(undefined);
    }
    const dead = (await drainDlq(stack)) as { payload?: string; reason?: string }[];
    // The dead-letter record carries the payload and its reason (that is its job)...
    expect(dead.filter((d) => d.payload?.includes('pii-log-dead')).map((d) => d.reason)).toEqual([expect.stringContaining(deadEmail), expect.stringContaining(deadEmail)]);
    // ...and the drop reasons are grouped by schema field and rule.
    const reasons = Object.assign({}, ...batchLines().map((l) => l.droppedPropertyReasons ?? {})) as Record<string, number>;
    expect(Object.keys(reasons)).toEqual(expect.arrayContaining(['not a field of the Interactions schema', 'Items IN_STOCK (boolean): expected true or false']));
    const logs = captured.join('\n');
    for (const value of [keyEmail, quotedEmail, deadEmail, 'key.holder', 'quoted.value', 'dead.letter', 'subscribed']) {
      expect({ value, logged: logs.includes(value) }).toEqual({ value, logged: false });
    }
  }, 90_000);

  it('logs neither the door credentials nor PII, across every door, refusals and dead letters included', async () => {
    const key = basic(LOCAL_CREDENTIALS.trackerWriteKey);
    const track = (n: number, extra: Record<string, unknown> = {}) => ({ type: 'track', anonymousId: 'pii-anon-3', userId: users[0], event: 'Product Viewed', messageId: `pii-track-${n}`, timestamp: recent(10 + n), properties: { product_id: 'sku-1', email: emails[0] }, ...extra });
    await post('/v1/batch', { batch: [track(1), track(2, { timestamp: 'not a time' }), track(3, { anonymousId: undefined, userId: undefined })] }, { authorization: key });
    await post('/v1/batch', '{"batch": [', { authorization: key });
    await post('/v1/batch', { batch: [track(4)] }, { authorization: basic('stolen-but-wrong-key') });
    await post('/v1/webhooks/segment', JSON.stringify(track(5)), { 'x-signature': 'f'.repeat(40) });
    await post('/v1/webhooks/mparticle', { mpid: 7, user_identities: [{ identity_type: 'email', identity: emails[1] }, { identity_type: 'customer_id', identity: users[1] }], user_attributes: { email: emails[1], membership_type: 'gold' }, events: [{ event_type: 'custom_event', data: { event_name: 'Product Viewed', source_message_id: 'pii-mp-1', session_uuid: 'pii-s', timestamp_unixtime_ms: Date.now() - 60_000, custom_attributes: { product_id: 'sku-2' } } }] }, { authorization: LOCAL_CREDENTIALS.mparticleAuthorization });
    await post('/v1/webhooks/mparticle', { events: [] }, { authorization: 'Basic d3Jvbmc6d3Jvbmc=' });
    await post('/v1/users', { users: [{ userId: users[1], properties: { email: emails[1] } }] }, { authorization: `Bearer ${LOCAL_CREDENTIALS.feedApiKey}` });
    await post('/v1/items', { items: [{ itemId: 'sku-9', properties: { categoryL1: 'x', price: 1, creationTimestamp: Date.now() - 1_000 } }] }, { 'x-api-key': 'wrong-feed-key' });
    // A record Personalize refuses, so the personalize dead-letter path logs too.
    stack.personalize!.setFaults({ rejectEvent: (e) => (e.eventId === 'pii-track-1' ? `user ${users[0]} is blocked` : undefined) });
    await stack.poller.idle(45_000);
    stack.personalize!.setFaults({ rejectEvent: undefined });
    expect((await drainDlq(stack)).length).toBeGreaterThan(0);

    const logs = captured.join('\n');
    // The capture works and the run did log (requests, batches), at DEBUG.
    expect(logs).toContain('request collected');
    expect(logs).toContain('batch processed');
    const secrets = [
      LOCAL_CREDENTIALS.trackerWriteKey,
      LOCAL_CREDENTIALS.segmentSharedSecret,
      LOCAL_CREDENTIALS.mparticleAuthorization,
      LOCAL_CREDENTIALS.mparticleAuthorization.slice('Basic '.length),
      LOCAL_CREDENTIALS.feedApiKey,
      key,
      key.slice('Basic '.length),
      'stolen-but-wrong-key',
      'wrong-feed-key',
    ];
    for (const value of [...secrets, ...emails, ...users]) expect({ value, logged: logs.includes(value) }).toEqual({ value, logged: false });
  }, 60_000);
});
