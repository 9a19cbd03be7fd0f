import { z } from 'zod';
import { IMPORT_LIMITS, ROLE_ARN_PATTERN } from './personalize/import-limits.js';
import { BULK_MODES } from './bulk-mode.js';
import { PII_MODES } from './pii.js';
import type { ConsentPolicy } from './consent/policy.js';

/**
 * Configuration is read once per container, at the edge, from environment variables (set by
 * serverless.yml in AWS, by the local stack locally). Errors name the variable.
 */

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const datasetArn = optionalString.refine((v) => v === undefined || /^arn:([a-z\d-]+):personalize:.*:.*:.+$/.test(v), {
  message: 'must be a Personalize dataset ARN (arn:aws:personalize:<region>:<account>:dataset/<group>/<TYPE>)',
});

/** A blank variable is unset, as for the ARNs above: coercing '' would give 0 (no pacing, no cache). */
const blankAsUnset = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const positiveInt = (fallback: number) => z.preprocess(blankAsUnset, z.coerce.number().int().positive().default(fallback));
const nonNegative = (fallback: number) => z.preprocess(blankAsUnset, z.coerce.number().min(0).default(fallback));

/** What the nightly import is for (shared/bulk-mode.ts); the processor and the export must agree. */
const bulkMode = z.preprocess(blankAsUnset, z.enum(BULK_MODES).default('complement'));

/** A required variable: missing and blank get the same message, naming what it is. */
const required = (what: string) =>
  z.string({ error: `is required (${what})` }).trim().min(1, `is required (${what})`);

/** HMAC keys for user ids in the deletion registry: `openssl rand -hex 32` gives 64 characters. */
export const DELETION_HASH_KEY_MIN_LENGTH = 32;

/**
 * The deletion registry's hash key (shared/deletion-key.ts): the key itself (local development),
 * or the id of the Secrets Manager secret holding it (AWS: no key in an environment variable).
 * Neither: unkeyed SHA-256, with a warning. Every function that writes or reads the registry.
 */
export const deletionHashEnv = {
  DELETION_HASH_KEY: optionalString.refine((v) => v === undefined || v.length >= DELETION_HASH_KEY_MIN_LENGTH, {
    message: `must be at least ${DELETION_HASH_KEY_MIN_LENGTH} characters (the HMAC key for user ids in the deletion registry, e.g. \`openssl rand -hex 32\`)`,
  }),
  /** Secret value: {"deletionHashKey": "<at least 32 characters>"}. */
  DELETION_HASH_SECRET_ID: optionalString,
};

export type DeletionHashEnv = { DELETION_HASH_KEY?: string | undefined; DELETION_HASH_SECRET_ID?: string | undefined };

/** Both set is ambiguous (which key wrote the registry?): refused, naming both. */
export function oneDeletionHashSource(env: DeletionHashEnv, ctx: z.RefinementCtx): void {
  if (env.DELETION_HASH_KEY !== undefined && env.DELETION_HASH_SECRET_ID !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['DELETION_HASH_KEY'],
      message: 'and DELETION_HASH_SECRET_ID are both set: set one (the key locally, the secret id in AWS)',
    });
  }
}

/** Dataset group ARN form of the Personalize APIs (datasetGroupArn), with the dataset-group resource. */
export const DATASET_GROUP_ARN_PATTERN = /^arn:([a-z\d-]+):personalize:[a-z\d-]*:\d*:dataset-group\/[a-zA-Z0-9][a-zA-Z0-9\-_]*$/;

/**
 * PERSONALIZE_DATASET_GROUP_ARN: comma-separated dataset groups a deleted user is removed from
 * (one CreateDataDeletionJob per group). Set on the processor too: only then does it keep the raw
 * userId in the short-lived outbox the deletion step reads (README "Deletion reaches Personalize").
 */
export const datasetGroupArnsEnv = optionalString
  .transform((v) => (v === undefined ? [] : [...new Set(v.split(',').map((a) => a.trim()).filter((a) => a !== ''))]))
  .refine((arns) => arns.every((a) => a.length <= 256 && DATASET_GROUP_ARN_PATTERN.test(a)), {
    message: 'must be one or more comma-separated Personalize dataset group ARNs (arn:aws:personalize:<region>:<account>:dataset-group/<name>)',
  });

