import { z } from 'zod';
import { ObjectMissingError } from '../storage.js';
import { isKinesisOnFailureRecord, type KinesisOnFailureRecord } from '../kinesis-on-failure.js';
import { messageTarget, partitionKeyOf } from '../../schemas/canonical.js';
import { decodeMessage, type RecordRef } from '../decode.js';
import type { FieldError } from '../field-errors.js';
import { sqsSafeJson, type DeadLetterQueue, type DeadLetterRecord, type DeadLetterStage } from '../dlq.js';
import { mapInteraction, preflightMessage, type MessageChecks } from '../personalize/preflight.js';
import type { PutOutcome, StreamRecord } from '../stream-producer.js';

/**
 * Redrive: reads the dead-letter queue and gives every message another chance with the current
 * code and configuration.
 *
 * - Our dead-letter records: the payload is decoded, mapped and pre-flighted exactly as the
 *   processor will do it. Fixed: the original bytes go back on the stream and the message is
 *   deleted once the put succeeded. Still bad: replaced by a copy with the new reason,
 *   `redriveAttempts` and `lastRedriveAt`. Stage `personalize` records (refused by the API) take the
 *   same path: they pass the checks again and go back as they are, since the API may accept them now.
 * - The event source mapping's on-failure records (shard and sequence range only, FACTS §5c): the
 *   range is re-read from the stream and put back, raw bytes and partition keys unchanged. When the
 *   records have left the stream (retention), the message is kept with a reason saying so.
 * - Anything else is left where it is and counted as unrecognised.
 *
 * A message is deleted only after its replacement or put succeeded, so a crash at any point loses
 * nothing; at worst a record is put twice, and the processor's eventId dedupe, Personalize (repeats
 * of an eventId are not used in training, FACTS §1b) and the export absorb the duplicate.
 */

// ---------------------------------------------------------------------------------------------
// Ports

export interface QueueMessage {
  id: string;
  receiptHandle: string;
  body: string;
}

export interface RedriveQueue {
  /** Up to `max` (1–10) messages, hidden from other readers for the adapter's visibility timeout. */
  receive(max: number): Promise<QueueMessage[]>;
  /** Sends a message body as it is (kept on-failure records). Throws when it was not queued. */
  send(body: string): Promise<void>;
  /** Resolves with the receipt handles that could not be deleted. */
  delete(receiptHandles: readonly string[]): Promise<string[]>;
  /** Makes messages visible again now; best effort. */
  release(receiptHandles: readonly string[]): Promise<void>;
}

export interface RangeRecord extends StreamRecord {
  sequenceNumber: string;
}

export interface ShardRange {
  shardId: string;
  startSequenceNumber: string;
  endSequenceNumber: string;
}

/** `gone`: the stream no longer has the range (expired, shard deleted, stream recreated). */
export type RangeRead = { records: RangeRecord[]; gone?: undefined } | { records: []; gone: string };

export interface RangeReader {
  /** The range's records in order; throws on transient failures. */
  read(range: ShardRange): Promise<RangeRead>;
}

export interface StreamSink {
  put(records: readonly StreamRecord[]): Promise<PutOutcome>;
}

export interface PayloadStore {
  /** The stored payload's bytes; ObjectMissingError when the object does not exist. */
  get(key: string): Promise<Buffer>;
}

export interface RedriveDeps {
  queue: RedriveQueue;
  /** Where replacements of our records go (the same queue; oversized payloads to S3 as usual). */
  deadLetters: DeadLetterQueue;
  stream: StreamSink;
  reader: RangeReader;
  payloads: PayloadStore;
  now?: () => number;
  /** Checked before each receive: a Lambda stops while it has time left. */
  shouldContinue?: () => boolean;
}

export interface RedriveSettings extends MessageChecks {
  /** The other targets' mapping and schemas (TARGETS_FILE): a stamped record is rechecked as its target's processor part will check it. */
  targets?: ReadonlyMap<string, MessageChecks>;
  /** The stream records go back to; on-failure records of other streams are left alone. */
  streamName: string;
  /** Messages to handle in this run. */
  maxMessages: number;
  /** Decide and report, change nothing. */
  dryRun?: boolean;
}

// ---------------------------------------------------------------------------------------------
// Pure part

