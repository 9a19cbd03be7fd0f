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
