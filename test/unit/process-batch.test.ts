import { gunzipSync } from 'node:zlib';
import type { PutEventsCommandInput, PutItemsCommandInput, PutUsersCommandInput } from '@aws-sdk/client-personalize-events';
import type { KinesisStreamRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import type { ArchivedRecord, ArchiveStore } from '../../shared/archive.js';
import type { DeadLetterQueue, DeadLetterRecord } from '../../shared/dlq.js';
import { loadEventMapping, parseEventMapping } from '../../shared/event-mapping.js';
import { LinkCache } from '../../shared/identity/cache.js';
import type { IdentityLink, IdentityStore } from '../../shared/identity/store.js';
import { loadDatasetSchemas } from '../../shared/personalize/dataset-schema.js';
import type { PersonalizeSender } from '../../shared/personalize/forward.js';
import { knownUserSessionId } from '../../shared/personalize/put-session.js';
import { MemoryProfileStore } from '../support/memory-ports.js';
import { piiPolicy } from '../../shared/pii.js';
import { seededRandom } from '../support/seeded-random.js';
import { kplAggregate } from '../support/kpl.js';
import { processBatch, type BatchReport, type ProcessorDeps, type ProcessorSettings } from '../../shared/process/process-batch.js';


// ------------------------------------------------------------------------------------------------
// In-memory fakes of the ports

class FakeIdentityStore implements IdentityStore {
  readonly links = new Map<string, IdentityLink>();
  failReads = false;
  failWrites = false;
  getLinks(sessionIds: readonly string[]): Promise<Map<string, IdentityLink>> {
    if (this.failReads) return Promise.reject(new Error('ProvisionedThroughputExceededException'));
    return Promise.resolve(new Map(sessionIds.flatMap((id) => (this.links.has(id) ? [[id, this.links.get(id)!] as const] : []))));
  }
  putLinks(links: readonly IdentityLink[]): Promise<void> {
    if (this.failWrites) return Promise.reject(new Error('ProvisionedThroughputExceededException'));
    for (const link of links) this.links.set(link.sessionId, link);
    return Promise.resolve();
  }
}

class FakeArchive implements ArchiveStore {
  readonly objects = new Map<string, Buffer>();
  failing = false;
  put(key: string, body: Buffer): Promise<void> {
    if (this.failing) return Promise.reject(new Error('S3 SlowDown'));
    this.objects.set(key, body);
    return Promise.resolve();
  }
  /** The archive's lines (not the record of what PutEvents accepted, under forwarded/). */
  records(): ArchivedRecord[] {
    return [...this.objects].filter(([key]) => key.startsWith('archive/')).flatMap(([, body]) =>
      gunzipSync(body)
        .toString('utf8')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as ArchivedRecord),
    );
  }
}

class FakeDlq implements DeadLetterQueue {
  readonly queued: DeadLetterRecord[] = [];
  /** Decides per record whether SQS takes it. */
  accepts: (record: DeadLetterRecord) => boolean = () => true;
  send(records: readonly DeadLetterRecord[]): Promise<DeadLetterRecord[]> {
    const refused = records.filter((r) => !this.accepts(r));
    this.queued.push(...records.filter((r) => this.accepts(r)));
    return Promise.resolve(refused);
  }
}

const invalidInput = (message: string) => Object.assign(new Error(message), { name: 'InvalidInputException' });
const throttled = () => Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });

/** Personalize: records every call; `eventVerdict` fails a PutEvents call. Keeps what was accepted. */
class FakePersonalize implements PersonalizeSender {
  readonly eventCalls: PutEventsCommandInput[] = [];
  readonly itemCalls: PutItemsCommandInput[] = [];
  readonly userCalls: PutUsersCommandInput[] = [];
  readonly delivered: { eventId: string; sessionId: string; userId?: string }[] = [];
  eventVerdict: (input: PutEventsCommandInput) => Error | undefined = (input) =>
    (input.eventList ?? []).some((e) => e.eventId?.startsWith('bad-')) ? invalidInput('item is blocked') : undefined;

  putEvents(input: PutEventsCommandInput): Promise<void> {
    this.eventCalls.push(input);
    const error = this.eventVerdict(input);
    if (error) return Promise.reject(error);
    for (const e of input.eventList ?? []) this.delivered.push({ eventId: e.eventId ?? '', sessionId: input.sessionId ?? '', ...(input.userId !== undefined && { userId: input.userId }) });
    return Promise.resolve();
  }
  putItems(input: PutItemsCommandInput): Promise<void> {
    this.itemCalls.push(input);
    return Promise.resolve();
  }
  putUsers(input: PutUsersCommandInput): Promise<void> {
    this.userCalls.push(input);
    return Promise.resolve();
  }
  calls(): number {
    return this.eventCalls.length + this.itemCalls.length + this.userCalls.length;
  }
}

const schemas = loadDatasetSchemas();
const mapping = loadEventMapping({});
const NOW = 1_800_000_000_000;