export interface RedriveMarks {
  redriveAttempts?: number;
  /** ISO-8601 time of the last redrive that kept this message. */
  lastRedriveAt?: string;
}

export type RedrivableRecord = DeadLetterRecord & RedriveMarks;
export type KeptOnFailureRecord = KinesisOnFailureRecord & RedriveMarks & { redriveReason?: string };

const STAGES = ['decode', 'validate', 'preflight', 'personalize'] as const satisfies readonly DeadLetterStage[];

const deadLetterShape = z.looseObject({
  reason: z.string(),
  stage: z.enum(STAGES),
  source: z.string(),
  receivedAt: z.string(),
  payload: z.string(),
  payloadEncoding: z.enum(['utf8', 'base64']).optional(),
  payloadS3Key: z.string().min(1).optional(),
  redriveAttempts: z.number().int().nonnegative().optional(),
  lastRedriveAt: z.string().optional(),
});

export type Classified =
  | { type: 'dead-letter'; record: RedrivableRecord }
  | { type: 'on-failure'; record: KeptOnFailureRecord }
  | { type: 'unrecognised'; reason: string };

/** Tells the queue's two kinds of messages apart (it is shared by the processor and the ESM). */
export function classifyMessage(body: string): Classified {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { type: 'unrecognised', reason: 'message body is not JSON' };
  }
  if (isKinesisOnFailureRecord(parsed)) {
    const { startSequenceNumber, endSequenceNumber } = parsed.KinesisBatchInfo;
    const sequence = /^\d{1,128}$/;
    if (sequence.test(startSequenceNumber) && typeof endSequenceNumber === 'string' && sequence.test(endSequenceNumber)) {
      return { type: 'on-failure', record: parsed };
    }
    return { type: 'unrecognised', reason: 'on-failure record without a readable sequence range' };
  }
  const dead = deadLetterShape.safeParse(parsed);
  // Loose: unknown fields (errors, eventId, ...) are kept as they are for the replacement.
  if (dead.success) return { type: 'dead-letter', record: dead.data as unknown as RedrivableRecord };
  return { type: 'unrecognised', reason: 'neither a dead-letter record nor an on-failure record' };
}

/** The bytes the record was received as (payloadEncoding says how `text` holds them). */
export function payloadBytes(record: Pick<DeadLetterRecord, 'payloadEncoding'>, text: string): Buffer {
  return record.payloadEncoding === 'base64' ? Buffer.from(text, 'base64') : Buffer.from(text, 'utf8');
}

export type Verdict =
  | { ok: true; record: StreamRecord }
  | { ok: false; stage: DeadLetterStage; reason: string; errors?: FieldError[] };

export type Checks = MessageChecks;

/**
 * What the processor will make of these bytes when they are back on the stream: decode and
 * validate, event mapping, Personalize pre-flight. Fixed: the same bytes, keyed by the message's
 * partition key, so the record lands where its session's other records are.
 */
export function revalidate(data: Buffer, defaultChecks: Checks, ref: RecordRef, targets?: ReadonlyMap<string, Checks>): Verdict {
  const decoded = decodeMessage(data, ref);
  if (!decoded.ok) return { ok: false, stage: decoded.stage, reason: decoded.reason, ...(decoded.errors && { errors: decoded.errors }) };
  let m = decoded.message;
  const target = messageTarget(m);
  const checks = target === undefined ? defaultChecks : targets?.get(target);
  if (checks === undefined) {
    return { ok: false, stage: 'validate', reason: `target ${target} is not configured in this processor (TARGETS_FILE)`, errors: [{ path: 'target', message: 'not a configured target' }] };
  }
  if (m.kind === 'interaction') {
    const mapped = mapInteraction(checks.mapping, m);
    if (!mapped.ok) return { ok: false, stage: 'validate', reason: mapped.reason, errors: mapped.errors };
    m = mapped.message;
  }
  const preflight = preflightMessage(m, checks, m.kind === 'interaction' ? m.userId : undefined);
  if (preflight.kind !== 'none' && !preflight.built.ok) return { ok: false, stage: 'preflight', reason: preflight.built.reason, errors: preflight.built.errors };
  return { ok: true, record: { partitionKey: partitionKeyOf(decoded.message), data } };
}

