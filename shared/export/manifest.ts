import type { ImportMode } from './ports.js';
import type { RequestedMode } from './plan.js';
import type { BulkMode } from '../bulk-mode.js';
import type { ExportKind } from './kinds.js';
import type { ReadinessSummary } from './readiness.js';

/** The run's record, written to `imports/manifests/<date>.json` and returned by the handler and CLI. */

export type FileState = 'imported' | 'pending' | 'exported';

/** A CSV part this run wrote, and what became of it. The rows and bytes are the file's own. */
export interface ManifestFile {
  key: string;
  rows: number;
  bytes: number;
  /**
   * imported: in the folder of import job `jobName`, started by this run (or found started);
   * pending: held in `imports/<kind>/pending/` for `reason`; exported: no import (see notes).
   */
  state: FileState;
  jobName?: string;
  reason?: string;
}

export interface ManifestJob {
  kind: ExportKind;
  jobName: string;
  jobArn?: string;
  importMode: ImportMode;
  dataLocation: string;
  /** started now; already-started by an earlier run (same name); not-started: the files were held, see reason. */
  status: 'started' | 'already-started' | 'not-started';
  rows: number;
  bytes: number;
  files: string[];
  reason?: string;
}

export interface KindReport {
  kind: ExportKind;
  archive: { objects: number; bytes: number; unreadableObjects: string[] };
  /** Non-empty archive lines read. */
  read: number;
  rejected: number;
  rejectedByReason: Record<string, number>;
  /** Where the first rejections are (object key and line number), never the content. */
  rejectedSamples: { key: string; line: number; reason: string }[];
  /** Lines whose eventId was already exported (retried batches, redrive, replay). */
  duplicates: number;
  /** Items/users: older versions of an id replaced by a later one of the day. */
  superseded: number;
  /** Anonymous interactions given a userId from the identity table at export time. */
  backfilled: number;
  /** Records left out because consent for Personalize was missing when the processor saw them, by reason. */
  consentDenied: Record<string, number>;
  /** Valid interactions left out because PutEvents accepted them (complement mode; Personalize holds them). */
  streamed: number;
  /** Anonymous interactions with no link, left out (EXPORT_ANONYMOUS=skip). */
  anonymousWithoutLink: number;
  /** Anonymous interactions with no link, written with the sessionId as USER_ID (EXPORT_ANONYMOUS=session-as-user). */
  sessionAsUser: number;
  deletedUserRows: number;
  /** Properties dropped from rows (unknown to the schema, wrong type, over a limit), by reason. */
  propertiesDropped: Record<string, number>;
  /** CSV rows written by this run: the day's records not already published. */
  exported: number;
  /** The day's records left out because a file imported for the day already holds them (README "Revisions"). */
  alreadyPublished: number;
  /** The day's revision this run's files and jobs carry; undefined without import (the dt= folder holds the whole day). */
  revision?: number;
  files: ManifestFile[];
  /** What waits in `imports/<kind>/pending/` after this run (earlier days' files included). */
  held: { rows: number; files: string[]; reasons: string[] };
  importJobs: ManifestJob[];
  notes: string[];
}

export interface ExportManifest {
  date: string;
  startedAt: string;
  finishedAt: string;
  options: {
    /** What the import is for (shared/bulk-mode.ts). */
    bulkMode: BulkMode;
    /** Bootstrap over a range: its first day (`date` is the last). */
    from?: string;
    mode: RequestedMode;
    import: boolean;
    anonymous: 'skip' | 'session-as-user';
    partMaxBytes: number;
    /** The engine that ran the rules, with its limits. */
    engine: { name: 'duckdb' | 'athena'; memoryLimit?: string; threads?: number };
  };
  kinds: Record<ExportKind, KindReport>;
  importJobs: ManifestJob[];
  /** The readiness report's verdict (./readiness.ts; the report itself is `key`). */
  readiness?: ReadinessSummary;
}

export const REJECTED_SAMPLES_MAX = 20;
/** Distinct rejection reasons kept; more are counted under one "other" reason. */
export const REASONS_MAX = 50;

