import { basename } from 'node:path';
import { IMPORT_LIMITS } from './limits.js';
import type { KindReport, ManifestJob } from './manifest.js';
import { chooseImportMode, planImports, resolveJobName, type PlanFile, type RequestedMode } from './plan.js';
import type { ImportJobs, ImportJobSummary, ImportStore } from './ports.js';
import type { ExportKind } from './kinds.js';
import type { CsvPart } from './csv-parts.js';

/**
 * Puts a kind's CSV parts where they belong and starts the import jobs:
 * - no import (not configured, or --no-import): `imports/<kind>/dt=<date>/`, for a manual import;
 * - imported: `imports/<kind>/jobs/<jobName>/`, one CreateDatasetImportJob per folder (FACTS §4d:
 *   a folder imports every CSV in it);
 * - held (below the minimum, waiting for a first FULL import, or the job could not start):
 *   `imports/<kind>/pending/`, which the next run imports together with its own data.
 * A ledger per data date (`imports/<kind>/ledger/<date>.json`) remembers which job imported
 * which file, so re-running a date never imports its rows a second time.
 */

export interface PublishSettings {
  kind: ExportKind;
  date: string;
  store: ImportStore;
  /** undefined: no import (with the reason in `noImportReason`). */
  importer?: { jobs: ImportJobs; datasetArn: string; roleArn: string; mode: RequestedMode };
  noImportReason?: string;
  /** Largest INCREMENTAL job (the part size). */
  incrementalJobBytes: number;
}

interface Candidate extends PlanFile {
  /** Local path of a part written by this run. */
  path?: string;
  /** Key in the pending folder: the file itself (origin pending) or the older copy a re-run replaces. */
  pendingKey?: string;
}

const prefixOf = (kind: ExportKind) => `imports/${kind}/`;
const pendingPrefix = (kind: ExportKind) => `${prefixOf(kind)}pending/`;
const jobPrefix = (kind: ExportKind, jobName: string) => `${prefixOf(kind)}jobs/${jobName}/`;
const ledgerKey = (kind: ExportKind, date: string) => `${prefixOf(kind)}ledger/${date}.json`;
const FILE_NAME = /^(?:interactions|items|users)-(\d{4}-\d{2}-\d{2})-\d{3}\.csv$/;

interface Ledger {
  kind: ExportKind;
  date: string;
  /** jobName -> file names of this date it imported. */
  jobs: Record<string, string[]>;
}

async function readLedger(store: ImportStore, kind: ExportKind, date: string): Promise<Ledger> {
  const value = (await store.getJson(ledgerKey(kind, date))) as Partial<Ledger> | undefined;
  const jobs = value && typeof value.jobs === 'object' && value.jobs !== null ? value.jobs : {};
  return { kind, date, jobs };
}

/** Records that `jobName` imported these files, in the ledger of each file's own date. */
async function recordImported(store: ImportStore, kind: ExportKind, jobName: string, names: readonly string[]): Promise<void> {
  const byDate = new Map<string, string[]>();
  for (const name of names) {
    const date = FILE_NAME.exec(name)?.[1];
    if (date) byDate.set(date, [...(byDate.get(date) ?? []), name]);
  }
  for (const [date, files] of byDate) {
    const ledger = await readLedger(store, kind, date);
    ledger.jobs[jobName] = [...new Set([...(ledger.jobs[jobName] ?? []), ...files])];
    await store.putJson(ledgerKey(kind, date), ledger);
  }
}