/** The still-bad record that replaces the received one. */
export function replacementOf(record: RedrivableRecord, verdict: Extract<Verdict, { ok: false }>, now: number): RedrivableRecord {
  const { errors: _previous, ...rest } = record;
  return {
    ...rest,
    reason: verdict.reason,
    stage: verdict.stage,
    ...(verdict.errors && { errors: verdict.errors }),
    redriveAttempts: (record.redriveAttempts ?? 0) + 1,
    lastRedriveAt: new Date(now).toISOString(),
  };
}

export function keptOnFailureOf(record: KeptOnFailureRecord, reason: string, now: number): KeptOnFailureRecord {
  return { ...record, redriveReason: reason, redriveAttempts: (record.redriveAttempts ?? 0) + 1, lastRedriveAt: new Date(now).toISOString() };
}

/** The stream name in a Kinesis stream ARN (arn:aws:kinesis:<region>:<account>:stream/<name>). */
export function streamNameOfArn(arn: string): string | undefined {
  const at = arn.indexOf(':stream/');
  return at < 0 ? undefined : arn.slice(at + ':stream/'.length) || undefined;
}

/**
 * Groups reasons that differ only in quoted values or long numbers (ids, sequence numbers). A quoted
 * value is a JSON string, escaped quotes included (`"a\\"b"` is one value, not two). For the caller's
 * summary only: never logged (the reasons still name payload keys).
 */
export function reasonKey(reason: string): string {
  return reason.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\d{6,}/g, 'N').slice(0, 160);
}

export const OUTCOMES = ['redriven', 'reread', 'stillBad', 'expired', 'otherStream', 'unrecognised', 'failed'] as const;
export type RedriveOutcome = (typeof OUTCOMES)[number];

export interface RedriveSummary {
  dryRun: boolean;
  /** Messages handled (our own replacements seen again in the same run are not counted). */
  messages: number;
  outcomes: Record<RedriveOutcome, number>;
  /** Kinesis records put back on the stream (dead letters plus re-read ranges). */
  recordsPut: number;
  /** On-failure ranges whose first records had expired; the rest were put back. */
  partiallyExpired: number;
  /** Replacements sent whose original could not be deleted (it shows up again: a duplicate). */
  deleteFailures: number;
  /** By the reason the message carried when it was read: what became of those messages. */
  byReason: Record<string, Partial<Record<RedriveOutcome, number>>>;
  /** The reasons the kept messages carry now. */
  newReasons: Record<string, number>;
  stoppedBecause: 'max' | 'empty' | 'deadline' | 'no-new-messages';
}

function emptySummary(dryRun: boolean): RedriveSummary {
  return {
    dryRun,
    messages: 0,
    outcomes: { redriven: 0, reread: 0, stillBad: 0, expired: 0, otherStream: 0, unrecognised: 0, failed: 0 },
    recordsPut: 0,
    partiallyExpired: 0,
    deleteFailures: 0,
    byReason: {},
    newReasons: {},
    stoppedBecause: 'empty',
  };
}

// ---------------------------------------------------------------------------------------------
// The run

const RECEIVE_MAX = 10;

export async function runRedrive(deps: RedriveDeps, settings: RedriveSettings): Promise<RedriveSummary> {
  return new RedriveRun(deps, settings).run();
}

/** One run: receive rounds until a stop condition, each message handled by its kind, then release what stays. */
class RedriveRun {
  private readonly now: () => number;
  private readonly startedAt: number;
  private readonly dryRun: boolean;
  readonly summary: RedriveSummary;
  private readonly seen = new Set<string>();
  private readonly received: string[] = [];
  private readonly toRelease: string[] = [];

  constructor(
    private readonly deps: RedriveDeps,
    private readonly settings: RedriveSettings,
  ) {
    this.now = deps.now ?? Date.now;
    this.startedAt = this.now();
    this.dryRun = settings.dryRun ?? false;
    this.summary = emptySummary(this.dryRun);
  }