function setup(settings: Partial<ProcessorSettings> = {}) {
  const identity = new FakeIdentityStore();
  const archive = new FakeArchive();
  const dlq = new FakeDlq();
  const personalize = new FakePersonalize();
  const profiles = new MemoryProfileStore();
  const deps: ProcessorDeps = {
    identity,
    profiles,
    linkCache: new LinkCache({ positiveTtlMs: 60_000, negativeTtlMs: 5_000, maxEntries: 10_000 }, () => NOW),
    archive,
    dlq,
    personalize,
    settings: { trackingId: 'tracker-1', forwardConcurrency: 4, schemas, mapping, ...settings },
    now: () => NOW,
  };
  return { identity, profiles, archive, dlq, personalize, deps };
}

// ------------------------------------------------------------------------------------------------
// Kinesis records

const SHARD = 'shardId-000000000007';
const T = Date.now() - 3_600_000;
const seqOf = (i: number): string => (49_600_000_000_000_000_000n + BigInt(i) * 10n).toString();

type Payload = Record<string, unknown> | string | Buffer;
const bytesOf = (p: Payload): Buffer => (Buffer.isBuffer(p) ? p : Buffer.from(typeof p === 'string' ? p : JSON.stringify(p)));

function kinesisRecords(payloads: readonly Payload[], firstIndex = 1): KinesisStreamRecord[] {
  return payloads.map((payload, i) => {
    const sequenceNumber = seqOf(firstIndex + i);
    return {
      kinesis: {
        kinesisSchemaVersion: '1.0',
        partitionKey: `pk-${i}`,
        sequenceNumber,
        data: bytesOf(payload).toString('base64'),
        approximateArrivalTimestamp: 1_790_000_000 + i,
      },
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventID: `${SHARD}:${sequenceNumber}`,
      eventName: 'aws:kinesis:record',
      invokeIdentityArn: 'arn:aws:iam::000000000000:role/test',
      awsRegion: 'us-east-1',
      eventSourceARN: 'arn:aws:kinesis:us-east-1:000000000000:stream/test',
    };
  });
}

async function kplAggregateOne(payloads: readonly Payload[]): Promise<Buffer> {
  const encoded = await kplAggregate(payloads.map((p, i) => ({ partitionKey: `kpl-${i}`, data: bytesOf(p) })));
  if (encoded.length !== 1) throw new Error(`expected one aggregated record, got ${encoded.length}`);
  return encoded[0]!.data;
}

const view = (sessionId: string, eventId: string, extra: Record<string, unknown> = {}) => ({
  kind: 'interaction',
  eventId,
  sessionId,
  eventType: 'Product Viewed',
  itemId: 'sku-1',
  timestamp: T,
  ...extra,
});
const identify = (sessionId: string, userId: string, eventId: string) => ({ kind: 'identify', eventId, sessionId, userId, timestamp: T });
const item = (itemId: string, eventId: string, timestamp = T, properties: Record<string, unknown> = { categoryL1: 'shoes', price: 10, creationTimestamp: T }) => ({
  kind: 'item',
  source: 'feed',
  eventId,
  itemId,
  timestamp,
  properties,
});
const user = (userId: string, eventId: string, properties: Record<string, unknown> = { membershipType: 'gold' }) => ({ kind: 'user', source: 'feed', eventId, userId, timestamp: T, properties });

const failures = (outcome: { response: { batchItemFailures: { itemIdentifier: string }[] } }) => outcome.response.batchItemFailures.map((f) => f.itemIdentifier);

/** Every input accounted for: forwarded, in the DLQ, or filtered with a counted reason. */
function accountedFor(report: BatchReport): number {
  return (
    report.forwardedEvents +
    report.forwardedItems +
    report.forwardedUsers +
    report.deadLettered +
    report.duplicates +
    report.superseded +
    report.profilesHeld +
    report.notConfigured +
    report.links
  );
}

// ------------------------------------------------------------------------------------------------

