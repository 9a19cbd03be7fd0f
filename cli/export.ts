import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { BULK_MODES, type BulkMode } from '../shared/bulk-mode.js';
import { ConfigError } from '../shared/config.js';
import { isExportDate, previousUtcDay } from '../shared/util/dates.js';
import { exportDay, ExportInputError, type ExportProgress } from '../shared/export/export-day.js';
import { manifestKey, type ExportManifest } from '../shared/export/manifest.js';
import { EXPORT_KINDS } from '../shared/export/kinds.js';
import { exportRuntimeFromEnv, findExportTarget, undeclaredTarget } from '../shared/export/runtime.js';
import { useLocalStackFile } from './cli-env.js';

/**
 * `npm run export -- --date 2026-11-22 [--mode auto|INCREMENTAL|FULL] [--no-import]`: the nightly
 * export, by hand. Endpoints and names come from the environment, else from the running local
 * stack's .local/stack.json (npm start), so it works against the local stack out of the box.
 */

const USAGE = `usage: npm run export -- [--date YYYY-MM-DD] [--mode auto|INCREMENTAL|FULL] [--no-import]
                         [--anonymous skip|session-as-user] [--work-dir DIR] [--part-max-bytes N]
                         [--memory-limit 512MB] [--threads N] [--bulk-mode complement|bootstrap|bulk-only]
                         [--from YYYY-MM-DD] [--target NAME] [--json]
  --date            the UTC day to export (default: yesterday, UTC)
  --mode            import mode (default EXPORT_IMPORT_MODE or auto: INCREMENTAL once the dataset has an ACTIVE import)
  --no-import       write the CSVs to imports/<kind>/dt=<date>/ and start no import job
  --bulk-mode       what the import is for (default BULK_MODE or complement; docs/bulk-modes.md)
  --from            bootstrap only: the first day of the range whose last day is --date
  --target          a target of TARGETS_FILE (docs/targets.md): its archive, schemas and datasets (default: the default target)
  --json            print the manifest as JSON instead of the summary table`;

class UsageError extends Error {}

function memoryLimit(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+(MB|GB)$/i.test(text)) throw new UsageError(`--memory-limit must be a size such as 512MB or 2GB, got ${JSON.stringify(text)}`);
  return text;
}

