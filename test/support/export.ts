import { gzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import type { Context } from 'aws-lambda';
import type { CanonicalMessage, InteractionMessage } from '../../schemas/canonical.js';
import { buildArchiveObjects } from '../../shared/archive.js';
import { s3Client } from '../../shared/aws/clients.js';
import type { Entry } from '../../shared/entry.js';

/** Helpers for export tests: real-shaped archive objects, S3 reads, a CSV reader. */

let sequence = 1000;

/** An archive entry as the processor would have it; `stitchedTo` marks a userId resolved at process time. */
export function entry(message: CanonicalMessage, stitchedTo?: string): Entry {
  sequence += 1;
  return {
    ref: { shardId: 'shardId-000000000000', sequenceNumber: String(sequence), partitionKey: 'pk', arrivedAt: message.timestamp + 500 },
    message,
    ...(stitchedTo !== undefined && { userId: stitchedTo, stitched: true }),
  };
}

/**
 * Archives entries as one processor batch would (buildArchiveObjects: one object per kind and hour),
 * under the given sequence range so two calls with other ranges are two objects (a retried batch).
 */
export async function putArchiveBatch(bucket: string, entries: readonly Entry[], range: { first: string; last: string }): Promise<string[]> {
  const s3 = s3Client();
  const objects = buildArchiveObjects(entries, { shardId: 'shardId-000000000000', firstSequenceNumber: range.first, lastSequenceNumber: range.last });
  for (const o of objects) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: o.key, Body: o.body }));
  return objects.map((o) => o.key);
}

/** An archive object with arbitrary lines (malformed ones included), gzipped, or raw bytes. */
export async function putRawObject(bucket: string, key: string, content: string[] | Buffer): Promise<void> {
  const body = Buffer.isBuffer(content) ? content : gzipSync(`${content.join('\n')}\n`);
  await s3Client().send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}

export async function readText(bucket: string, key: string): Promise<string> {
  const got = await s3Client().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return (await got.Body?.transformToString('utf8')) ?? '';
}

export async function listKeys(bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3Client().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys.sort();
}

/** RFC 4180 reader for checking what the export wrote (quotes, doubled quotes, embedded commas). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c !== '"') cell += c;
      else if (text[i + 1] === '"') {
        cell += '"';
        i++;
      } else quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  if (cell !== '' || row.length > 0) rows.push([...row, cell]);
  return rows;
}

/** Rows of a CSV as header -> value records (the header row checked separately). */
export function csvRecords(text: string): Record<string, string>[] {
  const [header = [], ...rows] = parseCsv(text);
  return rows.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i] ?? ''])));
}

/** A plain Lambda context for invoking handlers in-process. */
export function lambdaContext(name: string): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: name,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${name}`,
    memoryLimitInMB: '1024',
    awsRequestId: `req-${Date.now()}`,
    logGroupName: `/aws/lambda/${name}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => 900_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

/** Epoch ms of a UTC time on a day: at('2026-11-20', '09:05:30.900'). */
export function at(date: string, time: string): number {
  return Date.parse(`${date}T${time}Z`);
}

/** A UTC day `days` before today, YYYY-MM-DD (the schema refuses future event times). */
export function daysAgo(days: number): string {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - days)).toISOString().slice(0, 10);
}

/** A native View interaction of item `item-<eventId>`. */
export const view = (eventId: string, sessionId: string, timestamp: number, extra: Partial<InteractionMessage> = {}): InteractionMessage => ({
  kind: 'interaction',
  source: 'native',
  eventId,
  sessionId,
  eventType: 'View',
  itemId: `item-${eventId}`,
  timestamp,
  ...extra,
});
