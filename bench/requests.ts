import { S3Bucket } from '../shared/aws/s3-bucket.js';
import { SqsDeadLetterQueue } from '../shared/aws/sqs.js';
import { LinkCache } from '../shared/identity/cache.js';
import { DynamoIdentityStore } from '../shared/aws/dynamo-identity.js';
import { SdkPersonalizeSender } from '../shared/aws/personalize.js';
import { processBatch, type ProcessorDeps, type ProcessorSettings } from '../shared/process/process-batch.js';
import { DynamoProfileStore } from '../shared/aws/dynamo-profiles.js';
import { DEFAULT_TARGET } from '../shared/targets.js';
import { CallSplit, IDENTITY_SCOPE, profileScope, splitDynamo, splitPersonalize, splitS3, type SplitKind } from './lib/call-split.js';
import { CallLog, FakeDynamo, FakePersonalizeEvents, FakeS3, FakeSqs, type Operation } from './lib/fake-aws.js';
import { entry, isMain, row, type Measure, type Row, type Table } from './lib/harness.js';
import { decodeRecord, emptyCounts, MinimumModel, type CallCounts, type NaiveCounts } from './lib/minimums.js';
import { collectDay, DAY_SIZES, esmBatches, processorSettings, type CollectedDay } from './lib/pipeline-data.js';
import { processorTargets, SECOND_TARGET, twoTargets } from './lib/two-targets.js';

/**
 * Measurement 1: AWS requests per 1,000 events on a synthetic day, next to the minimum the
 * batching rules allow for the same batches and to a one-event-per-call forwarder.
 * The processor runs with its production adapters (DynamoIdentityStore, DynamoProfileStore,
 * S3Bucket, SdkPersonalizeSender, SqsDeadLetterQueue) over in-memory SDK clients that count
 * every call.
 *
 * `--two-targets` (issue 18, docs/targets.md): the same day with a second target declared, routed
 * and stamped by the real collector, processed with both targets configured; calls per 1,000
 * source events and per 1,000 stream records next to the per-target minimum and to one target.
 */

/** The processor's documented cache defaults (IDENTITY_CACHE_TTL_SECONDS, ..._NEGATIVE_...). */
export const CACHE_POLICY = { positiveTtlMs: 900_000, negativeTtlMs: 5_000, maxEntries: 100_000 };
export const SHARDS = 2;

interface PassResult {
  batchSize: number;
  batches: number;
  calls: Map<Operation, number>;
  keysRead: number;
  /** The same calls by scope (a target, or the shared identity links) and kind. */
  split: CallSplit;
  minimum: CallCounts;
  /** The minimum per target (identity's shared calls in none). */
  minimumByTarget: Map<string, CallCounts>;
  naive: NaiveCounts;
  messages: number;
  duplicates: number;
  stitched: number;
}

/** Which target a tracking id or dataset ARN belongs to, from the processor's settings. */
function targetResolver(settings: ProcessorSettings): (id: string | undefined) => string {
  const owners = new Map<string, string>();
  const own = (name: string, t: Pick<ProcessorSettings, 'trackingId' | 'itemsDatasetArn' | 'usersDatasetArn'>) => {
    for (const id of [t.trackingId, t.itemsDatasetArn, t.usersDatasetArn]) if (id) owners.set(id, name);
  };
  own(DEFAULT_TARGET, settings);
  for (const [name, t] of settings.targets ?? []) own(name, t);
  return (id) => {
    const name = id === undefined ? undefined : owners.get(id);
    if (name === undefined) throw new Error(`call split: ${id ?? '(none)'} is no target's tracker or dataset`);
    return name;
  };
}