/** A comma-separated list of names: trimmed, blanks and repeats dropped; unset or blank: none. */
const nameList = optionalString.transform((v) => (v === undefined ? undefined : [...new Set(v.split(',').map((n) => n.trim()).filter((n) => n !== ''))]));
const choice = <T extends string>(values: readonly [T, ...T[]], what: string) =>
  z.preprocess(blankAsUnset, z.enum(values, { error: `must be ${values.join(' or ')} (${what})` }).optional());

/**
 * Consent (shared/consent/policy.ts, README "Consent"): the same variables for the processor, the
 * export, redrive and replay, so all apply one rule. Unset: consent not enforced, as before; the
 * defaults are applied by consentPolicyFromEnv, so parsed configurations without them are unchanged.
 */
export const consentEnv = {
  /** Segment consent category ids Personalize needs (exact, case-sensitive). */
  CONSENT_REQUIRED_CATEGORIES: nameList,
  /** mParticle GDPR purposes Personalize needs (case ignored). */
  CONSENT_REQUIRED_PURPOSES: nameList,
  /** CCPA data-sale opt-out: `honour` denies; `ignore` (default): Personalize, the business's own processor, is no sale. */
  CONSENT_DATA_SALE_OPT_OUT: choice(['honour', 'ignore'], 'whether a CCPA data-sale opt-out keeps events from Personalize'),
  CONSENT_NO_SIGNAL: choice(['allow', 'deny'], 'what happens to events with no consent signal; default allow'),
  CONSENT_ARCHIVE: choice(['keep', 'drop'], 'whether events without consent stay in the archive; default keep'),
  CONSENT_OPT_OUT_DELETION: z.preprocess(
    (v) => (typeof v === 'string' ? (v.trim() === '' ? undefined : v.trim().toLowerCase()) : v),
    z
      .enum(['true', 'false'], { error: 'must be true or false (whether an opt-out schedules the user for deletion from Personalize)' })
      .optional()
      .transform((v) => (v === undefined ? undefined : v === 'true')),
  ),
};

export type ConsentEnv = {
  CONSENT_REQUIRED_CATEGORIES?: string[] | undefined;
  CONSENT_REQUIRED_PURPOSES?: string[] | undefined;
  CONSENT_DATA_SALE_OPT_OUT?: 'honour' | 'ignore' | undefined;
  CONSENT_NO_SIGNAL?: 'allow' | 'deny' | undefined;
  CONSENT_ARCHIVE?: 'keep' | 'drop' | undefined;
  CONSENT_OPT_OUT_DELETION?: boolean | undefined;
};

/** The consent policy of a parsed configuration, with the defaults: nothing required, allow, keep, no deletion. */
export function consentPolicyFromEnv(config: ConsentEnv): ConsentPolicy {
  return {
    requiredCategories: config.CONSENT_REQUIRED_CATEGORIES ?? [],
    requiredPurposes: [...new Set((config.CONSENT_REQUIRED_PURPOSES ?? []).map((p) => p.toLowerCase()))],
    honourDataSaleOptOut: config.CONSENT_DATA_SALE_OPT_OUT === 'honour',
    noSignal: config.CONSENT_NO_SIGNAL ?? 'allow',
    archive: config.CONSENT_ARCHIVE ?? 'keep',
    deleteOnOptOut: config.CONSENT_OPT_OUT_DELETION ?? false,
  };
}

/** Inline JSON replacing the bundled schemas/event-mapping.json (README "Event-type mapping"); parsed by loadEventMapping. */
const eventMappingEnv = { EVENT_MAPPING: optionalString };
/** A JSON file declaring several targets (docs/targets.md); unset: one target, from the variables. */
const targetsEnv = { TARGETS_FILE: optionalString };

