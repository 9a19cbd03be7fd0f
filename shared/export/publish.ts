import { basename } from 'node:path';
import { daysFrom } from '../util/dates.js';
import { IMPORT_LIMITS } from '../personalize/import-limits.js';
import type { KindReport, ManifestJob } from './manifest.js';
import { chooseImportMode, parsePartFileName, partBaseName, planImports, resolveJobName, type PlanFile, type RequestedMode } from './plan.js';
import type { ImportJobs, ImportJobSummary, ImportStore, StoredFile } from './ports.js';
import type { ExportKind } from './kinds.js';
import type { CsvPart } from '../util/csv-parts.js';

/**
 * Puts a kind's CSV parts where they belong and starts the import jobs:
 * - no import (not configured, or --no-import): `imports/<kind>/dt=<date>/`, the whole day, for a
 *   manual import;
 * - imported: `imports/<kind>/jobs/<jobName>/`, one CreateDatasetImportJob per folder (FACTS §4d:
 *   a folder imports every CSV in it);
 * - held (below the minimum, waiting for a first FULL import, or the job could not start):
 *   `imports/<kind>/pending/`, which the next run imports together with its own data.
 *
 * Revisions: a ledger per data date (`imports/<kind>/ledger/<date>.json`) remembers which job
 * imported which file of that date. The files of live jobs (not CREATE FAILED) are the day's
 * publication; a re-export writes only the records they do not hold (the engine compares), as the
 * day's next revision: files `<kind>-<date>-r<rev>-<nnn>.csv`, jobs `...-r<rev>-<nn>`. Nothing
 * new: no file, no job. A held file of the date is replaced by the re-export's, same revision.
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
  /**
   * A FULL import of the whole history from `from` to `date` (bootstrap): every record is written
   * (FULL replaces all bulk data), and its files count as published for every day of the range.
   */
  wholeHistory?: { from: string };
}

/** A file of the date that a live job imported. */
export interface PublishedFile {
  /** Its copy in the job folder. */
  key: string;
  name: string;
  jobName: string;
  revision: number;
}

/** What a run of the date starts from: read before the engine runs, carried out by publishKind. */
export interface Publication {
  settings: PublishSettings;
  /** The revision this run's files carry; undefined without import. */
  revision?: number;
  /** Part names are `<baseName>-001.csv`, ... */
  baseName: string;
  /** The records of these files are not written again. */
  published: PublishedFile[];
  /** The dataset's import jobs, as listed before the run. */
  existing: ImportJobSummary[];
  /** The date's held files: this run's parts replace them. */
  pendingOfDate: StoredFile[];
}

interface Candidate extends PlanFile {
  /** Local path of a part written by this run. */
  path?: string;
  /** Key of a file held in the pending folder by an earlier run. */
  pendingKey?: string;
}

const prefixOf = (kind: ExportKind) => `imports/${kind}/`;
const pendingPrefix = (kind: ExportKind) => `${prefixOf(kind)}pending/`;
const jobPrefix = (kind: ExportKind, jobName: string) => `${prefixOf(kind)}jobs/${jobName}/`;
const ledgerKey = (kind: ExportKind, date: string) => `${prefixOf(kind)}ledger/${date}.json`;
/** The date in a job name of this export (importJobName), for a job the ledger missed. */
const JOB_NAME = /^pi-(interactions|items|users)-(\d{4})(\d{2})(\d{2})-[0-9a-f]{8}-/;

interface Ledger {
  kind: ExportKind;
  date: string;
  /** jobName -> file names of this date it imported (the revision is in the name). */
  jobs: Record<string, string[]>;
}

async function readLedger(store: ImportStore, kind: ExportKind, date: string): Promise<Ledger> {
  const value = (await store.getJson(ledgerKey(kind, date))) as Partial<Ledger> | undefined;
  const jobs = value && typeof value.jobs === 'object' && value.jobs !== null ? value.jobs : {};
  return { kind, date, jobs };
}

/**
 * Records that `jobName` imported these files, in the ledger of each file's own date (and of every
 * day a whole-history file covers: its name carries only the last).
 */
