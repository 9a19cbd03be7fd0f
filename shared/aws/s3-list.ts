import { paginateListObjectsV2, type _Object, type S3Client } from '@aws-sdk/client-s3';

/**
 * Every object (and, with a delimiter, every common prefix) under a prefix, through the SDK's
 * paginator: one place that pages S3 listings, for every adapter of the bucket.
 */
export async function listObjects(s3: S3Client, bucket: string, prefix: string, delimiter?: string): Promise<{ objects: _Object[]; prefixes: string[] }> {
  const objects: _Object[] = [];
  const prefixes: string[] = [];
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket, Prefix: prefix, ...(delimiter !== undefined && { Delimiter: delimiter }) })) {
    objects.push(...(page.Contents ?? []));
    for (const p of page.CommonPrefixes ?? []) if (p.Prefix) prefixes.push(p.Prefix);
  }
  return { objects, prefixes };
}
