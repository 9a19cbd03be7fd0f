import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { parse as parseCsv } from 'csv-parse/sync';
import { DATASET_ARN_PATTERN, IMPORT_LIMITS, ROLE_ARN_PATTERN } from '../shared/personalize/import-limits.js';
import { readBody } from './apigw.js';

/**
 * A local Amazon Personalize control plane for the dataset-import calls the export makes
 * (no emulator exists elsewhere). The unmodified @aws-sdk/client-personalize talks to it through
 * AWS_ENDPOINT_URL_PERSONALIZE: AWS JSON 1.1, `POST /` with `X-Amz-Target: AmazonPersonalize.<Op>`,
 * errors as `{"__type", "message"}` plus the `x-amzn-errortype` header.
 *
 * CreateDatasetImportJob is validated as FACTS §4d describes (jobName, datasetArn, dataLocation,
 * roleArn, importMode; only FULL before a dataset's first ACTIVE import; unique names; 5 jobs in
 * flight). A job is CREATE PENDING until `activateAfterMs` has passed and someone describes or lists
 * it; it then "runs": the data must exist at dataLocation in S3 with an unquoted header row (FACTS
 * §4a), or the job ends CREATE FAILED with the reason, as the real service fails when the job runs.
 *
 * CreateDataDeletionJob (docs/personalize-bulk-and-stream.md §3): jobName, datasetGroupArn, roleArn
 * and the dataLocation's form are checked at the call, as are unique names and at most 5 PENDING
 * jobs per dataset group (LimitExceededException). A job is PENDING for `activateAfterMs`, then
 * IN_PROGRESS as long again, then runs: the input must exist, total at most 50 MB and be CSV with
 * exactly the one column USER_ID, else FAILED with the reason; COMPLETED records the users it
 * deleted (`deletionJobs()`), and numDeleted is their count.
 */

export const CONTROL_OPERATIONS = [
  'CreateDatasetImportJob',
  'DescribeDatasetImportJob',
  'ListDatasetImportJobs',
  'CreateDataDeletionJob',
  'DescribeDataDeletionJob',
  'ListDataDeletionJobs',
] as const;
export type ControlOperation = (typeof CONTROL_OPERATIONS)[number];

/** FACTS §4c: pending or in-progress dataset import jobs per region. */
export const MAX_JOBS_IN_FLIGHT = 5;
/** Data deletion jobs with status PENDING per dataset group (docs/personalize-bulk-and-stream.md §3). */
export const MAX_PENDING_DELETION_JOBS = 5;
/** The English docs' total input size of one data deletion job. */
export const DELETION_INPUT_MAX_BYTES = 50_000_000;
/** The datasetGroupArn pattern of the API, and its resource type. */
const DATASET_GROUP_ARN_PATTERN = /^arn:([a-z\d-]+):personalize:.*:.*:.+$/;
const TARGET_PREFIX = 'AmazonPersonalize.';
const MAX_BODY_BYTES = 1024 * 1024;
/** The CSV files a folder job reads, at most, when checking their header rows. */
const MAX_FILES_CHECKED = 50;

export interface LocalImportJob {
  jobName: string;
  datasetImportJobArn: string;
  datasetArn: string;
  dataSource: { dataLocation: string };
  roleArn: string;
  importMode: 'FULL' | 'INCREMENTAL';
  status: 'CREATE PENDING' | 'CREATE IN_PROGRESS' | 'ACTIVE' | 'CREATE FAILED';
  /** Epoch milliseconds. */
  creationDateTime: number;
  lastUpdatedDateTime: number;
  failureReason?: string;
}

export interface LocalDeletionJob {
  jobName: string;
  dataDeletionJobArn: string;
  datasetGroupArn: string;
  dataSource: { dataLocation: string };
  roleArn: string;
  status: 'PENDING' | 'IN_PROGRESS' | 'COMPLETED' | 'FAILED';
  /** Epoch milliseconds. */
  creationDateTime: number;
  lastUpdatedDateTime: number;
  numDeleted?: number;
  failureReason?: string;
  /** Local only (never on the wire): the USER_IDs a COMPLETED job deleted, in file order. */
  deletedUsers: string[];
}