async function recordImported(store: ImportStore, kind: ExportKind, jobName: string, names: readonly string[], covers?: { from: string; to: string }): Promise<void> {
  const byDate = new Map<string, string[]>();
  for (const name of names) {
    const date = parsePartFileName(name)?.date;
    if (!date) continue;
    for (const day of covers && date === covers.to ? daysFrom(covers.from, covers.to) : [date]) byDate.set(day, [...(byDate.get(day) ?? []), name]);
  }
  for (const [date, files] of byDate) {
    const ledger = await readLedger(store, kind, date);
    ledger.jobs[jobName] = [...new Set([...(ledger.jobs[jobName] ?? []), ...files])];
    await store.putJson(ledgerKey(kind, date), ledger);
  }
}

const isLive = (job: ImportJobSummary | undefined): job is ImportJobSummary => job !== undefined && job.status !== 'CREATE FAILED';

/**
 * The date's publication and this run's revision: 1 + the highest revision a live job imported,
 * or the revision of the date's held files (they are replaced, so it is reused).
 */
export async function preparePublication(settings: PublishSettings): Promise<Publication> {
  const { kind, date, store } = settings;
  if (!settings.importer) return { settings, baseName: `${kind}-${date}`, published: [], existing: [], pendingOfDate: [] };
  const existing = await settings.importer.jobs.list(settings.importer.datasetArn);
  const byName = new Map(existing.map((j) => [j.jobName, j]));
  const ledger = await readLedger(store, kind, date);

  // A live job of this date the ledger does not name: a run stopped between starting it and the
  // ledger write. Its folder is what it imported.
  const compact = date.replaceAll('-', '');
  for (const job of existing) {
    const m = JOB_NAME.exec(job.jobName);
    if (!isLive(job) || !m || m[1] !== kind || `${m[2]}${m[3]}${m[4]}` !== compact || ledger.jobs[job.jobName]) continue;
    const names = (await store.listFiles(jobPrefix(kind, job.jobName))).map((f) => basename(f.key)).filter((n) => parsePartFileName(n)?.date === date);
    if (names.length === 0) continue;
    await recordImported(store, kind, job.jobName, names);
    ledger.jobs[job.jobName] = names;
  }

  let published: PublishedFile[] = [];
  let highest = 0;
  // In the order recorded: a live FULL job replaced the bulk data before it (FACTS §4d).
  for (const [jobName, names] of Object.entries(ledger.jobs)) {
    const job = byName.get(jobName);
    if (!isLive(job)) continue;
    if (job.importMode === 'FULL') published = [];
    for (const name of names) {
      const parsed = parsePartFileName(name);
      if (!parsed) continue;
      // A whole-history file of a range is named for its last day.
      const revision = parsed.date === date ? parsed.revision : 0;
      highest = Math.max(highest, revision);
      published.push({ key: `${jobPrefix(kind, jobName)}${name}`, name, jobName, revision });
    }
  }
  const pendingOfDate = (await store.listFiles(pendingPrefix(kind))).filter((f) => parsePartFileName(basename(f.key))?.date === date);
  const heldRevision = Math.max(0, ...pendingOfDate.map((f) => parsePartFileName(basename(f.key))!.revision));
  const revision = heldRevision > highest ? heldRevision : highest + 1;
  // A whole-history FULL import writes every record: it replaces what was published.
  if (settings.wholeHistory) published = [];
  return { settings, revision, baseName: partBaseName(kind, date, revision), published, existing, pendingOfDate };
}

