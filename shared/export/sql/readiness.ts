import type { ExportKind } from '../kinds.js';
import { sqlString } from './shape.js';

/**
 * The readiness report's SQL (DuckDB): each kind's facts of the day, read from the engine's tables
 * before they are dropped, and the statements combining every day's facts (../readiness.ts).
 *
 * Facts, one relation for all kinds, kept per day (the event's UTC day, as the archive's dt=) as
 * `imports/readiness/days/dt=<date>.parquet`:
 *   section 'interactions'  id = the user (NULL: no user), event_type, user_source, events (unique
 *                           eventIds) and interactions (rows Personalize keeps apart: distinct user,
 *                           item, second, type, value; it keeps one of identical records, FACTS §1d)
 *   section 'referenced'    id = an item the day's interactions with a user name, events
 *   section 'catalog'       id = an item with a record of the day
 *   section 'profiles'      id = a user with a record of the day
 */

export const FACT_COLUMNS = 'day VARCHAR, section VARCHAR, id VARCHAR, event_type VARCHAR, user_source VARCHAR, events BIGINT, interactions BIGINT';

/** Where a held interaction's user id comes from; 'anonymous': none Personalize trains on. */
export type UserSource = 'own' | 'stitched' | 'backfilled' | 'session-as-user' | 'anonymous';

export interface FactsInput {
  staged: string;
  /** The rules' rows (sql/rules.ts): `user_source`, `in_bulk` and the winner's type, item and value ride along. */
  rows: string;
  deleted: string;
}

/**
 * Interactions per day, user, type and source from `c`: events, and records Personalize keeps apart
 * (identical user, item, second, type and value count once). Two GROUP BYs: a third of the cost of
 * count(DISTINCT ROW(...)) (measured on 1M rows).
 */
const perUser = `SELECT day, 'interactions' AS section, held_user AS id, event_type, user_source, sum(n) AS events, count(*) AS interactions
  FROM (SELECT day, held_user, event_type, user_source, item_id, timestamp_ms // 1000 AS second, event_value, count(*) AS n FROM c GROUP BY ALL) records
  GROUP BY day, held_user, event_type, user_source`;

/** The UTC day of an event time (epoch ms): the archive's dt= partition. */
const dayOf = (ms: string) => `strftime(epoch_ms(${ms}), '%Y-%m-%d')`;

/**
 * The day's interactions as Personalize will hold them for training, bulk and streamed together:
 * every valid event once (the rules' winner), deleted users and rows that cannot be written left
 * out. From the rows alone (one per unique event with a user) and the anonymous staged lines
 * without a row (no user found).
 */
export function interactionFactsSql(input: FactsInput): string {
  const { staged, rows, deleted } = input;
  const held = `SELECT r.ord_ts AS timestamp_ms, r.user_id, r.event_type_value AS event_type, r.item_id_value AS item_id, r.event_value_json AS event_value,
      r.user_source
    FROM ${rows} r ANTI JOIN ${deleted} d ON d.user_id = r.user_id WHERE r.row_reject IS NULL`;
  // A key with no row had an anonymous winner and no user: its copies are all among the anonymous lines.
  const anonymous = `SELECT min(s.timestamp_ms) AS timestamp_ms FROM ${staged} s
      ANTI JOIN ${rows} r ON r.ord_id = s.session_id_value || chr(0) || s.event_id_value
    WHERE s.reject_reason IS NULL AND s.user_id_value IS NULL GROUP BY s.session_id_value, s.event_id_value`;
  return `WITH c AS (SELECT *, ${dayOf('timestamp_ms')} AS day, CASE WHEN user_source = 'anonymous' THEN NULL ELSE user_id END AS held_user FROM (${held}) h)
  ${perUser}
  UNION ALL
  SELECT ${dayOf('timestamp_ms')}, 'interactions', NULL, NULL, 'anonymous', count(*), count(*) FROM (${anonymous}) a GROUP BY ALL
  UNION ALL
  SELECT day, 'referenced', item_id, NULL, NULL, count(*), count(*) FROM c WHERE held_user IS NOT NULL AND item_id IS NOT NULL GROUP BY day, item_id`;
}

