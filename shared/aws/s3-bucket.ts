import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CopyObjectCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import pMap from 'p-map';
import { ObjectMissingError, type StoredObject } from '../storage.js';
import { listObjects } from './s3-list.js';

const HEAD_CONCURRENCY = 8;

const CONTENT_TYPES: [suffix: string, type: string][] = [
  ['.gz', 'application/gzip'],
  ['.json', 'application/json'],
  ['.csv', 'text/csv; charset=utf-8'],
  ['.txt', 'text/plain; charset=utf-8'],
];

function contentTypeOf(key: string): string {
  return CONTENT_TYPES.find(([suffix]) => key.endsWith(suffix))?.[1] ?? 'application/octet-stream';
}

function isMissing(error: unknown): boolean {
  return error instanceof Error && (error.name === 'NoSuchKey' || error.name === 'NotFound');
}

/**
 * The one S3 adapter of the archive bucket: the archive (written by the processor, read by the
 * export, replay and redrive), dead-letter payloads, the `imports/` prefix and the control objects.
 * Every port of the bucket (ArchiveStore, ArchiveSource, ImportStore, PayloadStore, ArchiveReader,
 * ObjectStore) is a subset of this class. `root` scopes it to a folder (a target's `targets/<name>/`,
 * docs/targets.md): keys are relative to it both ways, so the export and replay run unchanged.
 */
export class S3Bucket {
  constructor(
    private readonly s3: S3Client,
    readonly bucket: string,
    private readonly root = '',
  ) {}

  private at(key: string): string {
    return `${this.root}${key}`;
  }

  private relative(key: string): string {
    return key.slice(this.root.length);
  }

  /** The `s3://` URI of a key or folder (a Personalize `dataLocation`). */
  location(key: string): string {
    return `s3://${this.bucket}/${this.at(key)}`;
  }

  /** Every object under a prefix, in key order (folder markers left out). */
  async list(prefix: string): Promise<StoredObject[]> {
    const { objects } = await listObjects(this.s3, this.bucket, this.at(prefix));
    const out = objects.flatMap((o) =>
      o.Key !== undefined && !o.Key.endsWith('/') ? [{ key: this.relative(o.Key), bytes: o.Size ?? 0, lastModified: o.LastModified?.getTime() ?? 0 }] : [],
    );
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** The keys and the common prefixes one level under `prefix` (a listing with a delimiter). */
  async listLevel(prefix: string, delimiter = '/'): Promise<{ keys: string[]; prefixes: string[] }> {
    const { objects, prefixes } = await listObjects(this.s3, this.bucket, this.at(prefix), delimiter);
    return { keys: objects.flatMap((o) => (o.Key === undefined ? [] : [this.relative(o.Key)])), prefixes: prefixes.map((p) => this.relative(p)) };
  }

  /** Every object under a prefix with its `rows` metadata (the CSV files of the imports). */
  async listFiles(prefix: string): Promise<(StoredObject & { rows: number })[]> {
    return pMap(
      await this.list(prefix),
      async (o) => {
        const head = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.at(o.key) }));
        const rows = Number(head.Metadata?.rows ?? '0');
        return { ...o, rows: Number.isSafeInteger(rows) && rows >= 0 ? rows : 0 };
      },
      { concurrency: HEAD_CONCURRENCY },
    );
  }

  /** The object's bytes; ObjectMissingError when it does not exist. */
  async get(key: string): Promise<Buffer> {
    const bytes = await this.getIfExists(key);
    if (bytes === undefined) throw new ObjectMissingError(`${this.location(key)} does not exist`);
    return bytes;
  }

  /** The object's bytes, or undefined when it does not exist. */
  async getIfExists(key: string): Promise<Buffer | undefined> {
    try {
      const got = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.at(key) }));
      if (!got.Body) throw new Error(`${this.location(key)}: GetObject returned no body`);
      return Buffer.from(await got.Body.transformToByteArray());
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  /** The object's raw bytes as a stream. */
  async open(key: string): Promise<Readable> {
    const got = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.at(key) }));
    if (!got.Body) throw new Error(`${this.location(key)}: GetObject returned no body`);
    // In Node the SDK's body is an http.IncomingMessage, a Readable.
    return got.Body as Readable;
  }

  /** Writes the object to a local file. */
  async download(key: string, localPath: string): Promise<void> {
    await pipeline(await this.open(key), createWriteStream(localPath));
  }

  /** Writes an object; its content type follows the key's suffix unless `contentType` is given. */
  async put(key: string, body: Buffer | string, metadata?: Record<string, string>, contentType?: string): Promise<void> {
    await this.s3.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: this.at(key), Body: body, ContentType: contentType ?? contentTypeOf(key), ...(metadata && { Metadata: metadata }) }),
    );
  }

  /** Uploads a local file, its data-row count kept as the `rows` metadata. */
  async upload(key: string, localPath: string, rows: number): Promise<void> {
    const { size } = await stat(localPath);
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.at(key),
        Body: createReadStream(localPath),
        ContentLength: size,
        ContentType: contentTypeOf(key),
        Metadata: { rows: String(rows) },
      }),
    );
  }

  async copy(fromKey: string, toKey: string): Promise<void> {
    const source = `${this.bucket}/${this.at(fromKey).split('/').map(encodeURIComponent).join('/')}`;
    // Metadata (the row count) is copied with the object.
    await this.s3.send(new CopyObjectCommand({ Bucket: this.bucket, Key: this.at(toKey), CopySource: source }));
  }

  async delete(keys: readonly string[]): Promise<void> {
    // One DeleteObject per key: few keys per call, and no Content-MD5 dance of DeleteObjects.
    await pMap(keys, (key) => this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.at(key) })), { concurrency: HEAD_CONCURRENCY });
  }

  async putJson(key: string, value: unknown): Promise<void> {
    await this.put(key, `${JSON.stringify(value, null, 2)}\n`);
  }

  /** undefined when the object does not exist. */
  async getJson(key: string): Promise<unknown> {
    const bytes = await this.getIfExists(key);
    return bytes === undefined ? undefined : (JSON.parse(bytes.toString('utf8')) as unknown);
  }
}
