import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';

/**
 * Streams one gzip NDJSON object line by line (gunzip stream + line reader): an object is never
 * held in memory. A corrupt gzip stream ends the object with `corrupt` set — the lines before
 * the damage are kept, as gzip's own framing allows — while any other error (the network, S3)
 * is thrown so the whole export fails and is retried rather than silently missing data.
 */

export interface ObjectReadResult {
  /** Non-empty lines handed to onLine. */
  lines: number;
  /** Compressed bytes read. */
  bytes: number;
  /** The zlib error, when the object is not valid gzip. */
  corrupt?: string;
}

const isZlibError = (error: unknown): boolean => {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && code.startsWith('Z_');
};

export async function readGzipLines(
  body: Readable,
  onLine: (line: string) => void | Promise<void>,
): Promise<ObjectReadResult> {
  let bytes = 0;
  body.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  const gunzip = createGunzip();
  // The pipeline forwards a source error into gunzip, which the line reader then throws.
  const piped = pipeline(body, gunzip).catch(() => undefined);
  let lines = 0;
  const reader = createInterface({ input: gunzip, crlfDelay: Number.POSITIVE_INFINITY });
  try {
    for await (const line of reader) {
      if (line.trim() === '') continue;
      lines++;
      const pending = onLine(line);
      if (pending) await pending;
    }
  } catch (error) {
    // A throwing onLine must not leave the streams to fail later unhandled ("Premature close").
    reader.close();
    gunzip.destroy();
    body.destroy();
    await piped;
    if (isZlibError(error)) return { lines, bytes, corrupt: (error as Error).message };
    throw error;
  }
  await piped;
  return { lines, bytes };
}
