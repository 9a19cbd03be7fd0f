import { TARGET_NAME_PATTERN } from '../../../schemas/canonical.js';
import { TARGETS_PREFIX } from '../../archive.js';
import { DEFAULT_TARGET } from '../../targets.js';
import { isExportDate } from '../../util/dates.js';
import type { ExportKind } from '../kinds.js';

/**
 * The Athena (Trino) side of the export's relations (../sql/rules.ts `ExportRelations`) and the
 * UNLOAD around the rows query. Pure text: nothing here calls AWS. The Glue tables they read are
 * defined in serverless/athena-export.cjs:
 *   - `archive_lines`: the archive's gzip NDJSON as one string column `line`, partitions kind/dt/hour
 *     by partition projection (no crawler, no partition maintenance);
 *   - `identity_links`: a DynamoDB export-to-S3 of the identity table (DYNAMODB_JSON), partition
 *     `export_id` projected as `injected`: each run names the export it made;
 *   - `target_archive_lines`, `target_forwarded_lines`: the same as `archive_lines` and
 *     `forwarded_lines` under targets/<name>/ (docs/targets.md), with the target an `injected`
 *     partition: a query names its target, so no target name is needed at package time.
 * Every value spliced into the text is validated first (identifiers, dates, export ids): the text
 * is run as-is by Athena.
 */

/** Where the Glue tables are (serverless/athena-export.cjs names them). */
export interface AthenaTables {
  database: string;
  archiveTable: string;
  linksTable: string;
  forwardedTable: string;
  /**
   * A target other than the default: archiveTable and forwardedTable are then the target tables,
   * read with `target = '<name>'` (their injected partition). Unset: the default's own tables.
   */
  target?: string;
}

/** The table names the stack creates (the database is per stage). */
export const ATHENA_TABLE_NAMES = {
  archiveTable: 'archive_lines',
  linksTable: 'identity_links',
  forwardedTable: 'forwarded_lines',
  targetArchiveTable: 'target_archive_lines',
  targetForwardedTable: 'target_forwarded_lines',
} as const;

/** The archive bucket's prefixes the Athena path writes (serverless/athena-export.cjs expires them). */
export const ATHENA_PREFIX = 'athena/';
export const IDENTITY_EXPORT_PREFIX = 'exports/identity';

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,254}$/;
/** DynamoDB export ids: `<13-14 digit epoch ms>-<8 hex>`; any short token of these characters is accepted. */
const EXPORT_ID = /^[A-Za-z0-9-]{1,64}$/;
const EXPORT_ARN = /^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:\d{12}:table\/[A-Za-z0-9_.-]{3,255}\/export\/([A-Za-z0-9-]{1,64})$/;
/** S3 bucket names (the rules of general purpose buckets). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export class AthenaTextError extends Error {
  override name = 'AthenaTextError';
}

function identifier(name: string, what: string): string {
  if (!IDENTIFIER.test(name)) throw new AthenaTextError(`${what} must be a lowercase Glue name (letters, digits, _), got ${JSON.stringify(name)}`);
  return `"${name}"`;
}

/** A Trino string literal (single quotes doubled). */
export function trinoString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

function table(tables: AthenaTables, which: 'archiveTable' | 'linksTable' | 'forwardedTable'): string {
  return `${identifier(tables.database, 'database')}.${identifier(tables[which], which)}`;
}

function checkDate(date: string): string {
  if (!isExportDate(date)) throw new AthenaTextError(`date must be a UTC day written YYYY-MM-DD, got ${JSON.stringify(date)}`);
  return date;
}

/** A non-default target's name, checked; undefined for the default (its tables have no target partition). */
export function otherTarget(target: string | undefined): string | undefined {
  if (target === undefined || target === DEFAULT_TARGET) return undefined;
  if (!TARGET_NAME_PATTERN.test(target)) throw new AthenaTextError(`not a target name: ${JSON.stringify(target)}`);
  return target;
}

/** `target = '<name> AND '` for a target table, nothing for the default's. */
function targetFilter(tables: AthenaTables): string {
  const target = otherTarget(tables.target);
  return target === undefined ? '' : `target = ${trinoString(target)} AND `;
}

export function checkBucket(bucket: string): string {
  if (!BUCKET.test(bucket) || bucket.includes('..')) throw new AthenaTextError(`not an S3 bucket name: ${JSON.stringify(bucket)}`);
  return bucket;
}

/** The export id at the end of an ExportTableToPointInTime ARN (`.../table/<t>/export/<id>`). */
export function exportIdOf(exportArn: string): string {
  const id = EXPORT_ARN.exec(exportArn)?.[1];
  if (id === undefined) throw new AthenaTextError(`not a DynamoDB table export ARN: ${JSON.stringify(exportArn)}`);
  return id;
}

/**
 * `raw`: (object_key VARCHAR, line VARCHAR), every line of the kind's archive objects of the day.
 * Partition projection turns `kind = ... AND dt = ...` into the 24 hour folders of that day: the
 * query reads (and Athena bills) that day's objects only. object_key is the S3 key, as the
 * embedded engine and the manifest name objects: for a target, relative to its root targets/<name>/,
 * as the target's rooted bucket names them.
 */
export function rawRelation(tables: AthenaTables, kind: ExportKind, date: string): string {
  const root = otherTarget(tables.target) === undefined ? '' : `${TARGETS_PREFIX}[^/]+/`;
  return `SELECT regexp_replace("$path", '^s3://[^/]+/${root}', '') AS object_key, line
FROM ${table(tables, 'archiveTable')}
WHERE ${targetFilter(tables)}kind = ${trinoString(kind)} AND dt = ${trinoString(checkDate(date))}`;
}

