import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
import { z } from 'zod';
import { collectorSecretDocument, collectorSecretsEnvSchema, ConfigError, parseEnv } from '../config.js';

/**
 * The collector's credentials. In AWS they live in one Secrets Manager secret (JSON), read once per
 * container and cached (COLLECTOR_SECRET_ID); locally they come from environment variables.
 * They are never logged.
 */
export interface CollectorSecrets {
  /**
   * Public write keys: shipped inside web pages and apps, so anyone can read them (SECURITY.md).
   * Several, for rotation.
   */
  trackerWriteKeys: string[];
  /** Secret write keys for server-side SDKs (analytics-node, rudder-sdk-node): never in a client. */
  serverWriteKeys: string[];
  /** Keys for the privacy route (`POST /v1/privacy/delete`): deletion requests only. */
  privacyApiKeys: string[];
  /** Segment Webhook destination shared secret (X-Signature HMAC). */
  segmentSharedSecret?: string;
  /** The exact Authorization header value configured in mParticle's webhook output. */
  mparticleAuthorization?: string;
  /** Keys for the catalog and profile feeds (/v1/items, /v1/users). */
  feedApiKeys: string[];
  /** HMAC key for user ids in the deletion audit log (never the raw id). */
  auditHashKey?: string;
  /** Key -> id, for targets that route by credential (docs/targets.md); only keys of the lists above. */
  keyIds?: ReadonlyMap<string, string>;
}

const secretDocument = collectorSecretDocument;

/** Secret refresh interval: rotation takes effect within this time without a redeploy. */
const SECRET_MAX_AGE_SECONDS = 300;

/** The last document parsed, keyed by its raw text: requests reuse it until the secret changes. */
let parsedCache: { raw: string; secrets: CollectorSecrets } | undefined;

function parseOnce(raw: string, parse: () => CollectorSecrets): CollectorSecrets {
  if (parsedCache?.raw !== raw) parsedCache = { raw, secrets: parse() };
  return parsedCache.secrets;
}

export async function loadCollectorSecrets(env: NodeJS.ProcessEnv = process.env): Promise<CollectorSecrets> {
  const vars = parseEnv(collectorSecretsEnvSchema, env, 'collector');
  const secretId = vars.COLLECTOR_SECRET_ID;
  if (secretId) {
    const value = await getSecret(secretId, { maxAge: SECRET_MAX_AGE_SECONDS });
    const raw = typeof value === 'string' ? value : Buffer.from(value as Uint8Array).toString('utf8');
    return parseOnce(`secret:${secretId}:${raw}`, () => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(raw);
      } catch {
        throw new ConfigError(`COLLECTOR_SECRET_ID: secret ${secretId} is not a JSON document`);
      }
      const result = secretDocument.safeParse(parsed);
      if (!result.success) {
        // The field only, never the message or a record's key: either could quote a credential.
        throw new ConfigError(`COLLECTOR_SECRET_ID: secret ${secretId} has invalid fields: ${[...new Set(result.error.issues.map((i) => String(i.path[0] ?? '(root)')))].join(', ')}`);
      }
      return withoutUndefined(result.data, `COLLECTOR_SECRET_ID: secret ${secretId} keyIds`);
    });
  }
  const fromEnv = {
    trackerWriteKeys: vars.TRACKER_WRITE_KEYS,
    serverWriteKeys: vars.SERVER_WRITE_KEYS,
    privacyApiKeys: vars.PRIVACY_API_KEYS,
    segmentSharedSecret: vars.SEGMENT_SHARED_SECRET,
    mparticleAuthorization: vars.MPARTICLE_AUTHORIZATION,
    feedApiKeys: vars.FEED_API_KEYS,
    auditHashKey: vars.AUDIT_HASH_KEY,
    keyIds: vars.COLLECTOR_KEY_IDS,
  };
  return parseOnce(`env:${JSON.stringify(fromEnv)}`, () => {
    const result = secretDocument.safeParse(fromEnv);
    if (!result.success) {
      const fields = [...new Set(result.error.issues.map((i) => String(i.path[0] ?? '(root)')))];
      throw new ConfigError(`collector: invalid credentials: ${fields.map((f) => (f === 'keyIds' ? `COLLECTOR_KEY_IDS (${result.error.issues.find((i) => i.path[0] === f)?.message})` : f)).join(', ')}`);
    }
    return withoutUndefined(result.data, 'collector: COLLECTOR_KEY_IDS');
  });
}

/** The ids of keys no list holds: a typo that would route nothing, said at start-up (ids only, never keys). */
function checkedKeyIds(s: z.infer<typeof secretDocument>, origin: string): ReadonlyMap<string, string> | undefined {
  if (s.keyIds === undefined) return undefined;
  const configured = new Set([...s.trackerWriteKeys, ...s.serverWriteKeys, ...s.feedApiKeys, ...s.privacyApiKeys]);
  const unknown = Object.entries(s.keyIds).filter(([key]) => !configured.has(key)).map(([, id]) => id);
  if (unknown.length > 0) throw new ConfigError(`${origin} names keys that are not configured (ids ${unknown.join(', ')})`);
  return new Map(Object.entries(s.keyIds));
}

function withoutUndefined(s: z.infer<typeof secretDocument>, origin: string): CollectorSecrets {
  const keyIds = checkedKeyIds(s, origin);
  return {
    trackerWriteKeys: s.trackerWriteKeys,
    serverWriteKeys: s.serverWriteKeys,
    privacyApiKeys: s.privacyApiKeys,
    feedApiKeys: s.feedApiKeys,
    ...(s.segmentSharedSecret !== undefined && { segmentSharedSecret: s.segmentSharedSecret }),
    ...(s.mparticleAuthorization !== undefined && { mparticleAuthorization: s.mparticleAuthorization }),
    ...(s.auditHashKey !== undefined && { auditHashKey: s.auditHashKey }),
    ...(keyIds !== undefined && { keyIds }),
  };
}
