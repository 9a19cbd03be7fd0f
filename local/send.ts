import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { partitionKeyOf, canonicalMessageSchema } from '../schemas/canonical.js';
import { kinesisClient } from '../shared/aws/clients.js';
import { type StreamRecord } from '../shared/stream-producer.js';
import { putRecords } from '../shared/aws/kinesis.js';
import { DEFAULT_NAMES, DEFAULT_PORTS } from './stack.js';

/**
 * `npm run send -- <file.ndjson>`: puts each line on the stream as one record, partitioned by
 * session. Lines are sent as they are, even broken ones, so the DLQ path can be seen too.
 */

interface StackFile {
  endpoints?: Record<string, string>;
  names?: { streamName?: string };
  region?: string;
}

async function readStackFile(): Promise<StackFile> {
  try {
    return JSON.parse(await readFile(resolve(process.env.LOCAL_STATE_DIR ?? '.local', 'stack.json'), 'utf8')) as StackFile;
  } catch {
    return {};
  }
}

function partitionKeyFor(line: string, lineNumber: number): string {
  try {
    const parsed = canonicalMessageSchema.safeParse(JSON.parse(line));
    if (parsed.success) return partitionKeyOf(parsed.data);
  } catch {
    // Not JSON: still sent, the processor dead-letters it with the reason.
  }
  return `unparsed-${lineNumber}`;
}

const file = process.argv[2];
if (!file) {
  console.error('usage: npm run send -- <file.ndjson>');
  process.exit(2);
}
const stackFile = await readStackFile();
process.env.AWS_REGION ??= stackFile.region ?? 'us-east-1';
process.env.AWS_ACCESS_KEY_ID ??= 'S3RVER';
process.env.AWS_SECRET_ACCESS_KEY ??= 'S3RVER';
if (!process.env.AWS_ENDPOINT_URL_KINESIS && !process.env.AWS_ENDPOINT_URL) {
  process.env.AWS_ENDPOINT_URL_KINESIS = stackFile.endpoints?.kinesis ?? `http://127.0.0.1:${DEFAULT_PORTS.kinesis}`;
}
const streamName = process.env.STREAM_NAME ?? stackFile.names?.streamName ?? DEFAULT_NAMES.streamName;

const lines = (await readFile(file, 'utf8')).split('\n').filter((line) => line.trim() !== '');
const records: StreamRecord[] = lines.map((line, i) => ({ partitionKey: partitionKeyFor(line, i + 1), data: Buffer.from(line, 'utf8') }));
const outcome = await putRecords(kinesisClient(), records, { streamName });
console.log(`sent ${outcome.stored.length} of ${records.length} records to ${streamName} in ${outcome.calls} PutRecords calls`);
for (const f of outcome.failed) console.error(`line ${f.index + 1} not stored: ${f.error}`);
process.exit(outcome.failed.length > 0 ? 1 : 0);