export const processorEnvSchema = z.object({
  ...eventMappingEnv,
  ...targetsEnv,
  /** Required in BULK_MODE=complement (the tracker is live); unused otherwise. */
  PERSONALIZE_TRACKING_ID: optionalString.pipe(z.string().max(256).optional()),
  BULK_MODE: bulkMode,
  PERSONALIZE_ITEMS_DATASET_ARN: datasetArn,
  PERSONALIZE_USERS_DATASET_ARN: datasetArn,
  PERSONALIZE_DATASET_GROUP_ARN: datasetGroupArnsEnv,
  IDENTITY_TABLE: required('the DynamoDB identity table name'),
  /** Days a written session link lives (DynamoDB TTL on expiresAt); 0: until the user is deleted. */
  IDENTITY_LINK_TTL_DAYS: z.preprocess(blankAsUnset, z.coerce.number().int().min(0, 'must be 0 (no expiry) or a number of days').default(0)),
  ARCHIVE_BUCKET: required('the S3 archive bucket name'),
  DLQ_URL: required('the SQS dead-letter queue URL').url('must be the SQS dead-letter queue URL'),
  FORWARD_CONCURRENCY: positiveInt(8),
  PUT_ITEMS_PER_SECOND: nonNegative(10),
  PUT_USERS_PER_SECOND: nonNegative(10),
  PERSONALIZE_MAX_ATTEMPTS: positiveInt(5),
  /** SDK retry mode for Personalize calls; 'adaptive' adds client-side rate limiting after throttles. */
  PERSONALIZE_RETRY_MODE: z.enum(['standard', 'adaptive']).default('standard'),
  IDENTITY_CACHE_TTL_SECONDS: nonNegative(900),
  IDENTITY_NEGATIVE_CACHE_TTL_SECONDS: nonNegative(5),
  IDENTITY_CACHE_MAX_ENTRIES: z.preprocess(blankAsUnset, z.coerce.number().int().min(0).default(100_000)),
  /** Comma-separated property/trait names treated as PII (case and `_` ignored); blank: the defaults in shared/pii.ts. */
  PII_FIELDS: optionalString,
  /**
   * `allow` (default): only properties the dataset schemas keep (plus PII_ALLOW_FIELDS) reach the
   * archive and Personalize, and PII_FIELDS among them are dropped (hashed when PII_HASH_KEY is set).
   * `drop` / `hash`: the deny-list only: PII_FIELDS removed, or replaced with HMAC-SHA256(PII_HASH_KEY).
   */
  PII_MODE: z.preprocess(blankAsUnset, z.enum(PII_MODES).default('allow')),
  /** Allow mode: comma-separated extra property/trait names to keep though no schema column uses them (case, `_` and `-` ignored). */
  PII_ALLOW_FIELDS: optionalString,
  PII_HASH_KEY: optionalString,
  ...deletionHashEnv,
  ...consentEnv,
}).refine((env) => env.PII_MODE !== 'hash' || env.PII_HASH_KEY !== undefined, {
  message: 'is required when PII_MODE is "hash" (the HMAC key for PII fields)',
  path: ['PII_HASH_KEY'],
}).refine((env) => env.BULK_MODE !== 'complement' || env.PERSONALIZE_TRACKING_ID !== undefined, {
  message: 'is required (the event tracker id from CreateEventTracker) when BULK_MODE is complement, the default; set BULK_MODE=bulk-only or bootstrap if no tracker is live',
  path: ['PERSONALIZE_TRACKING_ID'],
  // Reported beside the other variables' errors, not only once they are all valid.
  when: (payload) => typeof payload.value === 'object' && payload.value !== null,
}).superRefine(oneDeletionHashSource);

export type ProcessorEnv = z.infer<typeof processorEnvSchema>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses a zod-described environment; the error lists every bad variable by name. */
export function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv, what: string): z.infer<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `${issue.path.join('.')} ${issue.message}`);
  throw new ConfigError(`${what} configuration is invalid: ${problems.join('; ')}`);
}

export function readProcessorEnv(env: NodeJS.ProcessEnv = process.env): ProcessorEnv {
  return parseEnv(processorEnvSchema, env, 'processor');
}

/** Comma-separated origins allowed to call from browsers; empty: no CORS headers. */
const corsEnv = { CORS_ALLOWED_ORIGINS: nameList };

/** The origins the collector answers CORS for (read by its handler at load, before the rest of its config). */
export function readCorsOrigins(env: NodeJS.ProcessEnv = process.env): string[] {
  return parseEnv(z.object(corsEnv), env, 'collector').CORS_ALLOWED_ORIGINS ?? [];
}

const secretList = z
  .union([z.array(z.string()), z.string()])
  .optional()
  .transform((v) => (v === undefined ? [] : (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim()).filter((s) => s !== '')));
const secretValue = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));

