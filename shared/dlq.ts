import type { FieldError } from './field-errors.js';

/**
 * Dead-letter records (DESIGN "Contracts"): enough to understand a failure and re-drive the
 * record without the stream.
 */
export type DeadLetterStage = 'decode' | 'validate' | 'preflight' | 'personalize';

export interface DeadLetterRecord {
  reason: string;
  stage: DeadLetterStage;
  /** The message's source; `unknown` when the payload was not a JSON object naming one. */
  source: string;
  /** When the record reached the stream (ISO-8601). */
  receivedAt: string;
  /** The message as received (utf8), or base64 when the bytes were not text. */
  payload: string;
  payloadEncoding?: 'utf8' | 'base64';
  /** Set when the payload was too large for SQS and was stored in the archive bucket instead. */
  payloadS3Key?: string;
  shardId?: string;
  sequenceNumber?: string;
  subSequenceNumber?: number;
  /**
   * Set whenever the payload was a JSON object that carried them, even when it failed validation
   * (labels for the operator, cut to 256 characters; see PayloadLabels in decode.ts). A message
   * without an eventId carries the content hash the processor gives it.
   */
  eventId?: string;
  kind?: string;
  errors?: FieldError[];
  failedAt: string;
}

export interface DeadLetterQueue {
  /** Resolves with the records that could not be queued; the caller must not acknowledge those. */
  send(records: readonly DeadLetterRecord[]): Promise<DeadLetterRecord[]>;
}

/**
 * JSON with every non-ASCII character escaped: SQS refuses some characters (U+FFFE, lone
 * surrogates) that hostile payloads carry, and escaping keeps the record lossless.
 */
export function sqsSafeJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * A message attribute value SQS accepts: not empty, and printable ASCII only (SQS refuses
 * attribute values with characters XML 1.0 does not allow, and a hostile payload's source may
 * carry them; the body keeps the exact value).
 */
export function attributeValue(value: string): string {
  const printable = value.replace(/[^\x20-\x7e]/g, '?');
  return printable.trim() === '' ? 'unknown' : printable;
}