export interface ReceivedControlCall {
  operation: string;
  receivedAt: string;
  request: unknown;
  /** The error answered, when the call was refused. */
  error?: { type: string; message: string };
}

export interface LocalPersonalizeControlOptions {
  port?: number;
  host?: string;
  /** Checks dataLocation when a job runs; without it only the URL's form is checked. */
  s3?: S3Client;
  /** How long a job stays CREATE PENDING (default 1000 ms; tests use 0); a deletion job stays PENDING, then IN_PROGRESS, this long each. */
  activateAfterMs?: number;
  /** Total input bytes a deletion job may read (default the documented 50 MB; tests use less). */
  deletionInputMaxBytes?: number;
  now?: () => number;
}

export interface LocalPersonalizeControl {
  url: string;
  port: number;
  /** AWS_ENDPOINT_URL_PERSONALIZE pointing at this server. */
  env: Record<string, string>;
  jobs(): LocalImportJob[];
  /** Data deletion jobs, with the users each COMPLETED one deleted. */
  deletionJobs(): LocalDeletionJob[];
  received(operation?: ControlOperation): ReceivedControlCall[];
  reset(): void;
  close(): Promise<void>;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

const invalid = (message: string) => new ApiError(400, 'InvalidInputException', message);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Field checks of CreateDatasetImportJob (FACTS §4d); every problem is named. */
function validateCreate(body: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const { jobName, datasetArn, dataSource, roleArn, importMode, publishAttributionMetricsToS3 } = body;
  if (typeof jobName !== 'string' || jobName.length < 1 || jobName.length > IMPORT_LIMITS.jobNameMax) {
    problems.push(`jobName: must be a string of 1-${IMPORT_LIMITS.jobNameMax} characters`);
  } else if (!IMPORT_LIMITS.jobNamePattern.test(jobName)) {
    problems.push('jobName: must match ^[a-zA-Z0-9][a-zA-Z0-9\\-_]*');
  }
  if (typeof datasetArn !== 'string' || datasetArn.length > 256 || !DATASET_ARN_PATTERN.test(datasetArn) || !datasetArn.includes(':dataset/')) {
    problems.push('datasetArn: must be a dataset ARN (arn:aws:personalize:<region>:<account>:dataset/<group>/<TYPE>) of at most 256 characters');
  }
  const location = isRecord(dataSource) ? dataSource.dataLocation : undefined;
  if (typeof location !== 'string' || !/^s3:\/\/[^/]+(\/.*)?$/.test(location) || location.length > 256) {
    problems.push('dataSource.dataLocation: must be s3://bucket/path/file.csv or s3://bucket/folder/ (at most 256 characters)');
  }
  if (typeof roleArn !== 'string' || roleArn.length > 256 || !ROLE_ARN_PATTERN.test(roleArn)) {
    problems.push('roleArn: must be an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)');
  }
  if (importMode !== undefined && importMode !== 'FULL' && importMode !== 'INCREMENTAL') {
    problems.push('importMode: must be FULL or INCREMENTAL');
  }
  if (publishAttributionMetricsToS3 !== undefined && typeof publishAttributionMetricsToS3 !== 'boolean') {
    problems.push('publishAttributionMetricsToS3: must be a boolean');
  }
  return problems;
}

const HEADER_ROW = /^[A-Za-z][A-Za-z0-9_]*(,[A-Za-z][A-Za-z0-9_]*)*\r?$/;

/** What the job would find at dataLocation: undefined when it can import, else the failure reason. */
async function checkDataLocation(s3: S3Client, location: string): Promise<string | undefined> {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(location);
  const bucket = match?.[1] ?? '';
  const path = match?.[2] ?? '';
  let keys: string[];
  try {
    if (path === '' || path.endsWith('/')) {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: path, MaxKeys: 1000 }));
      keys = (page.Contents ?? []).map((o) => o.Key ?? '').filter((k) => k.toLowerCase().endsWith('.csv'));
      if (keys.length === 0) return `Input data not found: no CSV file in ${location}`;
    } else {
      await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: path }));
      keys = [path];
    }
  } catch (error) {
    return `Input data not found at ${location}: ${(error as Error).name}`;
  }
  for (const key of keys.slice(0, MAX_FILES_CHECKED)) {
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: 'bytes=0-4095' }));
    const head = (await got.Body?.transformToString('utf8')) ?? '';
    const firstLine = head.split('\n')[0] ?? '';
    if (!HEADER_ROW.test(firstLine)) {
      return `s3://${bucket}/${key}: the first row must be the unquoted column names of the dataset schema (FACTS §4a)`;
    }
  }
  return undefined;
}

