import { appendFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ReplayError, type Checkpoint, type CheckpointStore, type RejectionSink, type ReplayRejection } from './replay.js';

/** The replay's local files: the checkpoint (replaced atomically) and the rejection report (NDJSON). */

export class FileCheckpointStore implements CheckpointStore {
  constructor(readonly path: string) {}

  async load(): Promise<Checkpoint | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new ReplayError(`checkpoint ${this.path} is not JSON: delete it to start over`);
    }
    const c = value as Partial<Checkpoint>;
    if (c.version !== 1 || typeof c.from !== 'string' || typeof c.to !== 'string' || !Array.isArray(c.kinds) || typeof c.listedUpTo !== 'number') {
      throw new ReplayError(`checkpoint ${this.path} is not a replay checkpoint: delete it to start over`);
    }
    return value as Checkpoint;
  }

  /** Write a temporary file beside it, then rename over it: a crash leaves the old or the new checkpoint. */
  async save(checkpoint: Checkpoint): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const temporary = `${this.path}.${process.pid}.tmp`;
    await writeFile(temporary, `${JSON.stringify(checkpoint, null, 2)}\n`);
    await rename(temporary, this.path);
  }
}

export class FileRejectionSink implements RejectionSink {
  constructor(readonly path: string) {}

  async write(rejections: readonly ReplayRejection[]): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const at = new Date().toISOString();
    await appendFile(this.path, rejections.map((r) => `${JSON.stringify({ at, ...r })}\n`).join(''));
  }
}
