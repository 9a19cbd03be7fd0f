import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pMap from 'p-map';
import { dedupeKey, type InteractionMessage, type ItemMessage, type UserMessage } from '../../schemas/canonical.js';
import type { DeletedUsers } from '../deletion.js';
import { csvHeader, type DatasetSchema, type DatasetSchemas } from '../personalize/dataset-schema.js';
import { readGzipLines } from './archive-reader.js';
import { CsvPartWriter, type CsvPart } from './csv-parts.js';
import { isExportDate } from './dates.js';
import { IMPORT_LIMITS } from './limits.js';
import {
  countReason,
  emptyKindReport,
  manifestKey,
  REJECTED_SAMPLES_MAX,
  type ExportManifest,
  type KindReport,
} from './manifest.js';
import type { RequestedMode } from './plan.js';
import type { ArchiveObjectInfo, ArchiveSource, ImportJobs, ImportStore, LinkLookup } from './ports.js';
import { publishKind } from './publish.js';
import {
  EXPORT_KINDS,
  interactionRow,
  isNewerVersion,
  itemRow,
  parseArchiveLine,
  partitionKeyOf,
  userRow,
  type ExportKind,
  type RowResult,
} from './rows.js';
import { partitionCount, PartitionSpill, readLocalLines } from './spill.js';
import { userAt, type LinkClaim } from '../identity/attribution.js';

/**
 * The nightly export of one UTC day of archive, streaming end to end:
 *   1. read `archive/<kind>/dt=<date>/` objects (gunzip + line reader, a few at a time), validate
 *      each line, and spill it to one of N hash partitions on local disk, keyed by session
 *      (interactions) or id (items, users): memory holds buffers, never the day;
 *   2. per partition: dedupe by eventId with a Set; interactions look up the partition's anonymous
 *      sessions in the identity table and take the linked userId (backfill), items/users keep the
 *      latest version per id; deleted users are left out; rows go to CSV parts (FACTS §4a–4b);
 *   3. publish the parts and start the import jobs (./publish.ts), then write the manifest.
 */

export interface ExportSettings {
  schemas: DatasetSchemas;
  /** A kind without a dataset ARN is exported to its dt= folder without an import job. */
  datasets: Partial<Record<ExportKind, string>>;
  roleArn?: string;
}

export interface ExportDeps {
  archive: ArchiveSource;
  store: ImportStore;
  links: LinkLookup;
  /** The deletion registry (shared/deletion.ts): asked once per row, by userId. */
  deletedUsers(): Promise<DeletedUsers>;
  /** undefined: import jobs cannot be started (no control-plane client). */
  jobs?: ImportJobs;
  settings: ExportSettings;
}

export type ExportProgress =
  | { type: 'listed'; objects: number; bytes: number }
  | { type: 'object'; kind: ExportKind; key: string; bytes: number }
  | { type: 'stage'; kind: ExportKind; stage: 'reading' | 'writing' | 'publishing' };

export interface ExportOptions {
  /** YYYY-MM-DD, a UTC day. */
  date: string;
  mode?: RequestedMode;
  /** false: write the CSVs only (`--no-import`). */
  import?: boolean;
  anonymous?: 'skip' | 'session-as-user';
  /** Parent of the run's scratch folder; default os.tmpdir(). */
  workDir?: string;
  /** Largest CSV part and INCREMENTAL job; default and maximum 1 GB (FACTS §4c). */
  partMaxBytes?: number;
  /** Hash partitions per kind; default from the archive size (about 4 MB of gzip each). */
  partitions?: number;
  /** Archive objects read at once. */
  readConcurrency?: number;
  /** Sessions per identity lookup round (BatchGetItem takes 100 keys; the store splits further). */
  linkLookupBatch?: number;
  onProgress?: (progress: ExportProgress) => void;
  now?: () => Date;
}

type Anonymous = NonNullable<ExportOptions['anonymous']>;

interface KindContext {
  kind: ExportKind;
  schema: DatasetSchema;
  report: KindReport;
  deleted: DeletedUsers;
  writer: CsvPartWriter;
  anonymous: Anonymous;
}

export class ExportInputError extends Error {
  override name = 'ExportInputError';
}

