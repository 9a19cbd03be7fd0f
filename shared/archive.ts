import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { CanonicalMessage, MessageKind } from '../schemas/canonical.js';
import type { Entry } from './entry.js';

/**
 * The archive is the system of record: every accepted message, normalized and stitched, as gzip
 * NDJSON under event-time partitions. Keys are derived from the batch's sequence range only, so a
 * redelivered batch overwrites its own objects instead of adding copies; a retried *part* of a
 * batch (after a partial failure or a bisection) has another range and gets its own objects, and
 * never replaces a larger object with a smaller one. The export dedupes by eventId.
 */

/** Where the processor writes archive objects (the S3 adapter: shared/aws/s3-bucket.ts). */
export interface ArchiveStore {
  put(key: string, body: Buffer): Promise<void>;
}

export type ArchiveKind = 'interactions' | 'items' | 'users' | 'identity';

export function archiveKindOf(kind: MessageKind): ArchiveKind {
  switch (kind) {
    case 'interaction':
      return 'interactions';
    case 'item':
      return 'items';
    case 'user':
      return 'users';
    // A deletion request is an audit record of the identity table: archived beside the links;
    // so is a consent change (a fact about the user or session, not an interaction).
    case 'identify':
    case 'alias':
    case 'delete':
    case 'consent':
      return 'identity';
  }
}

/** One archived line: the canonical message with the stitched userId, plus where it sat in the stream. */
export type ArchivedRecord = CanonicalMessage & {
  stitched?: true;
  consentDenied?: string;
  stream: { shardId: string; sequenceNumber: string; subSequenceNumber?: number; arrivedAt: number };
};

export function toArchivedRecord(entry: Entry): ArchivedRecord {
  const { shardId, sequenceNumber, subSequenceNumber, arrivedAt } = entry.ref;
  const stream = subSequenceNumber === undefined ? { shardId, sequenceNumber, arrivedAt } : { shardId, sequenceNumber, subSequenceNumber, arrivedAt };
  // The consent verdict stays on the line: every later path (export, replay) leaves it out too.
  const verdict = entry.consentDenied === undefined ? {} : { consentDenied: entry.consentDenied };
  if (entry.message.kind === 'interaction' && entry.stitched && entry.userId !== undefined) {
    return { ...entry.message, userId: entry.userId, stitched: true, ...verdict, stream };
  }
  return { ...entry.message, ...verdict, stream };
}

/**
 * JSON.stringify(toArchivedRecord(entry)), byte for byte, without copying the message: the stream
 * reference (and the stitched userId) are appended to the message's own JSON. Key order is the
 * spread's: the message's keys, then userId (unless the message has its own, which the spread would
 * overwrite in place), stitched and stream. Rare shapes take the copy.
 */
export function archiveLine(entry: Entry): string {
  const { message } = entry;
  if (Object.hasOwn(message, 'stream') || entry.consentDenied !== undefined) return JSON.stringify(toArchivedRecord(entry));
  const stitched = message.kind === 'interaction' && entry.stitched && entry.userId !== undefined;
  if (stitched && Object.hasOwn(message, 'userId')) return JSON.stringify(toArchivedRecord(entry));
  const json = JSON.stringify(message);
  const { shardId, sequenceNumber, subSequenceNumber, arrivedAt } = entry.ref;
  const stream =
    subSequenceNumber === undefined
      ? JSON.stringify({ shardId, sequenceNumber, arrivedAt })
      : JSON.stringify({ shardId, sequenceNumber, subSequenceNumber, arrivedAt });
  // An empty message ("{}") takes no separating comma; a canonical message never is one.
  const head = json.length > 2 ? `${json.slice(0, -1)},` : '{';
  return stitched ? `${head}"userId":${JSON.stringify(entry.userId)},"stitched":true,"stream":${stream}}` : `${head}"stream":${stream}}`;
}

/**
 * gzip level of the archive objects and of the forwarded record, chosen from measured CPU and bytes
 * (issue 17, BENCHMARKS.md "Processor CPU: floor, gzip level, before/after"): level 1 would save
 * 1.5-2.5 CPU-µs per event but store 12% more bytes. The objects (a few KB) stay in STANDARD for
 * archiveRetentionDays (lifecycle rules leave objects under 128 KB where they are) and Athena scans
 * them per byte: the extra bytes cost 35-120 times the Lambda time saved. Levels above 6 save 2% of
 * the bytes but search far longer on hostile input (level 9: 2.5 s for a bad 1 MB record). 6 stays.
 */
