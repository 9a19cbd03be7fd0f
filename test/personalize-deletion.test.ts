import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { CreateDataDeletionJobCommand, CreateDatasetImportJobCommand, PersonalizeClient } from '@aws-sdk/client-personalize';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { IdentifyMessage, InteractionMessage } from '../schemas/canonical.js';
import { s3Client } from '../shared/aws/clients.js';
import { S3Bucket } from '../shared/aws/s3-bucket.js';
import { hashSessionId, hashUserId, keyedHasher, loadDeletedUsers } from '../shared/deletion.js';
import { exportDay } from '../shared/export/export-day.js';
import { exportRuntimeFromEnv } from '../shared/export/runtime.js';
import { metrics } from '../shared/observability.js';
import { PENDING_PREFIX, PERSONALIZE_DELETIONS_PREFIX, pendingKey } from '../shared/personalize/deletion-outbox.js';
import { FAILED_JOBS_METRIC, deletionStepDepsFromEnv, handlePersonalizeDeletions } from '../shared/personalize-deletion/runtime.js';
import { DEFER_IMPORT, DEFER_IN_FLIGHT, DEFER_LIMIT, DEFER_NEXT_PASS, runDeletionStep } from '../shared/personalize-deletion/step.js';
import { main as personalizeDeletionsCli } from '../cli/personalize-deletions.js';
import { LOCAL_CREDENTIALS, LOCAL_DATASET_GROUP_ARN, LOCAL_IMPORT_ROLE_ARN, LOCAL_INTERACTIONS_DATASET_ARN, startLocalStack, type LocalStack } from '../local/stack.js';
import { useEmulators } from './support/env.js';
import { csvRecords, listKeys, readText } from './support/export.js';
import { eventTime, isolatedStack, send } from './support/stack.js';

useEmulators();

const DELETION_HASH_KEY = 'personalize-deletion-test-key-0123456789';
const hasher = keyedHasher(DELETION_HASH_KEY);
/** How long the local control plane keeps a job PENDING, then IN_PROGRESS; tests move `clock`. */
const STEP_MS = 1000;
let clock = Date.now();
let stack: LocalStack;
let stateDir: string;
let bucket: string;

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'personalize-deletion-'));
  stack = await startLocalStack({
    ...isolatedStack('pdel', 1),
    stateDir,
    poller: { batchSize: 100, maxBatchingWindowMs: 50, pollIntervalMs: 50 },
    // Not complement: the export may use session-as-user (bootstrap), refused beside a live tracker.
    processorEnv: { IDENTITY_CACHE_TTL_SECONDS: '0', DELETION_HASH_KEY, BULK_MODE: 'bulk-only' },
    personalizeControl: { activateAfterMs: STEP_MS, now: () => clock },
  });
  bucket = stack.names.archiveBucket;
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  await rm(stateDir, { recursive: true, force: true });
});

beforeEach(async () => {
  await stack.poller.idle();
  stack.personalizeControl!.reset();
  // Each test starts with an empty outbox and no job records of an earlier one.
  const s3 = s3Client();
  for (const key of await listKeys(bucket, PERSONALIZE_DELETIONS_PREFIX)) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
});

/** One run of the step as deployed (passes: 1 unless given). */
const step = (passes = 1) => runDeletionStep({ ...deletionStepDepsFromEnv({ ...process.env, PERSONALIZE_DELETION_PASSES: String(passes) }), now: () => clock });

const identify = (sessionId: string, userId: string): IdentifyMessage => ({ kind: 'identify', source: 'native', eventId: `login-${sessionId}`, sessionId, userId, timestamp: eventTime() });
const anonymousView = (sessionId: string, eventId: string): InteractionMessage => ({ kind: 'interaction', source: 'native', eventId, sessionId, eventType: 'View', itemId: `item-${eventId}`, timestamp: eventTime() });