describe('processBatch', () => {
  it('forwards, stitches, archives and reports a clean batch', async () => {
    const { personalize, archive, dlq, identity, deps } = setup();
    const records = kinesisRecords([view('s1', 'a1'), identify('s1', 'u1', 'login'), view('s1', 'a2', { eventType: 'Product Added', properties: { price: '9.5', device: 'ios', colour: 'red' } }), view('s2', 'b1')]);
    const { response, report } = await processBatch(records, deps);

    expect(response).toEqual({ batchItemFailures: [] });
    expect(identity.links.get('s1')?.userId).toBe('u1');
    // Stitched events name a session derived from s1, so Personalize never merges s1 itself.
    expect(personalize.delivered).toEqual([
      { eventId: 'a1', sessionId: knownUserSessionId('s1'), userId: 'u1' },
      { eventId: 'a2', sessionId: knownUserSessionId('s1'), userId: 'u1' },
      { eventId: 'b1', sessionId: 's2' },
    ]);
    // What PutEvents accepted is recorded per event day: session and eventId, nothing else.
    const forwarded = [...archive.objects].filter(([key]) => key.startsWith('forwarded/interactions/dt='));
    expect(forwarded).toHaveLength(1);
    expect(gunzipSync(forwarded[0]![1]).toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown)).toEqual([
      { sessionId: 's1', eventId: 'a1' },
      { sessionId: 's1', eventId: 'a2' },
      { sessionId: 's2', eventId: 'b1' },
    ]);
    expect(report.forwardedRecordObjects).toBe(1);
    const a2 = personalize.eventCalls.flatMap((c) => c.eventList ?? []).find((e) => e.eventId === 'a2');
    expect(a2).toMatchObject({ eventType: 'AddToCart', eventValue: 9.5, properties: '{"device":"ios"}' });
    expect(archive.records().map((r) => r.eventId).sort()).toEqual(['a1', 'a2', 'b1', 'login']);
    expect(dlq.queued).toEqual([]);
    expect(report).toMatchObject({
      kinesisRecords: 4,
      messages: 4,
      interactions: 3,
      links: 1,
      linksRecorded: 1,
      stitched: 2,
      anonymous: 1,
      forwardedEvents: 3,
      putEventsCalls: 2,
      propertiesDropped: 2, // price and colour: not fields of the interactions schema
      archivedRecords: 4,
      retried: 0,
      deadLettered: 0,
    });
    expect(accountedFor(report)).toBe(report.messages);
  });

  it('in bulk-only mode archives interactions but sends none to PutEvents, counting them as notStreamed', async () => {
    const { personalize, archive, deps } = setup({ bulkMode: 'bulk-only' });
    const { response, report } = await processBatch(kinesisRecords([view('s1', 'a1'), view('s2', 'b1')]), deps);
    expect(response).toEqual({ batchItemFailures: [] });
    expect(personalize.eventCalls).toEqual([]);
    expect(archive.records().map((r) => r.eventId).sort()).toEqual(['a1', 'b1']);
    expect([...archive.objects.keys()].filter((k) => k.startsWith('forwarded/'))).toEqual([]);
    expect(report).toMatchObject({ interactions: 2, notStreamed: 2, forwardedEvents: 0 });
  });

  it('retries the whole batch when the record of what PutEvents accepted cannot be written (a re-sent eventId is not trained on twice)', async () => {
    const { archive, deps } = setup();
    const put = archive.put.bind(archive);
    archive.put = (key, body) => (key.startsWith('forwarded/') ? Promise.reject(new Error('S3 SlowDown')) : put(key, body));
    const records = kinesisRecords([view('s1', 'a1')]);
    const { response, report } = await processBatch(records, deps);
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: records[0]!.kinesis.sequenceNumber }]);
    expect(report.failure).toMatch(/^forwarded record: S3 SlowDown/);
  });

  it('returns an empty response for an empty batch', async () => {
    const { personalize, deps } = setup();
    expect((await processBatch([], deps)).response).toEqual({ batchItemFailures: [] });
    expect(personalize.calls()).toBe(0);
  });

  it('forwards nothing and retries from the first record when the archive fails', async () => {
    const { personalize, archive, dlq, deps } = setup();
    archive.failing = true;
    const records = kinesisRecords([view('s1', 'a1'), '{broken', view('s2', 'b1')]);
    const outcome = await processBatch(records, deps);
    expect(failures(outcome)).toEqual([seqOf(1)]);
    expect(personalize.calls()).toBe(0);
    expect(dlq.queued).toEqual([]);
    expect(outcome.report.failure).toMatch(/^archive: S3 SlowDown/);
    expect(outcome.report.retried).toBe(3);
  });

  it.each([
    ['reading', 'failReads'],
    ['writing', 'failWrites'],
  ] as const)('forwards nothing and retries from the first record when %s the identity table fails', async (_what, fault) => {
    const { personalize, archive, dlq, identity, deps } = setup();
    identity[fault] = true;
    const outcome = await processBatch(kinesisRecords([view('s1', 'a1'), identify('s1', 'u1', 'login'), '{broken']), deps);
    expect(failures(outcome)).toEqual([seqOf(1)]);
    expect(personalize.calls()).toBe(0);
    expect(archive.objects.size).toBe(0);
    expect(dlq.queued).toEqual([]);
    expect(outcome.report.failure).toMatch(/^identity table: /);
  });

  it('on a transient PutEvents failure for session B, reports B’s records and sends only the dead letters before the first of them', async () => {
    const { personalize, dlq, deps } = setup();
    personalize.eventVerdict = (input) => {
      if (input.sessionId === 'B') return throttled();
      if ((input.eventList ?? []).some((e) => e.eventId?.startsWith('bad-'))) return invalidInput('item is blocked');
      return undefined;
    };
    const payloads: Payload[] = [
      view('A', 'a1'), // 1
      '{"kind": "interaction", broken', // 2: dead letter before B -> sent now
      view('B', 'b1'), // 3: first failed record
      view('A', 'a2'), // 4
      view('C', 'c0', { sessionId: 'null' }), // 5: dead letter after B -> left to the retry
      view('B', 'b2'), // 6
      view('C', 'bad-c1'), // 7: rejected by Personalize after B -> left to the retry
      view('C', 'c2'), // 8
    ];
    const records = kinesisRecords(payloads);
    const outcome = await processBatch(records, deps);

    expect(failures(outcome)).toEqual([seqOf(3), seqOf(6)]);
    expect(dlq.queued.map((d) => d.sequenceNumber)).toEqual([seqOf(2)]);
    expect(dlq.queued[0]).toMatchObject({ stage: 'decode', shardId: SHARD, payload: '{"kind": "interaction", broken' });
    expect(personalize.delivered.map((d) => d.eventId).sort()).toEqual(['a1', 'a2', 'c2']);
    expect(outcome.report).toMatchObject({ deadLettered: 1, retried: 2, rejectedByPersonalize: 1 });

    // Lambda retries from the lowest reported record; this time Personalize takes B.
    personalize.eventVerdict = (input) => ((input.eventList ?? []).some((e) => e.eventId?.startsWith('bad-')) ? invalidInput('item is blocked') : undefined);
    const retry = await processBatch(records.slice(2), deps);
    expect(failures(retry)).toEqual([]);
    expect(dlq.queued.map((d) => d.sequenceNumber)).toEqual([seqOf(2), seqOf(5), seqOf(7)]);
    expect(dlq.queued[2]).toMatchObject({ stage: 'personalize', eventId: 'bad-c1', reason: 'Personalize rejected the record: item is blocked' });
    expect(new Set(personalize.delivered.map((d) => d.eventId))).toEqual(new Set(['a1', 'a2', 'b1', 'b2', 'c2']));
  });

  it('reports the records whose dead letters SQS did not take, so Lambda retries them', async () => {
    const { dlq, deps } = setup();
    dlq.accepts = (record) => record.sequenceNumber !== seqOf(4);
    const outcome = await processBatch(kinesisRecords([view('s', 'a1'), '{bad', view('s', 'a2'), 'also bad', view('s', 'bad-x')]), deps);
    expect(failures(outcome)).toEqual([seqOf(4)]);
    expect(dlq.queued.map((d) => d.sequenceNumber)).toEqual([seqOf(2), seqOf(5)]);
    expect(outcome.report).toMatchObject({ deadLettered: 2, retried: 1 });
  });

  it('reports every dead-lettered record when the DLQ is down', async () => {
    const { dlq, personalize, deps } = setup();
    dlq.accepts = () => false;
    const outcome = await processBatch(kinesisRecords([view('s', 'a1'), '{bad', view('s', 'a2'), 'null']), deps);
    expect(failures(outcome).sort()).toEqual([seqOf(2), seqOf(4)]);
    expect(outcome.report.deadLettered).toBe(0);
    expect(personalize.delivered.map((d) => d.eventId)).toEqual(['a1', 'a2']);
  });

  it('forwards an event sent twice in a batch once, and counts the duplicate', async () => {
    const { personalize, archive, deps } = setup();
    const noId = { kind: 'interaction', sessionId: 's', eventType: 'View', itemId: 'sku-9', timestamp: T };
    const outcome = await processBatch(kinesisRecords([view('s', 'a1'), view('s', 'a1'), noId, { ...noId }, view('s', 'a2')]), deps);
    expect(personalize.delivered.map((d) => d.eventId).filter((id) => id === 'a1')).toHaveLength(1);
    expect(personalize.delivered).toHaveLength(3);
    expect(outcome.report.duplicates).toBe(2);
    expect(archive.records()).toHaveLength(3);
    expect(accountedFor(outcome.report)).toBe(5);
  });

  it('keeps different items and sessions that share a caller eventId: only a re-send of the same message is a duplicate', async () => {
    const { personalize, archive, deps } = setup({ itemsDatasetArn: 'arn:aws:personalize:us-east-1:1:dataset/g/ITEMS' });
    const items = Array.from({ length: 10 }, (_, i) => item(`shared-${i}`, 'feed-upload-1'));
    const outcome = await processBatch(kinesisRecords([...items, items[3]!, view('s1', 'same-id'), view('s2', 'same-id')]), deps);
    expect(personalize.itemCalls.flatMap((c) => c.items ?? []).map((i) => i.itemId).sort()).toEqual(items.map((i) => i.itemId).sort());
    expect(personalize.delivered.map((d) => `${d.sessionId}|${d.eventId}`).sort()).toEqual(['s1|same-id', 's2|same-id']);
    expect(outcome.report.duplicates).toBe(1);
    expect(archive.records()).toHaveLength(12);
  });

  it('archives items and users but sends none when no dataset ARN is configured, counting them as notConfigured', async () => {
    const { personalize, archive, deps } = setup();
    const outcome = await processBatch(kinesisRecords([item('sku-1', 'i1'), item('sku-1', 'i2', T + 1), item('sku-2', 'i3'), user('p1', 'u1')]), deps);
    expect(personalize.itemCalls).toEqual([]);
    expect(personalize.userCalls).toEqual([]);
    expect(archive.records().map((r) => r.eventId).sort()).toEqual(['i1', 'i2', 'i3', 'u1']);
    expect(outcome.report).toMatchObject({ notConfigured: 3, superseded: 1, forwardedItems: 0, forwardedUsers: 0 });
    expect(accountedFor(outcome.report)).toBe(4);
  });

  it('sends the latest version of each item and user when the dataset ARNs are configured', async () => {
    const { personalize, deps } = setup({
      itemsDatasetArn: 'arn:aws:personalize:us-east-1:1:dataset/g/ITEMS',
      usersDatasetArn: 'arn:aws:personalize:us-east-1:1:dataset/g/USERS',
    });
    const outcome = await processBatch(
      kinesisRecords([
        item('sku-1', 'i-new', T + 5, { categoryL1: 'hats', price: 7, creationTimestamp: T }),
        item('sku-1', 'i-old', T, { categoryL1: 'shoes', price: 5, creationTimestamp: T }),
        user('p1', 'u1'),
      ]),
      deps,
    );
    expect(personalize.itemCalls).toEqual([{ datasetArn: 'arn:aws:personalize:us-east-1:1:dataset/g/ITEMS', items: [{ itemId: 'sku-1', properties: expect.stringContaining('"categoryL1":"hats"') as string }] }]);
    expect(personalize.userCalls[0]?.users).toEqual([{ userId: 'p1', properties: '{"membershipType":"gold"}' }]);
    expect(outcome.report).toMatchObject({ forwardedItems: 1, forwardedUsers: 1, superseded: 1, notConfigured: 0 });
  });

  it('holds an item missing a required schema field (stored, not sent, not dead-lettered), and sends it once completed', async () => {
    const { dlq, personalize, profiles, archive, deps } = setup({ itemsDatasetArn: 'arn:aws:personalize:us-east-1:1:dataset/g/ITEMS' });
    const held = await processBatch(kinesisRecords([item('sku-1', 'i1', T, { categoryL1: 'hats' })]), deps);
    expect(dlq.queued).toEqual([]);
    expect(personalize.itemCalls).toEqual([]);
    expect(held.report).toMatchObject({ profilesHeld: 1, profilesSent: 0, invalid: 0, forwardedItems: 0, archivedRecords: 1 });
    expect(accountedFor(held.report)).toBe(1);
    expect(profiles.get('item', 'sku-1')?.properties).toEqual({ categoryL1: { value: 'hats', at: T } });

    const completed = await processBatch(kinesisRecords([item('sku-1', 'i2', T + 1, { price: '12.5', creationTimestamp: T })], 2), deps);
    expect(completed.report).toMatchObject({ profilesHeld: 0, profilesSent: 1, forwardedItems: 1 });
    expect(personalize.itemCalls.flatMap((c) => c.items ?? [])).toEqual([
      { itemId: 'sku-1', properties: JSON.stringify({ categoryL1: 'hats', price: 12.5, creationTimestamp: Math.floor(T / 1000) }) },
    ]);
    // The archive keeps each update as it came.
    expect(archive.records().map((r) => (r as { properties?: unknown }).properties)).toEqual([{ categoryL1: 'hats' }, { price: '12.5', creationTimestamp: T }]);
  });

  it('dead-letters an update whose value for a required field is unusable, with the property path, and stores nothing of it', async () => {
    const { dlq, profiles, deps } = setup({ itemsDatasetArn: 'arn:aws:personalize:us-east-1:1:dataset/g/ITEMS' });
    const outcome = await processBatch(kinesisRecords([item('sku-1', 'i1', T, { categoryL1: 'hats', price: 'cheap', creationTimestamp: T })]), deps);
    expect(dlq.queued).toHaveLength(1);
    expect(dlq.queued[0]).toMatchObject({ stage: 'preflight', eventId: 'i1', kind: 'item', source: 'feed', errors: [{ path: 'properties.price' }] });
    expect(dlq.queued[0]!.reason).toMatch(/^properties\.price: .*PRICE.*"cheap"/);
    expect(outcome.report).toMatchObject({ invalid: 1, profilesHeld: 0 });
    expect(profiles.get('item', 'sku-1')).toBeUndefined();
  });

  it('dead-letters a message nested too deep to re-serialize instead of failing the batch', async () => {
    const { personalize, dlq, deps } = setup();
    const deep = JSON.stringify(view('s', 'deep-1', { properties: { device: 'X' } })).replace('"X"', `${'['.repeat(50_000)}${']'.repeat(50_000)}`);
    const outcome = await processBatch(kinesisRecords([view('s', 'a1'), deep]), deps);
    expect(failures(outcome)).toEqual([]);
    expect(personalize.delivered.map((d) => d.eventId)).toEqual(['a1']);
    expect(dlq.queued).toHaveLength(1);
    expect(dlq.queued[0]).toMatchObject({ stage: 'decode', sequenceNumber: seqOf(2) });
  });

  it('dead-letters the bad user record of a KPL aggregate with its sub-sequence number, and forwards the rest', async () => {
    const { personalize, dlq, deps } = setup();
    const aggregate = await kplAggregateOne([view('k', 'k1'), '{bad', view('k', 'k2')]);
    const outcome = await processBatch(kinesisRecords([aggregate]), deps);
    expect(failures(outcome)).toEqual([]);
    expect(personalize.delivered.map((d) => d.eventId)).toEqual(['k1', 'k2']);
    expect(dlq.queued).toHaveLength(1);
    expect(dlq.queued[0]).toMatchObject({ sequenceNumber: seqOf(1), subSequenceNumber: 1, stage: 'decode' });
    expect(outcome.report).toMatchObject({ kinesisRecords: 1, messages: 3 });
  });

  it('in allow mode archives and forwards only what the dataset schemas keep, counting the rest without naming it', async () => {
    const email = 'ada@example.com';
    const { archive, personalize, deps } = setup({
      pii: piiPolicy({ allowFields: ['campaign'] }),
      usersDatasetArn: 'arn:aws:personalize:us-east-1:1:dataset/g/USERS',
      mapping: { ...mapping, traits: { plan: 'membershipType' } },
    });
    const records = kinesisRecords([
      view('s1', 'a1', { eventType: 'Product Added', properties: { price: '9.5', device: 'ios', contact_phone: '+44 20 7946 0000', [email]: 'yes', campaign: 'spring' } }),
      user('u1', 'p1', { plan: 'gold', country: 'DE', mobile: '+44 7700 900000', email }),
    ]);
    const { report } = await processBatch(records, deps);
    const archived = Object.fromEntries(archive.records().map((r) => [r.eventId, r]));
    expect(archived.a1).toMatchObject({ eventValue: 9.5, properties: { device: 'ios', campaign: 'spring' } });
    expect(Object.keys((archived.a1 as { properties: object }).properties)).toEqual(['device', 'campaign']);
    // Archived under the schema's names (the mapping renames plan), as the export will read it.
    expect((archived.p1 as { properties: object }).properties).toEqual({ membershipType: 'gold', country: 'DE' });
    expect(JSON.stringify(archive.records())).not.toMatch(/7946|7700|ada@/);
    // The event value was read from `price` before the filter; the allowed schema fields reach Personalize.
    expect(personalize.eventCalls.flatMap((c) => c.eventList ?? [])[0]).toMatchObject({ eventValue: 9.5, properties: '{"device":"ios"}' });
    expect(personalize.userCalls.flatMap((c) => c.users ?? [])).toEqual([{ userId: 'u1', properties: '{"membershipType":"gold","country":"DE"}' }]);
    expect(report.propertiesNotAllowed).toBe(5); // price, contact_phone, the e-mail key; mobile, email
    // `campaign` is archived (PII_ALLOW_FIELDS) but no Interactions field: dropped from PutEvents under a keyless reason.
    expect(report.droppedPropertyReasons).toEqual({ 'not a field of the Interactions schema': 1 });
  });

  it('reports dropped properties by summaries that carry no key or value from the payload', async () => {
    const email = 'grace@example.org';
    const { deps } = setup();
    const records = kinesisRecords([
      view('s1', 'a1', { properties: { [email]: 1, [`x"${email}"`]: 2, device: { owner: email }, discount: `"${email}"`.repeat(300) } }),
      item('sku-1', 'i1', T, { categoryL1: 'shoes', price: 10, creationTimestamp: T, inStock: `a"b ${email}` }),
    ]);
    const { report } = await processBatch(records, deps);
    const logged = JSON.stringify(report);
    expect(logged).not.toContain(email);
    expect(logged).not.toContain('grace');
    expect(report.droppedPropertyReasons).toEqual({
      'not a field of the Interactions schema': 2,
      'Interactions DEVICE (string, categorical): expected a string, number, boolean or an array of them': 1,
      'Interactions DISCOUNT (string, categorical): over the 1000-character limit for categorical values': 1,
      'Items IN_STOCK (boolean): expected true or false': 1,
    });
  });

  it('dead-letters an unmapped event name when the mapping says reject', async () => {
    const { dlq, personalize, deps } = setup({ mapping: { ...mapping, unmapped: 'reject' } });
    const outcome = await processBatch(kinesisRecords([view('s', 'a1', { eventType: 'Video Played' }), view('s', 'a2')]), deps);
    expect(personalize.delivered.map((d) => d.eventId)).toEqual(['a2']);
    expect(dlq.queued[0]).toMatchObject({ stage: 'validate', eventId: 'a1', errors: [{ path: 'eventType', message: expect.stringContaining('Video Played') as string }] });
    expect(accountedFor(outcome.report)).toBe(2);
  });
});

