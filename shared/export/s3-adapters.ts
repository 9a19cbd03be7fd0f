import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  NoSuchKey,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import pMap from 'p-map';
import type { ArchiveObjectInfo, ArchiveSource, ImportStore, StoredFile } from './ports.js';
import { listObjects } from '../aws/s3-list.js';

/** S3 adapters of the export: the archive (read) and the `imports/` prefix (read and write). */

const HEAD_CONCURRENCY = 8;

async function listAll(s3: S3Client, bucket: string, prefix: string): Promise<ArchiveObjectInfo[]> {
  const { objects } = await listObjects(s3, bucket, prefix);
  const out = objects.flatMap((o) => (o.Key !== undefined && !o.Key.endsWith('/') ? [{ key: o.Key, bytes: o.Size ?? 0 }] : []));
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

export class S3ArchiveSource implements ArchiveSource {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {}

  list(prefix: string): Promise<ArchiveObjectInfo[]> {
    return listAll(this.s3, this.bucket, prefix);
  }

  async open(key: string): Promise<Readable> {
    const got = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    if (!got.Body) throw new Error(`s3://${this.bucket}/${key}: GetObject returned no body`);
    // In Node the SDK's body is an http.IncomingMessage, a Readable.
    return got.Body as Readable;
  }
}

export class S3ImportStore implements ImportStore {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {}

  location(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  async list(prefix: string): Promise<StoredFile[]> {
    const objects = await listAll(this.s3, this.bucket, prefix);
    return pMap(
      objects,
      async (o) => {
        const head = await this.s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: o.key }));
        const rows = Number(head.Metadata?.rows ?? '0');
        return { key: o.key, bytes: o.bytes, rows: Number.isSafeInteger(rows) && rows >= 0 ? rows : 0 };
      },
      { concurrency: HEAD_CONCURRENCY },
    );
  }

  async upload(key: string, localPath: string, rows: number): Promise<void> {
    const { size } = await stat(localPath);
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: createReadStream(localPath),
        ContentLength: size,
        ContentType: 'text/csv; charset=utf-8',
        Metadata: { rows: String(rows) },
      }),
    );
  }

  async copy(fromKey: string, toKey: string): Promise<void> {
    const source = `${this.bucket}/${fromKey.split('/').map(encodeURIComponent).join('/')}`;
    // Metadata (the row count) is copied with the object.
    await this.s3.send(new CopyObjectCommand({ Bucket: this.bucket, Key: toKey, CopySource: source }));
  }

  async download(key: string, localPath: string): Promise<void> {
    const got = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    if (!got.Body) throw new Error(`s3://${this.bucket}/${key}: GetObject returned no body`);
    await pipeline(got.Body as Readable, createWriteStream(localPath));
  }

  async delete(keys: readonly string[]): Promise<void> {
    // One DeleteObject per key: few keys per run, and no Content-MD5 dance of DeleteObjects.
    await pMap(keys, (key) => this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })), { concurrency: HEAD_CONCURRENCY });
  }

  async putJson(key: string, value: unknown): Promise<void> {
    await this.s3.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: `${JSON.stringify(value, null, 2)}\n`, ContentType: 'application/json' }),
    );
  }

  async getJson(key: string): Promise<unknown> {
    try {
      const got = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return JSON.parse((await got.Body?.transformToString('utf8')) ?? 'null') as unknown;
    } catch (error) {
      if (error instanceof NoSuchKey || (error as Error).name === 'NoSuchKey') return undefined;
      throw error;
    }
  }
}