/** A credential's id (targets route by it, docs/targets.md): names a key without being it. */
export const CREDENTIAL_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/**
 * Key -> id for the keys a targets file routes by (`{"credentials": [id]}`). A JSON object in the
 * secret, a JSON string in COLLECTOR_KEY_IDS. Errors never show a key: only the ids are named.
 */
const keyIds = z.preprocess(
  (v) => {
    if (typeof v !== 'string') return v;
    if (v.trim() === '') return undefined;
    try {
      return JSON.parse(v) as unknown;
    } catch {
      return v;
    }
  },
  z
    .record(z.string(), z.string(), { error: 'must be a JSON object of key -> id' })
    .refine((m) => Object.keys(m).every((k) => k !== ''), { message: 'a key must not be empty' })
    .refine((m) => Object.values(m).every((id) => CREDENTIAL_ID_PATTERN.test(id)), {
      message: 'every id must be 1-64 of A-Z, a-z, 0-9, ".", "_" and "-"',
    })
    .optional(),
);

/**
 * The collector's credentials (shared/collect/secrets.ts): one JSON document in Secrets Manager
 * (COLLECTOR_SECRET_ID), or, locally, the variables of collectorSecretsEnv. Lists are arrays or
 * comma-separated strings.
 */
export const collectorSecretDocument = z.object({
  trackerWriteKeys: secretList,
  serverWriteKeys: secretList,
  privacyApiKeys: secretList,
  segmentSharedSecret: secretValue,
  mparticleAuthorization: secretValue,
  feedApiKeys: secretList,
  auditHashKey: secretValue,
  keyIds,
});

/** Where the collector's credentials come from: the secret's id, or each credential as a variable. */
export const collectorSecretsEnvSchema = z.object({
  COLLECTOR_SECRET_ID: optionalString,
  TRACKER_WRITE_KEYS: z.string().optional(),
  SERVER_WRITE_KEYS: z.string().optional(),
  PRIVACY_API_KEYS: z.string().optional(),
  SEGMENT_SHARED_SECRET: z.string().optional(),
  MPARTICLE_AUTHORIZATION: z.string().optional(),
  FEED_API_KEYS: z.string().optional(),
  AUDIT_HASH_KEY: z.string().optional(),
  COLLECTOR_KEY_IDS: z.string().optional(),
});

export const collectorEnvSchema = z
  .object({
    STREAM_NAME: optionalString,
    STREAM_ARN: optionalString,
    /** Segment's tracking API takes up to 500 KB per batch and 32 KB per event. */
    COLLECTOR_MAX_BODY_BYTES: positiveInt(512_000),
    COLLECTOR_MAX_MESSAGE_BYTES: positiveInt(32_768),
    /** Segment's Actions webhook batches up to 4,000 events (FACTS §6a). */
    COLLECTOR_MAX_MESSAGES: positiveInt(4_000),
    /** Interactions one source message may expand to (products of an order): one shard takes 1,000 records/s (FACTS §5). */
    COLLECTOR_MAX_EXPANDED_PER_MESSAGE: positiveInt(250),
    /** Stream records one request may produce, after expansion. */
    COLLECTOR_MAX_RECORDS_PER_REQUEST: positiveInt(10_000),
    /** A tracker's sentAt this far ahead of our clock is a wrong device clock and is corrected (README "Event time"). */
    COLLECTOR_CLOCK_SKEW_TOLERANCE_SECONDS: positiveInt(60),
    /** Identify traits from public (browser/mobile) write keys: `drop` protects users from profile overwrites (SECURITY.md). */
    COLLECTOR_PUBLIC_PROFILE_UPDATES: z.enum(['drop', 'accept']).default('drop'),
    KINESIS_PUT_ATTEMPTS: positiveInt(5),
    ...corsEnv,
    ...eventMappingEnv,
    ...targetsEnv,
  })
  .refine((env) => env.STREAM_NAME !== undefined || env.STREAM_ARN !== undefined, {
    message: 'is required: set STREAM_NAME or STREAM_ARN (the Kinesis stream the collector writes to)',
    path: ['STREAM_NAME'],
  });

export type CollectorEnv = z.infer<typeof collectorEnvSchema>;

export function readCollectorEnv(env: NodeJS.ProcessEnv = process.env): CollectorEnv {
  return parseEnv(collectorEnvSchema, env, 'collector');
}

// ---------------------------------------------------------------------------------------------
// Export (functions/export, npm run export)

