import { afterAll, beforeAll, beforeEach } from 'vitest';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { DeleteMessageBatchCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { partitionKeyOf, type CanonicalMessage } from '../../schemas/canonical.js';
import type { ArchivedRecord } from '../../shared/archive.js';
import { kinesisClient, s3Client, sqsClient } from '../../shared/aws/clients.js';
import type { DeadLetterRecord } from '../../shared/dlq.js';
import { putRecords } from '../../shared/aws/kinesis.js';
import type { LocalStack, LocalStackOptions } from '../../local/stack.js';
import { uniqueName } from './env.js';

/** Puts canonical messages (or raw lines) on the stack's stream, partitioned by session. */
export async function send(stack: LocalStack, messages: readonly (CanonicalMessage | Record<string, unknown> | string)[]): Promise<void> {
  const records = messages.map((m, i) => {
    if (typeof m === 'string') return { partitionKey: `raw-${i}`, data: Buffer.from(m) };
    const key = 'kind' in m ? partitionKeyOf(m as CanonicalMessage) : `raw-${i}`;
    return { partitionKey: key, data: Buffer.from(JSON.stringify(m)) };
  });
  const outcome = await putRecords(kinesisClient(), records, { streamName: stack.names.streamName });
  if (outcome.failed.length > 0) throw new Error(`records not stored: ${JSON.stringify(outcome.failed)}`);
}

/** Drains the DLQ: every message body, parsed. */
export async function drainDlq(stack: LocalStack): Promise<unknown[]> {
  const sqs = sqsClient();
  const bodies: unknown[] = [];
  for (;;) {
    const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.names.dlqUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
    const messages = out.Messages ?? [];
    if (messages.length === 0) return bodies;
    for (const m of messages) bodies.push(JSON.parse(m.Body ?? 'null'));
    await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: stack.names.dlqUrl,
        Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
      }),
    );
  }
}

export function isDeadLetter(value: unknown): value is DeadLetterRecord {
  return typeof value === 'object' && value !== null && 'reason' in value && 'stage' in value;
}

/** Every archive object under a prefix: key -> decoded NDJSON lines. */
export async function readArchive(bucket: string, prefix = 'archive/'): Promise<Map<string, { bytes: Buffer; records: ArchivedRecord[] }>> {
  const s3 = s3Client();
  const objects = new Map<string, { bytes: Buffer; records: ArchivedRecord[] }>();
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) {
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: o.Key }));
      const bytes = Buffer.from(await got.Body!.transformToByteArray());
      const text = gunzipSync(bytes).toString('utf8');
      objects.set(o.Key!, { bytes, records: text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as ArchivedRecord) });
    }
    token = page.NextContinuationToken;
  } while (token);
  return objects;
}

let counter = 0;
/** Event times: distinct, increasing, recent (the schema refuses the future and pre-2000). */
export function eventTime(offsetMs = 0): number {
  counter += 1;
  return Date.now() - 3_600_000 + counter * 10 + offsetMs;
}

/** OS-picked ports and resource names no other test file uses: spread into startLocalStack's options. */
export function isolatedStack(prefix: string, shardCount = 1): Pick<LocalStackOptions, 'ports' | 'names'> {
  return {
    ports: { http: 0, personalize: 0 },
    names: {
      streamName: uniqueName(prefix),
      shardCount,
      identityTable: uniqueName('identity'),
      archiveBucket: uniqueName('archive'),
      dlqName: uniqueName('dlq'),
    },
  };
}

/**
 * One local stack for a test file, on OS-picked ports with its own resources: started before the
 * file's tests, stopped after them, and quiet before each test (poller idle, Personalize record and
 * DLQ emptied). Returns the stack's getter.
 */
export function useLocalStack(prefix: string, options: Partial<LocalStackOptions> = {}): () => LocalStack {
  let stack: LocalStack | undefined;
  beforeAll(async () => {
    const { startLocalStack } = await import('../../local/stack.js');
    stack = await startLocalStack({ ...isolatedStack(prefix, 1), poller: { batchSize: 500, maxBatchingWindowMs: 50, pollIntervalMs: 50 }, ...options });
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
  });
  beforeEach(async () => {
    await stack!.poller.idle();
    stack!.personalize!.reset();
    await drainDlq(stack!);
  });
  return () => {
    if (!stack) throw new Error('the local stack is not started (useLocalStack runs in beforeAll)');
    return stack;
  };
}