export async function publishKind(parts: readonly CsvPart[], publication: Publication, report: KindReport): Promise<void> {
  const { settings } = publication;
  const { kind, store } = settings;
  if (!settings.importer || publication.revision === undefined) {
    await exportOnly(parts, settings, report);
    return;
  }
  const { jobs, datasetArn, roleArn, mode: requested } = settings.importer;
  const { existing, revision } = publication;
  report.revision = revision;

  // The date's held files are superseded by this run's parts (the day recomputed, less what is published).
  const replaced = new Set(publication.pendingOfDate.map((f) => f.key));
  const pending = (await store.listFiles(pendingPrefix(kind))).filter((f) => !replaced.has(f.key)).sort((a, b) => (a.key < b.key ? -1 : 1));
  const held: Candidate[] = pending.map((f) => ({ name: basename(f.key), bytes: f.bytes, rows: f.rows, origin: 'pending', pendingKey: f.key }));
  const fresh: Candidate[] = parts.map((p) => ({ name: p.name, bytes: p.bytes, rows: p.rows, origin: 'new', path: p.path }));
  const candidates = [...held, ...fresh];
  const rewritten = new Set<string>();

  const holdNew = async (files: readonly Candidate[], reason: string) => {
    for (const f of files) {
      if (f.origin !== 'new' || !f.path) continue;
      const key = `${pendingPrefix(kind)}${f.name}`;
      await store.upload(key, f.path, f.rows);
      rewritten.add(key);
      report.files.push({ key, rows: f.rows, bytes: f.bytes, state: 'pending', reason });
    }
    if (files.length > 0 && !report.held.reasons.includes(reason)) report.held.reasons.push(reason);
  };
  const finish = async () => {
    // After the new files are safe: a run stopping before this leaves both, never neither.
    await store.delete([...replaced].filter((key) => !rewritten.has(key)));
    await summarizeHeld(settings, report);
  };

  const decision = chooseImportMode(requested, existing, publication.published.length > 0);
  if ('hold' in decision) {
    await holdNew(candidates, decision.hold);
    await finish();
    return;
  }

  const plan = planImports({
    kind,
    date: settings.date,
    datasetArn,
    revision,
    files: candidates,
    mode: decision.mode,
    minRows: kind === 'interactions' ? IMPORT_LIMITS.minInteractionsPerJob : 1,
    maxJobBytes: decision.mode === 'FULL' ? IMPORT_LIMITS.fullJobBytes : settings.incrementalJobBytes,
  });

  for (const planned of plan.jobs) {
    const resolved = await resolveAgainstFolders(planned.jobName, planned.files, existing, store, kind);
    const job = { ...planned, jobName: resolved.jobName };
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
    const imported = async () => {
      await recordImported(store, kind, job.jobName, job.files.map((f) => f.name), settings.wholeHistory && { from: settings.wholeHistory.from, to: settings.date });
      await store.delete(job.files.flatMap((f) => (f.pendingKey ? [f.pendingKey] : [])));
      for (const f of job.files) {
        if (f.origin === 'new') report.files.push({ key: `${folder}${f.name}`, rows: f.rows, bytes: f.bytes, state: 'imported', jobName: job.jobName });
      }
    };
    if (resolved.known) {
      // This very job was started by an earlier run that stopped before its bookkeeping.
      entry.status = 'already-started';
      entry.jobArn = resolved.known.jobArn;
      await imported();
      continue;
    }

    // A folder left by a run that stopped before CreateDatasetImportJob may hold other files.
    const wanted = new Set(job.files.map((f) => `${folder}${f.name}`));
    await store.delete((await store.listFiles(folder)).map((f) => f.key).filter((key) => !wanted.has(key)));
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
      await store.delete([...wanted]);
      await holdNew(job.files, `import job ${job.jobName} could not start (${entry.reason}); held for the next run`);
      continue;
    }
    if ('jobArn' in created) entry.jobArn = created.jobArn;
    else {
      // Started at the same moment by another run of the same plan, from this folder.
      entry.status = 'already-started';
      const arn = (await jobs.list(datasetArn)).find((j) => j.jobName === job.jobName)?.jobArn;
      if (arn) entry.jobArn = arn;
    }
    await imported();
  }

  for (const group of plan.held) await holdNew(group.files, group.reason);
  await finish();
}

/**
 * The job name for a planned job (resolveJobName), where a live job of that name counts as this
 * job only when its folder holds exactly these files (same names and sizes): an earlier run of the
 * same plan. A live job of the name with other files (e.g. other days' held files) is passed over.
 */
async function resolveAgainstFolders(
  planned: string,
  files: readonly Candidate[],
  existing: readonly ImportJobSummary[],
  store: ImportStore,
  kind: ExportKind,
): Promise<{ jobName: string; known?: ImportJobSummary }> {
  const passed = new Set<string>();
  for (;;) {
    const resolved = resolveJobName(planned, existing, passed);
    if (!resolved.known) return resolved;
    const inFolder = new Map((await store.listFiles(jobPrefix(kind, resolved.jobName))).map((f) => [basename(f.key), f.bytes]));
    if (inFolder.size === files.length && files.every((f) => inFolder.get(f.name) === f.bytes)) return resolved;
    passed.add(resolved.jobName);
  }
}

async function summarizeHeld(settings: PublishSettings, report: KindReport): Promise<void> {
  const now = await settings.store.listFiles(pendingPrefix(settings.kind));
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
  const stale = (await store.listFiles(folder)).map((f) => f.key).filter((key) => !keys.has(key));
  await store.delete(stale);
  if (settings.noImportReason) report.notes.push(settings.noImportReason);
  // Files held by earlier runs stay where they are; the manifest still says they wait.
  await summarizeHeld(settings, report);
}