  async run(): Promise<RedriveSummary> {
    const { summary, settings, deps } = this;
    for (;;) {
      if (summary.messages >= settings.maxMessages) {
        summary.stoppedBecause = 'max';
        break;
      }
      if (deps.shouldContinue && !deps.shouldContinue()) {
        summary.stoppedBecause = 'deadline';
        break;
      }
      const batch = await deps.queue.receive(Math.min(RECEIVE_MAX, settings.maxMessages - summary.messages));
      if (batch.length === 0) {
        summary.stoppedBecause = 'empty';
        break;
      }
      if ((await this.handleBatch(batch)) === 0) {
        summary.stoppedBecause = 'no-new-messages';
        break;
      }
    }
    // Dry run: everything goes back as it was, visible at once. Otherwise what was left alone.
    const release = this.dryRun ? this.received : this.toRelease;
    if (release.length > 0) await deps.queue.release(release).catch(() => undefined);
    return summary;
  }

  /** Handles one received batch; returns how many of its messages were new to this run. */
  private async handleBatch(batch: readonly QueueMessage[]): Promise<number> {
    const deadLetters: { message: QueueMessage; record: RedrivableRecord }[] = [];
    let fresh = 0;
    for (const message of batch) {
      this.received.push(message.receiptHandle);
      if (this.seen.has(message.id)) {
        this.toRelease.push(message.receiptHandle);
        continue;
      }
      this.seen.add(message.id);
      const classified = classifyMessage(message.body);
      if (classified.type !== 'unrecognised' && this.writtenByThisRun(classified.record)) {
        this.toRelease.push(message.receiptHandle);
        continue;
      }
      fresh++;
      if (classified.type === 'unrecognised') {
        this.count(`unrecognised: ${classified.reason}`, 'unrecognised');
        this.toRelease.push(message.receiptHandle);
      } else if (classified.type === 'dead-letter') {
        deadLetters.push({ message, record: classified.record });
      } else {
        await this.handleOnFailure(message, classified.record);
      }
    }
    await this.handleDeadLetters(deadLetters);
    return fresh;
  }

  private count(originalReason: string, outcome: RedriveOutcome): void {
    this.summary.messages++;
    this.summary.outcomes[outcome]++;
    const key = reasonKey(originalReason);
    const byOutcome = (this.summary.byReason[key] ??= {});
    byOutcome[outcome] = (byOutcome[outcome] ?? 0) + 1;
  }

  private noteNewReason(reason: string): void {
    const key = reasonKey(reason);
    this.summary.newReasons[key] = (this.summary.newReasons[key] ?? 0) + 1;
  }

  /** Written by this run: seen again because the queue hands it out; left for the next run. */
  private writtenByThisRun(marks: RedriveMarks): boolean {
    return marks.lastRedriveAt !== undefined && Date.parse(marks.lastRedriveAt) >= this.startedAt;
  }

  private async deleteOriginal(message: QueueMessage): Promise<void> {
    const failed = await this.deps.queue.delete([message.receiptHandle]).catch(() => [message.receiptHandle]);
    if (failed.length > 0) this.summary.deleteFailures++;
  }

  /** Dead letters: rechecked as the processor will check them; fixed ones go back on the stream together. */
  private async handleDeadLetters(items: readonly { message: QueueMessage; record: RedrivableRecord }[]): Promise<void> {
    const { deps, summary } = this;
    const fixed: { message: QueueMessage; record: RedrivableRecord; put: StreamRecord }[] = [];
    for (const { message, record } of items) {
      let data: Buffer;
      try {
        data = payloadBytes(record, record.payloadS3Key ? (await deps.payloads.get(record.payloadS3Key)).toString('utf8') : record.payload);
      } catch (error) {
        if (!(error instanceof ObjectMissingError)) {
          this.count(record.reason, 'failed');
          this.toRelease.push(message.receiptHandle);
          continue;
        }
        await this.keepStillBad(message, record, { ok: false, stage: record.stage, reason: `payload object ${record.payloadS3Key ?? ''} is missing from the archive bucket` });
        continue;
      }
      const verdict = revalidate(data, this.settings, refOf(record), this.settings.targets);
      if (verdict.ok) fixed.push({ message, record, put: verdict.record });
      else await this.keepStillBad(message, record, verdict);
    }
    if (fixed.length === 0) return;
    if (this.dryRun) {
      for (const f of fixed) this.count(f.record.reason, 'redriven');
      return;
    }
    const outcome = await deps.stream.put(fixed.map((f) => f.put)).catch((error: unknown) => ({
      stored: [] as number[],
      failed: fixed.map((_, index) => ({ index, error: (error as Error).message })),
      calls: 0,
    }));
    const stored = new Set(outcome.stored);
    const handles = fixed.filter((_, i) => stored.has(i)).map((f) => f.message.receiptHandle);
    const notDeleted = new Set(handles.length > 0 ? await deps.queue.delete(handles).catch(() => handles) : []);
    fixed.forEach((f, i) => {
      if (stored.has(i)) {
        summary.recordsPut++;
        if (notDeleted.has(f.message.receiptHandle)) summary.deleteFailures++;
        this.count(f.record.reason, 'redriven');
      } else {
        this.count(f.record.reason, 'failed');
        this.toRelease.push(f.message.receiptHandle);
      }
    });
  }

