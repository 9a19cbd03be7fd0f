import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
import { z } from 'zod';
import { ConfigError, DELETION_HASH_KEY_MIN_LENGTH, type DeletionHashEnv } from './config.js';
import { keyedHasher, UNKEYED_HASHER, type UserIdHasher } from './deletion.js';
import { logger } from './observability.js';

/**
 * The deletion registry's hash key, from the configuration validated by shared/config.ts
 * (`deletionHashEnv`): DELETION_HASH_KEY (local development), or DELETION_HASH_SECRET_ID, a
 * Secrets Manager secret `{"deletionHashKey": "..."}` read with Powertools (AWS). Neither: unkeyed
 * SHA-256, so deployments without a key keep working, with a warning. The key is never logged.
 */

const secretDocument = z.object({
  deletionHashKey: z.string().min(DELETION_HASH_KEY_MIN_LENGTH),
});

/** Secrets Manager's cache lifetime; the key itself must not change (README "Deleting a user"). */
const SECRET_MAX_AGE_SECONDS = 300;

export const UNKEYED_WARNING =
  'deletion registry: no DELETION_HASH_KEY or DELETION_HASH_SECRET_ID configured, so it holds unkeyed SHA-256 hashes of user ids, ' +
  'which anyone who can read the bucket can test candidate ids against; configure a key (README "Deleting a user")';

let warned = false;

export interface DeletionHasherOptions {
  /** Where the unkeyed warning goes (once per process); default the Powertools logger. CLIs pass stderr. */
  warn?: (message: string) => void;
}

export async function loadDeletionHasher(config: DeletionHashEnv, options: DeletionHasherOptions = {}): Promise<UserIdHasher> {
  const secretId = config.DELETION_HASH_SECRET_ID;
  if (secretId !== undefined) {
    let value: unknown;
    try {
      value = await getSecret(secretId, { maxAge: SECRET_MAX_AGE_SECONDS });
    } catch (error) {
      throw new ConfigError(`DELETION_HASH_SECRET_ID: secret ${secretId} could not be read: ${(error as Error).message}`);
    }
    const raw = typeof value === 'string' ? value : value instanceof Uint8Array ? Buffer.from(value).toString('utf8') : '';
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      parsed = undefined;
    }
    const result = secretDocument.safeParse(parsed);
    if (!result.success) {
      throw new ConfigError(`DELETION_HASH_SECRET_ID: secret ${secretId} must be a JSON document {"deletionHashKey": "<at least ${DELETION_HASH_KEY_MIN_LENGTH} characters>"}`);
    }
    return keyedHasher(result.data.deletionHashKey);
  }
  if (config.DELETION_HASH_KEY !== undefined) return keyedHasher(config.DELETION_HASH_KEY);
  if (!warned) {
    warned = true;
    (options.warn ?? ((message: string) => logger.warn(message)))(UNKEYED_WARNING);
  }
  return UNKEYED_HASHER;
}

/** Loads on first use and keeps the result; a failure is not kept, so the next call tries again. */
export function lazyDeletionHasher(config: DeletionHashEnv, options: DeletionHasherOptions = {}): () => Promise<UserIdHasher> {
  let pending: Promise<UserIdHasher> | undefined;
  return () => {
    pending ??= loadDeletionHasher(config, options).catch((error: unknown) => {
      pending = undefined;
      throw error;
    });
    return pending;
  };
}
