import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import {
  CreateDataDeletionJobCommand,
  DescribeDataDeletionJobCommand,
  ListDataDeletionJobsCommand,
  PersonalizeClient,
  type CreateDataDeletionJobCommandInput,
} from '@aws-sdk/client-personalize';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { s3Client } from '../shared/aws/clients.js';
import { MAX_PENDING_DELETION_JOBS, startLocalPersonalizeControl, type LocalPersonalizeControl } from '../local/personalize-control.js';
import { useEmulators, uniqueName } from './support/env.js';

useEmulators();

const ROLE = 'arn:aws:iam::123456789012:role/personalize-import';
/** How long a job stays PENDING, then IN_PROGRESS; the clock below moves it on. */
const STEP_MS = 1000;
let clock = Date.now();
let control: LocalPersonalizeControl;
let client: PersonalizeClient;
let bucket: string;

beforeAll(async () => {
  control = await startLocalPersonalizeControl({ s3: s3Client(), activateAfterMs: STEP_MS, now: () => clock, deletionInputMaxBytes: 200 });
  client = new PersonalizeClient({ endpoint: control.url, maxAttempts: 1 });
  bucket = uniqueName('deletion-control');
  const s3 = s3Client();
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  const put = (key: string, body: string) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  await put('ok/users.csv', 'USER_ID\nu-1\n"u,2"\nu-3\n');
  await put('two-columns/users.csv', 'USER_ID,ITEM_ID\nu-1,i-1\n');
  await put('quoted-header/users.csv', '"USER_ID"\nu-1\n');
  await put('large/users.csv', `USER_ID\n${Array.from({ length: 40 }, (_, i) => `user-${i}`).join('\n')}\n`);
});

afterAll(async () => {
  client?.destroy();
  await control?.close();
});

beforeEach(() => {
  control.reset();
});

const group = () => `arn:aws:personalize:us-east-1:123456789012:dataset-group/${uniqueName('group')}`;

function create(overrides: Partial<CreateDataDeletionJobCommandInput> = {}): Promise<{ dataDeletionJobArn?: string }> {
  return client.send(
    new CreateDataDeletionJobCommand({
      jobName: uniqueName('deletion'),
      datasetGroupArn: group(),
      dataSource: { dataLocation: `s3://${bucket}/ok/users.csv` },
      roleArn: ROLE,
      ...overrides,
    }),
  );
}

async function describeJob(arn: string) {
  return (await client.send(new DescribeDataDeletionJobCommand({ dataDeletionJobArn: arn }))).dataDeletionJob;
}