function positiveInt(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer, got ${JSON.stringify(text)}`);
  return n;
}

function parseCli(argv: string[]) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        date: { type: 'string' },
        mode: { type: 'string' },
        'no-import': { type: 'boolean', default: false },
        anonymous: { type: 'string' },
        'work-dir': { type: 'string' },
        'part-max-bytes': { type: 'string' },
        'memory-limit': { type: 'string' },
        threads: { type: 'string' },
        'bulk-mode': { type: 'string' },
        from: { type: 'string' },
        target: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const v = parsed.values;
  const date = v.date ?? previousUtcDay(new Date());
  if (!isExportDate(date)) throw new UsageError(`--date must be a UTC day written YYYY-MM-DD, got ${JSON.stringify(date)}`);
  if (v.mode !== undefined && !['auto', 'INCREMENTAL', 'FULL'].includes(v.mode)) throw new UsageError(`--mode must be auto, INCREMENTAL or FULL, got ${JSON.stringify(v.mode)}`);
  if (v['bulk-mode'] !== undefined && !(BULK_MODES as readonly string[]).includes(v['bulk-mode'])) {
    throw new UsageError(`--bulk-mode must be ${BULK_MODES.join(', ')}, got ${JSON.stringify(v['bulk-mode'])}`);
  }
  if (v.from !== undefined && !isExportDate(v.from)) throw new UsageError(`--from must be a UTC day written YYYY-MM-DD, got ${JSON.stringify(v.from)}`);
  if (v.anonymous !== undefined && !['skip', 'session-as-user'].includes(v.anonymous)) {
    throw new UsageError(`--anonymous must be skip or session-as-user, got ${JSON.stringify(v.anonymous)}`);
  }
  return {
    help: v.help,
    json: v.json,
    date,
    mode: v.mode as 'auto' | 'INCREMENTAL' | 'FULL' | undefined,
    bulkMode: v['bulk-mode'] as BulkMode | undefined,
    from: v.from,
    target: v.target,
    import: !v['no-import'],
    anonymous: v.anonymous as 'skip' | 'session-as-user' | undefined,
    workDir: v['work-dir'],
    partMaxBytes: positiveInt('part-max-bytes', v['part-max-bytes']),
    memoryLimit: memoryLimit(v['memory-limit']),
    threads: positiveInt('threads', v.threads),
  };
}

/** Columns padded to their widest cell; numbers right-aligned. */
function table(rows: readonly (readonly (string | number)[])[]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, String(cell).length)));
  return rows
    .map((row) => row.map((cell, i) => (typeof cell === 'number' ? String(cell).padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd())
    .join('\n');
}

function summaryText(manifest: ExportManifest, location: string): string {
  const out: string[] = [`export ${manifest.options.from ? `${manifest.options.from}..` : ''}${manifest.date} (${manifest.options.bulkMode}): manifest ${location}`, ''];
  out.push(
    table([
      ['kind', 'objects', 'read', 'rejected', 'duplicates', 'older versions', 'backfilled', 'streamed', 'anon no link', 'deleted users', 'published before', 'exported', 'revision', 'held (pending)'],
      ...EXPORT_KINDS.map((kind) => {
        const r = manifest.kinds[kind];
        return [kind, r.archive.objects, r.read, r.rejected, r.duplicates, r.superseded, r.backfilled, r.streamed, r.anonymousWithoutLink, r.deletedUserRows, r.alreadyPublished, r.exported, r.revision === undefined ? '-' : `r${r.revision}`, r.held.rows];
      }),
    ]),
  );
  if (manifest.importJobs.length > 0) {
    out.push('', 'import jobs');
    out.push(
      table([
        ['kind', 'job', 'mode', 'status', 'rows', 'ARN or reason'],
        ...manifest.importJobs.map((j) => [j.kind, j.jobName, j.importMode, j.status, j.rows, j.jobArn ?? j.reason ?? '']),
      ]),
    );
  }
  for (const kind of EXPORT_KINDS) {
    const r = manifest.kinds[kind];
    const reasons = Object.entries(r.rejectedByReason).map(([reason, n]) => `${n} x ${reason}`);
    if (reasons.length > 0) out.push('', `${kind} rejected: ${reasons.join('; ')}`);
    if (r.held.rows > 0) out.push('', `${kind} held: ${r.held.rows} rows in ${r.held.files.length} file(s) under imports/${kind}/pending/: ${r.held.reasons.join('; ') || 'from an earlier run'}`);
    for (const note of r.notes) out.push('', `${kind}: ${note} (${r.files.map((f) => f.key).join(', ') || 'no rows'})`);
  }
  if (manifest.readiness) out.push('', manifest.readiness.line);
  return out.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const cli = parseCli(argv);
  if (cli.help) {
    console.log(USAGE);
    return 0;
  }
  await useLocalStackFile(process.env, { optional: true });
  const runtime = exportRuntimeFromEnv(process.env, { warn: (message) => console.error(`warning: ${message}`) });
  const { defaults } = runtime;
  // A target of TARGETS_FILE (docs/targets.md) exports its own day, over targets/<name>/.
  const chosen = findExportTarget(runtime, cli.target);
  if (chosen === undefined) throw new UsageError(`--${undeclaredTarget(runtime, cli.target!)}${process.env.TARGETS_FILE ? ` (${process.env.TARGETS_FILE})` : ' (TARGETS_FILE unset)'}`);
  const { deps } = chosen;

  const bar = new cliProgress.SingleBar(
    {
      format: 'archive |{bar}| {percentage}% | {objects}/{totalObjects} objects | {mb}/{totalMb} MB | {stage}',
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  const mb = (bytes: number) => (bytes / 1_048_576).toFixed(1);
  let objects = 0;
  let bytes = 0;
  let started = false;
  const onProgress = (p: ExportProgress) => {
    if (p.type === 'listed') {
      started = true;
      bar.start(Math.max(p.bytes, 1), 0, { objects: 0, totalObjects: p.objects, mb: '0.0', totalMb: mb(p.bytes), stage: 'reading' });
    } else if (p.type === 'object') {
      objects++;
      bytes += p.bytes;
      bar.update(bytes, { objects, mb: mb(bytes) });
    } else bar.update({ stage: `${p.stage} ${p.kind}` });
  };

  let manifest: ExportManifest;
  try {
    manifest = await exportDay(deps, {
      date: cli.date,
      mode: cli.mode ?? defaults.mode,
      bulkMode: cli.bulkMode ?? chosen.bulkMode ?? defaults.bulkMode,
      ...(cli.from !== undefined && { from: cli.from }),
      import: cli.import,
      anonymous: cli.anonymous ?? defaults.anonymous,
      partMaxBytes: cli.partMaxBytes ?? defaults.partMaxBytes,
      readConcurrency: defaults.readConcurrency,
      ...((cli.workDir ?? defaults.workDir) !== undefined && { workDir: cli.workDir ?? defaults.workDir }),
      engine: { memoryLimit: cli.memoryLimit ?? defaults.engine.memoryLimit, threads: cli.threads ?? defaults.engine.threads },
      onProgress,
    });
  } finally {
    if (started) {
      bar.update({ stage: 'done' });
      bar.stop();
    }
  }
  console.log(cli.json ? JSON.stringify(manifest, null, 2) : summaryText(manifest, deps.store.location(manifestKey(cli.date))));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError) console.error(`${error.message}\n${USAGE}`);
    else if (error instanceof ConfigError || error instanceof ExportInputError) console.error(error.message);
    else console.error(`export failed: ${(error as Error).stack ?? String(error)}`);
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
