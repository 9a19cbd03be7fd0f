import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Credential checks for the front doors. Every comparison is constant-time: both sides are hashed
 * to fixed-length digests first, so neither content nor length leaks through timing.
 */

function digest(value: string | Buffer): Buffer {
  return createHash('sha256').update(value).digest();
}

export function safeEqual(candidate: string | Buffer, expected: string | Buffer): boolean {
  return timingSafeEqual(digest(candidate), digest(expected));
}

/** True when the candidate equals one of the keys; every key is compared (no early exit), for rotation. */
export function matchesAnyKey(candidate: string | undefined, keys: readonly string[]): boolean {
  if (candidate === undefined || candidate === '') return false;
  let matched = false;
  for (const key of keys) {
    if (key !== '' && safeEqual(candidate, key)) matched = true;
  }
  return matched;
}

/** The user part of `Authorization: Basic base64(user:password)` (Segment write keys are the user). */
export function basicAuthUser(header: string | undefined): string | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header ?? '');
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 ? decoded.slice(0, colon) : decoded;
}

/** `Authorization: Bearer <token>`, or the token alone. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/**
 * Segment's webhook signature (FACTS §6a): `X-Signature` = hex HMAC-SHA1 of the request body,
 * keyed with the shared secret. Verified over the raw bytes as received, never a re-serialisation.
 */
export function verifySegmentSignature(rawBody: Buffer, signature: string | undefined, sharedSecret: string): boolean {
  if (!signature || !sharedSecret) return false;
  const expected = createHmac('sha1', sharedSecret).update(rawBody).digest('hex');
  return safeEqual(signature.trim().toLowerCase(), expected);
}

export function segmentSignature(rawBody: Buffer | string, sharedSecret: string): string {
  return createHmac('sha1', sharedSecret).update(rawBody).digest('hex');
}
