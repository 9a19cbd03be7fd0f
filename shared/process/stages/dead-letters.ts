import type { DecodeResult, RecordRef } from '../../decode.js';
import type { DeadLetterQueue, DeadLetterRecord, DeadLetterStage } from '../../dlq.js';
import type { Entry } from '../../entry.js';
import type { BatchCounts } from '../report.js';

type Rejected = Extract<DecodeResult, { ok: false }>;

/** The batch's rejections, collected by every stage and sent once, by the dead-letter stage. */
export class DeadLetters {
  readonly pending: { ref: RecordRef; record: DeadLetterRecord }[] = [];

  constructor(private readonly now: () => number) {}

  /** A record that did not decode or validate: its payload as received. */
  rejectDecoded(decoded: Rejected): void {
    this.add(decoded.ref, decoded.stage, decoded.reason, {
      payload: decoded.payload,
      ...(decoded.payloadEncoding === 'base64' && { payloadEncoding: 'base64' }),
      ...(decoded.source !== undefined && { source: decoded.source }),
      ...(decoded.eventId !== undefined && { eventId: decoded.eventId }),
      ...(decoded.kind !== undefined && { kind: decoded.kind }),
      ...(decoded.errors && { errors: decoded.errors }),
    });
  }

  /** A valid message refused later (mapping, pre-flight, Personalize): the message as we hold it. */
  reject(entry: Entry, stage: DeadLetterStage, reason: string, errors?: DeadLetterRecord['errors']): void {
    this.add(entry.ref, stage, reason, {
      source: entry.message.source,
      payload: JSON.stringify(entry.message),
      eventId: entry.message.eventId,
      kind: entry.message.kind,
      ...(errors && { errors }),
    });
  }

  private add(ref: RecordRef, stage: DeadLetterStage, reason: string, extra: Partial<DeadLetterRecord>): void {
    this.pending.push({
      ref,
      record: {
        reason,
        stage,
        source: extra.source ?? 'unknown',
        receivedAt: new Date(ref.arrivedAt).toISOString(),
        payload: extra.payload ?? '',
        shardId: ref.shardId,
        sequenceNumber: ref.sequenceNumber,
        ...(ref.subSequenceNumber !== undefined && { subSequenceNumber: ref.subSequenceNumber }),
        ...extra,
        failedAt: new Date(this.now()).toISOString(),
      },
    });
  }
}

/**
 * Sends the dead letters of records before the first retried one only: everything from there on is
 * redone by the retry. A letter the queue did not take makes its record a retry too.
 */
export async function deadLetterStage(dead: DeadLetters, retries: RecordRef[], dlq: DeadLetterQueue): Promise<BatchCounts> {
  const firstRetry = lowestSequence(retries);
  const dueNow = dead.pending.filter((d) => firstRetry === undefined || BigInt(d.ref.sequenceNumber) < firstRetry);
  const counts = { deadLettered: 0, deadLetterByStage: {} as Partial<Record<DeadLetterStage, number>> };
  if (dueNow.length === 0) return counts;
  const notQueued = new Set(await dlq.send(dueNow.map((d) => d.record)));
  for (const d of dueNow) {
    if (notQueued.has(d.record)) retries.push(d.ref);
    else {
      counts.deadLettered++;
      counts.deadLetterByStage[d.record.stage] = (counts.deadLetterByStage[d.record.stage] ?? 0) + 1;
    }
  }
  return counts;
}

function lowestSequence(refs: readonly RecordRef[]): bigint | undefined {
  let lowest: bigint | undefined;
  for (const ref of refs) {
    const n = BigInt(ref.sequenceNumber);
    if (lowest === undefined || n < lowest) lowest = n;
  }
  return lowest;
}
