import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import type { PutEventsCommandInput } from '@aws-sdk/client-personalize-events';
import { parse } from 'csv-parse/sync';
import type { ArchiveStore } from '../shared/archive.js';
import { NO_DELETED_USERS } from '../shared/deletion.js';
import { exportDay } from '../shared/export/export-day.js';
import type { ArchiveObjectInfo, ArchiveSource, LinkLookup } from '../shared/export/ports.js';
import { userAt } from '../shared/identity/attribution.js';
import { LinkCache } from '../shared/identity/cache.js';
import { claimsOf, type IdentityLink } from '../shared/identity/store.js';
import { DynamoIdentityStore } from '../shared/aws/dynamo-identity.js';
import { loadDatasetSchemas } from '../shared/personalize/dataset-schema.js';
import { knownUserSessionId } from '../shared/personalize/put-session.js';
import { processBatch, type ProcessorDeps } from '../shared/process/process-batch.js';
import { DynamoProfileStore } from '../shared/aws/dynamo-profiles.js';
import type { BulkMode } from '../shared/bulk-mode.js';
import { MemoryDlq, MemoryPersonalize } from '../test/support/memory-ports.js';
import { FsArchiveSource, FsImportStore } from '../test/support/fs-adapters.js';
import { CallLog, FakeDynamo } from './lib/fake-aws.js';
import { isMain, machine } from './lib/harness.js';
import { collectDay, DAY_SIZES, esmBatches, processorSettings } from './lib/pipeline-data.js';

/**
 * How many times each interaction reaches Personalize's training data, bulk and PUT together
 * (issue 14 §1, docs/bulk-modes.md "Measured"). A synthetic day goes through the real collector,
 * the real processor core (in-memory AWS, every PutEvents call recorded, archive and forwarded/
 * written to a directory) and the real exportDay; the copies are then counted per event
 * (processor dedupe key: sessionId + eventId) under this model of Personalize:
 * - a PUT event with a userId is one copy under that user;
 * - an anonymous PUT event (session S) is one copy under U when some PUT event carries S with U
 *   (the merge at the next full retraining), else none;
 * - a later PUT event with an eventId already recorded is not trained on (FACTS §1b);
 * - every bulk CSV row is one copy.
 * Two copies are identical when (USER_ID, ITEM_ID, TIMESTAMP s, EVENT_TYPE, EVENT_VALUE) agree.
 *
 *   npm run bench:reconcile [-- --sessions N ... --seed S --keep]
 */

export type ScenarioName = 'before' | 'complement' | 'bulk-only' | 'bootstrap';
export const SCENARIOS: readonly ScenarioName[] = ['before', 'complement', 'bulk-only', 'bootstrap'];

export interface ReconcileOptions {
  sessions: number;
  seed: number;
  shards?: number;
  batchSize?: number;
  scenarios?: readonly ScenarioName[];
  /** Keep the temporary directory (archive, CSVs) and say where it is. */
  keep?: boolean;
}

export interface ScenarioCounts {
  scenario: ScenarioName;
  /** What the scenario emulates. */
  description: string;
  /** Events in PutEvents calls (accepted: the fake never refuses). */
  putEvents: number;
  /** PUT events Personalize would skip: an eventId it had already recorded (tracker retries). */
  putResentIgnored: number;
  /** PUT copies that count in training (with a user, or merged into one). */
  putTrainingCopies: number;
  /** Of those, anonymous PUT events merged into a user (a PUT event carried their session with a user). */
  putAnonymousMerged: number;
  /** Anonymous PUT events never merged into a user: Personalize never trains on them. */
  putAnonymousUnmerged: number;
  bulkRows: number;
  /** Bulk rows identical to a training-visible PUT copy of the same event. */
  bulkRowsIdenticalToStreamed: number;
  /** Bulk rows no archived event explains (must be 0: the bench's own check). */
  bulkRowsUnmatched: number;
  /** Events by number of training-visible copies: index 0, 1, 2, 3 (3 = three or more). */
  eventsByCopies: [number, number, number, number];
  eventsWithTwoOrMoreCopies: number;
  /** Events whose copies are 2 / 3+ different records. */
  eventsTwoDifferentRecords: number;
  eventsThreeDifferentRecords: number;
  /** Events the export attributes to a user (own, stitched or a login link) with no copy at all. */
  attributableWithoutCopy: number;
  /** Events with exactly one copy, under another user than the export's attribution. */
  oneCopyOtherUser: number;
  /** Anonymous events of sessions never linked: no user, so no copy anywhere (expected). */
  unattributable: number;
  /**
   * Linked sessions with anonymous PUT events and no PUT event carrying the session with a user:
   * Personalize never merges them (the gap of the old design; by design in complement).
   */
  unmergedLinkedSessions: number;
  unmergedLinkedSessionEvents: number;
  /** Sessions Personalize sees with more than one userId (its merge target is then undocumented). */
  putSessionsWithSeveralUsers: number;
  exportSeconds: number;
  /** The export's own counts, summed over the days. */
  manifest: { read: number; duplicates: number; streamed: number; backfilled: number; anonymousWithoutLink: number; exported: number };
}

