import { CreateBucketCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import {
  CreateDatasetImportJobCommand,
  DescribeDatasetImportJobCommand,
  ListDatasetImportJobsCommand,
  PersonalizeClient,
  type CreateDatasetImportJobCommandInput,
} from '@aws-sdk/client-personalize';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { s3Client } from '../shared/aws/clients.js';
import { MAX_JOBS_IN_FLIGHT, startLocalPersonalizeControl, type LocalPersonalizeControl } from '../local/personalize-control.js';
import { useEmulators, uniqueName } from './support/env.js';

useEmulators();

const ROLE = 'arn:aws:iam::123456789012:role/personalize-import';
let control: LocalPersonalizeControl;
let client: PersonalizeClient;
let bucket: string;

beforeAll(async () => {
  control = await startLocalPersonalizeControl({ s3: s3Client(), activateAfterMs: 0 });
  client = new PersonalizeClient({ endpoint: control.url, maxAttempts: 1 });
  bucket = uniqueName('control');
  const s3 = s3Client();
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'ok/part-001.csv', Body: 'USER_ID,ITEM_ID,TIMESTAMP\nu,i,1763800000\n' }));
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'quoted/part-001.csv', Body: '"USER_ID","ITEM_ID","TIMESTAMP"\nu,i,1\n' }));
});

afterAll(async () => {
  client?.destroy();
  await control?.close();
});

const dataset = () => `arn:aws:personalize:us-east-1:123456789012:dataset/${uniqueName('group')}/INTERACTIONS`;

function create(overrides: Partial<CreateDatasetImportJobCommandInput>): Promise<unknown> {
  return client.send(
    new CreateDatasetImportJobCommand({
      jobName: uniqueName('job'),
      datasetArn: dataset(),
      dataSource: { dataLocation: `s3://${bucket}/ok/` },
      roleArn: ROLE,
      importMode: 'FULL',
      ...overrides,
    }),
  );
}

async function statusOf(arn: string): Promise<{ status?: string; failureReason?: string }> {
  const out = await client.send(new DescribeDatasetImportJobCommand({ datasetImportJobArn: arn }));
  return { status: out.datasetImportJob?.status, failureReason: out.datasetImportJob?.failureReason };
}

describe('the local Personalize control plane', () => {
  it('refuses what CreateDatasetImportJob refuses, naming the parameter', async () => {
    await expect(create({ jobName: '-starts-with-dash' })).rejects.toMatchObject({ name: 'InvalidInputException', message: expect.stringMatching(/^jobName: must match/) as unknown });
    await expect(create({ jobName: 'x'.repeat(64) })).rejects.toMatchObject({ message: expect.stringContaining('1-63 characters') as unknown });
    await expect(create({ datasetArn: 'arn:aws:s3:::bucket' })).rejects.toMatchObject({ message: expect.stringContaining('datasetArn') as unknown });
    await expect(create({ dataSource: { dataLocation: 'https://example.com/data.csv' } })).rejects.toMatchObject({ message: expect.stringContaining('dataSource.dataLocation') as unknown });
    await expect(create({ roleArn: 'personalize-role' })).rejects.toMatchObject({ message: expect.stringContaining('roleArn') as unknown });
    expect(control.received('CreateDatasetImportJob').slice(-5).every((c) => c.error?.type === 'InvalidInputException')).toBe(true);
  });

  it('allows only FULL before a dataset has an ACTIVE import, then INCREMENTAL', async () => {
    const datasetArn = dataset();
    await expect(create({ datasetArn, importMode: 'INCREMENTAL' })).rejects.toMatchObject({ message: expect.stringContaining('only FULL is allowed') as unknown });
    const full = (await create({ datasetArn, importMode: 'FULL' })) as { datasetImportJobArn: string };
    expect(await statusOf(full.datasetImportJobArn)).toEqual({ status: 'ACTIVE', failureReason: undefined });
    await expect(create({ datasetArn, importMode: 'INCREMENTAL' })).resolves.toMatchObject({ datasetImportJobArn: expect.any(String) as unknown });
  });

  it('refuses a second job of the same name', async () => {
    const jobName = uniqueName('same');
    await create({ jobName });
    await expect(create({ jobName })).rejects.toMatchObject({ name: 'ResourceAlreadyExistsException' });
  });

  it('fails a job when it runs and finds no CSV at dataLocation, or a quoted header row', async () => {
    const missing = (await create({ dataSource: { dataLocation: `s3://${bucket}/nothing-here/` } })) as { datasetImportJobArn: string };
    expect(await statusOf(missing.datasetImportJobArn)).toEqual({ status: 'CREATE FAILED', failureReason: expect.stringContaining('no CSV file') as unknown });
    const quoted = (await create({ dataSource: { dataLocation: `s3://${bucket}/quoted/part-001.csv` } })) as { datasetImportJobArn: string };
    expect(await statusOf(quoted.datasetImportJobArn)).toMatchObject({ status: 'CREATE FAILED', failureReason: expect.stringContaining('unquoted column names') as unknown });
  });

  it(`keeps jobs pending until they run, and refuses a ${MAX_JOBS_IN_FLIGHT + 1}th job in flight`, async () => {
    const slow = await startLocalPersonalizeControl({ s3: s3Client(), activateAfterMs: 3_600_000 });
    const slowClient = new PersonalizeClient({ endpoint: slow.url, maxAttempts: 1 });
    try {
      const datasetArn = dataset();
      const input = (i: number) => ({ jobName: `j${i}`, datasetArn, dataSource: { dataLocation: `s3://${bucket}/ok/` }, roleArn: ROLE });
      for (let i = 0; i < MAX_JOBS_IN_FLIGHT; i++) await slowClient.send(new CreateDatasetImportJobCommand(input(i)));
      await expect(slowClient.send(new CreateDatasetImportJobCommand(input(99)))).rejects.toMatchObject({ name: 'LimitExceededException' });
      const page = await slowClient.send(new ListDatasetImportJobsCommand({ datasetArn, maxResults: 2 }));
      expect(page.datasetImportJobs?.map((j) => [j.jobName, j.status, j.importMode])).toEqual([
        ['j4', 'CREATE PENDING', 'FULL'],
        ['j3', 'CREATE PENDING', 'FULL'],
      ]);
      const rest = await slowClient.send(new ListDatasetImportJobsCommand({ datasetArn, nextToken: page.nextToken }));
      expect(rest.datasetImportJobs?.map((j) => j.jobName)).toEqual(['j2', 'j1', 'j0']);
      expect(rest.nextToken).toBeUndefined();
    } finally {
      slowClient.destroy();
      await slow.close();
    }
  });
});