export const ARCHIVE_GZIP_LEVEL = 6;

export interface SequenceRange {
  shardId: string;
  firstSequenceNumber: string;
  lastSequenceNumber: string;
}

export interface ArchiveObject {
  key: string;
  body: Buffer;
  records: number;
}

const HOUR_MS = 3_600_000;
/** Epoch time has no leap seconds: every UTC day is exactly this long. */
const DAY_MS = 24 * HOUR_MS;

function partitionOf(timestampMs: number): string {
  const iso = new Date(timestampMs).toISOString();
  return `dt=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}`;
}

/** Pure: groups a batch's entries into archive objects (by kind and event-time hour), gzip NDJSON. */
export function buildArchiveObjects(entries: readonly Entry[], range: SequenceRange): ArchiveObject[] {
  const groups = new Map<string, string[]>();
  // A batch spans few hours: formatting a date per entry was a visible cost, so prefixes are reused.
  const prefixes = new Map<ArchiveKind, Map<number, string>>();
  for (const entry of entries) {
    const kind = archiveKindOf(entry.message.kind);
    const hour = Math.floor(entry.message.timestamp / HOUR_MS);
    let byHour = prefixes.get(kind);
    if (!byHour) prefixes.set(kind, (byHour = new Map<number, string>()));
    let prefix = byHour.get(hour);
    if (prefix === undefined) byHour.set(hour, (prefix = `archive/${kind}/${partitionOf(hour * HOUR_MS)}`));
    let lines = groups.get(prefix);
    if (!lines) groups.set(prefix, (lines = []));
    lines.push(archiveLine(entry));
  }
  const name = `${range.shardId}-${range.firstSequenceNumber}-${range.lastSequenceNumber}.ndjson.gz`;
  return [...groups.entries()].map(([prefix, lines]) => ({
    key: `${prefix}/${name}`,
    // Fixed level and no mtime in the gzip header (zlib writes none): same batch, same bytes.
    body: gzipSync(`${lines.join('\n')}\n`, { level: ARCHIVE_GZIP_LEVEL }),
    records: lines.length,
  }));
}

/** Where a target other than the default keeps its archive and forwarded record: targets/<name>/archive/..., targets/<name>/forwarded/... (docs/targets.md). */
export const TARGETS_PREFIX = 'targets/';

/** Where the record of what PutEvents accepted is kept, per event-time day (docs/bulk-modes.md). */
export const FORWARDED_PREFIX = 'forwarded/interactions/';

export function forwardedDayPrefix(date: string): string {
  return `${FORWARDED_PREFIX}dt=${date}/`;
}

/**
 * Pure: the durable record of the interactions PutEvents accepted, one gzip NDJSON object per
 * event-time day, lines `{"sessionId","eventId"}` (the processor's dedupe key; no user id, no
 * content). The export in `complement` mode leaves these events out of the bulk import, since
 * Personalize already holds them. The key carries a digest of its lines, so a redelivered batch
 * that delivered a different set adds an object instead of overwriting a larger one.
 */
export function buildForwardedObjects(delivered: readonly Entry[], range: SequenceRange): ArchiveObject[] {
  // By UTC day number, formatted once per day: a Date and an ISO string per event were most of
  // this function's cost (issue 17).
  const byDay = new Map<number, string[]>();
  for (const { message } of delivered) {
    if (message.kind !== 'interaction') continue;
    const day = Math.floor(message.timestamp / DAY_MS);
    let lines = byDay.get(day);
    if (!lines) byDay.set(day, (lines = []));
    // JSON.stringify({ sessionId, eventId }) byte for byte (both are required strings), without the object.
    lines.push(`{"sessionId":${JSON.stringify(message.sessionId)},"eventId":${JSON.stringify(message.eventId)}}`);
  }
  return [...byDay.entries()].map(([dayNumber, lines]) => {
    const day = new Date(dayNumber * DAY_MS).toISOString().slice(0, 10);
    const text = `${lines.join('\n')}\n`;
    const digest = createHash('sha256').update(text).digest('hex').slice(0, 16);
    return {
      key: `${forwardedDayPrefix(day)}${range.shardId}-${range.firstSequenceNumber}-${range.lastSequenceNumber}-${digest}.ndjson.gz`,
      body: gzipSync(text, { level: ARCHIVE_GZIP_LEVEL }),
      records: lines.length,
    };
  });
}