export function emptyKindReport(kind: ExportKind): KindReport {
  return {
    kind,
    archive: { objects: 0, bytes: 0, unreadableObjects: [] },
    read: 0,
    rejected: 0,
    rejectedByReason: {},
    rejectedSamples: [],
    duplicates: 0,
    superseded: 0,
    backfilled: 0,
    streamed: 0,
    consentDenied: {},
    anonymousWithoutLink: 0,
    sessionAsUser: 0,
    deletedUserRows: 0,
    propertiesDropped: {},
    exported: 0,
    alreadyPublished: 0,
    files: [],
    held: { rows: 0, files: [], reasons: [] },
    importJobs: [],
    notes: [],
  };
}

/** Adds `n` (default one) to a bounded reason table. */
export function countReason(table: Record<string, number>, reason: string, n = 1): void {
  const keys = Object.keys(table);
  const key = Object.hasOwn(table, reason) || keys.length < REASONS_MAX ? reason : 'other reasons';
  table[key] = (table[key] ?? 0) + n;
}

export function manifestKey(date: string): string {
  return `imports/manifests/${date}.json`;
}

const REASON_MAX = 160;
/** The counted, value-free form of a property drop reason: quoted values emptied, clipped. */
export function droppedReason(reason: string): string {
  const text = reason.replace(/"[^"]*"/g, '""');
  return text.length > REASON_MAX ? `${text.slice(0, REASON_MAX - 1)}…` : text;
}

/** One count of the rules' report statement (./sql/rules.ts `report`): metric, reason, number. */
export interface ReportRow {
  metric: string;
  reason: string | null;
  n: number;
}

/** A record larger than a CSV part may be: left out by the runner (engine or Athena finish step). */
export const ROW_TOO_LARGE = 'row larger than the CSV part limit';
export const UNREADABLE_OBJECT = 'unreadable gzip object (its lines before the damage are kept)';

/** What the runner itself found, beside the report statement's counts. */
export interface RunnerCounts {
  parts: readonly { rows: number }[];
  tooLarge: number;
  deletedUserRows: number;
  /** Records a published file of the day already holds (not written again). */
  alreadyPublished?: number;
  unreadableObjects?: readonly string[];
  rejectedSamples?: KindReport['rejectedSamples'];
}

/**
 * The report statement's counts and the runner's own -> the manifest's kind report, the same for
 * every engine. Returns the `rows` count (records before the deletion filter).
 */
export function fillKindReport(report: KindReport, rows: readonly ReportRow[], runner: RunnerCounts): number {
  const total = (metric: string) => rows.filter((r) => r.metric === metric).reduce((n, r) => n + r.n, 0);
  // In a fixed order: engines return the counts unordered, and the reason tables are bounded.
  const ordered = [...rows].sort((a, b) => (a.metric === b.metric ? ((a.reason ?? '') < (b.reason ?? '') ? -1 : 1) : a.metric < b.metric ? -1 : 1));
  for (const r of ordered) {
    if (r.metric === 'rejected') countReason(report.rejectedByReason, r.reason ?? 'rejected', r.n);
    else if (r.metric === 'rowRejected') countReason(report.rejectedByReason, r.reason ?? 'not exportable', r.n);
    else if (r.metric === 'propertiesDropped' && r.reason !== null) countReason(report.propertiesDropped, droppedReason(r.reason), r.n);
    else if (r.metric === 'consentDenied') countReason(report.consentDenied, r.reason ?? 'consent', r.n);
  }
  if (runner.tooLarge > 0) countReason(report.rejectedByReason, ROW_TOO_LARGE, runner.tooLarge);
  const unreadable = runner.unreadableObjects ?? [];
  for (const key of unreadable) {
    report.archive.unreadableObjects.push(key);
    countReason(report.rejectedByReason, UNREADABLE_OBJECT);
  }
  report.read = total('read');
  report.rejected = total('rejected') + total('rowRejected') + runner.tooLarge + unreadable.length;
  if (runner.rejectedSamples) report.rejectedSamples = [...runner.rejectedSamples];
  report.duplicates = total('duplicates');
  report.superseded = total('superseded');
  report.backfilled = total('backfilled');
  report.sessionAsUser = total('sessionAsUser');
  report.streamed = total('streamed');
  report.anonymousWithoutLink = total('anonymousWithoutLink');
  report.deletedUserRows = runner.deletedUserRows;
  report.exported = runner.parts.reduce((n, p) => n + p.rows, 0);
  report.alreadyPublished = runner.alreadyPublished ?? 0;
  return total('rows');
}
