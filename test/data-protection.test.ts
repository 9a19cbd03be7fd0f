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

  it('drops PII traits before PutUsers and the archive (default policy)', async () => {
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