// ------------------------------------------------------------------------------------------------
// Nothing lost: generated mixed batches

async function generateBatch(seed: number): Promise<{ records: KinesisStreamRecord[]; messages: number; settings: Partial<ProcessorSettings> }> {
  const rnd = seededRandom(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
  const sessions = ['s0', 's1', 's2', 's3', 's4', 's5'];
  const names = ['Product Viewed', 'Product Added', 'Order Completed', 'Video Played', 'View'];
  const sent: Payload[] = [];
  const next = (i: number): Payload => {
    const r = rnd();
    const id = `${seed}-${i}`;
    if (r < 0.3) return view(pick(sessions), `e-${id}`, { eventType: pick(names), properties: { price: pick([3, '4.5', 'x']), device: pick(['ios', 'web']), junk: 1 } });
    if (r < 0.38) return view(pick(sessions), `e-${id}`, { userId: pick(['u0', 'u1', 'u2']) });
    if (r < 0.42) return view(pick(sessions), `bad-${id}`);
    if (r < 0.47) return identify(pick(sessions), pick(['u0', 'u1', 'u2']), `l-${id}`);
    if (r < 0.5) return { kind: 'alias', eventId: `al-${id}`, previousId: pick(sessions), userId: pick(['u0', 'u3']), timestamp: T };
    if (r < 0.6) return item(pick(['sku-0', 'sku-1', 'sku-2']), `i-${id}`, T + Math.floor(rnd() * 3));
    // A partial item (held: no price, no creationTimestamp) or one with an unusable required value (dead-lettered).
    if (r < 0.63) return item('sku-x', `i-${id}`, T, i % 2 === 0 ? { categoryL1: 'only' } : { categoryL1: 'only', price: 'cheap', creationTimestamp: T });
    if (r < 0.7) return user(pick(['p0', 'p1']), `p-${id}`, { membershipType: pick(['gold', 'silver']) });
    if (r < 0.72) return user('p9', `p-${id}`, { country: 'FR' });
    if (r < 0.77 && sent.length > 0) return pick(sent);
    if (r < 0.8) return pick(['{not json', '[1,2]', 'null', '']);
    if (r < 0.83) return Buffer.from([0xff, 0xfe, 0xfd]);
    if (r < 0.86) return view('null', `e-${id}`);
    if (r < 0.88) return view(pick(sessions), `e-${id}`, { timestamp: Math.floor(T / 1000) });
    if (r < 0.92) return { kind: 'interaction', sessionId: pick(sessions), eventType: 'View', itemId: pick(['sku-a', 'sku-b']), timestamp: T };
    return view(pick(sessions), `e-${id}`, { eventType: pick(names) });
  };

  const records: Payload[] = [];
  let messages = 0;
  const count = 40 + Math.floor(rnd() * 60);
  for (let i = 0; i < count; i++) {
    if (rnd() < 0.08) {
      const group = Array.from({ length: 2 + Math.floor(rnd() * 4) }, (_, j) => next(i * 100 + j));
      sent.push(...group);
      records.push(await kplAggregateOne(group));
      messages += group.length;
    } else {
      const payload = next(i);
      sent.push(payload);
      records.push(payload);
      messages++;
    }
  }
  const settings: Partial<ProcessorSettings> = {
    ...(rnd() < 0.5 && { itemsDatasetArn: 'arn:aws:personalize:us-east-1:1:dataset/g/ITEMS' }),
    ...(rnd() < 0.5 && { usersDatasetArn: 'arn:aws:personalize:us-east-1:1:dataset/g/USERS' }),
  };
  return { records: kinesisRecords(records), messages, settings };
}

const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8];