export async function exportDay(deps: ExportDeps, options: ExportOptions): Promise<ExportManifest> {
  const { date } = options;
  if (!isExportDate(date)) throw new ExportInputError(`date must be a UTC day written YYYY-MM-DD, got ${JSON.stringify(date)}`);
  const now = options.now ?? (() => new Date());
  const mode = options.mode ?? 'auto';
  const doImport = options.import ?? true;
  const anonymous = options.anonymous ?? 'skip';
  const partMaxBytes = options.partMaxBytes ?? IMPORT_LIMITS.incrementalJobBytes;
  if (partMaxBytes > IMPORT_LIMITS.incrementalJobBytes) {
    throw new ExportInputError(`partMaxBytes ${partMaxBytes} is over the ${IMPORT_LIMITS.incrementalJobBytes}-byte INCREMENTAL import limit (FACTS §4c)`);
  }
  const progress = options.onProgress ?? (() => undefined);
  const startedAt = now().toISOString();

  const deleted = await deps.deletedUsers();
  const listings = {} as Record<ExportKind, ArchiveObjectInfo[]>;
  for (const kind of EXPORT_KINDS) listings[kind] = await deps.archive.list(`archive/${kind}/dt=${date}/`);
  const all = EXPORT_KINDS.flatMap((k) => listings[k]);
  progress({ type: 'listed', objects: all.length, bytes: all.reduce((n, o) => n + o.bytes, 0) });

  const kinds = {} as Record<ExportKind, KindReport>;
  const partitions = {} as Record<ExportKind, number>;
  const scratch = await mkdtemp(join(options.workDir ?? tmpdir(), 'pi-export-'));
  try {
    for (const kind of EXPORT_KINDS) {
      const objects = listings[kind];
      const report = emptyKindReport(kind);
      report.archive.objects = objects.length;
      report.archive.bytes = objects.reduce((n, o) => n + o.bytes, 0);
      partitions[kind] = options.partitions ?? partitionCount(report.archive.bytes);
      const schema = deps.settings.schemas[kind];
      const ctx: KindContext = {
        kind,
        schema,
        report,
        deleted,
        anonymous,
        writer: new CsvPartWriter(scratch, `${kind}-${date}`, csvHeader(schema), partMaxBytes),
      };

      progress({ type: 'stage', kind, stage: 'reading' });
      const spill = await PartitionSpill.create(scratch, kind, partitions[kind]);
      let files: string[];
      try {
        await readArchive(deps.archive, objects, spill, ctx, options.readConcurrency ?? 8, progress);
      } finally {
        files = await spill.close();
      }

      progress({ type: 'stage', kind, stage: 'writing' });
      let parts: CsvPart[];
      try {
        for (const file of files) {
          if (kind === 'interactions') await writeInteractions(file, ctx, deps.links, options.linkLookupBatch ?? 1000);
          else await writeLatest(file, ctx);
          await rm(file, { force: true });
        }
      } finally {
        parts = await ctx.writer.close();
      }
      report.exported = parts.reduce((n, p) => n + p.rows, 0);

      progress({ type: 'stage', kind, stage: 'publishing' });
      const datasetArn = deps.settings.datasets[kind];
      const roleArn = deps.settings.roleArn;
      const noImportReason = !doImport
        ? 'import jobs not requested (--no-import): import the dt= folder yourself'
        : !datasetArn
          ? `no ${kind} dataset ARN configured: no import job; import the dt= folder yourself`
          : !roleArn || !deps.jobs
            ? 'PERSONALIZE_IMPORT_ROLE_ARN not configured: no import job; import the dt= folder yourself'
            : undefined;
      await publishKind(
        parts,
        {
          kind,
          date,
          store: deps.store,
          ...(noImportReason === undefined && datasetArn && roleArn && deps.jobs
            ? { importer: { jobs: deps.jobs, datasetArn, roleArn, mode } }
            : { noImportReason: noImportReason ?? 'no import' }),
          incrementalJobBytes: partMaxBytes,
        },
        report,
      );
      kinds[kind] = report;
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }

  const manifest: ExportManifest = {
    date,
    startedAt,
    finishedAt: now().toISOString(),
    options: { mode, import: doImport, anonymous, partMaxBytes, partitions },
    kinds,
    importJobs: EXPORT_KINDS.flatMap((k) => kinds[k].importJobs),
  };
  await deps.store.putJson(manifestKey(date), manifest);
  return manifest;
}

function reject(report: KindReport, reason: string, where?: { key: string; line: number }): void {
  report.rejected++;
  countReason(report.rejectedByReason, reason);
  if (where && report.rejectedSamples.length < REJECTED_SAMPLES_MAX) report.rejectedSamples.push({ ...where, reason });
}

/** Phase 1: archive objects -> validated lines in hash partitions. */
async function readArchive(
  archive: ArchiveSource,
  objects: readonly ArchiveObjectInfo[],
  spill: PartitionSpill,
  ctx: KindContext,
  concurrency: number,
  progress: (p: ExportProgress) => void,
): Promise<void> {
  const { kind, report } = ctx;
  await pMap(
    objects,
    async (object) => {
      let line = 0;
      const result = await readGzipLines(await archive.open(object.key), (text) => {
        line++;
        report.read++;
        const parsed = parseArchiveLine(kind, text);
        if (!parsed.ok) {
          reject(report, parsed.reason, { key: object.key, line });
          return undefined;
        }
        const message = parsed.message;
        const key = partitionKeyOf(message);
        // "A": an anonymous interaction, whose session the backfill looks up. The key is JSON so it holds no tab.
        const flag = message.kind === 'interaction' && message.userId === undefined ? 'A' : 'U';
        return spill.add(key, `${flag}${JSON.stringify(key)}\t${JSON.stringify(message)}`);
      });
      if (result.corrupt !== undefined) {
        report.archive.unreadableObjects.push(object.key);
        reject(report, 'unreadable gzip object (its lines before the damage are kept)', { key: object.key, line: line + 1 });
      }
      progress({ type: 'object', kind, key: object.key, bytes: object.bytes });
    },
    { concurrency },
  );
}

const payloadOf = (line: string) => line.slice(line.indexOf('\t') + 1);

async function writeRow(ctx: KindContext, row: RowResult): Promise<boolean> {
  if (!row.ok) {
    reject(ctx.report, `not exportable: ${row.reason}`);
    return false;
  }
  for (const reason of row.dropped) countReason(ctx.report.propertiesDropped, reason);
  if (!(await ctx.writer.write(row.cells))) {
    reject(ctx.report, 'row larger than the CSV part limit');
    return false;
  }
  return true;
}

/** Every login kept on each session (a link written before claims were kept is its own only claim). */
async function lookupLinks(links: LinkLookup, sessions: readonly string[], batch: number): Promise<Map<string, LinkClaim[]>> {
  const found = new Map<string, LinkClaim[]>();
  for (let i = 0; i < sessions.length; i += batch) {
    for (const [sessionId, link] of await links.getLinks(sessions.slice(i, i + batch))) {
      found.set(sessionId, link.claims && link.claims.length > 0 ? link.claims : [{ userId: link.userId, linkedAt: link.linkedAt ?? 0 }]);
    }
  }
  return found;
}

/** Phase 2 for interactions: one partition, two streaming passes (sessions to look up, then rows). */
async function writeInteractions(file: string, ctx: KindContext, links: LinkLookup, lookupBatch: number): Promise<void> {
  const { report } = ctx;
  const sessions = new Set<string>();
  for await (const line of readLocalLines(file)) {
    if (line.startsWith('A')) sessions.add(JSON.parse(line.slice(1, line.indexOf('\t'))) as string);
  }
  // A link recorded after the exported day still applies: the table is read now, not as of the day.
  const linked = await lookupLinks(links, [...sessions], lookupBatch);
  sessions.clear();

  const seen = new Set<string>();
  for await (const line of readLocalLines(file)) {
    const message = JSON.parse(payloadOf(line)) as InteractionMessage;
    if (seen.has(dedupeKey(message))) {
      report.duplicates++;
      continue;
    }
    seen.add(dedupeKey(message));
    let userId = message.userId;
    let backfilled = false;
    let fromSession = false;
    if (userId === undefined) {
      // The same rule as in real time: the next login after the event on its session, else the latest before.
      userId = userAt(linked.get(message.sessionId) ?? [], message.timestamp);
      backfilled = userId !== undefined;
      if (userId === undefined && ctx.anonymous === 'session-as-user') {
        userId = message.sessionId;
        fromSession = true;
      }
      if (userId === undefined) {
        report.anonymousWithoutLink++;
        continue;
      }
    }
    if (ctx.deleted.isDeleted(userId)) {
      report.deletedUserRows++;
      continue;
    }
    if (!(await writeRow(ctx, interactionRow(ctx.schema, message, userId)))) continue;
    if (backfilled) report.backfilled++;
    if (fromSession) report.sessionAsUser++;
  }
}

/** Phase 2 for items and users: the latest version per id within the partition (ids never span partitions). */
async function writeLatest(file: string, ctx: KindContext): Promise<void> {
  const { report } = ctx;
  const seen = new Set<string>();
  const latest = new Map<string, ItemMessage | UserMessage>();
  for await (const line of readLocalLines(file)) {
    const message = JSON.parse(payloadOf(line)) as ItemMessage | UserMessage;
    if (seen.has(dedupeKey(message))) {
      report.duplicates++;
      continue;
    }
    seen.add(dedupeKey(message));
    const id = partitionKeyOf(message);
    const current = latest.get(id);
    if (current) report.superseded++;
    if (!current || isNewerVersion(message, current)) latest.set(id, message);
  }
  seen.clear();
  for (const message of latest.values()) {
    if (message.kind === 'user') {
      if (ctx.deleted.isDeleted(message.userId)) {
        report.deletedUserRows++;
        continue;
      }
      await writeRow(ctx, userRow(ctx.schema, message));
    } else {
      await writeRow(ctx, itemRow(ctx.schema, message));
    }
  }
}