/** Field checks of CreateDataDeletionJob; every problem is named. */
function validateCreateDeletion(body: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const { jobName, datasetGroupArn, dataSource, roleArn, tags } = body;
  if (typeof jobName !== 'string' || jobName.length < 1 || jobName.length > IMPORT_LIMITS.jobNameMax) {
    problems.push(`jobName: must be a string of 1-${IMPORT_LIMITS.jobNameMax} characters`);
  } else if (!IMPORT_LIMITS.jobNamePattern.test(jobName)) {
    problems.push('jobName: must match ^[a-zA-Z0-9][a-zA-Z0-9\\-_]*');
  }
  if (typeof datasetGroupArn !== 'string' || datasetGroupArn.length > 256 || !DATASET_GROUP_ARN_PATTERN.test(datasetGroupArn) || !datasetGroupArn.includes(':dataset-group/')) {
    problems.push('datasetGroupArn: must be a dataset group ARN (arn:aws:personalize:<region>:<account>:dataset-group/<name>) of at most 256 characters');
  }
  const location = isRecord(dataSource) ? dataSource.dataLocation : undefined;
  if (typeof location !== 'string' || !/^s3:\/\/[^/]+(\/.*)?$/.test(location) || location.length > 256) {
    problems.push('dataSource.dataLocation: must be s3://bucket/path/file.csv or s3://bucket/folder/ (at most 256 characters)');
  }
  if (typeof roleArn !== 'string' || roleArn.length > 256 || !ROLE_ARN_PATTERN.test(roleArn)) {
    problems.push('roleArn: must be an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)');
  }
  if (tags !== undefined && !Array.isArray(tags)) problems.push('tags: must be a list');
  return problems;
}

/** What a deletion job finds at dataLocation: the USER_IDs, or the failure reason. */
async function readDeletionInput(s3: S3Client, location: string, maxBytes: number): Promise<{ users: string[] } | { failure: string }> {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(location);
  const bucket = match?.[1] ?? '';
  const path = match?.[2] ?? '';
  let files: { key: string; size: number }[];
  try {
    if (path === '' || path.endsWith('/')) {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: path, MaxKeys: 1000 }));
      files = (page.Contents ?? []).filter((o) => (o.Key ?? '').toLowerCase().endsWith('.csv')).map((o) => ({ key: o.Key ?? '', size: o.Size ?? 0 }));
      if (files.length === 0) return { failure: `Input data not found: no CSV file in ${location}` };
    } else {
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: path }));
      files = [{ key: path, size: head.ContentLength ?? 0 }];
    }
  } catch (error) {
    return { failure: `Input data not found at ${location}: ${(error as Error).name}` };
  }
  const total = files.reduce((n, f) => n + f.size, 0);
  if (total > maxBytes) return { failure: `The data deletion input at ${location} is ${total} bytes; the maximum total size is ${maxBytes} bytes` };
  const users: string[] = [];
  for (const { key } of files) {
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const text = (await got.Body?.transformToString('utf8')) ?? '';
    const where = `s3://${bucket}/${key}`;
    const firstLine = text.split('\n')[0]?.replace(/\r$/, '') ?? '';
    if (firstLine !== 'USER_ID') return { failure: `${where}: the input must be a CSV file whose only column is USER_ID (header row ${JSON.stringify(firstLine.slice(0, 100))})` };
    let records: string[][];
    try {
      const parsed: unknown = parseCsv(text, { relax_column_count: false, skip_empty_lines: true });
      records = parsed as string[][];
    } catch (error) {
      return { failure: `${where}: not valid CSV (${(error as Error).message})` };
    }
    for (const [i, record] of records.slice(1).entries()) {
      if (record.length !== 1 || record[0] === '') return { failure: `${where}: record ${i + 2} must hold exactly one non-empty USER_ID` };
      users.push(record[0]!);
    }
  }
  return { users };
}

