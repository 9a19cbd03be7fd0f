import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { DeletedUsers } from '../deletion.js';
import { daysFrom } from '../util/dates.js';
import type { ImportStore } from './ports.js';
import { combinedSql, dayFileSql, type UserSource } from './sql/readiness.js';
import { sqlString } from './sql/shape.js';

/**
 * The readiness report: is the dataset group's interactions data enough to train on (Personalize's
 * minimums, docs/personalize-bulk-and-stream.md §5, FACTS §4c), and what is it made of. Written by
 * every export to `imports/readiness/<date>.json` and `imports/readiness/latest.json`.
 *
 * The minimums hold over the whole dataset, bulk and streamed together, so each export keeps its
 * day's facts (per user, type and user-id source; items named; catalog and profile ids) in
 * `imports/readiness/days/dt=<date>.parquet`, replaced when the day is exported again, and the
 * report combines every day's file on the engine. SQL: ./sql/readiness.ts.
 */

export const READINESS_PREFIX = 'imports/readiness/';
export const READINESS_LATEST_KEY = `${READINESS_PREFIX}latest.json`;
const DAYS_PREFIX = `${READINESS_PREFIX}days/`;
export const readinessKey = (date: string) => `${READINESS_PREFIX}${date}.json`;
export const readinessDayKey = (date: string) => `${DAYS_PREFIX}dt=${date}.parquet`;

/** Personalize's training minimums and its recommendation (docs/personalize-bulk-and-stream.md §5). */
export const MINIMUMS = {
  interactions: 1_000,
  usersWithTwo: 25,
  usersWithTwoShare: 0.01,
  recommendedInteractions: 50_000,
  recommendedUsersWithTwo: 1_000,
} as const;

const SAMPLE = 20;

export interface ReadinessCheck {
  id: 'interactions' | 'users-with-two' | 'users-with-two-share' | 'recommended-interactions' | 'recommended-users-with-two';
  label: string;
  value: number;
  threshold: number;
  /** false: a recommendation for quality, not a minimum. */
  required: boolean;
  pass: boolean;
}

export type Verdict = 'READY' | 'NOT READY';

export interface ReadinessReport {
  version: 1;
  /** The export that wrote it, and the days its facts cover. */
  date: string;
  generatedAt: string;
  days: string[];
  verdict: Verdict;
  /** Also above the recommended amounts. */
  recommended: boolean;
  line: string;
  checks: ReadinessCheck[];
  interactions: {
    /** Records Personalize trains on: with a user id, deleted users left out, identical records once. */
    total: number;
    /** The same events counted by eventId: more than `total` when events share user, item, second, type and value. */
    events: number;
    users: number;
    usersWithTwo: number;
    byType: Record<string, number>;
    /** Valid events without a user id Personalize trains on (not counted above). */
    anonymous: number;
  };
  /** Per day: interactions by type, and anonymous events. */
  byDay: { day: string; byType: Record<string, number>; total: number; anonymous: number }[];
  /** Where the user id of an interaction comes from, over all interactions (anonymous ones included). */
  userIds: Record<UserSource, number>;
  items: { referenced: number; withoutMetadata: number; sample: string[] };
  users: { withInteractions: number; withoutProfile: number; sample: string[] };
  /** Day files that could not be read (left out of the figures). */
  unreadableDays: string[];
}

/** What the manifest carries. */
export type ReadinessSummary =
  | { key: string; verdict: Verdict; recommended: boolean; line: string; checks: Pick<ReadinessCheck, 'id' | 'value' | 'threshold' | 'pass'>[] }
  | { error: string; line: string };

/** The engine's side (./engine/duckdb.ts): the kinds' fact parts of this run, and SQL. */
export interface ReadinessEngine {
  readonly readinessParts: readonly string[];
  /** Kinds whose facts could not be written: the report is then not computed. */
  readonly readinessErrors: readonly string[];
  readinessRun(sql: string): Promise<void>;
  readinessRows(sql: string): Promise<unknown[][]>;
  /** Creates `table(user_id)` of the users `usersSql` names that the deletion registry holds. */
  readinessDeleted(usersSql: string, table: string, deleted: DeletedUsers): Promise<void>;
}

