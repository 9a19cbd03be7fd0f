import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { ArchiveStore } from '../archive.js';
import { attributeValue, sqsSafeJson, type DeadLetterQueue, type DeadLetterRecord } from '../dlq.js';
import type { QueueMessage, RedriveQueue } from '../ops/redrive.js';
import { chunk, packBySize } from '../util/batching.js';

/** The dead-letter queue in SQS: the processor sends to it, the redrive and the dlq CLI read it. */

/** SQS limits a message, and a SendMessageBatch in total, to 256 KiB; keep a margin for attributes. */
const MAX_BODY_BYTES = 250_000;
const MAX_BATCH_ENTRIES = 10;
const PAYLOAD_PREVIEW_CHARS = 2_000;

export class SqsDeadLetterQueue implements DeadLetterQueue {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
    /** Where payloads too large for SQS go (the archive bucket, under dlq-payloads/). */
    private readonly overflow: ArchiveStore,
  ) {}

  async send(records: readonly DeadLetterRecord[]): Promise<DeadLetterRecord[]> {
    const failed: DeadLetterRecord[] = [];
    const bodies: { record: DeadLetterRecord; body: string }[] = [];
    for (const record of records) {
      try {
        bodies.push({ record, body: await this.fit(record) });
      } catch {
        failed.push(record);
      }
    }
    for (const batch of packBySize(bodies, (b) => Buffer.byteLength(b.body), MAX_BATCH_ENTRIES, MAX_BODY_BYTES)) {
      try {
        const out = await this.sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: this.queueUrl,
            Entries: batch.map((b, i) => ({
              Id: String(i),
              MessageBody: b.body,
              MessageAttributes: {
                stage: { DataType: 'String', StringValue: b.record.stage },
                source: { DataType: 'String', StringValue: attributeValue(b.record.source) },
              },
            })),
          }),
        );
        for (const f of out.Failed ?? []) {
          const entry = batch[Number(f.Id)];
          if (entry) failed.push(entry.record);
        }
      } catch {
        failed.push(...batch.map((b) => b.record));
      }
    }
    return failed;
  }

  private async fit(record: DeadLetterRecord): Promise<string> {
    const body = sqsSafeJson(record);
    if (Buffer.byteLength(body) <= MAX_BODY_BYTES) return body;
    const key = `dlq-payloads/${record.shardId ?? 'unknown'}/${record.sequenceNumber ?? Date.now()}-${record.subSequenceNumber ?? 0}.txt`;
    await this.overflow.put(key, Buffer.from(record.payload, 'utf8'));
    return sqsSafeJson({ ...record, payload: record.payload.slice(0, PAYLOAD_PREVIEW_CHARS), payloadS3Key: key });
  }
}

/** SQS batch calls take at most 10 entries. */
const SQS_BATCH = 10;

export class SqsRedriveQueue implements RedriveQueue {
  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
    private readonly options: { visibilityTimeoutSeconds: number; waitTimeSeconds: number },
  ) {}

  async receive(max: number): Promise<QueueMessage[]> {
    const out = await this.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: this.queueUrl,
        MaxNumberOfMessages: Math.max(1, Math.min(SQS_BATCH, max)),
        VisibilityTimeout: this.options.visibilityTimeoutSeconds,
        // A short long-poll asks every SQS server, so a nearly empty queue is not mistaken for an empty one.
        WaitTimeSeconds: this.options.waitTimeSeconds,
      }),
    );
    return (out.Messages ?? []).flatMap((m) =>
      m.MessageId && m.ReceiptHandle ? [{ id: m.MessageId, receiptHandle: m.ReceiptHandle, body: m.Body ?? '' }] : [],
    );
  }

  async send(body: string): Promise<void> {
    await this.sqs.send(new SendMessageCommand({ QueueUrl: this.queueUrl, MessageBody: body }));
  }

  async delete(receiptHandles: readonly string[]): Promise<string[]> {
    const failed: string[] = [];
    for (const group of chunk(receiptHandles, SQS_BATCH)) {
      try {
        const out = await this.sqs.send(
          new DeleteMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: group.map((h, i) => ({ Id: String(i), ReceiptHandle: h })) }),
        );
        for (const f of out.Failed ?? []) {
          const handle = group[Number(f.Id)];
          if (handle !== undefined) failed.push(handle);
        }
      } catch {
        failed.push(...group);
      }
    }
    return failed;
  }

  async release(receiptHandles: readonly string[]): Promise<void> {
    for (const group of chunk(receiptHandles, SQS_BATCH)) {
      await this.sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: group.map((h, i) => ({ Id: String(i), ReceiptHandle: h, VisibilityTimeout: 0 })),
        }),
      );
    }
  }
}