const importRoleArn = optionalString.refine((v) => v === undefined || ROLE_ARN_PATTERN.test(v), {
  message: 'must be an IAM role ARN (arn:aws:iam::<account>:role/<name>) that Personalize may assume to read the imports',
});

/** Most days the nightly export looks back (EXPORT_REEXPORT_DAYS): each is a full read of its archive. */
export const MAX_REEXPORT_DAYS = 14;

export const exportEnvSchema = z.object({
  ...targetsEnv,
  ARCHIVE_BUCKET: required('the S3 archive bucket name'),
  IDENTITY_TABLE: required('the DynamoDB identity table name'),
  /** Unset: the CSV is written but no import job is started for that dataset. */
  PERSONALIZE_INTERACTIONS_DATASET_ARN: datasetArn,
  PERSONALIZE_ITEMS_DATASET_ARN: datasetArn,
  PERSONALIZE_USERS_DATASET_ARN: datasetArn,
  PERSONALIZE_IMPORT_ROLE_ARN: importRoleArn,
  BULK_MODE: bulkMode,
  /** auto: INCREMENTAL once the dataset has an ACTIVE bulk import, FULL before (FACTS §4d). */
  EXPORT_IMPORT_MODE: z.preprocess(blankAsUnset, z.enum(['auto', 'INCREMENTAL', 'FULL']).default('auto')),
  /** Where the engine's database, spill files and CSV parts go; default os.tmpdir() (/tmp on Lambda). */
  EXPORT_WORK_DIR: optionalString,
  /**
   * DuckDB's memory limit (its buffer pool; the process needs some more): a day larger than this
   * spills to EXPORT_WORK_DIR. Default: half the Lambda's memory, else 512MB.
   */
  EXPORT_ENGINE_MEMORY_MB: z.preprocess(blankAsUnset, z.coerce.number().int().min(64, 'must be at least 64 (MB)').optional()),
  /** Engine threads; default 2 (a 1,769 MB Lambda has one vCPU, 3,538 MB two). */
  EXPORT_ENGINE_THREADS: z.preprocess(blankAsUnset, z.coerce.number().int().min(1).max(64).default(2)),
  /** Anonymous interactions with no link: leave out, or use the sessionId as USER_ID (FACTS §1d). */
  EXPORT_ANONYMOUS: z.preprocess(blankAsUnset, z.enum(['skip', 'session-as-user']).default('skip')),
  /** Largest CSV part (and INCREMENTAL job); at most the 1 GB limit (FACTS §4c). Smaller values are for tests. */
  EXPORT_PART_MAX_BYTES: z.preprocess(
    blankAsUnset,
    z.coerce
      .number()
      .int()
      .min(1024, 'must be at least 1024 bytes')
      .max(IMPORT_LIMITS.incrementalJobBytes, `must be at most ${IMPORT_LIMITS.incrementalJobBytes} (INCREMENTAL import limit, FACTS §4c)`)
      .default(IMPORT_LIMITS.incrementalJobBytes),
  ),
  /**
   * The nightly run exports yesterday and this many days before it (oldest first), so late data of
   * those days reaches Personalize as a new revision (README "Revisions"); 0: yesterday only.
   */
  EXPORT_REEXPORT_DAYS: z.preprocess(
    blankAsUnset,
    z.coerce
      .number({ error: 'must be a whole number of days (0: only yesterday)' })
      .int('must be a whole number of days (0: only yesterday)')
      .min(0, 'must be 0 (only yesterday) or a number of days')
      .max(MAX_REEXPORT_DAYS, `must be at most ${MAX_REEXPORT_DAYS} (each day is read again every night)`)
      .default(2),
  ),
  ...deletionHashEnv,
  ...consentEnv,
}).superRefine(oneDeletionHashSource);

export type ExportEnv = z.infer<typeof exportEnvSchema>;

export function readExportEnv(env: NodeJS.ProcessEnv = process.env): ExportEnv {
  return parseEnv(exportEnvSchema, env, 'export');
}

// ---------------------------------------------------------------------------------------------
// Deletion reaches Personalize (functions/personalize-deletions, npm run personalize-deletions)

/** The English CreateDataDeletionJob docs: at most 50 MB of input files per job (docs/personalize-bulk-and-stream.md §3). */
export const DELETION_JOB_MAX_INPUT_BYTES = 50_000_000;