export interface ReconcileResult {
  sessions: number;
  seed: number;
  shards: number;
  batchSize: number;
  days: string[];
  streamRecords: number;
  loginSessions: number;
  knownSessions: number;
  anonymousSessions: number;
  retriedRequests: number;
  /** Unique (sessionId, eventId) interactions in the archive: every one the processor accepted. */
  validInteractions: number;
  /** Archive lines that repeat a key (tracker retries landing in another batch). */
  archivedRepeats: number;
  /** Valid interactions the export can attribute to a user. */
  attributable: number;
  linkedSessions: number;
  stitchedEvents: number;
  /**
   * Stitched events whose real-time user is not the one userAt gives with every login known (a
   * session claimed by two users): the export keeps the stitched user, so nothing corrects them.
   */
  stitchedOtherUser: number;
  deadLettered: number;
  processSeconds: number;
  scenarios: ScenarioCounts[];
  workDir?: string;
}

const DESCRIPTIONS: Record<ScenarioName, string> = {
  before: 'before this change: PutEvents with the real sessionId on events with a user, nightly import of every valid interaction (bulk-only rules)',
  complement: 'after, BULK_MODE=complement: derived session on events with a user, import of what PutEvents never accepted plus anonymous history under its user',
  'bulk-only': 'BULK_MODE=bulk-only: no PutEvents, import of every valid interaction, backfilled',
  bootstrap: 'BULK_MODE=bootstrap: no PutEvents, one FULL import of the whole range (here the day and the spill into the next), backfilled',
};

/** The archive port the processor writes to, on a directory laid out like the bucket. */
class DirArchive implements ArchiveStore {
  constructor(private readonly root: string) {}
  async put(key: string, body: Buffer): Promise<void> {
    const path = join(this.root, key);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, body);
  }
}

/** The archive without its forwarded/ record: the old deployment wrote none. */
class WithoutForwarded implements ArchiveSource {
  constructor(private readonly inner: FsArchiveSource) {}
  list(prefix: string): Promise<ArchiveObjectInfo[]> {
    return prefix.startsWith('forwarded/') ? Promise.resolve([]) : this.inner.list(prefix);
  }
  open(key: string) {
    return this.inner.open(key);
  }
  localPath(key: string): string {
    return this.inner.localPath(key);
  }
}

interface ProcessedDay {
  root: string;
  putEvents: PutEventsCommandInput[];
  deadLettered: number;
  identity: DynamoIdentityStore;
}

/** The day's batches through processBatch, one warm container per shard (as bench/requests.ts). */
async function processDay(shards: Parameters<typeof esmBatches>[0], batchSize: number, bulkMode: BulkMode, root: string): Promise<ProcessedDay> {
  const log = new CallLog();
  const dynamo = new FakeDynamo(log);
  const identity = new DynamoIdentityStore(dynamo.asClient(), 'bench-identity');
  const personalize = new MemoryPersonalize();
  personalize.captured = { putEvents: [], putItems: [], putUsers: [] };
  const dlq = new MemoryDlq();
  let clock = 0;
  const now = () => clock;
  const settings = { ...processorSettings(), bulkMode };
  const containers = shards.map(
    (): ProcessorDeps => ({
      identity,
      profiles: new DynamoProfileStore(dynamo.asClient(), 'bench-identity'),
      linkCache: new LinkCache({ positiveTtlMs: 900_000, negativeTtlMs: 5_000, maxEntries: 100_000 }, now),
      archive: new DirArchive(root),
      dlq,
      personalize,
      settings,
      now,
    }),
  );
  for (const batch of esmBatches(shards, batchSize)) {
    clock = batch.invokeAt;
    const { report } = await processBatch(batch.records, containers[batch.shard]!);
    if (report.retried > 0) throw new Error(`batch on shard ${batch.shard} asked for a retry: ${report.failure ?? ''}`);
  }
  return { root, putEvents: personalize.captured.putEvents, deadLettered: dlq.records.length, identity };
}

