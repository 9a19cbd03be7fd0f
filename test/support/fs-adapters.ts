import { createReadStream } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import type { ArchiveObjectInfo, ArchiveSource, ImportStore, StoredFile } from '../../shared/export/ports.js';

/**
 * The export's archive and imports ports on a local directory laid out like the bucket
 * (`<root>/archive/...`, `<root>/imports/...`): the benchmark measures the export itself, not s3rver.
 */

async function walk(root: string, prefix: string): Promise<ArchiveObjectInfo[]> {
  // The prefix may end inside a name (`dt=2026-11-01/`), so list its folder and filter.
  const base = join(root, prefix.endsWith('/') ? prefix : dirname(prefix));
  const out: ArchiveObjectInfo[] = [];
  let entries;
  try {
    entries = await readdir(base, { recursive: true, withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    const key = relative(root, path).split(sep).join('/');
    if (key.startsWith(prefix)) out.push({ key, bytes: (await stat(path)).size });
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : 1));
}

export class FsArchiveSource implements ArchiveSource {
  constructor(private readonly root: string) {}
  list(prefix: string): Promise<ArchiveObjectInfo[]> {
    return walk(this.root, prefix);
  }
  open(key: string): Promise<Readable> {
    return Promise.resolve(createReadStream(join(this.root, key), { highWaterMark: 256 * 1024 }));
  }
  localPath(key: string): string {
    return join(this.root, key);
  }
}

export class FsImportStore implements ImportStore {
  constructor(private readonly root: string) {}
  location(key: string): string {
    return `file://${join(this.root, key)}`;
  }
  async listFiles(prefix: string): Promise<StoredFile[]> {
    // No object metadata on a plain directory: row counts are unknown (0).
    return (await walk(this.root, prefix)).map((o) => ({ ...o, rows: 0 }));
  }
  async upload(key: string, localPath: string): Promise<void> {
    await mkdir(dirname(join(this.root, key)), { recursive: true });
    await copyFile(localPath, join(this.root, key));
  }
  async copy(fromKey: string, toKey: string): Promise<void> {
    await mkdir(dirname(join(this.root, toKey)), { recursive: true });
    await copyFile(join(this.root, fromKey), join(this.root, toKey));
  }
  async download(key: string, localPath: string): Promise<void> {
    await copyFile(join(this.root, key), localPath);
  }
  async delete(keys: readonly string[]): Promise<void> {
    await Promise.all(keys.map((k) => rm(join(this.root, k), { force: true })));
  }
  async putJson(key: string, value: unknown): Promise<void> {
    await mkdir(dirname(join(this.root, key)), { recursive: true });
    await writeFile(join(this.root, key), `${JSON.stringify(value, null, 2)}\n`);
  }
  async getJson(key: string): Promise<unknown> {
    try {
      return JSON.parse(await readFile(join(this.root, key), 'utf8')) as unknown;
    } catch {
      return undefined;
    }
  }
}
