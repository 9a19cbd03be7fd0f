import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { IdentifyMessage, InteractionMessage, UserMessage } from '../schemas/canonical.js';
import { dynamoDocumentClient, s3Client } from '../shared/aws/clients.js';
import { S3Bucket } from '../shared/aws/s3-bucket.js';
import { segmentSignature } from '../shared/collect/auth.js';
import { keyedHasher, loadDeletedUsers } from '../shared/deletion.js';
import { DynamoIdentityStore } from '../shared/aws/dynamo-identity.js';
import { DynamoProfileStore } from '../shared/aws/dynamo-profiles.js';
import { targetProfileStore } from '../shared/profile/store.js';
import type { BatchReport } from '../shared/process/process-batch.js';
import { main as deleteUserCli } from '../cli/delete-user.js';
import { LOCAL_CREDENTIALS, startLocalStack, type LocalStack } from '../local/stack.js';
import { useEmulators } from './support/env.js';
import { listKeys, readText } from './support/export.js';
import { eventTime, readArchive, send, isolatedStack } from './support/stack.js';

useEmulators();

/** The registry's HMAC key, as DELETION_HASH_KEY sets it locally (the processor and the CLI read it). */
const DELETION_HASH_KEY = 'deletion-test-hash-key-0123456789abcdef';
const registry = () => loadDeletedUsers(new S3Bucket(s3Client(), stack.names.archiveBucket), { hasher: keyedHasher(DELETION_HASH_KEY) });

let stack: LocalStack;
let stateDir: string;
// Imported once the stack has set the processor's environment (the logger reads its level at import).
let processor: typeof import('../shared/process/handle.js');
let processorDepsFromEnv: typeof import('../shared/process/runtime.js').processorDepsFromEnv;

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'deletion-'));
  stack = await startLocalStack({
    ...isolatedStack('deletion', 1),
    stateDir,
    poller: { batchSize: 100, maxBatchingWindowMs: 100, pollIntervalMs: 50 },
    // No warm-cache links: a deletion by the CLI cannot reach a running processor's cache.
    processorEnv: { IDENTITY_CACHE_TTL_SECONDS: '0', DELETION_HASH_KEY },
  });
  processor = await import('../shared/process/handle.js');
  ({ processorDepsFromEnv } = await import('../shared/process/runtime.js'));
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  await rm(stateDir, { recursive: true, force: true });
});

beforeEach(async () => {
  await stack.poller.idle();
  stack.personalize!.reset();
});

afterEach(() => {
  processor.setProcessorDeps(undefined);
});

const links = () => new DynamoIdentityStore(dynamoDocumentClient(), stack.names.identityTable);
const profileOf = async (userId: string) => (await new DynamoProfileStore(dynamoDocumentClient(), stack.names.identityTable).getProfiles([{ kind: 'user', id: userId }])).get(`user#${userId}`);
const userOf = (eventId: string) => stack.personalize!.receivedEvents().find((e) => e.eventId === eventId);
const recent = () => new Date(eventTime()).toISOString();

async function postSegment(message: Record<string, unknown>): Promise<number> {
  const raw = JSON.stringify(message);
  const res = await fetch(`${stack.http.url}/v1/webhooks/segment`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-signature': segmentSignature(raw, LOCAL_CREDENTIALS.segmentSharedSecret) },
    body: raw,
  });
  await res.arrayBuffer();
  return res.status;
}

describe('a Segment delete message, end to end', () => {
  it('removes the user\'s links (and the processor\'s cached ones), records the deletion, archives it for audit and sends nothing to Personalize', async () => {
    // A warm cache, as in a long-lived Lambda container.
    processor.setProcessorDeps(processorDepsFromEnv({ ...process.env, IDENTITY_CACHE_TTL_SECONDS: '900' }));
    const reports: BatchReport[] = [];
    const unsubscribe = processor.batchReports.subscribe((r) => reports.push(r));
    try {
      const view = (messageId: string) => ({ type: 'track', anonymousId: 'seg-anon', event: 'Product Viewed', messageId, timestamp: recent(), properties: { product_id: 'p-1' } });
      expect(await postSegment({ type: 'identify', anonymousId: 'seg-anon', userId: 'seg-user', messageId: 'seg-login', timestamp: recent() })).toBe(200);
      expect(await postSegment(view('seg-before'))).toBe(200);
      await stack.poller.idle();
      expect(userOf('seg-before')?.userId).toBe('seg-user');
      const callsBefore = stack.personalize!.received().length;

      expect(await postSegment({ type: 'delete', userId: 'seg-user', messageId: 'seg-delete', timestamp: recent() })).toBe(200);
      await stack.poller.idle();

      expect(stack.personalize!.received()).toHaveLength(callsBefore);
      expect(reports.reduce((n, r) => n + r.deletions, 0)).toBe(1);
      expect(reports.reduce((n, r) => n + r.linksDeleted, 0)).toBe(1);
      expect(await links().getLinks(['seg-anon'])).toEqual(new Map());
      const deleted = await registry();
      // The user, and the anonymous session whose link was removed (exports leave both out).
      expect([deleted.isDeleted('seg-user'), deleted.isDeleted('seg-other'), deleted.isSessionDeleted('seg-anon'), deleted.size]).toEqual([true, false, true, 2]);
      // The registry holds keyed hashes, never the id (the raw id waits only in the Personalize deletion outbox).
      const control = await listKeys(stack.names.archiveBucket, 'control/deletions/');
      expect(control).toHaveLength(2);
      const bodies = await Promise.all(control.map((k) => readText(stack.names.archiveBucket, k)));
      expect(`${control.join('\n')}\n${bodies.join('\n')}`).not.toContain('seg-user');
      const audit = [...(await readArchive(stack.names.archiveBucket, 'archive/identity/')).values()].flatMap((o) => o.records);
      expect(audit.find((r) => r.kind === 'delete')).toMatchObject({ kind: 'delete', source: 'segment', eventId: 'seg-delete', userId: 'seg-user' });

      // The same container, right after: its cache no longer attributes the old session.
      expect(await postSegment(view('seg-after'))).toBe(200);
      await stack.poller.idle();
      expect(userOf('seg-after')).toBeDefined();
      expect(userOf('seg-after')?.userId).toBeUndefined();
    } finally {
      unsubscribe();
    }
  });
});