async function pass(day: CollectedDay, batchSize: number, settings: ProcessorSettings = processorSettings()): Promise<PassResult> {
  const log = new CallLog();
  const dynamo = new FakeDynamo(log);
  const s3 = new FakeS3(log);
  const sqs = new FakeSqs(log);
  const personalize = new FakePersonalizeEvents(log);
  const split = new CallSplit();
  const model = new MinimumModel(CACHE_POLICY);
  let clock = 0;
  const now = () => clock;
  // Pass-through counters by target (bench/lib/call-split.ts): they read requests, never change them.
  const identityClient = splitDynamo(dynamo.asClient(), split, () => IDENTITY_SCOPE);
  const profilesClient = splitDynamo(dynamo.asClient(), split, profileScope(DEFAULT_TARGET));
  const s3Client = splitS3(s3.asClient(), split, DEFAULT_TARGET);
  const personalizeClient = splitPersonalize(personalize.asClient(), split, targetResolver(settings));
  // One warm container per shard, as the event source mapping runs them; one table for all.
  const containers = Array.from({ length: day.shards.length }, (): ProcessorDeps => {
    const archive = new S3Bucket(s3Client, 'bench-archive');
    return {
      identity: new DynamoIdentityStore(identityClient, 'bench-identity'),
      profiles: new DynamoProfileStore(profilesClient, 'bench-identity'),
      linkCache: new LinkCache(CACHE_POLICY, now),
      archive,
      dlq: new SqsDeadLetterQueue(sqs.asClient(), 'https://sqs.us-east-1.amazonaws.com/000000000000/bench-dlq', archive),
      // Pacing off: it spaces calls in time but never changes how many there are.
      personalize: new SdkPersonalizeSender(personalizeClient, { itemsPerSecond: 0, usersPerSecond: 0 }),
      settings,
      now,
    };
  });
  const batches = esmBatches(day.shards, batchSize);
  let messages = 0;
  let duplicates = 0;
  let stitched = 0;
  for (const batch of batches) {
    clock = batch.invokeAt;
    const { report } = await processBatch(batch.records, containers[batch.shard]!);
    // The minimum model assumes every record is valid and delivered; anything else is a bench bug.
    if (report.deadLettered > 0 || report.retried > 0 || report.invalid > 0) {
      throw new Error(`synthetic day: batch on shard ${batch.shard} dead-lettered ${report.deadLettered}, retried ${report.retried}: ${report.failure ?? ''}`);
    }
    messages += report.messages;
    duplicates += report.duplicates;
    stitched += report.stitched;
    model.batch(batch.shard, batch.records, clock);
  }
  return {
    batchSize,
    batches: batches.length,
    calls: new Map(log.counts),
    keysRead: log.dynamoKeysRead,
    split,
    minimum: model.minimum,
    minimumByTarget: model.byTarget,
    naive: model.naive,
    messages,
    duplicates,
    stitched,
  };
}

const HEADLINES = new Set(['Personalize, all calls', 'DynamoDB + S3 calls', 'All AWS calls']);

