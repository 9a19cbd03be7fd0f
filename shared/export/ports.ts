import type { Readable } from 'node:stream';
import type { LinkClaim } from '../identity/attribution.js';
import type { StoredObject } from '../storage.js';

/**
 * The export's I/O, behind small interfaces: S3 and Personalize in production
 * (./s3-adapters.ts, ./personalize-jobs.ts), a directory in the benchmark (./fs-adapters.ts).
 */

export type ArchiveObjectInfo = Pick<StoredObject, 'key' | 'bytes'>;

/** Reads the archive: gzip NDJSON objects. */
export interface ArchiveSource {
  list(prefix: string): Promise<ArchiveObjectInfo[]>;
  /** The object's raw (still gzipped) bytes as a stream. */
  open(key: string): Promise<Readable>;
  /** A local file holding the object, when the source is a directory: the engine reads it in place. */
  localPath?(key: string): string | undefined;
}

export interface StoredFile {
  key: string;
  bytes: number;
  /** Data rows (header excluded), from the object's metadata; 0 when unknown. */
  rows: number;
}

/** Where the CSV files, the manifest and the import ledger go (the `imports/` prefix). */
export interface ImportStore {
  /** The `dataLocation` for a key or folder (`s3://bucket/key`). */
  location(key: string): string;
  listFiles(prefix: string): Promise<StoredFile[]>;
  upload(key: string, localPath: string, rows: number): Promise<void>;
  copy(fromKey: string, toKey: string): Promise<void>;
  /** Writes the object to a local file (a published CSV the export compares its rows with). */
  download(key: string, localPath: string): Promise<void>;
  delete(keys: readonly string[]): Promise<void>;
  putJson(key: string, value: unknown): Promise<void>;
  /** undefined when the object does not exist. */
  getJson(key: string): Promise<unknown>;
}

/** Session -> user links (the identity table): the latest login, and every login kept on the session. */
export interface LinkLookup {
  getLinks(sessionIds: readonly string[]): Promise<Map<string, { userId: string; linkedAt?: number; claims?: LinkClaim[] }>>;
}

export type ImportMode = 'FULL' | 'INCREMENTAL';

export interface ImportJobSummary {
  jobName: string;
  jobArn: string;
  /** CREATE PENDING | CREATE IN_PROGRESS | ACTIVE | CREATE FAILED (FACTS §4d). */
  status: string;
  importMode?: string;
}

export interface CreateImportJobRequest {
  jobName: string;
  datasetArn: string;
  dataLocation: string;
  roleArn: string;
  importMode: ImportMode;
}

/** The Personalize control-plane calls the export makes. */
export interface ImportJobs {
  list(datasetArn: string): Promise<ImportJobSummary[]>;
  /** `alreadyExists` when a job of that name exists (a re-run): never a second job for the same data. */
  create(request: CreateImportJobRequest): Promise<{ jobArn: string } | { alreadyExists: true }>;
}