export interface ReadinessRun {
  engine: ReadinessEngine;
  store: ImportStore;
  deleted: DeletedUsers;
  /** The run's last day, and its first (a bootstrap range; default `date`). */
  date: string;
  from?: string;
  scratch: string;
  now: () => Date;
}

const num = (v: unknown) => Number(v ?? 0);

/** The checks and verdict from the totals. */
export function judge(t: { interactions: number; users: number; usersWithTwo: number }): Pick<ReadinessReport, 'checks' | 'verdict' | 'recommended' | 'line'> {
  const share = t.users === 0 ? 0 : t.usersWithTwo / t.users;
  const checks: ReadinessCheck[] = [
    { id: 'interactions', label: 'interactions', value: t.interactions, threshold: MINIMUMS.interactions, required: true, pass: t.interactions >= MINIMUMS.interactions },
    { id: 'users-with-two', label: 'users with ≥2 interactions', value: t.usersWithTwo, threshold: MINIMUMS.usersWithTwo, required: true, pass: t.usersWithTwo >= MINIMUMS.usersWithTwo },
    { id: 'users-with-two-share', label: 'share of users with ≥2 interactions', value: share, threshold: MINIMUMS.usersWithTwoShare, required: true, pass: share >= MINIMUMS.usersWithTwoShare },
    {
      id: 'recommended-interactions', label: 'interactions (recommended)', value: t.interactions, threshold: MINIMUMS.recommendedInteractions,
      required: false, pass: t.interactions >= MINIMUMS.recommendedInteractions,
    },
    {
      id: 'recommended-users-with-two', label: 'users with ≥2 interactions (recommended)', value: t.usersWithTwo, threshold: MINIMUMS.recommendedUsersWithTwo,
      required: false, pass: t.usersWithTwo >= MINIMUMS.recommendedUsersWithTwo,
    },
  ];
  const verdict: Verdict = checks.every((c) => !c.required || c.pass) ? 'READY' : 'NOT READY';
  const recommended = checks.every((c) => c.pass);
  return { checks, verdict, recommended, line: verdictLine(verdict, recommended, checks) };
}

const percent = (share: number) => `${Number((share * 100).toFixed(share < 0.001 ? 2 : 1))}%`;

/** `readiness: NOT READY — 812/1000 interactions, 19/25 users with ≥2 interactions, 3.2%/1% of users with ≥2 (recommended: …)` */
export function verdictLine(verdict: Verdict, recommended: boolean, checks: readonly ReadinessCheck[]): string {
  const byId = new Map(checks.map((c) => [c.id, c]));
  const c = (id: ReadinessCheck['id']) => byId.get(id)!;
  const required =
    `${c('interactions').value}/${c('interactions').threshold} interactions, ` +
    `${c('users-with-two').value}/${c('users-with-two').threshold} users with ≥2 interactions, ` +
    `${percent(c('users-with-two-share').value)}/${percent(c('users-with-two-share').threshold)} of users with ≥2`;
  const advice = recommended
    ? ''
    : ` (recommended: ${c('recommended-interactions').value}/${c('recommended-interactions').threshold} interactions, ` +
      `${c('recommended-users-with-two').value}/${c('recommended-users-with-two').threshold} users with ≥2)`;
  return `readiness: ${verdict}${verdict === 'READY' && !recommended ? ' (below the recommended amounts)' : ''} — ${required}${advice}`;
}

/**
 * Writes the day's facts and the report; never fails the export (the report is advice): an error
 * is returned as the summary.
 */
export async function writeReadiness(run: ReadinessRun): Promise<ReadinessSummary> {
  try {
    const report = await buildReport(run);
    await run.store.putJson(readinessKey(run.date), report);
    await run.store.putJson(READINESS_LATEST_KEY, report);
    return {
      key: readinessKey(run.date),
      verdict: report.verdict,
      recommended: report.recommended,
      line: report.line,
      checks: report.checks.map(({ id, value, threshold, pass }) => ({ id, value, threshold, pass })),
    };
  } catch (error) {
    const message = (error as Error).message;
    return { error: message, line: `readiness: not computed — ${message}` };
  }
}

