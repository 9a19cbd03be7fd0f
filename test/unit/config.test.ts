import { describe, expect, it } from 'vitest';
import { ConfigError, readProcessorEnv } from '../../shared/config.js';

const VALID = {
  PERSONALIZE_TRACKING_ID: 'tracker-123',
  IDENTITY_TABLE: 'identity',
  ARCHIVE_BUCKET: 'archive-bucket',
  DLQ_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/personalize-dlq',
};

function messageOf(env: NodeJS.ProcessEnv): string {
  try {
    readProcessorEnv(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected the configuration to be rejected');
}

describe('readProcessorEnv', () => {
  it('applies the defaults', () => {
    expect(readProcessorEnv(VALID)).toEqual({
      ...VALID,
      FORWARD_CONCURRENCY: 8,
      PUT_ITEMS_PER_SECOND: 10,
      PUT_USERS_PER_SECOND: 10,
      PERSONALIZE_MAX_ATTEMPTS: 5,
      PERSONALIZE_RETRY_MODE: 'standard',
      IDENTITY_CACHE_TTL_SECONDS: 900,
      IDENTITY_NEGATIVE_CACHE_TTL_SECONDS: 5,
      IDENTITY_CACHE_MAX_ENTRIES: 100_000,
      IDENTITY_LINK_TTL_DAYS: 0,
      PII_MODE: 'allow',
      BULK_MODE: 'complement',
      PERSONALIZE_DATASET_GROUP_ARN: [],
    });
  });

  it('needs the tracker id only when BULK_MODE streams interactions (complement)', () => {
    const { PERSONALIZE_TRACKING_ID: _tracker, ...noTracker } = VALID;
    expect(readProcessorEnv({ ...noTracker, BULK_MODE: 'bulk-only' }).PERSONALIZE_TRACKING_ID).toBeUndefined();
    expect(() => readProcessorEnv(noTracker)).toThrow(/PERSONALIZE_TRACKING_ID is required .* when BULK_MODE is complement/);
    expect(() => readProcessorEnv({ ...VALID, BULK_MODE: 'sometimes' })).toThrow(/BULK_MODE/);
  });

  it('treats blank variables as unset: no dataset ARN, and the numeric defaults', () => {
    const config = readProcessorEnv({
      ...VALID,
      PERSONALIZE_ITEMS_DATASET_ARN: '',
      PERSONALIZE_USERS_DATASET_ARN: '  ',
      FORWARD_CONCURRENCY: '',
      PUT_ITEMS_PER_SECOND: '',
      PUT_USERS_PER_SECOND: ' ',
      IDENTITY_CACHE_TTL_SECONDS: '',
      IDENTITY_NEGATIVE_CACHE_TTL_SECONDS: '',
      IDENTITY_CACHE_MAX_ENTRIES: '',
      PERSONALIZE_MAX_ATTEMPTS: '',
    });
    expect(config.PERSONALIZE_ITEMS_DATASET_ARN).toBeUndefined();
    expect(config.PERSONALIZE_USERS_DATASET_ARN).toBeUndefined();
    expect(config).toMatchObject({
      FORWARD_CONCURRENCY: 8,
      PUT_ITEMS_PER_SECOND: 10,
      PUT_USERS_PER_SECOND: 10,
      IDENTITY_CACHE_TTL_SECONDS: 900,
      IDENTITY_NEGATIVE_CACHE_TTL_SECONDS: 5,
      IDENTITY_CACHE_MAX_ENTRIES: 100_000,
      PERSONALIZE_MAX_ATTEMPTS: 5,
    });
  });

  it('reads set values, trimmed and converted', () => {
    const config = readProcessorEnv({
      ...VALID,
      PERSONALIZE_TRACKING_ID: '  tracker-9  ',
      PERSONALIZE_ITEMS_DATASET_ARN: 'arn:aws:personalize:eu-west-1:123456789012:dataset/shop/ITEMS',
      PERSONALIZE_USERS_DATASET_ARN: 'arn:aws-cn:personalize:cn-north-1:123456789012:dataset/shop/USERS',
      FORWARD_CONCURRENCY: '16',
      PUT_ITEMS_PER_SECOND: '0',
      PERSONALIZE_RETRY_MODE: 'adaptive',
      IDENTITY_NEGATIVE_CACHE_TTL_SECONDS: '0.5',
    });
    expect(config).toMatchObject({
      PERSONALIZE_TRACKING_ID: 'tracker-9',
      PERSONALIZE_ITEMS_DATASET_ARN: 'arn:aws:personalize:eu-west-1:123456789012:dataset/shop/ITEMS',
      PERSONALIZE_USERS_DATASET_ARN: 'arn:aws-cn:personalize:cn-north-1:123456789012:dataset/shop/USERS',
      FORWARD_CONCURRENCY: 16,
      PUT_ITEMS_PER_SECOND: 0,
      PERSONALIZE_RETRY_MODE: 'adaptive',
      IDENTITY_NEGATIVE_CACHE_TTL_SECONDS: 0.5,
    });
  });

  it('names every bad variable in one error', () => {
    const message = messageOf({
      IDENTITY_TABLE: 'identity',
      ARCHIVE_BUCKET: 'archive-bucket',
      DLQ_URL: 'personalize-dlq',
      PERSONALIZE_ITEMS_DATASET_ARN: 'arn:aws:s3:::my-bucket',
      FORWARD_CONCURRENCY: 'many',
      PERSONALIZE_RETRY_MODE: 'legacy',
    });
    expect(message).toMatch(/^processor configuration is invalid: /);
    for (const name of ['PERSONALIZE_TRACKING_ID', 'DLQ_URL', 'PERSONALIZE_ITEMS_DATASET_ARN', 'FORWARD_CONCURRENCY', 'PERSONALIZE_RETRY_MODE']) {
      expect(message).toContain(name);
    }
    expect(message).toMatch(/PERSONALIZE_ITEMS_DATASET_ARN must be a Personalize dataset ARN/);
    expect(message).toMatch(/DLQ_URL must be the SQS dead-letter queue URL/);
    expect(message).not.toContain('IDENTITY_TABLE');
  });

  it('explains a blank required variable', () => {
    expect(messageOf({ ...VALID, PERSONALIZE_TRACKING_ID: '   ' })).toMatch(/PERSONALIZE_TRACKING_ID is required/);
    expect(messageOf({ ...VALID, IDENTITY_TABLE: '' })).toMatch(/IDENTITY_TABLE is required/);
    expect(messageOf({ ...VALID, ARCHIVE_BUCKET: '' })).toMatch(/ARCHIVE_BUCKET is required/);
  });

  it('rejects out-of-range numbers, naming them', () => {
    const message = messageOf({ ...VALID, FORWARD_CONCURRENCY: '0', PUT_USERS_PER_SECOND: '-1', IDENTITY_CACHE_MAX_ENTRIES: '1.5', PERSONALIZE_MAX_ATTEMPTS: '2.5' });
    for (const name of ['FORWARD_CONCURRENCY', 'PUT_USERS_PER_SECOND', 'IDENTITY_CACHE_MAX_ENTRIES', 'PERSONALIZE_MAX_ATTEMPTS']) expect(message).toContain(name);
  });

  it('rejects a tracking id over 256 characters', () => {
    expect(messageOf({ ...VALID, PERSONALIZE_TRACKING_ID: 't'.repeat(257) })).toContain('PERSONALIZE_TRACKING_ID');
  });
});