function tableFor(day: CollectedDay, p: PassResult): Table {
  const per1k = (n: number) => (n * 1000) / day.records;
  const c = (op: Operation) => p.calls.get(op) ?? 0;
  const line = (name: string, figure: number, minimum: number, naive: number | undefined, target?: Row['target'], note?: string, unit = 'calls / 1k events'): Row =>
    row({
      name,
      ...(HEADLINES.has(name) && { headline: true }),
      figure: per1k(figure),
      unit,
      floor: per1k(minimum),
      floorKind: 'minimum',
      ...(target && { target }),
      ...(naive !== undefined && { reference: per1k(naive) }),
      ...(note && { note }),
    });
  const personalizeOps = c('Personalize.PutEvents') + c('Personalize.PutItems') + c('Personalize.PutUsers');
  const personalizeMin = p.minimum.putEvents + p.minimum.putItems + p.minimum.putUsers;
  const personalizeNaive = p.naive.putEvents + p.naive.putItems + p.naive.putUsers;
  const dynamoOps = c('DynamoDB.BatchGetItem') + c('DynamoDB.BatchWriteItem');
  const dynamoMin = p.minimum.batchGet + p.minimum.batchWrite;
  const dynamoNaive = p.naive.getItem + p.naive.putItem;
  const total = personalizeOps + dynamoOps + c('S3.PutObject') + c('SQS.SendMessageBatch') + day.putRecordsCalls;
  // The archive and the record of what PutEvents accepted (issue 14): both are the processor's output.
  const s3Min = p.minimum.s3Puts + p.minimum.s3Forwarded;
  const totalMin = personalizeMin + dynamoMin + s3Min + day.putRecordsMinimum;
  const totalNaive = personalizeNaive + dynamoNaive + p.naive.s3Puts + day.records;
  const exact = { op: '=' as const, value: 1 };
  const within10 = { op: '<=' as const, value: 1.1 };
  return {
    title: `Batch size ${p.batchSize} (${p.batches} batches over ${day.shards.length} shards)`,
    referenceLabel: 'one event per call',
    rows: [
      line('Personalize PutEvents', c('Personalize.PutEvents'), p.minimum.putEvents, p.naive.putEvents, exact),
      line('Personalize PutItems', c('Personalize.PutItems'), p.minimum.putItems, p.naive.putItems, exact),
      line('Personalize PutUsers', c('Personalize.PutUsers'), p.minimum.putUsers, p.naive.putUsers, exact),
      line('Personalize, all calls', personalizeOps, personalizeMin, personalizeNaive, exact),
      line('DynamoDB BatchGetItem (naive: GetItem)', c('DynamoDB.BatchGetItem'), p.minimum.batchGet, p.naive.getItem, within10),
      line('DynamoDB BatchWriteItem (naive: PutItem)', c('DynamoDB.BatchWriteItem'), p.minimum.batchWrite, p.naive.putItem, within10),
      line('DynamoDB keys read (billed per item)', p.keysRead, p.minimum.keysRead, p.naive.getItem, within10, undefined, 'keys / 1k events'),
      line('DynamoDB, all calls', dynamoOps, dynamoMin, dynamoNaive, within10),
      line('S3 PutObject (archive, forwarded record)', c('S3.PutObject'), s3Min, p.naive.s3Puts, within10),
      line('DynamoDB + S3 calls', dynamoOps + c('S3.PutObject'), dynamoMin + s3Min, dynamoNaive + p.naive.s3Puts, within10),
      line('SQS SendMessageBatch (DLQ)', c('SQS.SendMessageBatch'), 0, undefined, undefined, 'no invalid records in the synthetic day'),
      line('Kinesis PutRecords (collector)', day.putRecordsCalls, day.putRecordsMinimum, day.records, undefined, 'minimum: ceil(records / 500) per collector request'),
      line('All AWS calls', total, totalMin, totalNaive),
    ],
    notes: [
      `${p.messages} messages processed, ${p.duplicates} duplicates dropped in-batch, ${p.stitched} anonymous interactions stitched to a user.`,
    ],
  };
}

