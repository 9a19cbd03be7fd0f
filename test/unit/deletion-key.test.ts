import { describe, expect, it, vi } from 'vitest';
import { ConfigError, readExportEnv, readProcessorEnv } from '../../shared/config.js';
import { keyedHasher, UNKEYED_HASHER } from '../../shared/deletion.js';

const secretValue = vi.hoisted(() => ({ current: '', ids: [] as string[] }));
vi.mock('@aws-lambda-powertools/parameters/secrets', () => ({
  getSecret: (id: string) => {
    secretValue.ids.push(id);
    return Promise.resolve(secretValue.current);
  },
}));
const { loadDeletionHasher, lazyDeletionHasher, UNKEYED_WARNING } = await import('../../shared/deletion-key.js');

const KEY = 'a-deletion-hash-key-of-32-characters-or-more';
const PROCESSOR = {
  PERSONALIZE_TRACKING_ID: 'tracker-123',
  IDENTITY_TABLE: 'identity',
  ARCHIVE_BUCKET: 'archive-bucket',
  DLQ_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/personalize-dlq',
};
const EXPORT = { ARCHIVE_BUCKET: 'archive-bucket', IDENTITY_TABLE: 'identity' };

function errorOf(read: () => unknown): string {
  try {
    read();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected the configuration to be rejected');
}

describe('deletion hash configuration, validated at the edge', () => {
  it('takes the key or the secret id, for the processor and the export', () => {
    expect(readProcessorEnv({ ...PROCESSOR, DELETION_HASH_KEY: KEY }).DELETION_HASH_KEY).toBe(KEY);
    expect(readExportEnv({ ...EXPORT, DELETION_HASH_SECRET_ID: 'personalize-ingest/prod/deletion' }).DELETION_HASH_SECRET_ID).toBe('personalize-ingest/prod/deletion');
    expect(readExportEnv({ ...EXPORT, DELETION_HASH_KEY: ' ' }).DELETION_HASH_KEY).toBeUndefined();
  });

  it('refuses a short key, naming the variable', () => {
    expect(errorOf(() => readProcessorEnv({ ...PROCESSOR, DELETION_HASH_KEY: 'short' }))).toMatch(/^processor configuration is invalid: DELETION_HASH_KEY must be at least 32 characters/);
    expect(errorOf(() => readExportEnv({ ...EXPORT, DELETION_HASH_KEY: 'short' }))).toMatch(/DELETION_HASH_KEY must be at least 32 characters/);
  });

  it('refuses both a key and a secret id', () => {
    const both = { DELETION_HASH_KEY: KEY, DELETION_HASH_SECRET_ID: 'id' };
    expect(errorOf(() => readExportEnv({ ...EXPORT, ...both }))).toMatch(/DELETION_HASH_KEY and DELETION_HASH_SECRET_ID are both set/);
    expect(errorOf(() => readProcessorEnv({ ...PROCESSOR, ...both }))).toMatch(/DELETION_HASH_KEY and DELETION_HASH_SECRET_ID are both set/);
  });
});

describe('loadDeletionHasher', () => {
  it('reads the key from the Secrets Manager secret named by DELETION_HASH_SECRET_ID', async () => {
    secretValue.current = JSON.stringify({ deletionHashKey: KEY });
    const hasher = await loadDeletionHasher({ DELETION_HASH_SECRET_ID: 'personalize-ingest/prod/deletion' });
    expect(secretValue.ids.at(-1)).toBe('personalize-ingest/prod/deletion');
    expect(hasher.keyId).toBe(keyedHasher(KEY).keyId);
    expect(hasher.digest('u').equals(keyedHasher(KEY).digest('u'))).toBe(true);
  });

  it('refuses a secret that is not {"deletionHashKey": ...} with 32 characters or more, naming the variable', async () => {
    for (const value of ['not json', '{}', JSON.stringify({ deletionHashKey: 'short' })]) {
      secretValue.current = value;
      await expect(loadDeletionHasher({ DELETION_HASH_SECRET_ID: 'sid' })).rejects.toThrow(/^DELETION_HASH_SECRET_ID: secret sid must be a JSON document \{"deletionHashKey"/);
    }
  });

  it('uses DELETION_HASH_KEY locally', async () => {
    expect((await loadDeletionHasher({ DELETION_HASH_KEY: KEY })).keyId).toBe(keyedHasher(KEY).keyId);
  });

  it('falls back to unkeyed SHA-256 with one warning per process', async () => {
    const warnings: string[] = [];
    expect(await loadDeletionHasher({}, { warn: (m) => warnings.push(m) })).toBe(UNKEYED_HASHER);
    expect(await loadDeletionHasher({}, { warn: (m) => warnings.push(m) })).toBe(UNKEYED_HASHER);
    expect(warnings).toEqual([UNKEYED_WARNING]);
    expect(UNKEYED_WARNING).toMatch(/DELETION_HASH_KEY or DELETION_HASH_SECRET_ID/);
  });

  it('lazily: loads once, and tries again after a failure', async () => {
    secretValue.current = 'broken';
    const lazy = lazyDeletionHasher({ DELETION_HASH_SECRET_ID: 'lazy' });
    await expect(lazy()).rejects.toThrow(/DELETION_HASH_SECRET_ID/);
    secretValue.current = JSON.stringify({ deletionHashKey: KEY });
    const first = await lazy();
    secretValue.current = 'broken again';
    expect(await lazy()).toBe(first);
  });
});