async function filesUnder(root: string, prefix: string): Promise<string[]> {
  const base = join(root, prefix);
  let entries;
  try {
    entries = await readdir(base, { recursive: true, withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(root, join(e.parentPath, e.name)).split(sep).join('/'))
    .sort();
}

/** One valid interaction as the archive holds it (the winning copy, as the export dedupes). */
interface Truth {
  key: string;
  sessionId: string;
  itemId: string;
  seconds: number;
  timestampMs: number;
  eventType: string;
  eventValue: string;
  /** Own or stitched userId of the winning copy. */
  userId: string | undefined;
  /** The export's user: the winner's userId, else userAt over the session's claims. */
  exportUser: string | undefined;
}

interface ArchivedLine {
  sessionId: string;
  eventId: string;
  userId?: string;
  stitched?: boolean;
  itemId?: string;
  eventType: string;
  eventValue?: number;
  timestamp: number;
}

const keyOf = (sessionId: string, eventId: string) => `${sessionId}\u0000${eventId}`;
const valueText = (v: number | string | undefined) => (v === undefined || v === '' ? '' : String(Number(v)));
const recordOf = (user: string, itemId: string, seconds: number, eventType: string, eventValue: string) => JSON.stringify([user, itemId, seconds, eventType, eventValue]);
/** Events match bulk rows by everything but the user. */
const contentOf = (itemId: string, seconds: number, eventType: string, eventValue: string) => JSON.stringify([itemId, seconds, eventType, eventValue]);

async function readTruth(root: string, identity: DynamoIdentityStore): Promise<{ truths: Map<string, Truth>; repeats: number; stitched: number; stitchedOtherUser: number; links: Map<string, IdentityLink> }> {
  const winners = new Map<string, ArchivedLine>();
  let repeats = 0;
  // Keys sort like the export's object order (fixed-width sequence numbers): the first copy wins.
  for (const key of await filesUnder(root, 'archive/interactions/')) {
    const text = gunzipSync(await readFile(join(root, key))).toString('utf8');
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const parsed = JSON.parse(line) as ArchivedLine;
      const k = keyOf(parsed.sessionId, parsed.eventId);
      if (winners.has(k)) repeats++;
      else winners.set(k, parsed);
    }
  }
  const sessions = [...new Set([...winners.values()].map((l) => l.sessionId))];
  const links = await identity.getLinks(sessions);
  const truths = new Map<string, Truth>();
  let stitched = 0;
  let stitchedOtherUser = 0;
  for (const [key, l] of winners) {
    if (l.stitched) {
      stitched++;
      // The export keeps a stitched userId; userAt with every login known may name another user.
      if (userAt(claimsOf(links.get(l.sessionId)), l.timestamp) !== l.userId) stitchedOtherUser++;
    }
    const seconds = Math.floor(l.timestamp / 1000);
    const exportUser = l.userId ?? userAt(claimsOf(links.get(l.sessionId)), l.timestamp);
    truths.set(key, {
      key,
      sessionId: l.sessionId,
      itemId: l.itemId ?? '',
      seconds,
      timestampMs: l.timestamp,
      eventType: l.eventType,
      eventValue: valueText(l.eventValue),
      userId: l.userId,
      exportUser,
    });
  }
  return { truths, repeats, stitched, stitchedOtherUser, links };
}

interface Copy {
  record: string;
  user: string;
  via: 'put' | 'bulk';
}

interface PutOutcome {
  copies: Map<string, Copy[]>;
  putEvents: number;
  resentIgnored: number;
  anonymousMerged: number;
  anonymousUnmerged: number;
  unmergedLinkedSessions: number;
  unmergedLinkedSessionEvents: number;
  sessionsWithSeveralUsers: number;
}

/**
 * The training-visible PUT copies. `derived`: knownUserSessionId(s) -> s for the day's sessions.
 * `oldNaming`: emulate the previous forwarder, which sent an event with a user under the anonymous
 * sessionId itself, so Personalize saw the real session (and merged it).
 */
function putCopies(calls: readonly PutEventsCommandInput[], derived: ReadonlyMap<string, string>, oldNaming: boolean, links: ReadonlyMap<string, IdentityLink>): PutOutcome {
  const realOf = (put: string) => derived.get(put) ?? put;
  const sessionOf = (put: string) => (oldNaming ? realOf(put) : put);
  const usersOf = new Map<string, Set<string>>();
  const firstUser = new Map<string, string>();
  for (const call of calls) {
    if (call.userId === undefined || call.sessionId === undefined) continue;
    const s = sessionOf(call.sessionId);
    if (!firstUser.has(s)) firstUser.set(s, call.userId);
    let set = usersOf.get(s);
    if (!set) usersOf.set(s, (set = new Set()));
    set.add(call.userId);
  }
  const copies = new Map<string, Copy[]>();
  const seen = new Set<string>();
  let putEvents = 0;
  let resentIgnored = 0;
  let anonymousMerged = 0;
  let anonymousUnmerged = 0;
  const unmerged = new Map<string, number>();
  for (const call of calls) {
    const putSession = sessionOf(call.sessionId ?? '');
    for (const e of call.eventList ?? []) {
      putEvents++;
      const eventId = e.eventId ?? '';
      if (seen.has(eventId)) {
        resentIgnored++;
        continue;
      }
      seen.add(eventId);
      const user = call.userId ?? firstUser.get(putSession);
      if (user === undefined) {
        anonymousUnmerged++;
        if (links.has(putSession)) unmerged.set(putSession, (unmerged.get(putSession) ?? 0) + 1);
        continue;
      }
      if (call.userId === undefined) anonymousMerged++;
      const key = keyOf(realOf(call.sessionId ?? ''), eventId);
      const seconds = Math.floor((e.sentAt ?? new Date(0)).getTime() / 1000);
      const copy: Copy = { record: recordOf(user, e.itemId ?? '', seconds, e.eventType ?? '', valueText(e.eventValue)), user, via: 'put' };
      const list = copies.get(key);
      if (list) list.push(copy);
      else copies.set(key, [copy]);
    }
  }
  return {
    copies,
    putEvents,
    resentIgnored,
    anonymousMerged,
    anonymousUnmerged,
    unmergedLinkedSessions: unmerged.size,
    unmergedLinkedSessionEvents: [...unmerged.values()].reduce((a, b) => a + b, 0),
    sessionsWithSeveralUsers: [...usersOf.values()].filter((s) => s.size > 1).length,
  };
}

interface CsvRow {
  USER_ID: string;
  ITEM_ID: string;
  TIMESTAMP: string;
  EVENT_TYPE: string;
  EVENT_VALUE?: string;
}

async function exportRows(
  archive: ArchiveSource,
  out: string,
  workDir: string,
  bulkMode: BulkMode,
  days: readonly string[],
  /** The identity table as the processor left it (claims included). */
  links: LinkLookup,
): Promise<{ rows: CsvRow[]; seconds: number; manifest: ScenarioCounts['manifest'] }> {
  const schemas = loadDatasetSchemas();
  const store = new FsImportStore(out);
  const deps = { archive, store, links, deletedUsers: () => Promise.resolve(NO_DELETED_USERS), settings: { schemas, datasets: {} } };
  // Bootstrap is one run over the range; the other modes export a day at a time.
  const runs = bulkMode === 'bootstrap' ? [{ date: days[days.length - 1]!, from: days[0]! }] : days.map((date) => ({ date }));
  const rows: CsvRow[] = [];
  const manifest = { read: 0, duplicates: 0, streamed: 0, backfilled: 0, anonymousWithoutLink: 0, exported: 0 };
  const t0 = performance.now();
  for (const run of runs) {
    const m = await exportDay(deps, { ...run, bulkMode, import: false, workDir });
    const r = m.kinds.interactions;
    for (const k of Object.keys(manifest) as (keyof typeof manifest)[]) manifest[k] += r[k];
    for (const file of r.files) {
      let text = await readFile(join(out, file.key));
      if (file.key.endsWith('.gz')) text = gunzipSync(text);
      rows.push(...parse<CsvRow>(text, { columns: true, skip_empty_lines: true }));
    }
  }
  return { rows, seconds: (performance.now() - t0) / 1000, manifest };
}

function countScenario(
  scenario: ScenarioName,
  truths: Map<string, Truth>,
  put: PutOutcome | undefined,
  rows: readonly CsvRow[],
  exported: { seconds: number; manifest: ScenarioCounts['manifest'] },
): ScenarioCounts {
  const copies = new Map<string, Copy[]>();
  for (const [key, list] of put?.copies ?? []) copies.set(key, [...list]);
  // Bulk rows back to events: by content, preferring the event the export attributes to the row's user.
  const byContent = new Map<string, Truth[]>();
  for (const t of truths.values()) {
    const c = contentOf(t.itemId, t.seconds, t.eventType, t.eventValue);
    const list = byContent.get(c);
    if (list) list.push(t);
    else byContent.set(c, [t]);
  }
  const taken = new Set<string>();
  let unmatched = 0;
  let identical = 0;
  for (const row of rows) {
    const seconds = Number(row.TIMESTAMP);
    const value = valueText(row.EVENT_VALUE);
    const candidates = (byContent.get(contentOf(row.ITEM_ID, seconds, row.EVENT_TYPE, value)) ?? []).filter((t) => !taken.has(t.key));
    const truth = candidates.find((t) => t.exportUser === row.USER_ID) ?? candidates[0];
    if (!truth) {
      unmatched++;
      continue;
    }
    taken.add(truth.key);
    const record = recordOf(row.USER_ID, row.ITEM_ID, seconds, row.EVENT_TYPE, value);
    const list = copies.get(truth.key) ?? [];
    if (list.some((c) => c.via === 'put' && c.record === record)) identical++;
    list.push({ record, user: row.USER_ID, via: 'bulk' });
    copies.set(truth.key, list);
  }
  const byCopies: [number, number, number, number] = [0, 0, 0, 0];
  let two = 0;
  let three = 0;
  let attributableWithoutCopy = 0;
  let oneCopyOtherUser = 0;
  let unattributable = 0;
  for (const t of truths.values()) {
    const list = copies.get(t.key) ?? [];
    byCopies[Math.min(3, list.length)]!++;
    const distinct = new Set(list.map((c) => c.record)).size;
    if (distinct === 2) two++;
    if (distinct >= 3) three++;
    if (t.exportUser === undefined) unattributable++;
    else if (list.length === 0) attributableWithoutCopy++;
    if (list.length === 1 && t.exportUser !== undefined && list[0]!.user !== t.exportUser) oneCopyOtherUser++;
  }
  return {
    scenario,
    description: DESCRIPTIONS[scenario],
    putEvents: put?.putEvents ?? 0,
    putResentIgnored: put?.resentIgnored ?? 0,
    putTrainingCopies: [...(put?.copies.values() ?? [])].reduce((n, l) => n + l.length, 0),
    putAnonymousMerged: put?.anonymousMerged ?? 0,
    putAnonymousUnmerged: put?.anonymousUnmerged ?? 0,
    bulkRows: rows.length,
    bulkRowsIdenticalToStreamed: identical,
    bulkRowsUnmatched: unmatched,
    eventsByCopies: byCopies,
    eventsWithTwoOrMoreCopies: byCopies[2] + byCopies[3],
    eventsTwoDifferentRecords: two,
    eventsThreeDifferentRecords: three,
    attributableWithoutCopy,
    oneCopyOtherUser,
    unattributable,
    unmergedLinkedSessions: put?.unmergedLinkedSessions ?? 0,
    unmergedLinkedSessionEvents: put?.unmergedLinkedSessionEvents ?? 0,
    putSessionsWithSeveralUsers: put?.sessionsWithSeveralUsers ?? 0,
    exportSeconds: exported.seconds,
    manifest: exported.manifest,
  };
}

/** The whole measurement for one day size. */
export async function reconcileDay(options: ReconcileOptions): Promise<ReconcileResult> {
  const shards = options.shards ?? 2;
  const batchSize = options.batchSize ?? 100;
  const scenarios = options.scenarios ?? SCENARIOS;
  const collected = await collectDay({ sessions: options.sessions, seed: options.seed }, shards);
  const work = await mkdtemp(join(tmpdir(), 'bench-reconcile-'));
  try {
    const t0 = performance.now();
    const streamed = scenarios.some((s) => s === 'before' || s === 'complement');
    const unstreamed = scenarios.some((s) => s === 'bulk-only' || s === 'bootstrap');
    // The archive is the same in every mode; only PutEvents and forwarded/ differ.
    const live = streamed ? await processDay(collected.shards, batchSize, 'complement', join(work, 'complement')) : undefined;
    const dark = unstreamed ? await processDay(collected.shards, batchSize, 'bulk-only', join(work, 'bulk-only')) : undefined;
    const processSeconds = (performance.now() - t0) / 1000;
    const base = (live ?? dark)!;
    const { truths, repeats, stitched, stitchedOtherUser, links } = await readTruth(base.root, base.identity);
    const derived = new Map([...truths.values()].map((t) => [knownUserSessionId(t.sessionId), t.sessionId] as const));
    const days = (await readdir(join(base.root, 'archive/interactions'))).filter((d) => d.startsWith('dt=')).map((d) => d.slice(3)).sort();

    const results: ScenarioCounts[] = [];
    for (const scenario of scenarios) {
      const processed = scenario === 'before' || scenario === 'complement' ? live! : dark!;
      const fs = new FsArchiveSource(processed.root);
      const archive = scenario === 'before' ? new WithoutForwarded(fs) : fs;
      const bulkMode: BulkMode = scenario === 'before' ? 'bulk-only' : scenario;
      const exported = await exportRows(archive, join(work, `out-${scenario}`), work, bulkMode, days, processed.identity);
      const put = scenario === 'before' || scenario === 'complement' ? putCopies(processed.putEvents, derived, scenario === 'before', links) : undefined;
      results.push(countScenario(scenario, truths, put, exported.rows, exported));
    }
    const attributable = [...truths.values()].filter((t) => t.exportUser !== undefined).length;
    const { stats } = collected.day;
    return {
      sessions: options.sessions,
      seed: options.seed,
      shards,
      batchSize,
      days,
      streamRecords: collected.records,
      loginSessions: stats.loginSessions,
      knownSessions: stats.knownSessions,
      anonymousSessions: stats.anonymousSessions,
      retriedRequests: stats.retriedRequests,
      validInteractions: truths.size,
      archivedRepeats: repeats,
      attributable,
      linkedSessions: links.size,
      stitchedEvents: stitched,
      stitchedOtherUser,
      deadLettered: base.deadLettered,
      processSeconds,
      scenarios: results,
      ...(options.keep && { workDir: work }),
    };
  } finally {
    if (!options.keep) await rm(work, { recursive: true, force: true });
  }
}

const n = (v: number) => v.toLocaleString('en-US');

export function formatReconcile(r: ReconcileResult): string {
  const lines = [
    `== ${n(r.sessions)} sessions, seed ${r.seed}: ${n(r.validInteractions)} valid interactions (${n(r.attributable)} attributable to a user), days ${r.days.join(', ')}`,
    `   ${n(r.streamRecords)} stream records, ${n(r.linkedSessions)} linked sessions, ${n(r.stitchedEvents)} stitched events (${n(r.stitchedOtherUser)} under another user than userAt with every login), ${n(r.archivedRepeats)} archived repeats, ${n(r.deadLettered)} dead-lettered; processing ${r.processSeconds.toFixed(1)} s`,
  ];
  const rows: [string, (s: ScenarioCounts) => number | string][] = [
    ['PutEvents events sent', (s) => s.putEvents],
    ['  re-sent eventId (not trained on)', (s) => s.putResentIgnored],
    ['  training-visible PUT copies', (s) => s.putTrainingCopies],
    ['  of which anonymous, merged by session', (s) => s.putAnonymousMerged],
    ['  anonymous, never merged (not trained)', (s) => s.putAnonymousUnmerged],
    ['bulk rows', (s) => s.bulkRows],
    ['  identical to a streamed copy', (s) => s.bulkRowsIdenticalToStreamed],
    ['  unmatched (bench check)', (s) => s.bulkRowsUnmatched],
    ['events with 0 copies', (s) => s.eventsByCopies[0]],
    ['events with 1 copy', (s) => s.eventsByCopies[1]],
    ['events with 2 copies', (s) => s.eventsByCopies[2]],
    ['events with 3+ copies', (s) => s.eventsByCopies[3]],
    ['events with >= 2 copies', (s) => s.eventsWithTwoOrMoreCopies],
    ['  as 2 different records', (s) => s.eventsTwoDifferentRecords],
    ['  as 3+ different records', (s) => s.eventsThreeDifferentRecords],
    ['attributable events with 0 copies', (s) => s.attributableWithoutCopy],
    ['one copy, under another user', (s) => s.oneCopyOtherUser],
    ['never-linked anonymous (0 copies)', (s) => s.unattributable],
    ['linked sessions never merged by PUT', (s) => s.unmergedLinkedSessions],
    ['  their anonymous PUT events', (s) => s.unmergedLinkedSessionEvents],
    ['export seconds', (s) => s.exportSeconds.toFixed(1)],
  ];
  const width = 38;
  const col = 16;
  lines.push(`${''.padEnd(width)}${r.scenarios.map((s) => s.scenario.padStart(col)).join('')}`);
  for (const [label, get] of rows) {
    lines.push(`${label.padEnd(width)}${r.scenarios.map((s) => { const v = get(s); return (typeof v === 'number' ? n(v) : v).padStart(col); }).join('')}`);
  }
  return lines.join('\n');
}

const MODEL = [
  'copies counted per valid interaction (processor dedupe key sessionId + eventId) in the training data, bulk and PUT together',
  'PUT event with a userId: one copy under that user; a PUT event whose eventId was already recorded: none (FACTS §1b)',
  'anonymous PUT event of session S: one copy under U if some PUT event carries S with U (merged at the next full retraining), else none',
  'bulk CSV row: one copy; identical = same USER_ID, ITEM_ID, TIMESTAMP (s), EVENT_TYPE, EVENT_VALUE',
  'before: the recorded PutEvents calls with derived session ids mapped back to the real ones, and the export with bulk-only rules',
];

/** Sessions for a day of about 4,000 valid interactions (the issue measured 3,861). */
export const RECONCILE_SIZES = { issue: 500, full: DAY_SIZES.full } as const;
/** The generator's default seed, as the other benchmarks use. */
export const RECONCILE_SEED = 20_240_601;

if (isMain(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      sessions: { type: 'string', multiple: true },
      seed: { type: 'string' },
      out: { type: 'string' },
      keep: { type: 'boolean' },
    },
  });
  const sizes = values.sessions?.map(Number) ?? [RECONCILE_SIZES.issue, RECONCILE_SIZES.full];
  const seed = values.seed === undefined ? RECONCILE_SEED : Number(values.seed);
  const out = values.out ?? join(resolve(dirname(fileURLToPath(import.meta.url))), 'results-reconcile.json');
  const runs: ReconcileResult[] = [];
  for (const sessions of sizes) {
    const started = performance.now();
    const result = await reconcileDay({ sessions, seed, ...(values.keep && { keep: true }) });
    runs.push(result);
    process.stdout.write(`${formatReconcile(result)}\n   (${((performance.now() - started) / 1000).toFixed(0)} s)\n\n`);
  }
  const command = `npm run bench:reconcile${values.sessions ? ` -- ${values.sessions.map((s) => `--sessions ${s}`).join(' ')}` : ''}${values.seed ? ` --seed ${values.seed}` : ''}`;
  await writeFile(out, `${JSON.stringify({ generatedAt: new Date().toISOString(), command, machine: machine(), model: MODEL, runs }, null, 2)}\n`);
  process.stdout.write(`written ${out}\n`);
}