  /** Still bad: the replacement (with the new reason) is queued before the original is deleted. */
  private async keepStillBad(message: QueueMessage, record: RedrivableRecord, verdict: Extract<Verdict, { ok: false }>): Promise<void> {
    if (this.dryRun) {
      this.count(record.reason, 'stillBad');
      this.noteNewReason(verdict.reason);
      return;
    }
    const replacement = replacementOf(record, verdict, this.now());
    const notQueued = await this.deps.deadLetters.send([replacement]).catch(() => [replacement]);
    if (notQueued.length > 0) {
      this.count(record.reason, 'failed');
      this.toRelease.push(message.receiptHandle);
      return;
    }
    await this.deleteOriginal(message);
    this.count(record.reason, 'stillBad');
    this.noteNewReason(verdict.reason);
  }

  /** Lambda's on-failure record: the range is read back from the stream and put again, or reported expired. */
  private async handleOnFailure(message: QueueMessage, record: KeptOnFailureRecord): Promise<void> {
    const { deps, summary } = this;
    const info = record.KinesisBatchInfo;
    const label = record.redriveReason ?? `on-failure record: ${record.requestContext?.condition ?? 'unknown condition'}`;
    const streamName = streamNameOfArn(info.streamArn ?? '');
    if (streamName !== undefined && streamName !== this.settings.streamName) {
      this.count(label, 'otherStream');
      this.toRelease.push(message.receiptHandle);
      return;
    }
    let read: RangeRead;
    try {
      read = await deps.reader.read(info);
    } catch {
      this.count(label, 'failed');
      this.toRelease.push(message.receiptHandle);
      return;
    }
    if (read.gone !== undefined || read.records.length === 0) {
      const reason = `records ${info.startSequenceNumber}..${info.endSequenceNumber} of ${info.shardId} are no longer on the stream (retention expired): ${read.gone ?? 'nothing left in the range'}`;
      if (!this.dryRun) {
        try {
          await deps.queue.send(sqsSafeJson(keptOnFailureOf(record, reason, this.now())));
        } catch {
          this.count(label, 'failed');
          this.toRelease.push(message.receiptHandle);
          return;
        }
        await this.deleteOriginal(message);
      }
      this.count(label, 'expired');
      this.noteNewReason(reason);
      return;
    }
    // The range starts with records already trimmed: what is left goes back, the rest is lost.
    const partial = BigInt(read.records[0]!.sequenceNumber) > BigInt(info.startSequenceNumber);
    if (this.dryRun) {
      this.count(label, 'reread');
      return;
    }
    const outcome = await deps.stream.put(read.records.map((r) => ({ partitionKey: r.partitionKey, data: r.data }))).catch(() => undefined);
    if (!outcome || outcome.failed.length > 0) {
      // Some were put and some not: all are put again next time (duplicates are absorbed by eventId).
      summary.recordsPut += outcome?.stored.length ?? 0;
      this.count(label, 'failed');
      this.toRelease.push(message.receiptHandle);
      return;
    }
    summary.recordsPut += outcome.stored.length;
    if (partial) summary.partiallyExpired++;
    await this.deleteOriginal(message);
    this.count(label, 'reread');
  }
}

/** Where the record sat (only used to label the decode result). */
function refOf(record: RedrivableRecord): RecordRef {
  const arrivedAt = Date.parse(record.receivedAt);
  return {
    shardId: record.shardId ?? 'shardId-unknown',
    sequenceNumber: record.sequenceNumber ?? '0',
    partitionKey: '',
    arrivedAt: Number.isFinite(arrivedAt) ? arrivedAt : 0,
  };
}