describe('several targets (docs/targets.md)', () => {
  const video = { trackingId: 'video-tracker', schemas, mapping: { ...mapping, events: { 'Video Content Playing': { eventType: 'Watch' } } } };
  const play = (target?: string) => ({ kind: 'interaction', eventId: 'tv-1', sessionId: 'tv-s', eventType: 'Video Content Playing', itemId: 'film-1', timestamp: T, ...(target && { target }) });

  it('sends a message stamped for a target to its tracker with its mapping, and archives it under targets/<name>/', async () => {
    const { deps, personalize, archive } = setup({ targets: new Map([['video', video]]) });
    const { report } = await processBatch(kinesisRecords([play(), play('video')]), deps);
    expect(report).toMatchObject({ messages: 2, duplicates: 0, forwardedEvents: 2, putEventsCalls: 2, byTarget: { video: { archivedRecords: 1, forwardedEvents: 1, forwardedItems: 0, forwardedUsers: 0 } } });
    const byTracker = new Map(personalize.eventCalls.map((c) => [c.trackingId, (c.eventList ?? []).map((e) => e.eventType)]));
    expect(byTracker).toEqual(new Map([['tracker-1', ['Video Content Playing']], ['video-tracker', ['Watch']]]));
    expect([...archive.objects.keys()].some((k) => k.startsWith('targets/video/archive/interactions/'))).toBe(true);
    expect([...archive.objects.keys()].some((k) => k.startsWith('targets/video/forwarded/interactions/'))).toBe(true);
  });

  it('sends one Watch per session, title and window for heartbeats (oncePerSeconds); a later batch of the same window re-sends its eventId, not a new one', async () => {
    const heartbeat = parseEventMapping({ unmapped: 'reject', events: { 'Video Content Playing': { eventType: 'Watch', oncePerSeconds: 600 } } });
    const { deps, personalize } = setup({ targets: new Map([['video', { ...video, mapping: heartbeat }]]) });
    const beat = (eventId: string, offsetS: number, itemId = 'film-1') => ({ ...play('video'), eventId, itemId, timestamp: Math.floor(T / 600_000) * 600_000 + offsetS * 1000 });
    const { report } = await processBatch(kinesisRecords([beat('b1', 0), beat('b2', 10), beat('b3', 20), beat('other', 30, 'film-2'), beat('next', 600)]), deps);
    expect(report).toMatchObject({ duplicates: 2, byTarget: { video: { forwardedEvents: 3 } } });
    const sent = personalize.eventCalls.flatMap((c) => c.eventList ?? []);
    expect(sent.map((e) => e.eventId)).toEqual([expect.stringMatching(/^w-[0-9a-f]{64}$/), expect.stringMatching(/^w-/), expect.stringMatching(/^w-/)]);
    expect(new Set(sent.map((e) => e.eventId)).size).toBe(3);
    const firstWindow = sent[0]!.eventId;
    personalize.eventCalls.length = 0;
    await processBatch(kinesisRecords([beat('b4', 40)]), deps);
    expect(personalize.eventCalls.flatMap((c) => c.eventList ?? []).map((e) => e.eventId)).toEqual([firstWindow]);
  });

  it("streams nothing to a target being bootstrapped (its own bulk mode) while the default streams; both archive", async () => {
    const { deps, personalize, archive } = setup({ targets: new Map([['video', { ...video, bulkMode: 'bootstrap' as const }]]) });
    const { report } = await processBatch(kinesisRecords([play(), play('video')]), deps);
    expect(report).toMatchObject({ forwardedEvents: 1, notStreamed: 1, byTarget: { video: { archivedRecords: 1, forwardedEvents: 0 } } });
    expect(personalize.eventCalls.map((c) => c.trackingId)).toEqual(['tracker-1']);
    expect([...archive.objects.keys()].some((k) => k.startsWith('targets/video/archive/interactions/'))).toBe(true);
    expect([...archive.objects.keys()].some((k) => k.startsWith('targets/video/forwarded/'))).toBe(false);
  });

  it('dead-letters a message stamped for a target this processor does not know, naming it', async () => {
    const { deps, dlq, personalize } = setup();
    const { report } = await processBatch(kinesisRecords([play('radio')]), deps);
    expect(report).toMatchObject({ invalid: 1, deadLettered: 1, forwardedEvents: 0 });
    expect(dlq.queued[0]).toMatchObject({ stage: 'validate', reason: 'target radio is not configured in this processor (TARGETS_FILE)' });
    expect(personalize.eventCalls).toEqual([]);
  });
});