export const personalizeDeletionEnvSchema = z.object({
  ...targetsEnv,
  ARCHIVE_BUCKET: required('the S3 archive bucket name'),
  PERSONALIZE_DATASET_GROUP_ARN: datasetGroupArnsEnv.refine((arns) => arns.length > 0, { message: 'is required (the dataset group ARN(s) to delete users from)' }),
  /** The role Personalize assumes to read the input CSV (the import role; it needs control/personalize-deletions/input/*). */
  PERSONALIZE_IMPORT_ROLE_ARN: required('the IAM role Personalize assumes to read the deletion input').pipe(
    z.string().regex(ROLE_ARN_PATTERN, 'must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)'),
  ),
  /** The datasets whose running import jobs hold deletion back (the docs: no import while a deletion job runs). */
  PERSONALIZE_INTERACTIONS_DATASET_ARN: datasetArn,
  PERSONALIZE_ITEMS_DATASET_ARN: datasetArn,
  PERSONALIZE_USERS_DATASET_ARN: datasetArn,
  /** COMPLETED deletion jobs each user needs per group; 2: a second job on a later day catches PUT events and trainings that overlapped the first. */
  PERSONALIZE_DELETION_PASSES: z.preprocess(blankAsUnset, z.coerce.number().int().min(1).max(3).default(2)),
  /** Input bytes per job; at most the 50 MB limit (smaller values are for tests). */
  PERSONALIZE_DELETION_MAX_INPUT_BYTES: z.preprocess(
    blankAsUnset,
    z.coerce.number().int().min(64).max(DELETION_JOB_MAX_INPUT_BYTES, `must be at most ${DELETION_JOB_MAX_INPUT_BYTES} (the CreateDataDeletionJob input limit)`).default(DELETION_JOB_MAX_INPUT_BYTES),
  ),
});

export type PersonalizeDeletionEnv = z.infer<typeof personalizeDeletionEnvSchema>;

export function readPersonalizeDeletionEnv(env: NodeJS.ProcessEnv = process.env): PersonalizeDeletionEnv {
  return parseEnv(personalizeDeletionEnvSchema, env, 'personalize-deletions');
}

// ---------------------------------------------------------------------------------------------
// Operator tools: redrive (Lambda and CLI) and replay (CLI)

export const redriveEnvSchema = z.object({
  ...eventMappingEnv,
  DLQ_URL: required('the SQS dead-letter queue URL').url('must be the SQS dead-letter queue URL'),
  STREAM_NAME: required('the Kinesis stream records go back to'),
  ARCHIVE_BUCKET: required('the S3 bucket holding dlq-payloads/'),
  /** Messages handled per run unless the caller says otherwise. */
  REDRIVE_MAX_MESSAGES: positiveInt(1_000),
  /** How long a received message stays hidden while this run works on it. */
  REDRIVE_VISIBILITY_TIMEOUT_SECONDS: positiveInt(300),
  REDRIVE_WAIT_SECONDS: z.preprocess(blankAsUnset, z.coerce.number().int().min(0).max(20).default(1)),
  ...consentEnv,
  ...targetsEnv,
});

export type RedriveEnv = z.infer<typeof redriveEnvSchema>;

export const replayEnvSchema = z.object({
  ...targetsEnv,
  ARCHIVE_BUCKET: required('the S3 archive bucket'),
  /** The event tracker of the dataset group being fed (a new one, when seeding). */
  PERSONALIZE_TRACKING_ID: optionalString,
  /** The identity table, for the stored consent (README "Consent"); needed when consent is required. */
  IDENTITY_TABLE: optionalString,
  PERSONALIZE_ITEMS_DATASET_ARN: datasetArn,
  PERSONALIZE_USERS_DATASET_ARN: datasetArn,
  /** FACTS §3: PutItems and PutUsers, 10 requests/s per dataset group. */
  PUT_ITEMS_PER_SECOND: nonNegative(10),
  PUT_USERS_PER_SECOND: nonNegative(10),
  PERSONALIZE_MAX_ATTEMPTS: positiveInt(5),
  FORWARD_CONCURRENCY: positiveInt(8),
  ...deletionHashEnv,
  ...consentEnv,
}).superRefine(oneDeletionHashSource);

export type ReplayEnv = z.infer<typeof replayEnvSchema>;