async function deleteThroughPrivacyEndpoint(userIds: string[]): Promise<void> {
  const res = await fetch(`${stack.http.url}/v1/privacy/delete`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${LOCAL_CREDENTIALS.privacyApiKey}` },
    body: JSON.stringify({ userIds }),
  });
  await res.arrayBuffer();
  expect(res.status).toBe(200);
  await stack.poller.idle();
}

async function deleteThroughProcessor(userId: string): Promise<void> {
  await send(stack, [{ kind: 'delete', source: 'native', eventId: `delete-${userId}`, userId, timestamp: eventTime() }]);
  await stack.poller.idle();
}

const contentType = async (key: string) => (await s3Client().send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ContentType;

/** Every object under control/ whose key or body holds `text`. */
async function controlObjectsHolding(text: string): Promise<string[]> {
  const found: string[] = [];
  for (const key of await listKeys(bucket, 'control/')) {
    const body = key.endsWith('.snapshot') ? '' : await readText(bucket, key);
    if (key.includes(text) || body.includes(text)) found.push(key);
  }
  return found;
}

describe('deletion reaches Personalize', () => {
  it('takes a user deleted through the privacy endpoint to a COMPLETED data deletion job, then empties the outbox, writes the audit record and leaves no raw id in the bucket', async () => {
    const userId = 'pdel-user-7f3a';
    await send(stack, [identify('pdel-s1', userId)]);
    await stack.poller.idle();
    await deleteThroughPrivacyEndpoint([userId]);

    // The outbox holds the raw id under the registry's hash.
    const hash = hashUserId(userId, hasher);
    expect(await listKeys(bucket, PENDING_PREFIX)).toEqual([pendingKey(hash)]);
    expect(JSON.parse(await readText(bucket, pendingKey(hash)))).toMatchObject({ userId });
    expect(await contentType(pendingKey(hash))).toBe('application/json');

    const first = await step();
    expect(first.created).toHaveLength(1);
    const [job] = first.created;
    expect(job).toMatchObject({ datasetGroupArn: LOCAL_DATASET_GROUP_ARN, users: 1 });
    expect(job!.jobName).toMatch(/^personalize-ingest-deletion-\d{8}-[0-9a-f]{8}-1$/);
    const sent = stack.personalizeControl!.deletionJobs();
    expect(sent.map((j) => [j.jobName, j.status, j.roleArn, j.dataSource.dataLocation])).toEqual([[job!.jobName, 'PENDING', LOCAL_IMPORT_ROLE_ARN, job!.dataLocation]]);
    const inputKey = job!.dataLocation.replace(`s3://${bucket}/`, '');
    expect(await readText(bucket, inputKey)).toBe(`USER_ID\n${userId}\n`);
    expect(await contentType(inputKey)).toBe('text/csv');
    expect(await contentType(`${PERSONALIZE_DELETIONS_PREFIX}jobs/${job!.jobName}.json`)).toBe('application/json');

    // Still running: followed, and the user is not put in a second job.
    clock += STEP_MS;
    const running = await step();
    expect(running).toMatchObject({ created: [], completed: [], deferred: { [DEFER_IN_FLIGHT]: 1 } });
    expect(running.inProgress.map((j) => j.jobName)).toEqual([job!.jobName]);

    clock += STEP_MS;
    const done = await step();
    expect(done.completed).toEqual([expect.objectContaining({ jobName: job!.jobName, jobArn: job!.jobArn, numDeleted: 1 })]);
    expect(done).toMatchObject({ outboxRemoved: 1, pendingAfter: 0, created: [] });
    expect(stack.personalizeControl!.deletionJobs().map((j) => [j.status, j.deletedUsers])).toEqual([['COMPLETED', [userId]]]);
    expect(await listKeys(bucket, PENDING_PREFIX)).toEqual([]);
    expect(await listKeys(bucket, inputKey)).toEqual([]);
    const audit = JSON.parse(await readText(bucket, `${PERSONALIZE_DELETIONS_PREFIX}audit/${job!.jobName}.json`)) as Record<string, unknown>;
    expect(audit).toMatchObject({ status: 'COMPLETED', jobArn: job!.jobArn, numDeleted: 1, hashes: [hash], completedAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/) as unknown });
    expect(await controlObjectsHolding(userId)).toEqual([]);

    // Nothing left to do.
    expect(await step()).toMatchObject({ pendingBefore: 0, created: [], completed: [] });
  });

  it('holds new deletion jobs back while an import job of a configured dataset is pending, counting why, and creates them once it is done', async () => {
    await deleteThroughProcessor('pdel-import-user');
    const s3 = s3Client();
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'imports/pdel-test/interactions.csv', Body: 'USER_ID,ITEM_ID,TIMESTAMP\nu,i,1763800000\n' }));
    const control = new PersonalizeClient({ endpoint: stack.personalizeControl!.url, maxAttempts: 1 });
    try {
      await control.send(
        new CreateDatasetImportJobCommand({
          jobName: 'pdel-running-import',
          datasetArn: LOCAL_INTERACTIONS_DATASET_ARN,
          dataSource: { dataLocation: `s3://${bucket}/imports/pdel-test/interactions.csv` },
          roleArn: LOCAL_IMPORT_ROLE_ARN,
          importMode: 'FULL',
        }),
      );
    } finally {
      control.destroy();
    }

    const held = await step();
    expect(held).toMatchObject({ created: [], deferred: { [DEFER_IMPORT]: 1 }, importsInProgress: ['pdel-running-import'], pendingAfter: 1 });
    expect(stack.personalizeControl!.deletionJobs()).toEqual([]);

    clock += STEP_MS;
    const after = await step();
    expect(after.deferred).toEqual({});
    expect(after.created.map((j) => j.users)).toEqual([1]);
  });

  it('counts a FAILED job in the alarm metric, keeps its users pending and puts them in a new job that completes', async () => {
    const userId = 'pdel-failed-user';
    await deleteThroughProcessor(userId);
    const first = await step();
    expect(first.created).toHaveLength(1);
    // The input disappears before the job runs: the job FAILS, as Personalize's would.
    await s3Client().send(new DeleteObjectCommand({ Bucket: bucket, Key: first.created[0]!.dataLocation.replace(`s3://${bucket}/`, '') }));
    clock += 2 * STEP_MS;

    const addMetric = vi.spyOn(metrics, 'addMetric');
    let failedRun;
    try {
      failedRun = await handlePersonalizeDeletions({ ...process.env, PERSONALIZE_DELETION_PASSES: '1' });
      expect(addMetric).toHaveBeenCalledWith(FAILED_JOBS_METRIC, 'Count', 1);
    } finally {
      addMetric.mockRestore();
    }
    expect(failedRun.failed).toEqual([expect.objectContaining({ jobName: first.created[0]!.jobName, failureReason: expect.stringContaining('Input data not found') as unknown })]);
    expect(failedRun.outboxRemoved).toBe(0);
    expect(await listKeys(bucket, PENDING_PREFIX)).toEqual([pendingKey(hashUserId(userId, hasher))]);
    // The same run starts a new job under another name.
    expect(failedRun.created).toHaveLength(1);
    expect(failedRun.created[0]!.jobName).not.toBe(first.created[0]!.jobName);

    clock += 2 * STEP_MS;
    const done = await step();
    expect(done.completed.map((j) => j.numDeleted)).toEqual([1]);
    expect(await listKeys(bucket, PENDING_PREFIX)).toEqual([]);
    const audits = await listKeys(bucket, `${PERSONALIZE_DELETIONS_PREFIX}audit/`);
    const statuses = await Promise.all(audits.map(async (k) => (JSON.parse(await readText(bucket, k)) as { status: string }).status));
    expect(statuses.sort()).toEqual(['COMPLETED', 'FAILED']);
  });

  it('with two passes keeps the user pending until a second job, on a later run, has COMPLETED too', async () => {
    await deleteThroughProcessor('pdel-two-passes');
    expect((await step(2)).created).toHaveLength(1);
    clock += 2 * STEP_MS;
    const firstPass = await step(2);
    expect(firstPass).toMatchObject({ outboxRemoved: 0, pendingAfter: 1, created: [], deferred: { [DEFER_NEXT_PASS]: 1 } });
    expect(firstPass.completed).toHaveLength(1);
    const second = await step(2);
    expect(second.created).toHaveLength(1);
    clock += 2 * STEP_MS;
    expect(await step(2)).toMatchObject({ outboxRemoved: 1, pendingAfter: 0 });
    expect(stack.personalizeControl!.deletionJobs().map((j) => j.deletedUsers)).toEqual([['pdel-two-passes'], ['pdel-two-passes']]);
  });

  it('batches users into input files within the size limit, one job each', async () => {
    for (const userId of ['pdel-batch-a', 'pdel-batch-b', 'pdel-batch-c']) await deleteThroughProcessor(userId);
    // Header (8 bytes) + two 13-byte rows fit in 34 bytes; a third does not.
    const report = await runDeletionStep({ ...deletionStepDepsFromEnv({ ...process.env, PERSONALIZE_DELETION_PASSES: '1', PERSONALIZE_DELETION_MAX_INPUT_BYTES: '64' }), maxInputBytes: 34, now: () => clock });
    expect(report.created.map((j) => [j.users, j.bytes])).toEqual([
      [2, 34],
      [1, 21],
    ]);
    expect(report.created.map((j) => j.jobName.slice(-2))).toEqual(['-1', '-2']);
    clock += 2 * STEP_MS;
    await step();
    expect(stack.personalizeControl!.deletionJobs().flatMap((j) => j.deletedUsers).sort()).toEqual(['pdel-batch-a', 'pdel-batch-b', 'pdel-batch-c']);
  });

  it('waits while the dataset group has 5 PENDING deletion jobs, counting why, and creates the job once one has started', async () => {
    await deleteThroughProcessor('pdel-limit-user');
    await s3Client().send(new PutObjectCommand({ Bucket: bucket, Key: 'imports/pdel-test/other-users.csv', Body: 'USER_ID\nsomeone-else\n' }));
    const control = new PersonalizeClient({ endpoint: stack.personalizeControl!.url, maxAttempts: 1 });
    try {
      for (let i = 0; i < 5; i++) {
        await control.send(
          new CreateDataDeletionJobCommand({
            jobName: `pdel-other-team-${i}`,
            datasetGroupArn: LOCAL_DATASET_GROUP_ARN,
            dataSource: { dataLocation: `s3://${bucket}/imports/pdel-test/other-users.csv` },
            roleArn: LOCAL_IMPORT_ROLE_ARN,
          }),
        );
      }
    } finally {
      control.destroy();
    }
    expect(await step()).toMatchObject({ created: [], deferred: { [DEFER_LIMIT]: 1 }, pendingAfter: 1 });
    clock += STEP_MS;
    expect((await step()).created.map((j) => j.users)).toEqual([1]);
  });

  it('with two dataset groups creates one job per group and keeps the user until both have COMPLETED', async () => {
    const other = 'arn:aws:personalize:us-east-1:000000000000:dataset-group/local-second';
    const twoGroups = () => runDeletionStep({ ...deletionStepDepsFromEnv({ ...process.env, PERSONALIZE_DELETION_PASSES: '1', PERSONALIZE_DATASET_GROUP_ARN: `${LOCAL_DATASET_GROUP_ARN},${other}` }), now: () => clock });
    await deleteThroughProcessor('pdel-two-groups');
    const created = await twoGroups();
    expect(created.created.map((j) => j.datasetGroupArn)).toEqual([LOCAL_DATASET_GROUP_ARN, other]);
    expect(new Set(created.created.map((j) => j.jobName)).size).toBe(2);
    clock += 2 * STEP_MS;
    const done = await twoGroups();
    expect(done.completed).toHaveLength(2);
    expect(done).toMatchObject({ outboxRemoved: 1, pendingAfter: 0 });
    expect(stack.personalizeControl!.deletionJobs().map((j) => [j.datasetGroupArn, j.deletedUsers])).toEqual([
      [LOCAL_DATASET_GROUP_ARN, ['pdel-two-groups']],
      [other, ['pdel-two-groups']],
    ]);
  });

  it('drops the record of a job a stopped run never created, with its input, and puts its users in a new job', async () => {
    const userId = 'pdel-crash-user';
    await deleteThroughProcessor(userId);
    const jobName = 'personalize-ingest-deletion-20000101-00000000-1';
    const inputKey = `${PERSONALIZE_DELETIONS_PREFIX}input/${jobName}.csv`;
    const s3 = s3Client();
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: inputKey, Body: `USER_ID\n${userId}\n` }));
    const record = { jobName, datasetGroupArn: LOCAL_DATASET_GROUP_ARN, inputKey, hashes: [hashUserId(userId, hasher)], createdAt: new Date(clock).toISOString() };
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${PERSONALIZE_DELETIONS_PREFIX}jobs/${jobName}.json`, Body: JSON.stringify(record) }));
    const report = await step();
    expect(report).toMatchObject({ abandoned: 1, inProgress: [] });
    expect(report.created.map((j) => j.users)).toEqual([1]);
    expect(await listKeys(bucket, inputKey)).toEqual([]);
  });

  it('npm run personalize-deletions runs the step against the local stack and prints what it did', async () => {
    await deleteThroughProcessor('pdel-cli-user');
    const lines: string[] = [];
    const io = { env: { ...process.env, LOCAL_STATE_DIR: stateDir, PERSONALIZE_DELETION_PASSES: '1' }, out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
    expect(await personalizeDeletionsCli([], io)).toBe(0);
    expect(lines.join('\n')).toMatch(/outbox: 1 user\(s\) pending before[\s\S]*created +personalize-ingest-deletion-\d{8}-[0-9a-f]{8}-1: 1 user\(s\)/);
    await expect(personalizeDeletionsCli(['extra'], io)).rejects.toThrow(/usage: npm run personalize-deletions/);
  });

  it('refuses a configuration without a dataset group, naming the variable', () => {
    expect(() => deletionStepDepsFromEnv({ ...process.env, PERSONALIZE_DATASET_GROUP_ARN: '' })).toThrow(/PERSONALIZE_DATASET_GROUP_ARN is required/);
    expect(() => deletionStepDepsFromEnv({ ...process.env, PERSONALIZE_DATASET_GROUP_ARN: 'arn:aws:personalize:us-east-1:000000000000:dataset/local/USERS' })).toThrow(
      /PERSONALIZE_DATASET_GROUP_ARN must be one or more comma-separated Personalize dataset group ARNs/,
    );
  });
});

describe("a deleted user's anonymous sessions", () => {
  it('are registered under a hash no user id can have, and a session-as-user export leaves their events out', async () => {
    const userId = 'pdel-session-user';
    // Anonymous first (archived without a user), then the login that links the session.
    await send(stack, [anonymousView('pdel-anon-s', 'pdel-pre-login-1'), anonymousView('pdel-anon-s', 'pdel-pre-login-2'), anonymousView('pdel-other-s', 'pdel-other-1')]);
    await stack.poller.idle();
    await send(stack, [identify('pdel-anon-s', userId)]);
    await stack.poller.idle();
    const day = new Date(eventTime()).toISOString().slice(0, 10);
    const exportRows = async () => {
      const { deps } = exportRuntimeFromEnv({ ...process.env });
      const manifest = await exportDay(deps, { date: day, bulkMode: 'bootstrap', anonymous: 'session-as-user', import: false, workDir: stateDir });
      const keys = await listKeys(bucket, `imports/interactions/dt=${day}/`);
      const rows = (await Promise.all(keys.map(async (k) => csvRecords(await readText(bucket, k))))).flat();
      return { users: rows.map((r) => r.USER_ID).sort(), deletedRows: manifest.kinds.interactions.deletedUserRows, sessionAsUser: manifest.kinds.interactions.sessionAsUser };
    };
    // Before: the linked session's events are the user's; the other session stands as its own user.
    const before = await exportRows();
    expect(before.users.filter((u) => u === userId)).toHaveLength(2);
    expect(before.users).toContain('pdel-other-s');

    await deleteThroughPrivacyEndpoint([userId]);
    const registry = await loadDeletedUsers(new S3Bucket(s3Client(), bucket), { hasher });
    expect(registry.isSessionDeleted('pdel-anon-s')).toBe(true);
    expect(registry.isDeleted('pdel-anon-s')).toBe(false);
    expect(hashSessionId('pdel-anon-s', hasher)).not.toBe(hashUserId('pdel-anon-s', hasher));

    // After: the links are gone, so the session would stand as its own user; it is left out instead.
    const after = await exportRows();
    expect(after.users).not.toContain(userId);
    expect(after.users).not.toContain('pdel-anon-s');
    expect(after.users).toContain('pdel-other-s');
    // Counted as a deleted user's rows, not as rows exported under their session.
    expect(after.deletedRows - before.deletedRows).toBe(2);
    expect(after.sessionAsUser).toBe(before.sessionAsUser);
  });
});