/** Items and users with a record of the day (a catalog entry, a profile); deleted users' profiles left out. */
export function recordFactsSql(kind: Exclude<ExportKind, 'interactions'>, input: FactsInput): string {
  const id = kind === 'items' ? 'item_id_value' : 'user_id_value';
  // rows_<kind> holds the id as its sort key (ord_id); the day comes from the staged versions.
  const rows = `SELECT ord_id AS id FROM ${input.rows} WHERE row_reject IS NULL` + (kind === 'users' ? ` AND ord_id NOT IN (SELECT user_id FROM ${input.deleted})` : '');
  return `SELECT DISTINCT ${dayOf('s.timestamp_ms')} AS day, '${kind === 'items' ? 'catalog' : 'profiles'}' AS section, s.${id} AS id,
      NULL AS event_type, NULL AS user_source, 1 AS events, 1 AS interactions
    FROM ${input.staged} s SEMI JOIN (${rows}) r ON r.id = s.${id} WHERE s.reject_reason IS NULL`;
}

/** A kind's facts to a parquet part, typed as FACT_COLUMNS. */
export function factsPartSql(select: string, target: string): string {
  const typed = FACT_COLUMNS.split(', ').map((c) => { const [name, type] = c.split(' '); return `CAST(${name} AS ${type}) AS ${name}`; });
  return `COPY (SELECT ${typed.join(', ')} FROM (${select}) facts) TO ${sqlString(target)} (FORMAT parquet)`;
}

/** The file of one day from the kinds' parts; facts dated outside the run's days go to its last day. */
export function dayFileSql(day: string, runDays: readonly string[], lastDay: string, parts: readonly string[], target: string): string {
  const empty = `(SELECT ${FACT_COLUMNS.split(', ').map((c) => `CAST(NULL AS ${c.split(' ')[1]}) AS ${c.split(' ')[0]}`).join(', ')} WHERE false)`;
  const source = parts.length === 0 ? empty : `read_parquet([${parts.map(sqlString).join(', ')}])`;
  const outside = day === lastDay ? ` OR day NOT IN (${runDays.map(sqlString).join(', ')})` : '';
  return `COPY (SELECT ${sqlString(day)} AS day, section, id, event_type, user_source, events, interactions FROM ${source}
    WHERE day = ${sqlString(day)}${outside} ORDER BY ALL) TO ${sqlString(target)} (FORMAT parquet)`;
}

/** The statements over every day's facts (`facts`) and the deleted users (`deleted(user_id)`). */
export function combinedSql(facts: string, deleted: string) {
  // Deleted users' interactions and profiles go; items and anonymous events stay.
  const kept = `SELECT f.* FROM ${facts} f LEFT JOIN ${deleted} d ON f.section IN ('interactions', 'profiles') AND d.user_id = f.id WHERE d.user_id IS NULL`;
  const counted = `SELECT * FROM (${kept}) k WHERE section = 'interactions' AND id IS NOT NULL`;
  const perUser = `SELECT id, sum(interactions) AS n FROM (${counted}) c GROUP BY id`;
  const section = (name: string) => `(SELECT DISTINCT id FROM (${kept}) k WHERE section = '${name}')`;
  const itemsMissing = `SELECT r.id, sum(r.events) AS n FROM (${kept}) r ANTI JOIN ${section('catalog')} c ON c.id = r.id WHERE r.section = 'referenced' GROUP BY r.id`;
  const usersMissing = `SELECT u.id, u.n FROM (${perUser}) u ANTI JOIN ${section('profiles')} p ON p.id = u.id`;
  return {
    /** Every user id the facts name, for the deletion registry. */
    users: `SELECT DISTINCT id FROM ${facts} WHERE section IN ('interactions', 'profiles') AND id IS NOT NULL`,
    /** interactions, events, users, users with two or more. */
    totals:
      `SELECT coalesce(sum(interactions), 0), coalesce(sum(events), 0), (SELECT count(*) FROM (${perUser}) u), ` +
      `(SELECT count(*) FROM (${perUser}) u WHERE n >= 2) FROM (${counted}) c`,
    /** day, event_type, user_source, interactions (events for anonymous ones). */
    byDay: `SELECT day, coalesce(event_type, ''), user_source, sum(CASE WHEN user_source = 'anonymous' THEN events ELSE interactions END)
      FROM (${kept}) k WHERE section = 'interactions' GROUP BY ALL ORDER BY ALL`,
    /** referenced items, those without a catalog record. */
    itemCounts: `SELECT (SELECT count(*) FROM ${section('referenced')} r), (SELECT count(*) FROM (${itemsMissing}) m)`,
    itemsSample: (limit: number) => `SELECT id FROM (${itemsMissing}) m ORDER BY n DESC, id LIMIT ${limit}`,
    usersWithoutProfile: `SELECT count(*) FROM (${usersMissing}) m`,
    usersSample: (limit: number) => `SELECT id FROM (${usersMissing}) m ORDER BY n DESC, id LIMIT ${limit}`,
  };
}
