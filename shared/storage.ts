/**
 * The object store as the product's modules see it: ports only, no SDK. One S3 adapter
 * (shared/aws/s3-bucket.ts) implements all of them for the archive bucket; tests and benchmarks
 * implement the parts they use.
 */

/** One object of a listing. */
export interface StoredObject {
  key: string;
  bytes: number;
  /** Epoch ms. */
  lastModified: number;
}

/** The object asked for does not exist. */
export class ObjectMissingError extends Error {
  override name = 'ObjectMissingError';
}

/**
 * The bucket's control objects as the deletion registry (shared/deletion.ts) and the Personalize
 * deletion outbox and step (shared/personalize-deletion/) use them: list, read, write, delete.
 * S3Bucket implements it; tests may implement it in memory.
 */
export interface ObjectStore {
  /** The `s3://` URI of a key (a Personalize `dataLocation`). */
  location(key: string): string;
  /** Every object under a prefix, in key order (folder markers left out). */
  list(prefix: string): Promise<StoredObject[]>;
  /** The keys and the common prefixes one level under `prefix` (a listing with a delimiter). */
  listLevel(prefix: string, delimiter?: string): Promise<{ keys: string[]; prefixes: string[] }>;
  /** The object's bytes, or undefined when it does not exist. */
  getIfExists(key: string): Promise<Buffer | undefined>;
  /** Writes an object; its content type follows the key's suffix unless `contentType` is given. */
  put(key: string, body: Buffer | string, metadata?: Record<string, string>, contentType?: string): Promise<void>;
  /** Deletes the objects (a missing one is no error). */
  delete(keys: readonly string[]): Promise<void>;
}
