import { createHash } from 'node:crypto';
import { IMPORT_LIMITS } from '../personalize/import-limits.js';
import type { ImportJobSummary, ImportMode } from './ports.js';
import type { ExportKind } from './kinds.js';

/**
 * Pure import planning: which CSV files go into which dataset import job, which are held for
 * the next run, and in which import mode. The executor (./publish.ts) only carries the plan out.
 */

export type RequestedMode = 'auto' | ImportMode;

export interface PlanFile {
  /** File name, unique per kind: `<kind>-<date>-r<revision>-<nnn>.csv`. */
  name: string;
  bytes: number;
  rows: number;
  /** Already in the pending folder (held by an earlier run), or a part written by this run. */
  origin: 'pending' | 'new';
}

export interface PlannedJob<F extends PlanFile = PlanFile> {
  jobName: string;
  importMode: ImportMode;
  files: F[];
  rows: number;
  bytes: number;
}

export interface HeldGroup<F extends PlanFile = PlanFile> {
  files: F[];
  rows: number;
  reason: string;
}

export interface ImportPlan<F extends PlanFile = PlanFile> {
  jobs: PlannedJob<F>[];
  held: HeldGroup<F>[];
}

const IN_PROGRESS = new Set(['CREATE PENDING', 'CREATE IN_PROGRESS']);

export type ModeDecision = { mode: ImportMode } | { hold: string };

/**
 * FACTS §4d: INCREMENTAL needs a bulk import that has run (ACTIVE); FULL replaces all bulk data.
 * auto: INCREMENTAL once one is ACTIVE; while the first import still runs, wait for it (a second
 * FULL could land after later data and replace it); otherwise FULL. `republication`: the day
 * already has a live publication, so this run holds only a delta, never to be imported FULL.
 */
export function chooseImportMode(requested: RequestedMode, existing: readonly ImportJobSummary[], republication = false): ModeDecision {
  const active = existing.some((j) => j.status === 'ACTIVE');
  if (requested === 'FULL' && republication) {
    // A re-publication holds only what changed: as FULL it would replace every bulk row with that.
    return { hold: 'FULL was asked for a day already published: a FULL import of what changed would replace all bulk data with it (FACTS §4d); run with auto or INCREMENTAL' };
  }
  if (requested === 'FULL') return { mode: 'FULL' };
  if (active) return { mode: 'INCREMENTAL' };
  if (requested === 'INCREMENTAL') {
    return { hold: 'INCREMENTAL was asked, but the dataset has no ACTIVE bulk import yet and only FULL is allowed then (FACTS §4d)' };
  }
  const running = existing.find((j) => IN_PROGRESS.has(j.status));
  if (running) {
    return { hold: `the dataset's first import job ${running.jobName} is ${running.status}; INCREMENTAL imports wait until it is ACTIVE (FACTS §4d)` };
  }
  return { mode: 'FULL' };
}

/** Part files: `<kind>-<date>-r<revision>-<nnn>.csv` (the legacy `<kind>-<date>-<nnn>.csv` reads as revision 1). */
const FILE_NAME = /^(interactions|items|users)-(\d{4}-\d{2}-\d{2})(?:-r([1-9]\d{0,5}))?-(\d{3})\.csv$/;

export interface PartFileName {
  kind: ExportKind;
  date: string;
  revision: number;
  part: number;
}

export function parsePartFileName(name: string): PartFileName | undefined {
  const m = FILE_NAME.exec(name);
  if (!m) return undefined;
  return { kind: m[1] as ExportKind, date: m[2]!, revision: m[3] === undefined ? 1 : Number(m[3]), part: Number(m[4]) };
}

/** The base of a revision's part names (the writer adds `-001.csv`, ...). */
export function partBaseName(kind: ExportKind, date: string, revision: number): string {
  if (!Number.isSafeInteger(revision) || revision < 1 || revision > 999_999) throw new RangeError(`revision must be 1-999999, got ${revision}`);
  return `${kind}-${date}-r${revision}`;
}

/**
 * Deterministic per dataset, kind, run date, revision and part: a re-run of the same revision asks
 * for the same job and gets "already exists" instead of importing the same rows twice; a new
 * revision of the day (what changed since) gets new names. The dataset hash keeps two dataset
 * groups (stages) in one account from colliding. Fits the jobName rules (FACTS §4d).
 */
