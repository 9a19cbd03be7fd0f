import { payloadLabels } from '../decode.js';
import { classifyMessage, type QueueMessage } from './redrive.js';

/**
 * `npm run dlq`: what is in the dead-letter queue, without consuming it. SQS has no peek: messages
 * are received with a visibility timeout, never deleted, deduplicated by MessageId across receives,
 * and made visible again when the listing ends (the timeout is the fallback if it is cut short).
 *
 * The queue holds three kinds of messages, and the listing shows all of them in one shape:
 * - our dead-letter records, by their own `stage`;
 * - the event source mapping's on-failure records (a shard and sequence range, no data): `on-failure`;
 * - anything else (not JSON, neither of those): `unrecognised`.
 */

export const LISTED_STAGES = ['decode', 'validate', 'preflight', 'personalize', 'on-failure', 'unrecognised'] as const;
export type ListedStage = (typeof LISTED_STAGES)[number];

export interface DlqEntry {
  messageId: string;
  stage: ListedStage;
  reason: string;
  eventId?: string;
  kind?: string;
  source?: string;
  /** The start of the payload (or the range, for on-failure records), as the record holds it. */
  payload: string;
  /** For sorting: when the record was written (ISO-8601), when known. */
  failedAt?: string;
  /** What `--json` prints: the message body parsed, or `{"body": ...}` when it is not JSON. */
  record: unknown;
}

/** One queue message as the listing shows it. */
export function describeMessage(message: Pick<QueueMessage, 'id' | 'body'>): DlqEntry {
  const classified = classifyMessage(message.body);
  const record = parsedOrRaw(message.body);
  if (classified.type === 'dead-letter') {
    const r = classified.record;
    // Records written before every rejection carried its labels: read them from the payload.
    const fallback = (r.eventId === undefined || r.kind === undefined || r.source === 'unknown') && r.payloadEncoding !== 'base64' && !r.payloadS3Key ? labelsOf(r.payload) : {};
    const eventId = r.eventId ?? fallback.eventId;
    const kind = r.kind ?? fallback.kind;
    const source = r.source === 'unknown' ? (fallback.source ?? r.source) : r.source;
    return {
      messageId: message.id,
      stage: r.stage,
      reason: r.reason,
      ...(typeof eventId === 'string' && { eventId }),
      ...(typeof kind === 'string' && { kind }),
      source,
      payload: `${r.payloadEncoding === 'base64' ? '(base64) ' : ''}${r.payloadS3Key ? '(start; all in S3) ' : ''}${r.payload}`,
      failedAt: r.failedAt,
      record,
    };
  }
  if (classified.type === 'on-failure') {
    const r = classified.record;
    const info = r.KinesisBatchInfo;
    return {
      messageId: message.id,
      stage: 'on-failure',
      reason: r.redriveReason ?? `on-failure record: ${r.requestContext?.condition ?? 'unknown condition'}`,
      payload: `${info.shardId} ${info.startSequenceNumber}..${info.endSequenceNumber} (${info.batchSize ?? '?'} records)`,
      ...(typeof r.timestamp === 'string' && { failedAt: r.timestamp }),
      record,
    };
  }
  return { messageId: message.id, stage: 'unrecognised', reason: classified.reason, payload: message.body, record };
}

function parsedOrRaw(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return { body };
  }
}

function labelsOf(payload: string): ReturnType<typeof payloadLabels> {
  try {
    return payloadLabels(JSON.parse(payload));
  } catch {
    return {};
  }
}

export interface ListFilter {
  /** Exact stage. */
  stage?: ListedStage;
  /** A substring of the reason, case-insensitive. */
  reason?: string;
}

export function matches(entry: DlqEntry, filter: ListFilter): boolean {
  if (filter.stage !== undefined && entry.stage !== filter.stage) return false;
  if (filter.reason !== undefined && !entry.reason.toLowerCase().includes(filter.reason.toLowerCase())) return false;
  return true;
}

/** Oldest first (records without a time last), then by message id: the same queue lists the same way. */
export function byFailedAt(a: DlqEntry, b: DlqEntry): number {
  const ta = a.failedAt ? Date.parse(a.failedAt) : NaN;
  const tb = b.failedAt ? Date.parse(b.failedAt) : NaN;
  if (ta !== tb) {
    if (Number.isNaN(ta)) return 1;
    if (Number.isNaN(tb)) return -1;
    return ta - tb;
  }
  return a.messageId < b.messageId ? -1 : a.messageId > b.messageId ? 1 : 0;
}

/** Payload characters shown in the table. */
export const EXCERPT_CHARS = 80;

/**
 * Text from a payload, made safe for one line of a terminal: whitespace runs become one space
 * (none at the ends); control, bidi and other invisible formatting characters (terminal escape
 * sequences a hostile payload may carry) become `?`; cut to `max` characters with an ellipsis.
 */
export function oneLine(text: string, max: number): string {
  const chars: string[] = [];
  let space = false;
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (WHITESPACE.has(code)) {
      space = chars.length > 0;
      continue;
    }
    if (space) chars.push(' ');
    space = false;
    chars.push(invisible(code) ? '?' : char);
  }
  return chars.length <= max ? chars.join('') : `${chars.slice(0, max - 1).join('')}…`;
}

const WHITESPACE = new Set([0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0x85, 0xa0, 0x2028, 0x2029]);

