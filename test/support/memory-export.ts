import { readFile, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import type { ArchiveObjectInfo, ArchiveSource, ImportStore, LinkLookup, StoredFile } from '../../shared/export/ports.js';
import type { LinkClaim } from '../../shared/identity/attribution.js';

/** In-memory export adapters (no emulators): objects as bytes, so parquet and gzip survive. */

export class MemoryArchive implements ArchiveSource {
  readonly objects = new Map<string, Buffer>();
  put(key: string, body: Buffer): void {
    this.objects.set(key, body);
  }
  list(prefix: string): Promise<ArchiveObjectInfo[]> {
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    return Promise.resolve(keys.map((key) => ({ key, bytes: this.objects.get(key)!.length })));
  }
  open(key: string): Promise<Readable> {
    const body = this.objects.get(key);
    if (!body) return Promise.reject(new Error(`no object ${key}`));
    return Promise.resolve(Readable.from([body]));
  }
}

export class MemoryStore implements ImportStore {
  readonly files = new Map<string, { body: Buffer; rows: number }>();
  readonly json = new Map<string, unknown>();
  location(key: string): string {
    return `s3://memory/${key}`;
  }
  listFiles(prefix: string): Promise<StoredFile[]> {
    const keys = [...this.files.keys()].filter((k) => k.startsWith(prefix)).sort();
    return Promise.resolve(keys.map((key) => ({ key, bytes: this.files.get(key)!.body.length, rows: this.files.get(key)!.rows })));
  }
  async upload(key: string, localPath: string, rows: number): Promise<void> {
    this.files.set(key, { body: await readFile(localPath), rows });
  }
  copy(from: string, to: string): Promise<void> {
    this.files.set(to, this.files.get(from)!);
    return Promise.resolve();
  }
  async download(key: string, localPath: string): Promise<void> {
    const file = this.files.get(key);
    if (!file) throw new Error(`no object ${key}`);
    await writeFile(localPath, file.body);
  }
  delete(keys: readonly string[]): Promise<void> {
    for (const k of keys) this.files.delete(k);
    return Promise.resolve();
  }
  putJson(key: string, value: unknown): Promise<void> {
    this.json.set(key, JSON.parse(JSON.stringify(value)) as unknown);
    return Promise.resolve();
  }
  getJson(key: string): Promise<unknown> {
    return Promise.resolve(this.json.get(key));
  }
  /** The CSV files written, by key, as text. */
  csvs(): Map<string, string> {
    return new Map([...this.files].filter(([k]) => k.endsWith('.csv')).map(([k, f]) => [k, f.body.toString('utf8')]));
  }
}

/** Session links: every claim kept, as the identity table's claims list. */
export class MemoryLinks implements LinkLookup {
  readonly claims = new Map<string, LinkClaim[]>();
  add(sessionId: string, userId: string, linkedAt: number): this {
    this.claims.set(sessionId, [...(this.claims.get(sessionId) ?? []), { userId, linkedAt }]);
    return this;
  }
  getLinks(sessionIds: readonly string[]): Promise<Map<string, { userId: string; linkedAt?: number; claims?: LinkClaim[] }>> {
    const out = new Map<string, { userId: string; linkedAt?: number; claims?: LinkClaim[] }>();
    for (const id of sessionIds) {
      const claims = this.claims.get(id);
      if (claims && claims.length > 0) out.set(id, { userId: claims.at(-1)!.userId, linkedAt: claims.at(-1)!.linkedAt, claims });
    }
    return Promise.resolve(out);
  }
}

/** A gzip NDJSON object of archive lines (a `stream` reference added as the processor does). */
export function ndjsonGz(lines: readonly (object | string)[]): Buffer {
  const text = lines.map((l, i) => (typeof l === 'string' ? l : JSON.stringify({ ...l, stream: { shardId: 'shardId-000000000000', sequenceNumber: String(i + 1), arrivedAt: 1 } })));
  return gzipSync(`${text.join('\n')}\n`);
}