describe('npm run delete-user', () => {
  const identify = (sessionId: string, userId: string): IdentifyMessage => ({ kind: 'identify', source: 'native', eventId: `login-${sessionId}`, sessionId, userId, timestamp: eventTime() });
  const anonymous = (sessionId: string, eventId: string): InteractionMessage => ({ kind: 'interaction', source: 'native', eventId, sessionId, eventType: 'View', itemId: 'i-1', timestamp: eventTime() });

  it("removes every link and the stored profile of the user, records the deletion, and the user's old sessions are anonymous from then on", async () => {
    const profile = (userId: string): UserMessage => ({ kind: 'user', source: 'native', eventId: `profile-${userId}`, userId, timestamp: eventTime(), properties: { membershipType: 'gold' } });
    await send(stack, [identify('cli-s1', 'cli-user'), identify('cli-s2', 'cli-user'), identify('cli-s3', 'cli-other'), profile('cli-user'), profile('cli-other')]);
    await stack.poller.idle();
    expect([...(await links().getLinks(['cli-s1', 'cli-s2', 'cli-s3'])).keys()].sort()).toEqual(['cli-s1', 'cli-s2', 'cli-s3']);
    expect(await profileOf('cli-user')).toBeDefined();
    // The user's profile in another target (docs/targets.md) goes too.
    const videoProfiles = targetProfileStore(new DynamoProfileStore(dynamoDocumentClient(), stack.names.identityTable), 'video');
    await videoProfiles.putProfiles([{ kind: 'user', id: 'cli-user', properties: { subscriptionModel: { value: 'premium', at: eventTime() } }, updatedAt: eventTime() }]);
    expect((await videoProfiles.getProfiles([{ kind: 'user', id: 'cli-user' }])).size).toBe(1);

    const lines: string[] = [];
    const env = { ...process.env, LOCAL_STATE_DIR: stateDir, TARGETS_FILE: join(import.meta.dirname, '../schemas/targets/example.json') };
    const code = await deleteUserCli(['cli-user'], { env, out: (l) => lines.push(l), err: (l) => lines.push(l) });
    expect(code).toBe(0);
    const output = lines.join('\n');
    expect(output).toMatch(/identity links removed: 2/);
    expect(output).toMatch(/stored profile removed in every target \(default, video\) \(the merged record/);
    expect(output).toMatch(/control\/deletions\/dt=\d{4}-\d{2}-\d{2}\/[0-9a-f]{64}\.json/);
    expect(output).not.toMatch(/warning/);
    expect(output).toMatch(/the daily deletion step \(npm run personalize-deletions\) creates the data deletion job/);

    expect([...(await links().getLinks(['cli-s1', 'cli-s2', 'cli-s3'])).keys()]).toEqual(['cli-s3']);
    expect((await registry()).isDeleted('cli-user')).toBe(true);
    expect(await profileOf('cli-user')).toBeUndefined();
    expect((await videoProfiles.getProfiles([{ kind: 'user', id: 'cli-user' }])).size).toBe(0);
    expect(await profileOf('cli-other')).toBeDefined();

    await send(stack, [anonymous('cli-s1', 'cli-after-1'), anonymous('cli-s3', 'cli-after-3')]);
    await stack.poller.idle();
    expect(userOf('cli-after-1')).toBeDefined();
    expect(userOf('cli-after-1')?.userId).toBeUndefined();
    expect(userOf('cli-after-3')?.userId).toBe('cli-other');
  });

  it('refuses a userId the pipeline would never have stored', async () => {
    const io = { env: { ...process.env, LOCAL_STATE_DIR: stateDir }, out: () => undefined, err: () => undefined };
    await expect(deleteUserCli(['undefined'], io)).rejects.toThrow(/not a userId/);
    await expect(deleteUserCli([], io)).rejects.toThrow(/usage: npm run delete-user/);
  });
});
