import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeBody } from '../../shared/collect/body.js';

const json = Buffer.from(JSON.stringify({ batch: [], writeKey: 'k' }));

describe('decodeBody', () => {
  it('passes a body without Content-Encoding (or identity) through untouched', () => {
    expect(decodeBody(json, undefined, 1000)).toEqual({ ok: true, body: json });
    expect(decodeBody(json, 'identity', 1000)).toEqual({ ok: true, body: json });
  });

  it('inflates gzip, x-gzip, deflate and br, in any letter case', () => {
    for (const [encoding, body] of [['gzip', gzipSync(json)], ['X-GZIP', gzipSync(json)], ['deflate', deflateSync(json)], ['br', brotliCompressSync(json)]] as const) {
      expect(decodeBody(body, encoding, 1000), encoding).toEqual({ ok: true, body: json });
    }
  });

  it('undoes several encodings in the reverse order of their listing', () => {
    expect(decodeBody(gzipSync(deflateSync(json)), 'deflate, gzip', 1000)).toEqual({ ok: true, body: json });
  });

  it('stops at the limit: a body that inflates past it is 413, one that inflates to exactly it is fine', () => {
    const bomb = gzipSync(Buffer.alloc(10_000_000));
    expect(decodeBody(bomb, 'gzip', 64_000)).toMatchObject({ ok: false, status: 413, message: expect.stringMatching(/inflates past 64000 bytes/) as unknown });
    expect(decodeBody(gzipSync(Buffer.alloc(64_000)), 'gzip', 64_000)).toMatchObject({ ok: true });
  });

  it('answers corrupt data with 400 and an unknown encoding with 415, naming it', () => {
    expect(decodeBody(Buffer.from('plain'), 'gzip', 1000)).toMatchObject({ ok: false, status: 400, message: expect.stringMatching(/not valid gzip/) as unknown });
    expect(decodeBody(json, 'zstd', 1000)).toMatchObject({ ok: false, status: 415, message: expect.stringMatching(/"zstd" is not supported/) as unknown });
  });
});
