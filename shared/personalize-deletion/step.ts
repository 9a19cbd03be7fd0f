import { createHash } from 'node:crypto';
import type { DataDeletionJob, DataDeletionJobSummary } from '@aws-sdk/client-personalize';
import { z } from 'zod';
import { csvLine } from '../util/csv-parts.js';
import type { ObjectStore } from '../storage.js';
import {
  AUDIT_PREFIX,
  deleteKey,
  INPUT_PREFIX,
  JOBS_PREFIX,
  listKeys,
  putJson,
  readJson,
  readPending,
  writePendingDeletion,
  type PendingEntry,
} from '../personalize/deletion-outbox.js';

/**
 * The daily deletion step: users in the outbox (shared/personalize/deletion-outbox.ts) reach Personalize as data deletion
 * jobs (CreateDataDeletionJob, docs/personalize-bulk-and-stream.md §3). Each run:
 *
 * 1. follows the jobs it started earlier: COMPLETED counts a pass for each of its users in that
 *    dataset group (an entry leaves the outbox after `passes` in every group), writes an audit
 *    record and deletes the input CSV; FAILED is counted (the alarm's metric), its input deleted,
 *    and its users stay pending for a new job;
 * 2. defers new jobs while an import job of a configured dataset is CREATE PENDING or IN_PROGRESS
 *    (the docs: no import while a deletion runs);
 * 3. per dataset group, batches the users still due into input CSVs (header USER_ID, at most
 *    `maxInputBytes` each) and creates one job per CSV, within the 5 PENDING jobs a group may
 *    have. Job names are deterministic: day, group, number.
 *
 * A job record is written before CreateDataDeletionJob, so a crash in between is found by name
 * on the next run (adopted if the job exists, dropped if not).
 */

/** The Personalize control-plane calls the step makes (the SDK adapter: shared/aws/personalize.ts). */
export interface DeletionJobs {
  list(datasetGroupArn: string): Promise<DataDeletionJobSummary[]>;
  describe(jobArn: string): Promise<DataDeletionJob | undefined>;
  /** The new job's ARN; the SDK's error (e.g. LimitExceededException) when Personalize refuses. */
  create(job: { jobName: string; datasetGroupArn: string; dataLocation: string; roleArn: string }): Promise<string>;
  /** Names of the import jobs of these datasets still CREATE PENDING or CREATE IN_PROGRESS. */
  importsInProgress(datasetArns: readonly string[]): Promise<string[]>;
}

export interface DeletionStepDeps {
  /** The archive bucket: outbox, job records, input CSVs, audit records. */
  store: ObjectStore;
  personalize: DeletionJobs;
  datasetGroupArns: readonly string[];
  /** The role Personalize assumes to read the input CSV. */
  roleArn: string;
  /** Datasets whose running imports hold new deletion jobs back. */
  datasetArns: readonly string[];
  /** COMPLETED jobs per user and group before its outbox entry goes. */
  passes: number;
  maxInputBytes: number;
  /** PENDING deletion jobs a dataset group may have (5). */
  maxPendingJobs?: number;
  now?: () => number;
}

export interface JobOutcome {
  jobName: string;
  jobArn: string;
  datasetGroupArn: string;
  users: number;
}

export interface DeletionStepReport {
  /** Outbox entries when the run started and when it ended. */
  pendingBefore: number;
  pendingAfter: number;
  completed: (JobOutcome & { numDeleted: number; completedAt: string })[];
  failed: (JobOutcome & { failureReason: string })[];
  /** Jobs still PENDING or IN_PROGRESS. */
  inProgress: JobOutcome[];
  created: (JobOutcome & { dataLocation: string; bytes: number })[];
  /** Outbox entries removed (every group done). */
  outboxRemoved: number;
  /** Users not put in a job this run, by reason. */
  deferred: Record<string, number>;
  /** Import jobs that held creation back. */
  importsInProgress: string[];
  /** Records of jobs found neither running nor ended (a crash before the create call): dropped. */
  abandoned: number;
}

export const DEFER_IMPORT = 'an import job of a configured dataset is pending or in progress';
export const DEFER_LIMIT = 'the dataset group has 5 PENDING deletion jobs';
export const DEFER_IN_FLIGHT = 'already in a running deletion job';
export const DEFER_NEXT_PASS = 'next pass on a later run';

const jobRecordSchema = z.strictObject({
  jobName: z.string(),
  jobArn: z.string().optional(),
  datasetGroupArn: z.string(),
  inputKey: z.string(),
  hashes: z.array(z.string().regex(/^[0-9a-f]{64}$/)),
  createdAt: z.string(),
});
type JobRecord = z.infer<typeof jobRecordSchema>;

