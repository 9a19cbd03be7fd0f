import { gunzipSync } from 'node:zlib';
import type { KinesisStreamRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import type { ArchivedRecord, ArchiveStore } from '../../shared/archive.js';
import { loadEventMapping, parseEventMapping } from '../../shared/event-mapping.js';
import { LinkCache } from '../../shared/identity/cache.js';
import { loadDatasetSchemas } from '../../shared/personalize/dataset-schema.js';
import { processBatch, type ProcessorDeps, type ProcessorSettings } from '../../shared/process/process-batch.js';
import type { Profile, ProfileKey } from '../../shared/profile/profile.js';
import { MemoryDlq, MemoryIdentityStore, MemoryPersonalize, MemoryProfileStore } from '../support/memory-ports.js';
import { kinesisRecords } from '../fuzz/fakes.js';

/** The processor with the in-memory profile store: partial item/user updates merged, complete records sent, the rest held. */

const USERS_ARN = 'arn:aws:personalize:us-east-1:1:dataset/g/USERS';
const ITEMS_ARN = 'arn:aws:personalize:us-east-1:1:dataset/g/ITEMS';
const T = Date.now() - 3_600_000;
const schemas = loadDatasetSchemas();

class KeepingArchive implements ArchiveStore {
  readonly objects = new Map<string, Buffer>();
  put(key: string, body: Buffer): Promise<void> {
    this.objects.set(key, body);
    return Promise.resolve();
  }
  records(): ArchivedRecord[] {
    return [...this.objects.values()].flatMap((b) => gunzipSync(b).toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as ArchivedRecord));
  }
}

class FlakyProfiles extends MemoryProfileStore {
  failReads = false;
  failWrites = false;
  override getProfiles(keys: readonly ProfileKey[]): Promise<Map<string, Profile>> {
    return this.failReads ? Promise.reject(new Error('ProvisionedThroughputExceededException')) : super.getProfiles(keys);
  }
  override putProfiles(profiles: readonly Profile[]): Promise<void> {
    return this.failWrites ? Promise.reject(new Error('ProvisionedThroughputExceededException')) : super.putProfiles(profiles);
  }
}

function setup(settings: Partial<ProcessorSettings> = {}) {
  const profiles = new FlakyProfiles();
  const archive = new KeepingArchive();
  const dlq = new MemoryDlq();
  const personalize = new MemoryPersonalize();
  personalize.captured = { putEvents: [], putItems: [], putUsers: [] };
  const deps: ProcessorDeps = {
    identity: new MemoryIdentityStore(),
    profiles,
    linkCache: new LinkCache({ positiveTtlMs: 60_000, negativeTtlMs: 1_000, maxEntries: 1_000 }),
    archive,
    dlq,
    personalize,
    settings: { trackingId: 't', usersDatasetArn: USERS_ARN, itemsDatasetArn: ITEMS_ARN, forwardConcurrency: 2, schemas, mapping: loadEventMapping({}), ...settings },
  };
  const sentUsers = () => personalize.captured!.putUsers.flatMap((c) => c.users ?? []).map((u) => ({ userId: u.userId, properties: JSON.parse(String(u.properties ?? '{}')) as unknown }));
  const sentItems = () => personalize.captured!.putItems.flatMap((c) => c.items ?? []).map((i) => ({ itemId: i.itemId, properties: JSON.parse(String(i.properties ?? '{}')) as unknown }));
  return { profiles, archive, dlq, personalize, deps, sentUsers, sentItems };
}

/** The messages as one batch of Kinesis records (test/fuzz/fakes.ts builds them). */
const records = (messages: readonly Record<string, unknown>[]): KinesisStreamRecord[] =>
  kinesisRecords(messages.map((m) => ({ data: Buffer.from(JSON.stringify(m)) })));

let ids = 0;
const user = (userId: string, properties: Record<string, unknown>, timestamp = T) => ({ kind: 'user', source: 'segment', eventId: `p-${++ids}`, userId, timestamp, properties });
const item = (itemId: string, properties: Record<string, unknown>, timestamp = T) => ({ kind: 'item', source: 'feed', eventId: `i-${++ids}`, itemId, timestamp, properties });
const withTraits = parseEventMapping({ events: {}, traits: { plan: 'membershipType' }, itemProperties: { category: 'categoryL1' } });