export const measure: Measure = async ({ quick }) => {
  const day = await collectDay({ sessions: quick ? DAY_SIZES.quick : DAY_SIZES.full }, SHARDS);
  const passes = [];
  for (const size of [100, 1000]) passes.push(await pass(day, size));
  const s = day.day.stats;
  return {
    title: 'AWS requests per 1,000 events (synthetic day)',
    params: {
      sessions: s.sessions,
      streamRecords: day.records,
      shards: SHARDS,
      trackerRequests: day.day.requests.length,
      loginShare: Number((s.loginSessions / s.sessions).toFixed(3)),
      knownShare: Number((s.knownSessions / s.sessions).toFixed(3)),
      anonymousShare: Number((s.anonymousSessions / s.sessions).toFixed(3)),
      longestSession: s.longestSession,
      itemUpdates: s.itemUpdates,
      userUpdates: s.userUpdates,
      retriedRequests: s.retriedRequests,
    },
    tables: passes.map((p) => tableFor(day, p)),
    notes: [
      `Events = records on the stream (canonical messages after the collector): ${day.records} from ${s.trackerMessages + s.itemUpdates + s.userUpdates} source messages (${day.filtered} filtered by the collector, e.g. page views without a product; orders split per product).`,
      `Sessions: ${(100 * s.loginSessions / s.sessions).toFixed(0)}% anonymous then logging in part-way (identify, 15% alias), ${(100 * s.knownSessions / s.sessions).toFixed(0)}% of a known user, ${(100 * s.anonymousSessions / s.sessions).toFixed(0)}% anonymous throughout; log-normal lengths (longest ${s.longestSession}); ${s.retriedRequests} tracker requests sent twice (duplicates).`,
      'Batches are cut by size only, per shard in order, as the event source mapping cuts them when traffic fills a batch within its window; at low traffic the window cuts smaller batches and every per-batch cost (S3 objects, reads, writes) rises per event for us and for the minimum alike.',
      'The minimum is computed from the records by bench/lib/minimums.ts, independently of the processor: per batch, dedupe by eventId, then PutEvents per (stitched user, session) ceil(n/10), PutItems/PutUsers ceil(distinct ids/10), BatchGetItem ceil(sessions not in the warm cache/100) under the documented cache policy (found links 900 s, "no link yet" 5 s, one cache per shard), BatchWriteItem ceil(first-time links/25), S3 one object per (kind, event-time hour) and one forwarded-record object per event-time day of interactions.',
      'One event per call: PutEvents/PutItems/PutUsers per message (duplicates included), one GetItem per interaction, one PutItem per identify/alias, one PutObject per message, one PutRecord per record.',
      'Two targets (issue 18): `npx tsx bench/requests.ts --two-targets` runs the same day with a second target, against the minimum per target; recorded in "AWS requests with two targets (issue 18)" below.',
    ],
  };
};

// ------------------------------------------------------------------------------------------------
// Two targets (issue 18, docs/targets.md)

/** A pass's calls (or the model's minimum) in the split the two-target table shows. */
interface Figures {
  putEvents: number;
  putItems: number;
  putUsers: number;
  identityGet: number;
  identityWrite: number;
  profileGet: number;
  profileWrite: number;
  identityKeys: number;
  profileKeys: number;
  archive: number;
  forwarded: number;
  sqs: number;
  putRecords: number;
}

function measured(day: CollectedDay, p: PassResult): Figures {
  const c = (op: Operation) => p.calls.get(op) ?? 0;
  const f: Figures = {
    putEvents: c('Personalize.PutEvents'),
    putItems: c('Personalize.PutItems'),
    putUsers: c('Personalize.PutUsers'),
    identityGet: p.split.get(IDENTITY_SCOPE, 'BatchGetItem'),
    identityWrite: p.split.get(IDENTITY_SCOPE, 'BatchWriteItem'),
    profileGet: p.split.total('BatchGetItem', IDENTITY_SCOPE),
    profileWrite: p.split.total('BatchWriteItem', IDENTITY_SCOPE),
    identityKeys: p.split.get(IDENTITY_SCOPE, 'keysRead'),
    profileKeys: p.split.total('keysRead', IDENTITY_SCOPE),
    archive: p.split.total('archive'),
    forwarded: p.split.total('forwarded'),
    sqs: c('SQS.SendMessageBatch'),
    putRecords: day.putRecordsCalls,
  };
  // The split counts the calls the clients counted, no more and no fewer.
  const checks: [string, number, number][] = [
    ['PutEvents', p.split.total('PutEvents'), f.putEvents],
    ['PutItems', p.split.total('PutItems'), f.putItems],
    ['PutUsers', p.split.total('PutUsers'), f.putUsers],
    ['BatchGetItem', f.identityGet + f.profileGet, c('DynamoDB.BatchGetItem')],
    ['BatchWriteItem', f.identityWrite + f.profileWrite, c('DynamoDB.BatchWriteItem')],
    ['keys read', f.identityKeys + f.profileKeys, p.keysRead],
    ['PutObject', f.archive + f.forwarded, c('S3.PutObject')],
  ];
  for (const [what, split, counted] of checks) if (split !== counted) throw new Error(`call split: ${what} ${split} by target, ${counted} counted`);
  return f;
}