const HEADER = csvLine(['USER_ID']);
const ENDED = new Set(['COMPLETED', 'FAILED']);

export class DeletionStepError extends Error {
  override name = 'DeletionStepError';
}

/** 8 hex of the group ARN: job names stay short and tell groups apart. */
const groupTag = (arn: string) => createHash('sha256').update(arn).digest('hex').slice(0, 8);

export function emptyDeletionReport(): DeletionStepReport {
  return { pendingBefore: 0, pendingAfter: 0, completed: [], failed: [], inProgress: [], created: [], outboxRemoved: 0, deferred: {}, importsInProgress: [], abandoned: 0 };
}

export async function runDeletionStep(deps: DeletionStepDeps): Promise<DeletionStepReport> {
  const { store, personalize: deletionJobs } = deps;
  const now = deps.now ?? Date.now;
  const maxPending = deps.maxPendingJobs ?? 5;
  if (deps.datasetGroupArns.length === 0) throw new DeletionStepError('no dataset group configured (PERSONALIZE_DATASET_GROUP_ARN)');
  const report = emptyDeletionReport();
  const defer = (reason: string, n: number) => {
    if (n > 0) report.deferred[reason] = (report.deferred[reason] ?? 0) + n;
  };

  const pending = new Map((await readPending(store)).map((e) => [e.hash, e]));
  report.pendingBefore = pending.size;

  // 1. Follow the jobs started earlier.
  const listed = new Map<string, DataDeletionJobSummary[]>();
  for (const group of deps.datasetGroupArns) listed.set(group, await deletionJobs.list(group));
  const records: JobRecord[] = [];
  for (const key of (await listKeys(store, JOBS_PREFIX)).sort()) {
    const parsed = jobRecordSchema.safeParse(await readJson(store, key));
    if (!parsed.success) throw new DeletionStepError(`deletion job record ${key} is not readable`);
    records.push(parsed.data);
  }
  const inFlight = new Map<string, Set<string>>(deps.datasetGroupArns.map((g) => [g, new Set<string>()]));
  const completedNow = new Map<string, Set<string>>(deps.datasetGroupArns.map((g) => [g, new Set<string>()]));
  for (const record of records) {
    const recordKey = `${JOBS_PREFIX}${record.jobName}.json`;
    const summary = (listed.get(record.datasetGroupArn) ?? (await deletionJobs.list(record.datasetGroupArn))).find((j) => j.jobName === record.jobName);
    const outcome: JobOutcome = { jobName: record.jobName, jobArn: summary?.dataDeletionJobArn ?? record.jobArn ?? '', datasetGroupArn: record.datasetGroupArn, users: record.hashes.length };
    if (summary === undefined) {
      // Never created (the run stopped before the call): its users are still pending.
      report.abandoned++;
      await deleteKey(store, record.inputKey);
      await deleteKey(store, recordKey);
      continue;
    }
    if (!ENDED.has(summary.status ?? '')) {
      report.inProgress.push(outcome);
      for (const h of record.hashes) inFlight.get(record.datasetGroupArn)?.add(h);
      if (record.jobArn === undefined) await putJson(store, recordKey, { ...record, jobArn: outcome.jobArn });
      continue;
    }
    const described = await deletionJobs.describe(outcome.jobArn);
    const endedAt = (described?.lastUpdatedDateTime ?? summary.lastUpdatedDateTime ?? new Date(now())).toISOString();
    const audit = `${AUDIT_PREFIX}${record.jobName}.json`;
    if (summary.status === 'COMPLETED') {
      const numDeleted = described?.numDeleted ?? 0;
      // The audit first: it is the evidence once the raw ids are gone.
      await putJson(store, audit, { ...outcome, status: 'COMPLETED', numDeleted, completedAt: endedAt, hashes: record.hashes });
      for (const hash of record.hashes) {
        const entry = pending.get(hash);
        if (entry === undefined) continue;
        const passes = { ...entry.passes, [record.datasetGroupArn]: (entry.passes?.[record.datasetGroupArn] ?? 0) + 1 };
        completedNow.get(record.datasetGroupArn)?.add(hash);
        if (deps.datasetGroupArns.every((g) => (passes[g] ?? 0) >= deps.passes)) {
          await deleteKey(store, entry.key);
          pending.delete(hash);
          report.outboxRemoved++;
        } else {
          const next: PendingEntry = { ...entry, passes };
          await writePendingDeletion(store, hash, { userId: next.userId, requestedAt: next.requestedAt, passes });
          pending.set(hash, next);
        }
      }
      report.completed.push({ ...outcome, numDeleted, completedAt: endedAt });
    } else {
      const failureReason = described?.failureReason ?? summary.failureReason ?? 'no reason given';
      await putJson(store, audit, { ...outcome, status: 'FAILED', failureReason, failedAt: endedAt, hashes: record.hashes });
      report.failed.push({ ...outcome, failureReason });
    }
    await deleteKey(store, record.inputKey);
    await deleteKey(store, recordKey);
  }

  // 2. Imports running: no new job (the docs cannot promise a deletion that overlaps an import).
  report.importsInProgress = await deletionJobs.importsInProgress(deps.datasetArns);

  // 3. New jobs, per group.
  const day = new Date(now()).toISOString().slice(0, 10).replaceAll('-', '');
  for (const group of deps.datasetGroupArns) {
    const due: PendingEntry[] = [];
    for (const entry of [...pending.values()].sort((a, b) => (a.hash < b.hash ? -1 : 1))) {
      if ((entry.passes?.[group] ?? 0) >= deps.passes) continue;
      if (inFlight.get(group)?.has(entry.hash)) defer(DEFER_IN_FLIGHT, 1);
      // A further pass waits for a later run, after what overlapped this one.
      else if (completedNow.get(group)?.has(entry.hash)) defer(DEFER_NEXT_PASS, 1);
      else due.push(entry);
    }
    if (due.length === 0) continue;
    if (report.importsInProgress.length > 0) {
      defer(DEFER_IMPORT, due.length);
      continue;
    }
    const batches: { entries: PendingEntry[]; body: string[]; bytes: number }[] = [];
    const headerBytes = Buffer.byteLength(HEADER);
    for (const entry of due) {
      const line = csvLine([entry.userId]);
      const bytes = Buffer.byteLength(line);
      if (headerBytes + bytes > deps.maxInputBytes) throw new DeletionStepError(`outbox entry ${entry.key}: the user id alone exceeds the input limit of ${deps.maxInputBytes} bytes`);
      let batch = batches.at(-1);
      if (batch === undefined || batch.bytes + bytes > deps.maxInputBytes) {
        batch = { entries: [], body: [HEADER], bytes: headerBytes };
        batches.push(batch);
      }
      batch.entries.push(entry);
      batch.body.push(line);
      batch.bytes += bytes;
    }
    const jobs = listed.get(group) ?? [];
    const pendingJobs = jobs.filter((j) => j.status === 'PENDING').length;
    const taken = new Set([...jobs.map((j) => j.jobName), ...records.map((r) => r.jobName)]);
    let number = 0;
    const nextName = () => {
      let name: string;
      do name = `personalize-ingest-deletion-${day}-${groupTag(group)}-${++number}`;
      while (taken.has(name));
      taken.add(name);
      return name;
    };
    for (const [index, batch] of batches.entries()) {
      if (pendingJobs + index >= maxPending) {
        defer(DEFER_LIMIT, batches.slice(index).reduce((n, b) => n + b.entries.length, 0));
        break;
      }
      const jobName = nextName();
      const inputKey = `${INPUT_PREFIX}${jobName}.csv`;
      const dataLocation = store.location(inputKey);
      const recordKey = `${JOBS_PREFIX}${jobName}.json`;
      const record: JobRecord = { jobName, datasetGroupArn: group, inputKey, hashes: batch.entries.map((e) => e.hash), createdAt: new Date(now()).toISOString() };
      await store.put(inputKey, batch.body.join(''), undefined, 'text/csv');
      await putJson(store, recordKey, record);
      let jobArn: string;
      try {
        jobArn = await deletionJobs.create({ jobName, datasetGroupArn: group, dataLocation, roleArn: deps.roleArn });
      } catch (error) {
        // Refused: nothing was created, so nothing is left behind; the users stay pending.
        await deleteKey(store, recordKey);
        await deleteKey(store, inputKey);
        if ((error as Error).name === 'LimitExceededException') {
          defer(DEFER_LIMIT, batches.slice(index).reduce((n, b) => n + b.entries.length, 0));
          break;
        }
        throw error;
      }
      await putJson(store, recordKey, { ...record, jobArn });
      report.created.push({ jobName, jobArn, datasetGroupArn: group, users: batch.entries.length, dataLocation, bytes: batch.bytes });
    }
  }
  report.pendingAfter = pending.size;
  return report;
}