describe('the local control plane: data deletion jobs', () => {
  it('refuses what CreateDataDeletionJob refuses, naming the parameter', async () => {
    await expect(create({ jobName: '_starts-with-underscore' })).rejects.toMatchObject({ name: 'InvalidInputException', message: expect.stringMatching(/^jobName: must match/) as unknown });
    await expect(create({ jobName: 'x'.repeat(64) })).rejects.toMatchObject({ message: expect.stringContaining('1-63 characters') as unknown });
    // A dataset ARN is not a dataset group ARN.
    await expect(create({ datasetGroupArn: 'arn:aws:personalize:us-east-1:123456789012:dataset/g/INTERACTIONS' })).rejects.toMatchObject({
      message: expect.stringContaining('datasetGroupArn') as unknown,
    });
    await expect(create({ dataSource: { dataLocation: 'https://example.com/users.csv' } })).rejects.toMatchObject({ message: expect.stringContaining('dataSource.dataLocation') as unknown });
    await expect(create({ roleArn: 'personalize-role' })).rejects.toMatchObject({ message: expect.stringContaining('roleArn') as unknown });
    expect(control.received('CreateDataDeletionJob').every((c) => c.error?.type === 'InvalidInputException')).toBe(true);
    expect(control.deletionJobs()).toEqual([]);
  });

  it(`refuses a ${MAX_PENDING_DELETION_JOBS + 1}th PENDING job of one dataset group (LimitExceededException) but not of another, and a name used before`, async () => {
    const full = group();
    for (let i = 0; i < MAX_PENDING_DELETION_JOBS; i++) await create({ jobName: `pending-${i}`, datasetGroupArn: full });
    await expect(create({ jobName: 'pending-5', datasetGroupArn: full })).rejects.toMatchObject({ name: 'LimitExceededException' });
    await expect(create({ jobName: 'other-group' })).resolves.toMatchObject({ dataDeletionJobArn: expect.stringContaining(':data-deletion-job/other-group') as unknown });
    await expect(create({ jobName: 'pending-0' })).rejects.toMatchObject({ name: 'ResourceAlreadyExistsException' });
    // Once the first ones run, the group takes new jobs again.
    clock += STEP_MS;
    await expect(create({ jobName: 'pending-5', datasetGroupArn: full })).resolves.toBeDefined();
  });

  it('moves a job from PENDING to IN_PROGRESS to COMPLETED, with numDeleted the users in its file, and records which users it deleted', async () => {
    const datasetGroupArn = group();
    const { dataDeletionJobArn } = await create({ jobName: 'lifecycle', datasetGroupArn });
    expect(await describeJob(dataDeletionJobArn!)).toMatchObject({ status: 'PENDING', jobName: 'lifecycle', datasetGroupArn, roleArn: ROLE });
    clock += STEP_MS;
    const listed = await client.send(new ListDataDeletionJobsCommand({ datasetGroupArn }));
    expect(listed.dataDeletionJobs?.map((j) => [j.jobName, j.status])).toEqual([['lifecycle', 'IN_PROGRESS']]);
    clock += STEP_MS;
    const done = await describeJob(dataDeletionJobArn!);
    expect(done).toMatchObject({ status: 'COMPLETED', numDeleted: 3 });
    expect(done!.lastUpdatedDateTime!.getTime()).toBeGreaterThan(done!.creationDateTime!.getTime());
    expect(control.deletionJobs().map((j) => j.deletedUsers)).toEqual([['u-1', 'u,2', 'u-3']]);
  });

  it('fails a job when it runs and its input is missing, is not the single USER_ID column, or is over the input size limit', async () => {
    const jobs = {
      missing: `s3://${bucket}/nothing-here.csv`,
      twoColumns: `s3://${bucket}/two-columns/users.csv`,
      quotedHeader: `s3://${bucket}/quoted-header/users.csv`,
      large: `s3://${bucket}/large/users.csv`,
    };
    const arns = new Map<string, string>();
    for (const [name, dataLocation] of Object.entries(jobs)) arns.set(name, (await create({ jobName: name, dataSource: { dataLocation } })).dataDeletionJobArn!);
    clock += 2 * STEP_MS;
    const reasons: Record<string, string | undefined> = {};
    for (const [name, arn] of arns) {
      const job = await describeJob(arn);
      expect(job?.status).toBe('FAILED');
      expect(job?.numDeleted).toBeUndefined();
      reasons[name] = job?.failureReason;
    }
    expect(reasons.missing).toMatch(/Input data not found/);
    expect(reasons.twoColumns).toMatch(/only column is USER_ID/);
    expect(reasons.quotedHeader).toMatch(/only column is USER_ID/);
    expect(reasons.large).toMatch(/maximum total size is 200 bytes/);
    expect(control.deletionJobs().every((j) => j.deletedUsers.length === 0)).toBe(true);
  });

  it('lists a dataset group\'s jobs newest first, a page at a time', async () => {
    const datasetGroupArn = group();
    for (const name of ['a', 'b', 'c']) await create({ jobName: name, datasetGroupArn });
    await create({ jobName: 'elsewhere' });
    const first = await client.send(new ListDataDeletionJobsCommand({ datasetGroupArn, maxResults: 2 }));
    expect(first.dataDeletionJobs?.map((j) => j.jobName)).toEqual(['c', 'b']);
    const rest = await client.send(new ListDataDeletionJobsCommand({ datasetGroupArn, maxResults: 2, nextToken: first.nextToken }));
    expect(rest.dataDeletionJobs?.map((j) => j.jobName)).toEqual(['a']);
    expect(rest.nextToken).toBeUndefined();
  });
});