describe('nothing lost', () => {
  it('generates batches that, together, reach every outcome (so the property below is not vacuous)', async () => {
    const totals: Record<string, number> = {};
    for (const seed of SEEDS) {
      const { records, settings } = await generateBatch(seed);
      const { report } = await processBatch(records, setup(settings).deps);
      for (const key of ['forwardedEvents', 'forwardedItems', 'forwardedUsers', 'duplicates', 'superseded', 'profilesHeld', 'notConfigured', 'links', 'rejectedByPersonalize', 'stitched'] as const) {
        totals[key] = (totals[key] ?? 0) + report[key];
      }
      for (const [stage, n] of Object.entries(report.deadLetterByStage)) totals[`dl:${stage}`] = (totals[`dl:${stage}`] ?? 0) + n;
    }
    for (const [key, n] of Object.entries(totals)) expect(n, key).toBeGreaterThan(0);
    expect(Object.keys(totals)).toEqual(expect.arrayContaining(['dl:decode', 'dl:validate', 'dl:preflight', 'dl:personalize']));
  });

  for (const seed of SEEDS) {
    it(`accounts for every message of generated mixed batch #${seed}: forwarded, dead-lettered, or filtered with a counted reason`, async () => {
      const { records, messages, settings } = await generateBatch(seed);
      const { personalize, archive, dlq, deps } = setup(settings);
      const { response, report } = await processBatch(records, deps);

      expect(response.batchItemFailures).toEqual([]);
      expect(report.messages).toBe(messages);
      expect(accountedFor(report)).toBe(report.messages);

      // The counts match what the fakes saw.
      expect(personalize.delivered).toHaveLength(report.forwardedEvents);
      expect(personalize.itemCalls.flatMap((c) => c.items ?? [])).toHaveLength(report.forwardedItems);
      expect(personalize.userCalls.flatMap((c) => c.users ?? [])).toHaveLength(report.forwardedUsers);
      expect(dlq.queued).toHaveLength(report.deadLettered);
      expect(archive.records()).toHaveLength(report.messages - report.invalid - report.duplicates);
      expect(report.deadLettered).toBe(report.invalid + report.rejectedByPersonalize);
      // Every interaction (session + eventId: dedupeKey) delivered once; nothing Personalize refused was delivered.
      const delivered = personalize.delivered.map((d) => `${d.sessionId}|${d.eventId}`);
      expect(new Set(delivered).size).toBe(delivered.length);
      expect(delivered.filter((id) => id.includes('|bad-'))).toEqual([]);
      // Some of everything was generated, so the check is not vacuous.
      expect(report.forwardedEvents).toBeGreaterThan(0);
      expect(report.deadLettered).toBeGreaterThan(0);
    });
  }
});
