import type { MessageKind } from '../../schemas/canonical.js';
import { basicAuthUser, bearerToken, matchesAnyKey, safeEqual, verifySegmentSignature } from './auth.js';
import type { CollectorSecrets } from './secrets.js';

/**
 * Who may send what (SECURITY.md). A browser or mobile write key ships inside a page or an app, so
 * anyone holding it is "the public": it may send what a visitor's own tracker sends, never a
 * deletion, and profile updates only where the deployment chose so.
 */

export type Door = 'tracker' | 'segment-webhook' | 'mparticle-webhook' | 'items-feed' | 'users-feed' | 'privacy';

export type CredentialClass = 'public-key' | 'server-key' | 'segment-webhook' | 'mparticle-webhook' | 'feed-key' | 'privacy-key';

/** What each class may put on the stream. `user` from a public key is governed by `publicProfileUpdates`. */
export const MAY_SEND: Readonly<Record<CredentialClass, ReadonlySet<MessageKind>>> = {
  'public-key': new Set(['interaction', 'identify', 'alias', 'user', 'consent']),
  'server-key': new Set(['interaction', 'identify', 'alias', 'user', 'delete', 'consent']),
  'segment-webhook': new Set(['interaction', 'identify', 'alias', 'user', 'delete', 'consent']),
  'mparticle-webhook': new Set(['interaction', 'identify', 'alias', 'user', 'consent']),
  'feed-key': new Set(['item', 'user']),
  'privacy-key': new Set(['delete']),
};

/**
 * Profile updates (identify traits) from a public key: `drop` (default) filters them with a
 * counted reason, since anyone can send `identify{userId: victim, traits}`; `accept` sends them.
 */
export type PublicProfileUpdates = 'drop' | 'accept';

/** What a message of this kind from this class becomes: sent, filtered (a choice) or rejected (never allowed). */
export function admission(
  kind: MessageKind,
  credential: CredentialClass,
  publicProfileUpdates: PublicProfileUpdates,
): { ok: true } | { ok: false; filtered: boolean; reason: string } {
  if (credential === 'public-key' && kind === 'user' && publicProfileUpdates === 'drop') {
    return {
      ok: false,
      filtered: true,
      reason: 'profile update from a public (browser/mobile) write key not sent: COLLECTOR_PUBLIC_PROFILE_UPDATES=drop; send traits with a server key',
    };
  }
  if (MAY_SEND[credential].has(kind)) return { ok: true };
  if (kind === 'delete') {
    return {
      ok: false,
      filtered: false,
      reason: `a ${credential} may not request deletions: use a server write key, the signed Segment webhook or POST /v1/privacy/delete`,
    };
  }
  return { ok: false, filtered: false, reason: `a ${credential} may not send ${kind} messages` };
}

/** Longest write key looked for in a body: bounded work before authentication. */
const BODY_WRITE_KEY = /"writeKey"\s*:\s*"([^"\\]{1,256})"/;

/** The body's `writeKey` (mobile SDKs, beacons), found by one bounded scan of the text, not a parse. */
export function bodyWriteKey(body: Buffer): string | undefined {
  return BODY_WRITE_KEY.exec(body.toString('utf8'))?.[1];
}

function writeKeyClass(key: string | undefined, secrets: CollectorSecrets): Authenticated | undefined {
  if (key === undefined) return undefined;
  // Both lists are checked in full: which list matched must not show in the timing.
  const isPublic = matchesAnyKey(key, secrets.trackerWriteKeys);
  const isServer = matchesAnyKey(key, secrets.serverWriteKeys);
  const credential = isServer ? 'server-key' : isPublic ? 'public-key' : undefined;
  return credential && withKeyId(credential, key, secrets);
}

function apiKeyClass(credential: CredentialClass, key: string | undefined, keys: readonly string[], secrets: CollectorSecrets): Authenticated | undefined {
  return matchesAnyKey(key, keys) ? withKeyId(credential, key!, secrets) : undefined;
}

/** Looked up only after the key matched, so the lookup's timing says nothing about unknown keys. */
function withKeyId(credential: CredentialClass, key: string, secrets: CollectorSecrets): Authenticated {
  const keyId = secrets.keyIds?.get(key);
  return keyId === undefined ? { credential } : { credential, keyId };
}

/** Who sent a request: the class of its credential and, when the secret names the key, the key's id. */
export interface Authenticated {
  credential: CredentialClass;
  keyId?: string;
}

/**
 * The credential of a request, or undefined (401). `body` is asked for only on the tracker
 * door without an Authorization header, where the key is inside the (decoded) body.
 */
export function authenticate(
  door: Door,
  headers: Record<string, string | undefined>,
  rawBody: Buffer,
  secrets: CollectorSecrets,
  decodedBody: () => Buffer | undefined,
): Authenticated | undefined {
  switch (door) {
    case 'tracker': {
      // Segment SDKs send the write key as the Basic-auth user; mobile SDKs and beacons in the body.
      if (headers.authorization !== undefined) return writeKeyClass(basicAuthUser(headers.authorization), secrets);
      const body = decodedBody();
      return body === undefined ? undefined : writeKeyClass(bodyWriteKey(body), secrets);
    }
    case 'segment-webhook':
      return secrets.segmentSharedSecret !== undefined && verifySegmentSignature(rawBody, headers['x-signature'], secrets.segmentSharedSecret)
        ? { credential: 'segment-webhook' }
        : undefined;
    case 'mparticle-webhook':
      return secrets.mparticleAuthorization !== undefined &&
        headers.authorization !== undefined &&
        safeEqual(headers.authorization.trim(), secrets.mparticleAuthorization.trim())
        ? { credential: 'mparticle-webhook' }
        : undefined;
    case 'items-feed':
    case 'users-feed':
      return apiKeyClass('feed-key', bearerToken(headers.authorization) ?? headers['x-api-key'], secrets.feedApiKeys, secrets);
    case 'privacy':
      return apiKeyClass('privacy-key', bearerToken(headers.authorization) ?? headers['x-api-key'], secrets.privacyApiKeys, secrets);
  }
}
