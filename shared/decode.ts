import type { KinesisStreamRecord } from 'aws-lambda';
import { deaggregateSync, type UserRecord } from 'aws-kinesis-agg';
import { z } from 'zod';
import { canonicalMessageSchema, type CanonicalMessage } from '../schemas/canonical.js';
import { contentEventId } from './event-id.js';
import { describeErrors, formatIssues, type FieldError } from './field-errors.js';

/**
 * Kinesis record -> canonical messages. Never throws: whatever cannot be decoded or validated comes
 * back as a rejection with its reason, so one poison record cannot stall a shard.
 */

/** Where one user record sits in the stream (KPL aggregates several under one sequence number). */
export interface RecordRef {
  shardId: string;
  sequenceNumber: string;
  subSequenceNumber?: number;
  partitionKey: string;
  /** Kinesis arrival time, epoch ms: stable across redeliveries, unlike processing time. */
  arrivedAt: number;
}

export type DecodeResult =
  | { ok: true; ref: RecordRef; message: CanonicalMessage }
  | ({
      ok: false;
      ref: RecordRef;
      stage: 'decode' | 'validate';
      reason: string;
      errors?: FieldError[];
      payload: string;
      payloadEncoding: 'utf8' | 'base64';
    } & PayloadLabels);

/**
 * What a rejected payload says it is, for the dead-letter record: set only when the payload was a
 * JSON object carrying the field as a non-blank string. Labels only, never trusted for anything
 * else (the message failed validation).
 */
export interface PayloadLabels {
  /** The payload's own eventId, or the content hash the processor gives a message without one. */
  eventId?: string;
  kind?: string;
  source?: string;
}

/** Labels longer than this are cut (a hostile payload must not make every DLQ listing unreadable). */
export const MAX_LABEL_CHARS = 256;

function labelOf(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  if (value.length <= MAX_LABEL_CHARS) return value;
  const cut = value.slice(0, MAX_LABEL_CHARS);
  // Do not leave half of a surrogate pair at the end.
  return /[\ud800-\udbff]$/.test(cut) ? cut.slice(0, -1) : cut;
}

/** The eventId, kind and source of a parsed payload, best effort (see PayloadLabels). */
export function payloadLabels(parsed: unknown): PayloadLabels {
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return {};
  const labels: PayloadLabels = {};
  for (const field of ['eventId', 'kind', 'source'] as const) {
    const label = Object.hasOwn(parsed, field) ? labelOf((parsed as Record<string, unknown>)[field]) : undefined;
    if (label !== undefined) labels[field] = label;
  }
  return labels;
}

/** A user record larger than this is not a clickstream message (PutRecords caps records at 1 MiB, FACTS §5d). */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

/**
 * Deeper than any clickstream message. Deeper input would pass JSON.parse but overflow the stack
 * wherever it is re-serialized (JSON.stringify recurses: archive, DLQ), failing the whole batch.
 */
export const MAX_NESTING_DEPTH = 64;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The canonical schema with zod's generated fast path (z.compile): a valid message is parsed by
 * straight-line code, about three times cheaper than the interpreted parser (issue 17); anything
 * the fast path does not accept falls back to the runtime parser, so errors are the same.
 */
const compiledMessageSchema = z.compile(canonicalMessageSchema);

/** True when arrays/objects nest deeper than `limit` (an iterative scan, safe on hostile input). */
function nestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/**
 * True when the text has at most `limit` opening brackets, so it cannot nest deeper: a native
 * indexOf per bracket is far cheaper than scanning every character, which only the rare message
 * with many brackets then needs.
 */
function opensAtMost(text: string, limit: number): boolean {
  let opens = 0;
  for (const bracket of ['{', '[']) {
    for (let i = text.indexOf(bracket); i !== -1; i = text.indexOf(bracket, i + 1)) if (++opens > limit) return false;
  }
  return true;
}

export function shardIdOf(record: KinesisStreamRecord): string {
  const id = record.eventID ?? '';
  const colon = id.indexOf(':');
  return colon > 0 ? id.slice(0, colon) : 'shardId-unknown';
}

function deaggregate(record: KinesisStreamRecord): { userRecords: UserRecord[] } | { error: string } {
  let firstError: string | undefined;
  let userRecords: UserRecord[] = [];
  try {
    // The library reports a bad sub-record and then still "completes": keep the first error.
    deaggregateSync(record.kinesis, true, (err, records) => {
      if (err) firstError ??= err.message;
      else userRecords = records ?? [];
    });
  } catch (error) {
    firstError ??= (error as Error).message;
  }
  return firstError === undefined ? { userRecords } : { error: firstError };
}