async function buildReport(run: ReadinessRun): Promise<ReadinessReport> {
  const { engine, store, date } = run;
  if (engine.readinessErrors.length > 0) throw new Error(`the day's facts could not be kept (${engine.readinessErrors.join('; ')})`);
  const dir = join(run.scratch, 'readiness');
  await mkdir(dir, { recursive: true });
  // One file per day of the run, replacing what an earlier export of that day wrote.
  const runDays = daysFrom(run.from ?? date, date);
  const files: string[] = [];
  for (const day of runDays) {
    const dayFile = join(dir, `dt=${day}.parquet`);
    await engine.readinessRun(dayFileSql(day, runDays, date, engine.readinessParts, dayFile));
    await store.upload(readinessDayKey(day), dayFile, 0);
    files.push(dayFile);
  }

  // The other days' files: fetched, each tried alone, a broken one named and left out.
  const unreadableDays: string[] = [];
  const own = new Set(runDays.map(readinessDayKey));
  const others = (await store.listFiles(DAYS_PREFIX)).map((f) => f.key).filter((k) => !own.has(k) && k.endsWith('.parquet')).sort();
  for (const [i, key] of others.entries()) {
    const local = join(dir, `other-${String(i).padStart(5, '0')}.parquet`);
    try {
      await store.download(key, local);
      await engine.readinessRows(`SELECT count(*) FROM read_parquet(${sqlString(local)})`);
      files.push(local);
    } catch {
      unreadableDays.push(key.slice(DAYS_PREFIX.length).replace(/^dt=/, '').replace(/\.parquet$/, ''));
    }
  }
  await engine.readinessRun(`CREATE OR REPLACE TABLE readiness_facts AS SELECT * FROM read_parquet([${files.map(sqlString).join(', ')}])`);
  const sql = combinedSql('readiness_facts', 'readiness_deleted');
  await engine.readinessDeleted(sql.users, 'readiness_deleted', run.deleted);

  const [[interactions, events, users, usersWithTwo] = []] = await engine.readinessRows(sql.totals);
  const byDayRows = (await engine.readinessRows(sql.byDay)) as [string, string, UserSource, unknown][];
  const [[referenced, withoutMetadata] = []] = await engine.readinessRows(sql.itemCounts);
  const itemsSample = (await engine.readinessRows(sql.itemsSample(SAMPLE))).map((r) => String(r[0]));
  const [[withoutProfile] = []] = await engine.readinessRows(sql.usersWithoutProfile);
  const usersSample = (await engine.readinessRows(sql.usersSample(SAMPLE))).map((r) => String(r[0]));
  await engine.readinessRun('DROP TABLE IF EXISTS readiness_facts; DROP TABLE IF EXISTS readiness_deleted');

  const byType: Record<string, number> = {};
  const userIds: Record<UserSource, number> = { own: 0, stitched: 0, backfilled: 0, 'session-as-user': 0, anonymous: 0 };
  const days = new Map<string, ReadinessReport['byDay'][number]>();
  for (const [day, type, source, n] of byDayRows) {
    const count = num(n);
    const entry = days.get(day) ?? { day, byType: {}, total: 0, anonymous: 0 };
    days.set(day, entry);
    userIds[source] = (userIds[source] ?? 0) + count;
    if (source === 'anonymous') {
      entry.anonymous += count;
      continue;
    }
    entry.byType[type] = (entry.byType[type] ?? 0) + count;
    entry.total += count;
    byType[type] = (byType[type] ?? 0) + count;
  }
  const totals = { interactions: num(interactions), users: num(users), usersWithTwo: num(usersWithTwo) };
  return {
    version: 1,
    date,
    generatedAt: run.now().toISOString(),
    days: [...days.keys()].sort(),
    ...judge(totals),
    interactions: { total: totals.interactions, events: num(events), users: totals.users, usersWithTwo: totals.usersWithTwo, byType, anonymous: userIds.anonymous },
    byDay: [...days.values()].sort((a, b) => (a.day < b.day ? -1 : 1)),
    userIds,
    items: { referenced: num(referenced), withoutMetadata: num(withoutMetadata), sample: itemsSample },
    users: { withInteractions: totals.users, withoutProfile: num(withoutProfile), sample: usersSample },
    unreadableDays,
  };
}
