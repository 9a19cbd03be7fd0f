import { brotliDecompressSync, gunzipSync, inflateSync, type ZlibOptions } from 'node:zlib';

/**
 * Request bodies as trackers send them: analytics-kotlin and rudder-sdk-node gzip theirs
 * (docs/trackers.md), with the write key inside. Decoding happens before authentication and
 * parsing, and is bounded: zlib stops at `maxOutputLength`, so a gzip bomb costs at most the
 * limit in memory and the time to inflate that much.
 */

export type DecodedBody = { ok: true; body: Buffer } | { ok: false; status: 400 | 413 | 415; message: string };

type Decoder = (input: Buffer, options: ZlibOptions) => Buffer;

const DECODERS: Readonly<Record<string, Decoder>> = {
  gzip: gunzipSync,
  'x-gzip': gunzipSync,
  deflate: inflateSync,
  br: brotliDecompressSync,
};

/** Content-Encoding values, in the order they were applied (RFC 9110 §8.4). */
function encodingsOf(header: string | undefined): string[] {
  if (header === undefined) return [];
  return header
    .split(',')
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e !== '' && e !== 'identity');
}

function isTooLarge(error: unknown): boolean {
  return error instanceof RangeError || (error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
}

export function decodeBody(raw: Buffer, contentEncoding: string | undefined, maxBytes: number): DecodedBody {
  const encodings = encodingsOf(contentEncoding);
  const unknown = encodings.find((e) => !Object.hasOwn(DECODERS, e));
  if (unknown !== undefined) {
    return { ok: false, status: 415, message: `Content-Encoding "${unknown.slice(0, 40)}" is not supported; send gzip, deflate, br or none` };
  }
  let body = raw;
  for (const encoding of encodings.reverse()) {
    try {
      body = DECODERS[encoding]!(body, { maxOutputLength: maxBytes });
    } catch (error) {
      if (isTooLarge(error)) {
        return { ok: false, status: 413, message: `request body inflates past ${maxBytes} bytes (Content-Encoding ${encoding}), limit ${maxBytes}` };
      }
      return { ok: false, status: 400, message: `request body is not valid ${encoding} data: ${(error as Error).message}` };
    }
  }
  return { ok: true, body };
}