/**
 * `forwarded`: (session_id VARCHAR, event_id VARCHAR), what PutEvents accepted for the day's events
 * (docs/bulk-modes.md); the projected `dt` partition reads that day's objects only.
 */
export function forwardedRelation(tables: AthenaTables, date: string): string {
  return `SELECT json_extract_scalar(line, '$.sessionId') AS session_id, json_extract_scalar(line, '$.eventId') AS event_id
FROM ${table(tables, 'forwardedTable')}
WHERE ${targetFilter(tables)}dt = ${trinoString(checkDate(date))}`;
}

export interface LinksOptions {
  /** The id of this run's DynamoDB export (`exportIdOf(exportArn)`). */
  exportId: string;
  /**
   * Links whose `expiresAt` (epoch seconds) is at or before this are left out, as
   * DynamoIdentityStore.getLinks leaves out an expired link DynamoDB has not removed yet.
   */
  nowSeconds: number;
}

/**
 * `links`: (session_id VARCHAR, user_id VARCHAR, linked_at BIGINT), one row per login claim on a
 * session, from the DynamoDB export (DYNAMODB_JSON: `{"Item":{"sessionId":{"S":..}, ...}}`; the
 * JSON SerDe matches names case-insensitively, so `Item.sessionId.S` is `item.sessionid.s`).
 * The same reading as shared/identity/store.ts: a link needs a string sessionId and userId;
 * `profile#...` items are profiles, not links; a claim needs a userId and a numeric linkedAt; a
 * link without (valid) claims is its own one claim, with linkedAt 0 when it has none.
 */
export function linksRelation(tables: AthenaTables, options: LinksOptions): string {
  if (!EXPORT_ID.test(options.exportId)) throw new AthenaTextError(`not a DynamoDB export id: ${JSON.stringify(options.exportId)}`);
  if (!Number.isSafeInteger(options.nowSeconds) || options.nowSeconds < 0) throw new AthenaTextError(`nowSeconds must be epoch seconds, got ${options.nowSeconds}`);
  const claim = 'CAST(ROW(%USER%, %AT%) AS ROW(user_id varchar, linked_at bigint))';
  const claimOf = (user: string, at: string) => claim.replace('%USER%', user).replace('%AT%', at);
  return `SELECT link.session_id, claim.user_id, claim.linked_at
FROM (
  SELECT session_id,
    CASE WHEN coalesce(cardinality(valid_claims), 0) > 0
      THEN transform(valid_claims, c -> ${claimOf('c.m.userid.s', 'CAST(c.m.linkedat.n AS bigint)')})
      ELSE ARRAY[${claimOf('link_user', 'link_at')}]
    END AS claims
  FROM (
    SELECT item.sessionid.s AS session_id,
      item.userid.s AS link_user,
      coalesce(try_cast(item.linkedat.n AS bigint), 0) AS link_at,
      filter(item.claims.l, c -> c.m.userid.s IS NOT NULL AND try_cast(c.m.linkedat.n AS bigint) IS NOT NULL) AS valid_claims
    FROM ${table(tables, 'linksTable')}
    WHERE export_id = ${trinoString(options.exportId)}
      AND item.sessionid.s IS NOT NULL
      AND item.userid.s IS NOT NULL
      AND NOT starts_with(item.sessionid.s, 'profile#')
      AND NOT coalesce(try_cast(item.expiresat.n AS bigint) <= ${options.nowSeconds}, false)
  ) link_items
) link
CROSS JOIN UNNEST(link.claims) AS claim (user_id, linked_at)`;
}

/**
 * Where a run's UNLOAD of one kind goes: a folder of its own, since UNLOAD refuses a non-empty one.
 * A non-default target's under the run's `targets/<name>/`: still under athena/, which the scratch
 * lifecycle rule expires and the grants already cover (a lifecycle prefix takes no wildcard, so
 * targets/<name>/athena/ could not be expired without naming every target at package time).
 */
export function unloadPrefix(date: string, runId: string, kind: ExportKind, what: 'rows' | 'report', target?: string): string {
  if (!EXPORT_ID.test(runId)) throw new AthenaTextError(`runId must be a short token of letters, digits and -, got ${JSON.stringify(runId)}`);
  const other = otherTarget(target);
  return `${ATHENA_PREFIX}exports/${checkDate(date)}/${runId}/${other === undefined ? '' : `${TARGETS_PREFIX}${other}/`}${kind}/${what}/`;
}

/**
 * Writes a query's rows as gzip JSON lines into an empty folder (Athena cannot write a CSV header
 * and does not quote; the rows query quotes each record into `csv_line` itself, and JSON escapes
 * the newlines a quoted value may hold). Files are written in parallel: each is in the query's
 * order, the files are not ordered among themselves (Athena UNLOAD documentation).
 */
export function unloadStatement(select: string, target: { bucket: string; prefix: string }): string {
  if (!/^[A-Za-z0-9_./=-]+\/$/.test(target.prefix)) throw new AthenaTextError(`not an UNLOAD folder: ${JSON.stringify(target.prefix)}`);
  return `UNLOAD (\n${select}\n) TO ${trinoString(`s3://${checkBucket(target.bucket)}/${target.prefix}`)} WITH (format = 'JSON', compression = 'GZIP')`;
}