function minimumOf(day: CollectedDay, m: CallCounts): Figures {
  return {
    putEvents: m.putEvents,
    putItems: m.putItems,
    putUsers: m.putUsers,
    identityGet: m.batchGet - m.profileGet,
    identityWrite: m.batchWrite - m.profileWrite,
    profileGet: m.profileGet,
    profileWrite: m.profileWrite,
    identityKeys: m.keysRead - m.profileKeysRead,
    profileKeys: m.profileKeysRead,
    archive: m.s3Puts,
    forwarded: m.s3Forwarded,
    sqs: 0,
    putRecords: day.putRecordsMinimum,
  };
}

const personalizeOf = (f: Figures) => f.putEvents + f.putItems + f.putUsers;
const dynamoOf = (f: Figures) => f.identityGet + f.identityWrite + f.profileGet + f.profileWrite;
const s3Of = (f: Figures) => f.archive + f.forwarded;
const allOf = (f: Figures) => personalizeOf(f) + dynamoOf(f) + s3Of(f) + f.sqs + f.putRecords;

/** What the second target's own calls were (Personalize, its profiles, its S3 objects), measured and minimum. */
function targetShare(p: PassResult, target: string): { measured: { personalize: number; dynamo: number; s3: number }; minimum: { personalize: number; dynamo: number; s3: number } } {
  const g = (kind: SplitKind) => p.split.get(target, kind);
  const m = p.minimumByTarget.get(target) ?? emptyCounts();
  return {
    measured: { personalize: g('PutEvents') + g('PutItems') + g('PutUsers'), dynamo: g('BatchGetItem') + g('BatchWriteItem'), s3: g('archive') + g('forwarded') },
    minimum: { personalize: m.putEvents + m.putItems + m.putUsers, dynamo: m.profileGet + m.profileWrite, s3: m.s3Puts + m.s3Forwarded },
  };
}

interface TwoTargetPass {
  batchSize: number;
  one: PassResult;
  two: PassResult;
}

/**
 * One table: the two-target day's calls per 1,000 `per` (source events or stream records), its
 * minimum, and the one-target day's calls per 1,000 of the same unit as the reference.
 */