export async function publishKind(parts: readonly CsvPart[], settings: PublishSettings, report: KindReport): Promise<void> {
  const { kind, store } = settings;
  if (!settings.importer) {
    await exportOnly(parts, settings, report);
    return;
  }
  const { jobs, datasetArn, roleArn, mode: requested } = settings.importer;

  // This date's files that an earlier run imported into this dataset are not imported again,
  // unless that job failed when it ran (CREATE FAILED): then its data is not in Personalize.
  const existing = await jobs.list(datasetArn);
  const live = new Set(existing.filter((j) => j.status !== 'CREATE FAILED').map((j) => j.jobName));
  const ledger = await readLedger(store, kind, settings.date);
  const importedBy = new Map<string, string>();
  for (const [jobName, names] of Object.entries(ledger.jobs)) {
    if (live.has(jobName)) for (const name of names) importedBy.set(name, jobName);
  }

  const pending = (await store.list(pendingPrefix(kind))).sort((a, b) => (a.key < b.key ? -1 : 1));
  const pendingByName = new Map(pending.map((f) => [basename(f.key), f]));
  const fresh: Candidate[] = [];
  for (const part of parts) {
    const earlier = importedBy.get(part.name);
    if (earlier !== undefined) {
      report.files.push({ key: `${jobPrefix(kind, earlier)}${part.name}`, rows: part.rows, bytes: part.bytes, state: 'already-imported' });
      continue;
    }
    const replaced = pendingByName.get(part.name);
    pendingByName.delete(part.name);
    fresh.push({ name: part.name, bytes: part.bytes, rows: part.rows, origin: 'new', path: part.path, ...(replaced && { pendingKey: replaced.key }) });
  }
  const held: Candidate[] = [...pendingByName.values()].map((f) => ({ name: basename(f.key), bytes: f.bytes, rows: f.rows, origin: 'pending', pendingKey: f.key }));
  const candidates = [...held, ...fresh];

  const holdNew = async (files: readonly Candidate[], reason: string) => {
    for (const f of files) {
      if (f.origin !== 'new' || !f.path) continue;
      const key = `${pendingPrefix(kind)}${f.name}`;
      await store.upload(key, f.path, f.rows);
      report.files.push({ key, rows: f.rows, bytes: f.bytes, state: 'pending' });
    }
    if (files.length > 0 && !report.held.reasons.includes(reason)) report.held.reasons.push(reason);
  };

  const decision = chooseImportMode(requested, existing);
  if ('hold' in decision) {
    await holdNew(candidates, decision.hold);
    await summarizeHeld(settings, report);
    return;
  }

  const plan = planImports({
    kind,
    date: settings.date,
    datasetArn,
    files: candidates,
    mode: decision.mode,
    minRows: kind === 'interactions' ? IMPORT_LIMITS.minInteractionsPerJob : 1,
    maxJobBytes: decision.mode === 'FULL' ? IMPORT_LIMITS.fullJobBytes : settings.incrementalJobBytes,
  });

  for (const planned of plan.jobs) {
    const { jobName, known } = resolveJobName(planned.jobName, existing);
    const job = { ...planned, jobName };
    const folder = jobPrefix(kind, job.jobName);
    const entry: ManifestJob = {
      kind,
      jobName: job.jobName,
      importMode: job.importMode,
      dataLocation: store.location(folder),
      status: 'started',
      rows: job.rows,
      bytes: job.bytes,
      files: job.files.map((f) => `${folder}${f.name}`),
    };
    report.importJobs.push(entry);
    if (known) {
      await adoptExistingJob(job.files, known, entry, settings, report, holdNew);
      continue;
    }

    for (const f of job.files) {
      if (f.path) await store.upload(`${folder}${f.name}`, f.path, f.rows);
      else if (f.pendingKey) await store.copy(f.pendingKey, `${folder}${f.name}`);
    }
    let created: { jobArn: string } | { alreadyExists: true };
    try {
      created = await jobs.create({ jobName: job.jobName, datasetArn, dataLocation: entry.dataLocation, roleArn, importMode: job.importMode });
    } catch (error) {
      // Not started: the job folder is removed and everything waits in pending for the next run.
      entry.status = 'not-started';
      entry.reason = `${(error as Error).name}: ${(error as Error).message}`;
      await store.delete(job.files.map((f) => `${folder}${f.name}`));
      await holdNew(job.files, `import job ${job.jobName} could not start (${entry.reason}); held for the next run`);
      continue;
    }
    if ('jobArn' in created) entry.jobArn = created.jobArn;
    else {
      entry.status = 'already-started';
      const arn = (await jobs.list(datasetArn)).find((j) => j.jobName === job.jobName)?.jobArn;
      if (arn) entry.jobArn = arn;
    }
    await recordImported(store, kind, job.jobName, job.files.map((f) => f.name));
    await store.delete(job.files.flatMap((f) => (f.pendingKey ? [f.pendingKey] : [])));
    for (const f of job.files) if (f.origin === 'new') report.files.push({ key: `${folder}${f.name}`, rows: f.rows, bytes: f.bytes, state: 'imported' });
  }

  for (const group of plan.held) await holdNew(group.files, group.reason);
  await summarizeHeld(settings, report);
}

/**
 * A job of this name already exists: an earlier run of this date started it (maybe crashing before
 * it could clean up). Files in its folder were imported by it; any other file is held.
 */
async function adoptExistingJob(
  files: readonly Candidate[],
  known: ImportJobSummary,
  entry: ManifestJob,
  settings: PublishSettings,
  report: KindReport,
  holdNew: (files: readonly Candidate[], reason: string) => Promise<void>,
): Promise<void> {
  const { kind, store } = settings;
  const folder = jobPrefix(kind, known.jobName);
  entry.status = 'already-started';
  entry.jobArn = known.jobArn;
  const inFolder = new Set((await store.list(folder)).map((f) => basename(f.key)));
  const imported = files.filter((f) => inFolder.has(f.name));
  const others = files.filter((f) => !inFolder.has(f.name));
  entry.files = imported.map((f) => `${folder}${f.name}`);
  entry.rows = imported.reduce((n, f) => n + f.rows, 0);
  entry.bytes = imported.reduce((n, f) => n + f.bytes, 0);
  await recordImported(store, kind, known.jobName, imported.map((f) => f.name));
  await store.delete(imported.flatMap((f) => (f.pendingKey ? [f.pendingKey] : [])));
  for (const f of imported) if (f.origin === 'new') report.files.push({ key: `${folder}${f.name}`, rows: f.rows, bytes: f.bytes, state: 'already-imported' });
  if (others.length > 0) await holdNew(others, `import job ${known.jobName} already exists from an earlier run without these files; held for the next run`);
}

async function summarizeHeld(settings: PublishSettings, report: KindReport): Promise<void> {
  const now = await settings.store.list(pendingPrefix(settings.kind));
  report.held.rows = now.reduce((n, f) => n + f.rows, 0);
  report.held.files = now.map((f) => f.key);
}

async function exportOnly(parts: readonly CsvPart[], settings: PublishSettings, report: KindReport): Promise<void> {
  const { kind, store, date } = settings;
  const folder = `${prefixOf(kind)}dt=${date}/`;
  const keys = new Set<string>();
  for (const part of parts) {
    const key = `${folder}${part.name}`;
    await store.upload(key, part.path, part.rows);
    keys.add(key);
    report.files.push({ key, rows: part.rows, bytes: part.bytes, state: 'exported' });
  }
  // A re-run with fewer parts must not leave an older part behind in the folder.
  const stale = (await store.list(folder)).map((f) => f.key).filter((key) => !keys.has(key));
  await store.delete(stale);
  if (settings.noImportReason) report.notes.push(settings.noImportReason);
  // Files held by earlier runs stay where they are; the manifest still says they wait.
  await summarizeHeld(settings, report);
}
