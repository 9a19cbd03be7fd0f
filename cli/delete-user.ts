import { z } from 'zod';
import { dynamoDocumentClient, s3Client } from '../shared/aws/clients.js';
import { S3Bucket } from '../shared/aws/s3-bucket.js';
import { datasetGroupArnsEnv, deletionHashEnv, oneDeletionHashSource, parseEnv } from '../shared/config.js';
import { hashUserId, recordDeletedSessions, recordDeletion } from '../shared/deletion.js';
import { writePendingDeletion } from '../shared/personalize/deletion-outbox.js';
import { loadDeletionHasher } from '../shared/deletion-key.js';
import { DynamoIdentityStore } from '../shared/aws/dynamo-identity.js';
import { deleteUser, InvalidUserIdError } from '../shared/ops/delete-user.js';
import { DynamoProfileStore } from '../shared/aws/dynamo-profiles.js';
import { declaredTargetNames, DEFAULT_TARGET } from '../shared/targets.js';
import { CliError, defaultIo, isMain, parseArgs, runCli, useLocalStackFile, type CliIo } from './cli-env.js';

/**
 * `npm run delete-user -- <userId> [--aws]`: removes the user's identity links and stored profile
 * and records the deletion so every later export leaves the user out; then says what is left to do.
 */

const USAGE = 'usage: npm run delete-user -- <userId> [--aws]';

const envSchema = z.object({
  IDENTITY_TABLE: z.string({ error: 'is required (the DynamoDB identity table)' }).trim().min(1, 'is required (the DynamoDB identity table)'),
  ARCHIVE_BUCKET: z.string({ error: 'is required (the S3 archive bucket holding the deletion registry)' }).trim().min(1, 'is required (the S3 archive bucket)'),
  PERSONALIZE_DATASET_GROUP_ARN: datasetGroupArnsEnv,
  TARGETS_FILE: z.string().optional(),
  ...deletionHashEnv,
}).superRefine(oneDeletionHashSource);

export async function main(argv: string[], io: CliIo = defaultIo): Promise<number> {
  const args = parseArgs(argv, ['aws', 'help'], []);
  if (args.flags.has('help')) {
    io.out(USAGE);
    return 0;
  }
  const [userId, ...rest] = args.positional;
  if (userId === undefined || rest.length > 0) throw new CliError(USAGE);
  if (!args.flags.has('aws')) {
    await useLocalStackFile(io.env);
  }
  const config = parseEnv(envSchema, io.env, 'delete-user');
  const archive = new S3Bucket(s3Client(), config.ARCHIVE_BUCKET);
  const targets = declaredTargetNames(config.TARGETS_FILE);
  // The same key as the processor's and the export's (README "Deleting a user").
  const hasher = await loadDeletionHasher(config, { warn: (message) => io.err(`warning: ${message}`) });
  let recordedKey = '';
  let result;
  try {
    result = await deleteUser(userId, {
      identity: new DynamoIdentityStore(dynamoDocumentClient(), config.IDENTITY_TABLE),
      profiles: new DynamoProfileStore(dynamoDocumentClient(), config.IDENTITY_TABLE),
      targets: targets.filter((name) => name !== DEFAULT_TARGET),
      registry: {
        record: async (id, requestedAt) => {
          recordedKey = await recordDeletion(archive, id, requestedAt, { hasher });
          // The deletion step sends it to Personalize, then drops the raw id (README "Deletion reaches Personalize").
          if (config.PERSONALIZE_DATASET_GROUP_ARN.length > 0) await writePendingDeletion(archive, hashUserId(id, hasher), { userId: id, requestedAt });
        },
        recordSessions: async (sessionIds, requestedAt) => {
          await recordDeletedSessions(archive, sessionIds, requestedAt, { hasher });
        },
      },
    });
  } catch (error) {
    if (error instanceof InvalidUserIdError) throw new CliError(error.message);
    throw error;
  }
  const ttl = io.env.IDENTITY_CACHE_TTL_SECONDS ?? '900';
  io.out(`deleted user ${userId}:`);
  io.out(`  identity links removed: ${result.linksRemoved.length} (the user's anonymous sessions are no longer attributed to them)`);
  io.out(`  stored profile removed${targets.length > 0 ? ` in every target (${targets.join(', ')})` : ''} (the merged record PutUsers is built from; a later update starts a new one)`);
  io.out(`  deletion recorded: ${archive.location(recordedKey)} (a hash of the id, not the id; every later export and replay leaves the user out)`);
  io.out('still to do (see README, "Deleting a user"):');
  io.out('  - running processors may still attribute those sessions from their warm cache for up to IDENTITY_CACHE_TTL_SECONDS' + ` (${ttl} s here)`);
  io.out('  - the raw archive keeps the user\'s records until its lifecycle rule expires them (archiveRetentionDays, 365 days by default)');
  io.out(
    config.PERSONALIZE_DATASET_GROUP_ARN.length > 0
      ? '  - Personalize: the daily deletion step (npm run personalize-deletions) creates the data deletion job; until it COMPLETES, training still uses the data; retrain after'
      : '  - Personalize keeps what it already has: set PERSONALIZE_DATASET_GROUP_ARN so the deletion step removes the user (a data deletion job), or re-import FULL without them; then retrain',
  );
  return 0;
}

if (isMain(import.meta.url)) runCli(main);
