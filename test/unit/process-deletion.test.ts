import { gunzipSync } from 'node:zlib';
import type { KinesisStreamRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import type { DeadLetterRecord } from '../../shared/dlq.js';
import { loadEventMapping } from '../../shared/event-mapping.js';
import { LinkCache } from '../../shared/identity/cache.js';
import type { IdentityLink, IdentityStore } from '../../shared/identity/store.js';
import { loadDatasetSchemas } from '../../shared/personalize/dataset-schema.js';
import type { DeletionRegistry } from '../../shared/deletion.js';
import { processBatch, type ProcessorDeps } from '../../shared/process/process-batch.js';
import { MemoryProfileStore } from '../support/memory-ports.js';
import { kinesisRecords } from '../fuzz/fakes.js';

const T = Date.now() - 3_600_000;

class Links implements IdentityStore {
  readonly links = new Map<string, IdentityLink>();
  deletes: { userId: string; alsoSessions: readonly string[] }[] = [];
  getLinks(sessionIds: readonly string[]): Promise<Map<string, IdentityLink>> {
    return Promise.resolve(new Map(sessionIds.flatMap((id) => (this.links.has(id) ? [[id, this.links.get(id)!] as const] : []))));
  }
  putLinks(links: readonly IdentityLink[]): Promise<void> {
    for (const link of links) this.links.set(link.sessionId, link);
    return Promise.resolve();
  }
  deleteLinksOfUser(userId: string, alsoSessions: readonly string[] = []): Promise<IdentityLink[]> {
    this.deletes.push({ userId, alsoSessions });
    const removed = [...this.links.values()].filter((l) => l.userId === userId);
    for (const link of removed) this.links.delete(link.sessionId);
    return Promise.resolve(removed);
  }
}

function setup(registry: DeletionRegistry | undefined) {
  const identity = new Links();
  const archived = new Map<string, Buffer>();
  const dead: DeadLetterRecord[] = [];
  const sent: unknown[] = [];
  const linkCache = new LinkCache({ positiveTtlMs: 900_000, negativeTtlMs: 5_000, maxEntries: 1_000 });
  const profiles = new MemoryProfileStore();
  const deps: ProcessorDeps = {
    identity,
    profiles,
    linkCache,
    archive: { put: (key, body) => Promise.resolve(void archived.set(key, body)) },
    dlq: { send: (records) => Promise.resolve(void dead.push(...records)).then(() => []) },
    personalize: {
      putEvents: (input) => Promise.resolve(void sent.push(input)),
      putItems: (input) => Promise.resolve(void sent.push(input)),
      putUsers: (input) => Promise.resolve(void sent.push(input)),
    },
    ...(registry && { deletions: registry }),
    settings: { trackingId: 't', forwardConcurrency: 2, schemas: loadDatasetSchemas(), mapping: loadEventMapping({}) },
  };
  return { identity, profiles, linkCache, archived, dead, sent, deps };
}

/** The messages as one batch of Kinesis records (test/fuzz/fakes.ts builds them). */
const records = (messages: readonly Record<string, unknown>[]): KinesisStreamRecord[] =>
  kinesisRecords(messages.map((m) => ({ data: Buffer.from(JSON.stringify(m)) })));

const identify = (sessionId: string, userId: string, t = T) => ({ kind: 'identify', eventId: `login-${sessionId}`, sessionId, userId, timestamp: t });
const deletion = (userId: string, t = T + 1000) => ({ kind: 'delete', eventId: `delete-${userId}`, userId, timestamp: t });
const view = (sessionId: string, eventId: string) => ({ kind: 'interaction', eventId, sessionId, eventType: 'View', itemId: 'i', timestamp: T + 2000 });

describe('a delete message in the processor', () => {
  it("removes the user's links, this batch's included, clears them from the warm cache, records the deletion and sends nothing", async () => {
    const recorded: [string, number][] = [];
    const { identity, linkCache, archived, sent, deps } = setup({ record: (u, t) => Promise.resolve(void recorded.push([u, t])) });
    await processBatch(records([identify('s-old', 'u-1'), identify('s-other', 'u-2')]), deps);
    expect(linkCache.get('s-old')?.userId).toBe('u-1');

    const { report, response } = await processBatch(records([identify('s-new', 'u-1'), deletion('u-1')]), deps);
    expect(response.batchItemFailures).toEqual([]);
    expect(report).toMatchObject({ deletions: 1, linksDeleted: 2, forwardedEvents: 0 });
    expect(recorded).toEqual([['u-1', T + 1000]]);
    expect(identity.deletes).toEqual([{ userId: 'u-1', alsoSessions: ['s-new'] }]);
    expect([...identity.links.keys()]).toEqual(['s-other']);
    expect(linkCache.get('s-old')).toBeUndefined();
    expect(linkCache.get('s-new')).toBeUndefined();
    expect(sent).toEqual([]);
    const audit = [...archived.entries()].filter(([key]) => key.startsWith('archive/identity/')).flatMap(([, body]) => gunzipSync(body).toString().trim().split('\n'));
    expect(audit.map((l) => JSON.parse(l) as { kind: string }).map((r) => r.kind)).toContain('delete');

    await processBatch(records([view('s-old', 'after')]), deps);
    expect(sent).toMatchObject([{ sessionId: 's-old', eventList: [{ eventId: 'after' }] }]);
    expect(sent[0]).not.toHaveProperty('userId');
  });

  it("removes the user's stored profile; the user's updates earlier in the batch are void, later ones start a new profile", async () => {
    const { profiles, sent, deps } = setup({ record: () => Promise.resolve() });
    const profile = (eventId: string, userId: string, properties: Record<string, unknown>, t: number) => ({ kind: 'user', source: 'segment', eventId, userId, timestamp: t, properties });
    await processBatch(records([profile('p-1', 'u-1', { membershipType: 'gold' }, T), profile('p-2', 'u-2', { membershipType: 'silver' }, T)]), deps);
    expect(profiles.get('user', 'u-1')).toBeDefined();
    sent.length = 0;

    const { report } = await processBatch(
      records([profile('p-3', 'u-1', { country: 'DE' }, T + 500), deletion('u-1'), profile('p-4', 'u-1', { country: 'FR' }, T + 2000)]),
      deps,
    );
    expect(report).toMatchObject({ deletions: 1, superseded: 1, profilesHeld: 1, profilesSent: 0 });
    // Only the update after the deletion is left, and it is incomplete: nothing of the old profile comes back.
    expect(profiles.get('user', 'u-1')?.properties).toEqual({ country: { value: 'FR', at: T + 2000 } });
    expect(profiles.get('user', 'u-2')).toBeDefined();
    expect(sent).toEqual([]);
  });

  it("removes the user's profile in every target too; a target's update earlier in the batch is void, a later one starts anew", async () => {
    const { profiles, deps } = setup({ record: () => Promise.resolve() });
    const schemas = loadDatasetSchemas();
    deps.settings = { ...deps.settings, targets: new Map([['video', { trackingId: 'video-tracker', schemas, mapping: loadEventMapping({}) }]]) };
    const profile = (eventId: string, properties: Record<string, unknown>, t: number, target?: string) => ({
      kind: 'user',
      source: 'segment',
      eventId,
      userId: 'u-1',
      timestamp: t,
      properties,
      ...(target && { target }),
    });
    await processBatch(records([profile('v-1', { membershipType: 'gold' }, T, 'video'), profile('r-1', { membershipType: 'gold' }, T)]), deps);
    expect(profiles.get('user', 'video\u0001u-1')).toBeDefined();

    const { report } = await processBatch(
      records([profile('v-2', { membershipType: 'silver' }, T + 500, 'video'), deletion('u-1'), profile('v-3', { country: 'FR' }, T + 2000, 'video')]),
      deps,
    );
    expect(report).toMatchObject({ deletions: 1, superseded: 1 });
    expect(profiles.get('user', 'u-1')).toBeUndefined();
    // The video profile holds only what came after the deletion.
    expect(profiles.get('user', 'video\u0001u-1')?.properties).toEqual({ country: { value: 'FR', at: T + 2000 } });
  });

  it('retries the whole batch when the registry cannot be written, before anything is archived or sent', async () => {
    const { archived, deps } = setup({ record: () => Promise.reject(new Error('S3 SlowDown')) });
    const batch = records([view('s-x', 'v-1'), deletion('u-9')]);
    const { report, response } = await processBatch(batch, deps);
    expect(report.failure).toMatch(/^deletion: S3 SlowDown/);
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: batch[0]!.kinesis.sequenceNumber }]);
    expect(archived.size).toBe(0);
  });

  it('is dead-lettered, with the reason, when no deletion registry is configured', async () => {
    const { dead, identity, deps } = setup(undefined);
    await processBatch(records([identify('s-1', 'u-1')]), deps);
    const { report } = await processBatch(records([deletion('u-1')]), deps);
    expect(report).toMatchObject({ deletions: 0, deadLettered: 1 });
    expect(dead[0]).toMatchObject({ stage: 'validate', kind: 'delete', reason: expect.stringContaining('deletion registry') as string });
    expect(identity.links.size).toBe(1);
  });
});