export function importJobName(kind: ExportKind, date: string, datasetArn: string, revision: number, index: number): string {
  const dataset = createHash('sha256').update(datasetArn).digest('hex').slice(0, 8);
  const name = `pi-${kind}-${date.replaceAll('-', '')}-${dataset}-r${revision}-${String(index).padStart(2, '0')}`;
  checkJobName(name);
  return name;
}

function checkJobName(name: string): void {
  if (name.length > IMPORT_LIMITS.jobNameMax || !IMPORT_LIMITS.jobNamePattern.test(name)) {
    throw new RangeError(`import job name ${name} breaks the jobName rules (FACTS §4d)`);
  }
}

/** Most retries of one planned job name: keeps `<name>-a<n>` within the 63 characters. */
export const MAX_JOB_ATTEMPTS = 99;

/**
 * The name to use for a planned job, given the dataset's jobs: the planned name, or when a job of
 * that name ended CREATE FAILED (its data was never imported, and Personalize keeps the name),
 * the next attempt `<name>-a2`, `-a3`, ... (`a`, not `r`: `r` is the revision). `known` is set
 * when that name already has a live job (a re-run): it is never started twice.
 */
export function resolveJobName(
  planned: string,
  existing: readonly ImportJobSummary[],
  /** Live jobs known to hold other files: passed over like failed ones. */
  passOver: ReadonlySet<string> = new Set(),
): { jobName: string; known?: ImportJobSummary } {
  for (let attempt = 1; attempt <= MAX_JOB_ATTEMPTS; attempt++) {
    const jobName = attempt === 1 ? planned : `${planned}-a${attempt}`;
    const known = existing.find((j) => j.jobName === jobName);
    if (!known) {
      checkJobName(jobName);
      return { jobName };
    }
    if (known.status !== 'CREATE FAILED' && !passOver.has(jobName)) return { jobName, known };
  }
  throw new RangeError(`import job ${planned} failed ${MAX_JOB_ATTEMPTS} times: look at the failure reasons before trying again`);
}

export interface PlanInput<F extends PlanFile> {
  kind: ExportKind;
  date: string;
  /** This run's revision of the date (names its jobs). */
  revision: number;
  datasetArn: string;
  /** Pending files first (oldest first), then this run's parts. */
  files: readonly F[];
  mode: ImportMode;
  /** Records a job needs at least (1000 for interactions, FACTS §4c; 1 otherwise). */
  minRows: number;
  /** Bytes one job may import: 1 GB INCREMENTAL, 100 GB FULL (FACTS §4c). */
  maxJobBytes: number;
}

/**
 * Packs files, in order, into groups that fit one job's byte limit. A group with fewer rows than
 * the minimum is held. In FULL mode only the first group is imported: a second FULL would replace
 * the first, and INCREMENTAL must wait until the FULL job is ACTIVE, so the rest waits a run.
 */
export function planImports<F extends PlanFile>(input: PlanInput<F>): ImportPlan<F> {
  const groups: F[][] = [];
  let current: F[] = [];
  let currentBytes = 0;
  for (const file of input.files) {
    if (file.rows === 0) continue;
    if (current.length > 0 && currentBytes + file.bytes > input.maxJobBytes) {
      groups.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push(file);
    currentBytes += file.bytes;
  }
  if (current.length > 0) groups.push(current);

  const plan: ImportPlan<F> = { jobs: [], held: [] };
  const sum = (files: readonly F[], field: 'rows' | 'bytes') => files.reduce((n, f) => n + f[field], 0);
  for (const files of groups) {
    const rows = sum(files, 'rows');
    if (rows < input.minRows) {
      plan.held.push({
        files,
        rows,
        reason: `${rows} ${input.kind} records, below the minimum of ${input.minRows} per import job (FACTS §4c): held for the next run`,
      });
    } else if (input.mode === 'FULL' && plan.jobs.length > 0) {
      plan.held.push({ files, rows, reason: 'a FULL import is starting; the rest is imported INCREMENTAL once it is ACTIVE (FACTS §4d)' });
    } else {
      plan.jobs.push({
        jobName: importJobName(input.kind, input.date, input.datasetArn, input.revision, plan.jobs.length + 1),
        importMode: input.mode,
        files,
        rows,
        bytes: sum(files, 'bytes'),
      });
    }
  }
  return plan;
}