function twoTargetTable(one: CollectedDay, two: CollectedDay, t: TwoTargetPass, per: 'source events' | 'stream records'): Table {
  const oneDenominator = one.records;
  const twoDenominator = per === 'source events' ? one.records : two.records;
  const unit = `calls / 1k ${per}`;
  const fig = measured(two, t.two);
  const min = minimumOf(two, t.two.minimum);
  const ref = measured(one, t.one);
  const exact = { op: '=' as const, value: 1 };
  const within10 = { op: '<=' as const, value: 1.1 };
  const line = (name: string, figure: number, minimum: number | undefined, reference: number | undefined, target?: Row['target'], rowUnit = unit): Row =>
    row({
      name,
      figure: (figure * 1000) / twoDenominator,
      unit: rowUnit,
      ...(minimum !== undefined && { floor: (minimum * 1000) / twoDenominator, floorKind: 'minimum' }),
      ...(target && { target }),
      ...(reference !== undefined && { reference: (reference * 1000) / oneDenominator }),
    });
  const share = targetShare(t.two, SECOND_TARGET);
  return {
    title: `Two targets, batch size ${t.batchSize}, per 1,000 ${per} (${t.two.batches} batches over ${two.shards.length} shards)`,
    referenceLabel: `one target, per 1k ${per === 'source events' ? 'events' : 'stream records'}`,
    rows: [
      line('Personalize PutEvents (per target, user, session)', fig.putEvents, min.putEvents, ref.putEvents, exact),
      line('Personalize PutItems (per target)', fig.putItems, min.putItems, ref.putItems, exact),
      line('Personalize PutUsers (per target)', fig.putUsers, min.putUsers, ref.putUsers, exact),
      line('Personalize, all calls', personalizeOf(fig), personalizeOf(min), personalizeOf(ref), exact),
      line(`Personalize calls of target ${SECOND_TARGET}`, share.measured.personalize, share.minimum.personalize, undefined, exact),
      line('DynamoDB BatchGetItem, identity (shared)', fig.identityGet, min.identityGet, ref.identityGet, within10),
      line('DynamoDB BatchWriteItem, identity (shared)', fig.identityWrite, min.identityWrite, ref.identityWrite, within10),
      line('DynamoDB BatchGetItem, profiles (per target)', fig.profileGet, min.profileGet, ref.profileGet, within10),
      line('DynamoDB BatchWriteItem, profiles (per target)', fig.profileWrite, min.profileWrite, ref.profileWrite, within10),
      line('DynamoDB keys read, identity (shared)', fig.identityKeys, min.identityKeys, ref.identityKeys, within10, unit.replace('calls', 'keys')),
      line('DynamoDB keys read, profiles (per target)', fig.profileKeys, min.profileKeys, ref.profileKeys, within10, unit.replace('calls', 'keys')),
      line('DynamoDB, all calls', dynamoOf(fig), dynamoOf(min), dynamoOf(ref), within10),
      line(`DynamoDB calls of target ${SECOND_TARGET} (its profiles)`, share.measured.dynamo, share.minimum.dynamo, undefined, within10),
      line('S3 PutObject, archive (per target, kind, hour)', fig.archive, min.archive, ref.archive, within10),
      line('S3 PutObject, forwarded record (per target, day)', fig.forwarded, min.forwarded, ref.forwarded, within10),
      line('S3 PutObject, all', s3Of(fig), s3Of(min), s3Of(ref), within10),
      line(`S3 PutObject of target ${SECOND_TARGET}`, share.measured.s3, share.minimum.s3, undefined, within10),
      line('DynamoDB + S3 calls', dynamoOf(fig) + s3Of(fig), dynamoOf(min) + s3Of(min), dynamoOf(ref) + s3Of(ref), within10),
      line('SQS SendMessageBatch (DLQ)', fig.sqs, min.sqs, ref.sqs),
      line('Kinesis PutRecords (collector)', fig.putRecords, min.putRecords, ref.putRecords),
      line('All AWS calls', allOf(fig), allOf(min), allOf(ref)),
      ...(per === 'source events' ? [line('Stream records (the collector\'s fan-out)', two.records, undefined, one.records, undefined, `records / 1k ${per}`)] : []),
    ],
    notes: [
      `${t.two.messages} records processed (${t.one.messages} with one target), ${t.two.duplicates} duplicates dropped in-batch, ${t.two.stitched} anonymous interactions stitched to a user.`,
    ],
  };
}

/** Records the collector stamped for a target other than the default, by kind; and the unstamped ones. */
function fanOut(day: CollectedDay): { unstamped: number; stamped: Map<string, number> } {
  const stamped = new Map<string, number>();
  let unstamped = 0;
  for (const record of day.shards.flat()) {
    const m = decodeRecord(record);
    if (m.target === undefined) unstamped++;
    else stamped.set(m.kind, (stamped.get(m.kind) ?? 0) + 1);
  }
  return { unstamped, stamped };
}

