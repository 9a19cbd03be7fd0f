import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/**
 * Hash partitions on local disk: a day's lines are spread over N files by a key (the session for
 * interactions), so each partition can later be deduped and backfilled on its own with memory
 * bounded by the partition, not the day. Writes are buffered per partition and serialized per file.
 */

/** FNV-1a over UTF-16 code units: fast, stable across runs and machines. */
export function partitionOf(key: string, partitions: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % partitions;
}

/** Partitions for a day: about `targetBytes` of gzip archive each, within [min, max]. */
export function partitionCount(archiveBytes: number, options: { targetBytes?: number; min?: number; max?: number } = {}): number {
  const { targetBytes = 4 * 1024 * 1024, min = 4, max = 256 } = options;
  return Math.min(max, Math.max(min, Math.ceil(archiveBytes / targetBytes)));
}

interface Partition {
  path: string;
  handle: FileHandle;
  buffered: string[];
  size: number;
  /** The last write in flight: writes to one file happen one after another. */
  chain: Promise<void>;
  failed?: Error;
}

export class PartitionSpill {
  private constructor(
    private readonly partitions: Partition[],
    private readonly bufferChars: number,
  ) {}

  static async create(dir: string, name: string, count: number, bufferChars = 64 * 1024): Promise<PartitionSpill> {
    const partitions: Partition[] = [];
    try {
      for (let i = 0; i < count; i++) {
        const path = join(dir, `${name}-${String(i).padStart(3, '0')}.spill`);
        partitions.push({ path, handle: await open(path, 'w'), buffered: [], size: 0, chain: Promise.resolve() });
      }
    } catch (error) {
      await Promise.all(partitions.map((p) => p.handle.close()));
      throw error;
    }
    return new PartitionSpill(partitions, bufferChars);
  }

  get paths(): string[] {
    return this.partitions.map((p) => p.path);
  }

  /** Appends one line (no newline in it) to the key's partition; returns a promise only when it flushed. */
  add(key: string, line: string): Promise<void> | undefined {
    const p = this.partitions[partitionOf(key, this.partitions.length)]!;
    p.buffered.push(line);
    p.size += line.length + 1;
    if (p.size < this.bufferChars) return undefined;
    return this.flush(p);
  }

  private flush(p: Partition): Promise<void> {
    if (p.buffered.length === 0) return p.chain;
    const text = `${p.buffered.join('\n')}\n`;
    p.buffered = [];
    p.size = 0;
    p.chain = p.chain.then(async () => {
      if (p.failed) throw p.failed;
      try {
        await p.handle.write(text);
      } catch (error) {
        p.failed = error as Error;
        throw error;
      }
    });
    return p.chain;
  }

  /** Flushes and closes every partition; the files stay for reading. */
  async close(): Promise<string[]> {
    try {
      await Promise.all(this.partitions.map((p) => this.flush(p)));
    } finally {
      await Promise.all(this.partitions.map((p) => p.handle.close().catch(() => undefined)));
    }
    return this.paths;
  }
}

/** The lines of a local file, streamed. */
export function readLocalLines(path: string): AsyncIterable<string> {
  return createInterface({ input: createReadStream(path, { encoding: 'utf8', highWaterMark: 1024 * 1024 }), crlfDelay: Number.POSITIVE_INFINITY });
}