describe('partial user and item updates', () => {
  it('merges an identify {plan} (renamed by the mapping) and a later {country} into one PutUsers record with both', async () => {
    const { deps, sentUsers, profiles, dlq } = setup({ mapping: withTraits });
    const first = await processBatch(records([user('u-1', { plan: 'gold' })]), deps);
    expect(first.report).toMatchObject({ profilesSent: 1, profilesHeld: 0, forwardedUsers: 1 });
    const second = await processBatch(records([user('u-1', { country: 'DE' }, T + 1000)]), deps);
    expect(second.report).toMatchObject({ profilesSent: 1, forwardedUsers: 1, deadLettered: 0 });
    expect(sentUsers()).toEqual([
      { userId: 'u-1', properties: { membershipType: 'gold' } },
      { userId: 'u-1', properties: { membershipType: 'gold', country: 'DE' } },
    ]);
    expect(profiles.get('user', 'u-1')).toEqual({
      kind: 'user',
      id: 'u-1',
      properties: { membershipType: { value: 'gold', at: T }, country: { value: 'DE', at: T + 1000 } },
      updatedAt: T + 1000,
    });
    expect(dlq.records).toEqual([]);
  });

  it('holds a user missing a required field: stored, not sent, not dead-lettered, counted; the update completing it sends the whole record', async () => {
    const { deps, sentUsers, dlq, archive } = setup({ mapping: withTraits });
    const held = await processBatch(records([user('u-2', { country: 'DE' })]), deps);
    expect(held.report).toMatchObject({ profilesHeld: 1, profilesSent: 0, forwardedUsers: 0, putUsersCalls: 0, invalid: 0, deadLettered: 0, archivedRecords: 1 });
    expect(held.response.batchItemFailures).toEqual([]);
    expect(sentUsers()).toEqual([]);
    expect(dlq.records).toEqual([]);

    const done = await processBatch(records([user('u-2', { plan: 'silver' }, T + 1)]), deps);
    expect(done.report).toMatchObject({ profilesHeld: 0, profilesSent: 1, forwardedUsers: 1 });
    expect(sentUsers()).toEqual([{ userId: 'u-2', properties: { membershipType: 'silver', country: 'DE' } }]);
    // The archive has each update as it came, partial, under the schema's names (plan renamed):
    // the export shapes the archive by the schema alone.
    expect(archive.records().map((r) => (r as { properties?: unknown }).properties)).toEqual([{ country: 'DE' }, { membershipType: 'silver' }]);
  });

  it('keeps the newer value when an older update arrives late, and takes the keys it adds', async () => {
    const { deps, sentUsers } = setup();
    await processBatch(records([user('u-3', { membershipType: 'gold' }, T + 10_000)]), deps);
    await processBatch(records([user('u-3', { membershipType: 'bronze', country: 'FR' }, T)]), deps);
    expect(sentUsers().at(-1)).toEqual({ userId: 'u-3', properties: { membershipType: 'gold', country: 'FR' } });
  });

  it('merges several updates of one id in a batch into one record: one PutUsers entry, the others counted as superseded', async () => {
    const { deps, sentUsers, profiles } = setup();
    const outcome = await processBatch(
      records([user('u-4', { country: 'DE' }, T + 2), user('u-4', { membershipType: 'gold' }, T + 1), user('u-4', { country: 'FR' }, T), user('u-5', { membershipType: 'silver' })]),
      deps,
    );
    expect(outcome.report).toMatchObject({ users: 4, superseded: 2, profilesSent: 2, forwardedUsers: 2, putUsersCalls: 1 });
    expect(sentUsers()).toEqual([
      { userId: 'u-4', properties: { membershipType: 'gold', country: 'DE' } },
      { userId: 'u-5', properties: { membershipType: 'silver' } },
    ]);
    expect(profiles.reads).toBe(1);
    expect(profiles.writes).toBe(1);
  });

  it('merges item updates the same way, CREATION_TIMESTAMP in seconds, with itemProperties renames', async () => {
    const { deps, sentItems, dlq } = setup({ mapping: withTraits });
    const first = await processBatch(records([item('sku-1', { category: 'shoes', creationTimestamp: T })]), deps);
    expect(first.report).toMatchObject({ profilesHeld: 1 });
    await processBatch(records([item('sku-1', { price: 20 }, T + 1), item('sku-1', { price: 25, brand: 'acme' }, T + 2)]), deps);
    expect(sentItems()).toEqual([{ itemId: 'sku-1', properties: { categoryL1: 'shoes', price: 25, brand: 'acme', creationTimestamp: Math.floor(T / 1000) } }]);
    expect(dlq.records).toEqual([]);
  });

  it('still dead-letters an unusable value of a required field with its path, and an update the schema knows nothing of', async () => {
    const { deps, dlq, profiles } = setup();
    await processBatch(records([user('u-6', { membershipType: 'gold' })]), deps);
    const outcome = await processBatch(records([user('u-6', { membershipType: { tier: 'gold' }, country: 'DE' }, T + 1), user('u-7', { favouriteColour: 'red' })]), deps);
    expect(outcome.report).toMatchObject({ invalid: 2, deadLettered: 2, profilesSent: 0 });
    expect(dlq.records.map((d) => [d.stage, d.errors?.[0]?.path])).toEqual([
      ['preflight', 'properties.membershipType'],
      ['preflight', 'properties'],
    ]);
    // Nothing of a refused update is merged.
    expect(profiles.get('user', 'u-6')?.properties).toEqual({ membershipType: { value: 'gold', at: T } });
  });

  it('stores and holds profiles without a dataset ARN, counting complete ones as notConfigured', async () => {
    const { deps, personalize, profiles } = setup({ usersDatasetArn: undefined });
    const outcome = await processBatch(records([user('u-8', { membershipType: 'gold' }), user('u-9', { country: 'DE' })]), deps);
    expect(outcome.report).toMatchObject({ notConfigured: 1, profilesHeld: 1, profilesSent: 0 });
    expect(personalize.calls).toBe(0);
    expect(profiles.profiles.size).toBe(2);
  });

  it('writes nothing again when a batch is processed twice (a retry), and sends the same record', async () => {
    const { deps, sentUsers, profiles } = setup();
    const batch = records([user('u-10', { membershipType: 'gold' }), user('u-10', { country: 'DE' }, T + 1)]);
    await processBatch(batch, deps);
    const stored = structuredClone(profiles.get('user', 'u-10'));
    await processBatch(batch, deps);
    expect(profiles.get('user', 'u-10')).toEqual(stored);
    expect(profiles.writes).toBe(1);
    expect(sentUsers()).toEqual([sentUsers()[0], sentUsers()[0]]);
  });

  it.each([
    ['reading', 'failReads'],
    ['writing', 'failWrites'],
  ] as const)('retries the whole batch, archiving and sending nothing, when %s the profile store fails', async (_what, fault) => {
    const { deps, profiles, archive, personalize } = setup();
    profiles[fault] = true;
    const batch = records([user('u-11', { membershipType: 'gold' })]);
    const outcome = await processBatch(batch, deps);
    expect(outcome.report.failure).toMatch(/^profile store: ProvisionedThroughputExceeded/);
    expect(outcome.response.batchItemFailures).toEqual([{ itemIdentifier: batch[0]!.kinesis.sequenceNumber }]);
    expect(archive.objects.size).toBe(0);
    expect(personalize.calls).toBe(0);
  });

  it('reports the last update of a merged record for retry when PutUsers is throttled, and the retry sends the complete record', async () => {
    const { deps, personalize, sentUsers } = setup();
    const putUsers = personalize.putUsers.bind(personalize);
    personalize.putUsers = () => Promise.reject(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    const batch = records([user('u-12', { country: 'DE' }), user('u-12', { membershipType: 'gold' }, T + 1)]);
    const outcome = await processBatch(batch, deps);
    expect(outcome.response.batchItemFailures).toEqual([{ itemIdentifier: batch[1]!.kinesis.sequenceNumber }]);
    personalize.putUsers = putUsers;
    // Lambda retries from the reported record: the stored profile already has the earlier update.
    const retry = await processBatch(batch.slice(1), deps);
    expect(retry.response.batchItemFailures).toEqual([]);
    expect(sentUsers()).toEqual([{ userId: 'u-12', properties: { membershipType: 'gold', country: 'DE' } }]);
  });
});