function kindsOf(day: CollectedDay): Map<string, number> {
  const kinds = new Map<string, number>();
  for (const record of day.shards.flat()) {
    const { kind } = decodeRecord(record);
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  return kinds;
}

export const measureTwoTargets: Measure = async ({ quick }) => {
  const sessions = quick ? DAY_SIZES.quick : DAY_SIZES.full;
  const targets = twoTargets();
  const one = await collectDay({ sessions }, SHARDS);
  const two = await collectDay({ sessions }, SHARDS, targets);
  // The second day is the first plus the second target's copies: anything else is a bench bug.
  const { unstamped, stamped } = fanOut(two);
  if (unstamped !== one.records) throw new Error(`two targets: ${unstamped} unstamped records, ${one.records} on the one-target day`);
  const copies = [...stamped.values()].reduce((a, b) => a + b, 0);
  if (two.records !== one.records + copies) throw new Error(`two targets: ${two.records} records, expected ${one.records} + ${copies} copies`);
  const settings = processorSettings(8, processorTargets(targets));
  const passes: TwoTargetPass[] = [];
  for (const batchSize of [100, 1000]) passes.push({ batchSize, one: await pass(one, batchSize), two: await pass(two, batchSize, settings) });
  const kinds = kindsOf(one);
  const pct = (n: number, of: number) => `${((100 * n) / of).toFixed(1)}%`;
  const copied = (kind: string) => `${stamped.get(kind) ?? 0} of ${kinds.get(kind) ?? 0} ${kind === 'interaction' ? 'interactions' : `${kind} updates`} (${pct(stamped.get(kind) ?? 0, kinds.get(kind) ?? 0)})`;
  return {
    title: 'AWS requests with two targets (synthetic day, issue 18)',
    params: {
      sessions: one.day.stats.sessions,
      shards: SHARDS,
      sourceEvents: one.records,
      streamRecords: two.records,
      secondTarget: SECOND_TARGET,
      copiedInteractions: stamped.get('interaction') ?? 0,
      copiedItemUpdates: stamped.get('item') ?? 0,
      copiedUserUpdates: stamped.get('user') ?? 0,
    },
    tables: passes.flatMap((t) => [twoTargetTable(one, two, t, 'source events'), twoTargetTable(one, two, t, 'stream records')]),
    notes: [
      `Targets declared as a targets file declares them (bench/lib/two-targets.ts, parsed by shared/targets.ts parseTargets): \`default\` takes everything; \`${SECOND_TARGET}\` (its own tracker and datasets, the deployment's schemas and mapping) takes interactions with properties.device = ios and everything from the feeds. The real collector routes (routeMessage) and stamps: ${copied('interaction')}, ${copied('item')}, ${copied('user')} get a second stream record; identify/alias are written once.`,
      `Source events = the one-target day's stream records (${one.records}); stream records = the two-target day's (${two.records}, ${pct(two.records - one.records, one.records)} more). The one-target reference is the same day through the same processor with one target (bench/requests.ts without --two-targets; its DynamoDB and S3 rows split the same way).`,
      'The minimum is bench/lib/minimums.ts per target (docs/targets.md): dedupe per (eventId, target); identity reads and first-time links once for the batch whichever targets its events go to (shared); PutEvents per (target, stitched user, session) ceil(n/10); PutItems/PutUsers per target ceil(distinct ids/10); profile reads/writes per target ceil(ids/100) / ceil(ids/25); S3 one archive object per (target, kind, event-time hour) and one forwarded-record object per (target, event-time day) of interactions. Like the one-target model, it counts identity and profile reads as separate calls; one BatchGetItem could carry both (and both targets\' profile keys), which neither model counts.',
      'The forwarded record (forwarded/interactions/, one object per event-time day of the interactions PutEvents accepted, issue 14) is a row of its own here; the one-target table counts it in its one S3 row, against a minimum that counts it too.',
    ],
  };
};

if (isMain(import.meta.url)) {
  if (process.argv.includes('--two-targets')) await entry('requests-two-targets', 'requests.ts --two-targets', measureTwoTargets);
  else await entry('requests', 'requests.ts', measure);
}