/** A rejection carrying the raw payload (UTF-8 text where it is, base64 where not). */
function rejectRaw(data: Buffer, ref: RecordRef, reason: string, stage: 'decode' | 'validate' = 'decode', labels: PayloadLabels = {}): DecodeResult {
  let payload: string;
  let payloadEncoding: 'utf8' | 'base64' = 'utf8';
  try {
    payload = strictUtf8.decode(data);
  } catch {
    payload = data.toString('base64');
    payloadEncoding = 'base64';
  }
  return { ok: false, ref, stage, reason, payload, payloadEncoding, ...labels };
}

/** Decodes one user record's bytes into a validated canonical message. */
export function decodeMessage(data: Buffer, ref: RecordRef): DecodeResult {
  if (data.length === 0) return rejectRaw(data, ref, 'record is empty');
  if (data.length > MAX_MESSAGE_BYTES) return rejectRaw(data, ref, `record is ${data.length} bytes, limit ${MAX_MESSAGE_BYTES}`);
  let text: string;
  try {
    text = strictUtf8.decode(data);
  } catch {
    return rejectRaw(data, ref, 'record is not valid UTF-8');
  }
  if (!opensAtMost(text, MAX_NESTING_DEPTH) && nestsDeeperThan(text, MAX_NESTING_DEPTH)) return rejectRaw(data, ref, `record nests deeper than ${MAX_NESTING_DEPTH} levels`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return rejectRaw(data, ref, `record is not valid JSON: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return rejectRaw(data, ref, `record must be a JSON object, got ${Array.isArray(parsed) ? 'an array' : parsed === null ? 'null' : typeof parsed}`);
  }
  const candidate = parsed as Record<string, unknown>;
  try {
    if (candidate.eventId === undefined) candidate.eventId = contentEventId(candidate);
  } catch (error) {
    // Pathologically deep input overflows the hash's recursion; it is not a message we can key.
    return rejectRaw(data, ref, `record cannot be hashed for an eventId: ${(error as Error).message}`, 'validate', payloadLabels(candidate));
  }
  const result = compiledMessageSchema.safeParse(candidate);
  if (!result.success) {
    const errors = formatIssues(result.error);
    return { ok: false, ref, stage: 'validate', reason: describeErrors(errors), errors, payload: text, payloadEncoding: 'utf8', ...payloadLabels(candidate) };
  }
  return { ok: true, ref, message: result.data };
}

/** Decodes a Kinesis record: base64, then KPL de-aggregation (plain records pass through as one). */
export function decodeKinesisRecord(record: KinesisStreamRecord): DecodeResult[] {
  const shardId = shardIdOf(record);
  const base: RecordRef = {
    shardId,
    sequenceNumber: record.kinesis.sequenceNumber,
    partitionKey: record.kinesis.partitionKey,
    arrivedAt: Math.round(record.kinesis.approximateArrivalTimestamp * 1000),
  };
  const data = Buffer.from(record.kinesis.data ?? '', 'base64');
  // Plain records, the common case, are decoded once here: the KPL library would decode the base64,
  // find no magic, and hand back the same base64 to decode again.
  if (!isKplAggregate(data)) return [decodeMessage(data, base)];
  const outcome = deaggregate(record);
  if ('error' in outcome) {
    return [decodeFailure(data, base, `KPL aggregated record is corrupt: ${outcome.error}`)];
  }
  // An aggregate with no user records would otherwise vanish without a trace.
  if (outcome.userRecords.length === 0) {
    return [decodeFailure(data, base, 'KPL aggregated record is corrupt: it holds no user records')];
  }
  // Plain records come back alone and without a subSequenceNumber.
  const aggregated = outcome.userRecords.some((r) => r.subSequenceNumber !== undefined);
  return outcome.userRecords.map((userRecord) => {
    const ref: RecordRef = aggregated
      ? { ...base, partitionKey: userRecord.partitionKey, subSequenceNumber: userRecord.subSequenceNumber }
      : base;
    return decodeMessage(Buffer.from(userRecord.data, 'base64'), ref);
  });
}

/** The KPL aggregation magic number, 0xF3899AC2 (FACTS §5d). */
function isKplAggregate(data: Buffer): boolean {
  return data.length >= 4 && data[0] === 0xf3 && data[1] === 0x89 && data[2] === 0x9a && data[3] === 0xc2;
}

function decodeFailure(data: Buffer, ref: RecordRef, reason: string): DecodeResult {
  return { ok: false, ref, stage: 'decode', reason, payload: data.toString('base64'), payloadEncoding: 'base64' };
}