/** C0/C1 controls, bidi and zero-width formatting, BOM, interlinear annotations, lone surrogates. */
function invisible(code: number): boolean {
  return (
    code < 0x20 ||
    (code >= 0x7f && code <= 0x9f) ||
    code === 0x61c ||
    (code >= 0x200b && code <= 0x200f) ||
    (code >= 0x202a && code <= 0x202e) ||
    (code >= 0x2060 && code <= 0x2069) ||
    code === 0xfeff ||
    (code >= 0xfff9 && code <= 0xfffb) ||
    (code >= 0xd800 && code <= 0xdfff)
  );
}

/** Column widths in the table; full values are in `--json`. */
const COLUMNS = [
  { title: 'reason', max: 60, value: (e: DlqEntry) => e.reason },
  { title: 'stage', max: 12, value: (e: DlqEntry) => e.stage },
  { title: 'eventId', max: 40, value: (e: DlqEntry) => e.eventId ?? '' },
  { title: 'kind', max: 12, value: (e: DlqEntry) => e.kind ?? '' },
  { title: 'source', max: 16, value: (e: DlqEntry) => e.source ?? '' },
  { title: 'payload', max: EXCERPT_CHARS, value: (e: DlqEntry) => e.payload },
] as const;

/** The table: a header and one line per entry, columns padded, every cell on one line. */
export function formatTable(entries: readonly DlqEntry[]): string[] {
  const rows = entries.map((e) => COLUMNS.map((c) => oneLine(c.value(e), c.max)));
  const widths = COLUMNS.map((c, i) => Math.max(c.title.length, ...rows.map((r) => Array.from(r[i]!).length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell + ' '.repeat(widths[i]! - Array.from(cell).length)))
      .join('  ')
      .trimEnd();
  return [line(COLUMNS.map((c) => c.title)), ...rows.map(line)];
}

/** `--json`: one full record per line. */
export function formatJsonLines(entries: readonly DlqEntry[]): string[] {
  return entries.map((e) => JSON.stringify(e.record));
}

// ---------------------------------------------------------------------------------------------
// The scan

export interface PeekQueue {
  /** Messages visible now, and in flight (hidden by another reader: a redrive, another listing). */
  counts(): Promise<{ visible: number; inFlight: number }>;
  /** Up to `max` (1–10) messages; they stay hidden for the adapter's visibility timeout. */
  receive(max: number): Promise<QueueMessage[]>;
  /** Makes messages visible again now. */
  release(receiptHandles: readonly string[]): Promise<void>;
}

export interface ListOptions extends ListFilter {
  /** Entries to return at most. */
  limit: number;
  /** Stops the scan at its next receive (Ctrl-C); what was found is still returned and released. */
  signal?: AbortSignal;
}

export interface Listing {
  /** The matching entries, oldest first. */
  entries: DlqEntry[];
  /** Distinct messages read. */
  scanned: number;
  /** The queue's approximate counts when the listing started. */
  approximate: { visible: number; inFlight: number };
  stoppedBecause: 'empty' | 'count' | 'limit' | 'no-new-messages' | 'interrupted';
  /** Messages that could not be made visible again: they reappear when their visibility timeout ends. */
  notReleased: number;
}

const RECEIVE_MAX = 10;
/** Receives in a row that bring only messages already read (their timeout ran out mid-scan) before giving up. */
const MAX_STALE_RECEIVES = 3;

/**
 * Reads the queue without consuming it. Stops when a receive returns nothing, when as many distinct
 * messages as the queue reported visible have been read, at the limit, or after receives that bring
 * nothing new. Then every message read is made visible again.
 */
export async function listDeadLetters(queue: PeekQueue, options: ListOptions): Promise<Listing> {
  const approximate = await queue.counts();
  const handles = new Map<string, string>();
  const entries: DlqEntry[] = [];
  let stoppedBecause: Listing['stoppedBecause'] = 'empty';
  let stale = 0;
  let notReleased = 0;
  try {
    for (;;) {
      if (options.signal?.aborted) {
        stoppedBecause = 'interrupted';
        break;
      }
      if (entries.length >= options.limit) {
        stoppedBecause = 'limit';
        break;
      }
      if (approximate.visible > 0 && handles.size >= approximate.visible) {
        stoppedBecause = 'count';
        break;
      }
      const batch = await queue.receive(RECEIVE_MAX);
      if (batch.length === 0) {
        stoppedBecause = 'empty';
        break;
      }
      let fresh = 0;
      for (const message of batch) {
        const known = handles.has(message.id);
        // The latest receipt handle is the one that can release the message.
        handles.set(message.id, message.receiptHandle);
        if (known) continue;
        fresh++;
        const entry = describeMessage(message);
        if (matches(entry, options) && entries.length < options.limit) entries.push(entry);
      }
      stale = fresh === 0 ? stale + 1 : 0;
      if (stale >= MAX_STALE_RECEIVES) {
        stoppedBecause = 'no-new-messages';
        break;
      }
    }
  } finally {
    // Runs on errors too: whatever was read is handed back at once.
    notReleased = await releaseAll(queue, [...handles.values()]);
  }
  return { entries: entries.sort(byFailedAt), scanned: handles.size, approximate, stoppedBecause, notReleased };
}

async function releaseAll(queue: PeekQueue, handles: readonly string[]): Promise<number> {
  let failed = 0;
  for (let i = 0; i < handles.length; i += RECEIVE_MAX) {
    const group = handles.slice(i, i + RECEIVE_MAX);
    await queue.release(group).catch(() => {
      failed += group.length;
    });
  }
  return failed;
}