function send(res: ServerResponse, status: number, body: unknown, errorType?: string): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': String(Buffer.byteLength(text)),
    'x-amzn-requestid': randomUUID(),
    ...(errorType !== undefined && { 'x-amzn-errortype': errorType }),
  });
  res.end(text);
}

/** The wire form: timestamps are epoch seconds in AWS JSON 1.1. */
function wireJob(job: LocalImportJob): Record<string, unknown> {
  return {
    ...job,
    creationDateTime: job.creationDateTime / 1000,
    lastUpdatedDateTime: job.lastUpdatedDateTime / 1000,
  };
}

export async function startLocalPersonalizeControl(options: LocalPersonalizeControlOptions = {}): Promise<LocalPersonalizeControl> {
  const host = options.host ?? '127.0.0.1';
  const now = options.now ?? Date.now;
  const activateAfterMs = options.activateAfterMs ?? 1000;
  let jobs: LocalImportJob[] = [];
  let deletionJobs: LocalDeletionJob[] = [];
  let calls: ReceivedControlCall[] = [];
  const deletionInputMaxBytes = options.deletionInputMaxBytes ?? DELETION_INPUT_MAX_BYTES;

  /** Deletion jobs move with time: PENDING, IN_PROGRESS, then they run (read the input) and end. */
  async function settleDeletions(): Promise<void> {
    for (const job of deletionJobs) {
      const age = now() - job.creationDateTime;
      if (job.status === 'PENDING' && age >= activateAfterMs) {
        job.status = 'IN_PROGRESS';
        job.lastUpdatedDateTime = now();
      }
      if (job.status !== 'IN_PROGRESS' || age < 2 * activateAfterMs) continue;
      const input = options.s3 ? await readDeletionInput(options.s3, job.dataSource.dataLocation, deletionInputMaxBytes) : { users: [] };
      if ('failure' in input) {
        job.status = 'FAILED';
        job.failureReason = input.failure;
      } else {
        job.status = 'COMPLETED';
        job.deletedUsers = input.users;
        job.numDeleted = new Set(input.users).size;
      }
      job.lastUpdatedDateTime = now();
    }
  }

  async function createDeletion(body: Record<string, unknown>): Promise<unknown> {
    const problems = validateCreateDeletion(body);
    if (problems.length > 0) throw invalid(problems.join('; '));
    const jobName = body.jobName as string;
    const datasetGroupArn = body.datasetGroupArn as string;
    await settleDeletions();
    if (deletionJobs.some((j) => j.jobName === jobName)) {
      throw new ApiError(400, 'ResourceAlreadyExistsException', `data deletion job ${jobName} already exists`);
    }
    const pending = deletionJobs.filter((j) => j.datasetGroupArn === datasetGroupArn && j.status === 'PENDING').length;
    if (pending >= MAX_PENDING_DELETION_JOBS) {
      throw new ApiError(400, 'LimitExceededException', `${pending} data deletion jobs of dataset group ${datasetGroupArn} are PENDING; the limit is ${MAX_PENDING_DELETION_JOBS}`);
    }
    const [, partition = 'aws', , region = 'us-east-1', account = '000000000000'] = datasetGroupArn.split(':');
    const at = now();
    const job: LocalDeletionJob = {
      jobName,
      dataDeletionJobArn: `arn:${partition}:personalize:${region}:${account}:data-deletion-job/${jobName}`,
      datasetGroupArn,
      dataSource: { dataLocation: (body.dataSource as { dataLocation: string }).dataLocation },
      roleArn: body.roleArn as string,
      status: 'PENDING',
      creationDateTime: at,
      lastUpdatedDateTime: at,
      deletedUsers: [],
    };
    deletionJobs.push(job);
    return { dataDeletionJobArn: job.dataDeletionJobArn };
  }

  /** The wire form: epoch seconds, and no local-only fields. */
  const wireDeletion = ({ deletedUsers, ...job }: LocalDeletionJob): Record<string, unknown> => {
    void deletedUsers;
    return { ...job, creationDateTime: job.creationDateTime / 1000, lastUpdatedDateTime: job.lastUpdatedDateTime / 1000 };
  };

  async function describeDeletion(body: Record<string, unknown>): Promise<unknown> {
    const arn = body.dataDeletionJobArn;
    if (typeof arn !== 'string' || arn === '') throw invalid('dataDeletionJobArn: required');
    await settleDeletions();
    const job = deletionJobs.find((j) => j.dataDeletionJobArn === arn);
    if (!job) throw new ApiError(400, 'ResourceNotFoundException', `data deletion job ${arn} not found`);
    return { dataDeletionJob: wireDeletion(job) };
  }

  async function listDeletions(body: Record<string, unknown>): Promise<unknown> {
    const { datasetGroupArn, maxResults = 100, nextToken } = body;
    if (datasetGroupArn !== undefined && typeof datasetGroupArn !== 'string') throw invalid('datasetGroupArn: must be a string');
    if (typeof maxResults !== 'number' || !Number.isInteger(maxResults) || maxResults < 1 || maxResults > 100) {
      throw invalid('maxResults: must be an integer from 1 to 100');
    }
    if (nextToken !== undefined && typeof nextToken !== 'string') throw new ApiError(400, 'InvalidNextTokenException', 'nextToken is not valid');
    const start = nextToken === undefined ? 0 : Number(Buffer.from(nextToken, 'base64url').toString('utf8'));
    if (!Number.isInteger(start) || start < 0) throw new ApiError(400, 'InvalidNextTokenException', 'nextToken is not valid');
    await settleDeletions();
    const matching = deletionJobs.filter((j) => datasetGroupArn === undefined || j.datasetGroupArn === datasetGroupArn).reverse();
    const page = matching.slice(start, start + maxResults);
    const end = start + page.length;
    return {
      dataDeletionJobs: page.map((j) => ({
        dataDeletionJobArn: j.dataDeletionJobArn,
        datasetGroupArn: j.datasetGroupArn,
        jobName: j.jobName,
        status: j.status,
        creationDateTime: j.creationDateTime / 1000,
        lastUpdatedDateTime: j.lastUpdatedDateTime / 1000,
        ...(j.failureReason !== undefined && { failureReason: j.failureReason }),
      })),
      ...(end < matching.length && { nextToken: Buffer.from(String(end)).toString('base64url') }),
    };
  }

  /** Runs the jobs whose pending time is over: ACTIVE when the data is there, CREATE FAILED otherwise. */
  async function settle(): Promise<void> {
    for (const job of jobs) {
      if (job.status !== 'CREATE PENDING' || now() - job.creationDateTime < activateAfterMs) continue;
      job.status = 'CREATE IN_PROGRESS';
      const failure = options.s3 ? await checkDataLocation(options.s3, job.dataSource.dataLocation) : undefined;
      job.status = failure === undefined ? 'ACTIVE' : 'CREATE FAILED';
      if (failure !== undefined) job.failureReason = failure;
      job.lastUpdatedDateTime = now();
    }
  }

  async function create(body: Record<string, unknown>): Promise<unknown> {
    const problems = validateCreate(body);
    if (problems.length > 0) throw invalid(problems.join('; '));
    const jobName = body.jobName as string;
    const datasetArn = body.datasetArn as string;
    const importMode = (body.importMode as 'FULL' | 'INCREMENTAL' | undefined) ?? 'FULL';
    await settle();
    if (jobs.some((j) => j.jobName === jobName)) {
      throw new ApiError(400, 'ResourceAlreadyExistsException', `dataset import job ${jobName} already exists`);
    }
    if (importMode === 'INCREMENTAL' && !jobs.some((j) => j.datasetArn === datasetArn && j.status === 'ACTIVE')) {
      throw invalid(`importMode INCREMENTAL: dataset ${datasetArn} has no bulk import yet; only FULL is allowed (FACTS §4d)`);
    }
    const inFlight = jobs.filter((j) => j.status === 'CREATE PENDING' || j.status === 'CREATE IN_PROGRESS').length;
    if (inFlight >= MAX_JOBS_IN_FLIGHT) {
      throw new ApiError(400, 'LimitExceededException', `${inFlight} dataset import jobs are pending or in progress; the limit is ${MAX_JOBS_IN_FLIGHT} (FACTS §4c)`);
    }
    const [, partition = 'aws', , region = 'us-east-1', account = '000000000000'] = datasetArn.split(':');
    const at = now();
    const job: LocalImportJob = {
      jobName,
      datasetImportJobArn: `arn:${partition}:personalize:${region}:${account}:dataset-import-job/${jobName}`,
      datasetArn,
      dataSource: { dataLocation: (body.dataSource as { dataLocation: string }).dataLocation },
      roleArn: body.roleArn as string,
      importMode,
      status: 'CREATE PENDING',
      creationDateTime: at,
      lastUpdatedDateTime: at,
    };
    jobs.push(job);
    return { datasetImportJobArn: job.datasetImportJobArn };
  }

  async function describe(body: Record<string, unknown>): Promise<unknown> {
    const arn = body.datasetImportJobArn;
    if (typeof arn !== 'string' || arn === '') throw invalid('datasetImportJobArn: required');
    await settle();
    const job = jobs.find((j) => j.datasetImportJobArn === arn);
    if (!job) throw new ApiError(400, 'ResourceNotFoundException', `dataset import job ${arn} not found`);
    return { datasetImportJob: wireJob(job) };
  }

  async function list(body: Record<string, unknown>): Promise<unknown> {
    const { datasetArn, maxResults = 100, nextToken } = body;
    if (datasetArn !== undefined && typeof datasetArn !== 'string') throw invalid('datasetArn: must be a string');
    if (typeof maxResults !== 'number' || !Number.isInteger(maxResults) || maxResults < 1 || maxResults > 100) {
      throw invalid('maxResults: must be an integer from 1 to 100');
    }
    if (nextToken !== undefined && typeof nextToken !== 'string') throw new ApiError(400, 'InvalidNextTokenException', 'nextToken is not valid');
    const start = nextToken === undefined ? 0 : Number(Buffer.from(nextToken, 'base64url').toString('utf8'));
    if (!Number.isInteger(start) || start < 0) throw new ApiError(400, 'InvalidNextTokenException', 'nextToken is not valid');
    await settle();
    const matching = jobs.filter((j) => datasetArn === undefined || j.datasetArn === datasetArn).reverse();
    const page = matching.slice(start, start + maxResults);
    const end = start + page.length;
    return {
      datasetImportJobs: page.map((j) => ({
        datasetImportJobArn: j.datasetImportJobArn,
        jobName: j.jobName,
        status: j.status,
        creationDateTime: j.creationDateTime / 1000,
        lastUpdatedDateTime: j.lastUpdatedDateTime / 1000,
        importMode: j.importMode,
        ...(j.failureReason !== undefined && { failureReason: j.failureReason }),
      })),
      ...(end < matching.length && { nextToken: Buffer.from(String(end)).toString('base64url') }),
    };
  }

  const OPERATIONS: Record<ControlOperation, (body: Record<string, unknown>) => Promise<unknown>> = {
    CreateDatasetImportJob: create,
    DescribeDatasetImportJob: describe,
    ListDatasetImportJobs: list,
    CreateDataDeletionJob: createDeletion,
    DescribeDataDeletionJob: describeDeletion,
    ListDataDeletionJobs: listDeletions,
  };

  function control(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const route = `${req.method} ${url.pathname}`;
    if (route === 'GET /_local/jobs') return send(res, 200, jobs);
    if (route === 'GET /_local/received') return send(res, 200, calls);
    if (route === 'GET /_local/deletion-jobs') return send(res, 200, deletionJobs);
    if (route === 'POST /_local/reset') {
      jobs = [];
      deletionJobs = [];
      calls = [];
      return send(res, 200, {});
    }
    send(res, 404, { message: `no such control endpoint: ${route}` });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://local');
    const bytes = await readBody(req, MAX_BODY_BYTES);
    if (url.pathname.startsWith('/_local/')) return control(req, res, url);
    const target = req.headers['x-amz-target'];
    const operation = typeof target === 'string' && target.startsWith(TARGET_PREFIX) ? target.slice(TARGET_PREFIX.length) : '';
    const call: ReceivedControlCall = { operation, receivedAt: new Date(now()).toISOString(), request: undefined };
    try {
      if (req.method !== 'POST' || url.pathname !== '/') throw new ApiError(404, 'UnknownOperationException', `no operation at ${req.method} ${url.pathname}`);
      const auth = req.headers.authorization;
      // The real service requires SigV4; the signature itself is not verified here.
      if (typeof auth !== 'string' || !auth.startsWith('AWS4-HMAC-SHA256')) throw new ApiError(403, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
      if (!bytes) throw new ApiError(413, 'RequestEntityTooLargeException', `request body over ${MAX_BODY_BYTES} bytes`);
      let body: unknown;
      try {
        body = bytes.length === 0 ? {} : JSON.parse(bytes.toString('utf8'));
      } catch {
        throw new ApiError(400, 'SerializationException', 'request body is not valid JSON');
      }
      call.request = body;
      if (!isRecord(body)) throw new ApiError(400, 'SerializationException', 'request body must be a JSON object');
      const run = (OPERATIONS as Record<string, ((b: Record<string, unknown>) => Promise<unknown>) | undefined>)[operation];
      if (!run) throw new ApiError(400, 'UnknownOperationException', `operation ${String(target)} is not served (served: ${CONTROL_OPERATIONS.join(', ')})`);
      const out = await run(body);
      calls.push(call);
      send(res, 200, out);
    } catch (error) {
      const e = error instanceof ApiError ? error : new ApiError(500, 'InternalFailure', (error as Error).message);
      call.error = { type: e.type, message: e.message };
      calls.push(call);
      send(res, e.status, { __type: e.type, message: e.message }, e.type);
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) send(res, 500, { __type: 'InternalFailure', message: 'internal failure' }, 'InternalFailure');
      else res.destroy();
    });
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
  const url = `http://${host}:${port}`;
  return {
    url,
    port,
    env: { AWS_ENDPOINT_URL_PERSONALIZE: url },
    jobs: () => structuredClone(jobs),
    deletionJobs: () => structuredClone(deletionJobs),
    received: (operation) => structuredClone(operation ? calls.filter((c) => c.operation === operation) : calls),
    reset() {
      jobs = [];
      deletionJobs = [];
      calls = [];
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
