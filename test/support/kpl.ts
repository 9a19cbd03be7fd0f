import { createRequire } from 'node:module';

// aws-kinesis-agg's typings import the v2 'aws-sdk', which is not installed: load it untyped.
const require = createRequire(import.meta.url);
const agg = require('aws-kinesis-agg') as {
  aggregate: (
    records: { partitionKey: string; data: Buffer }[],
    onEncoded: (encoded: { partitionKey: string; data: Buffer }, done: (err?: Error) => void) => void,
    afterAll: () => void,
    onError: (err: Error) => void,
  ) => void;
};

/** KPL-aggregates user records as a KPL producer would (one aggregated record per ~1 MB). */
export async function kplAggregate(records: { partitionKey: string; data: Buffer }[]): Promise<{ partitionKey: string; data: Buffer }[]> {
  const encoded: { partitionKey: string; data: Buffer }[] = [];
  await new Promise<void>((resolve, reject) => {
    agg.aggregate(
      records,
      (record, done) => {
        encoded.push(record);
        done();
      },
      resolve,
      reject,
    );
  });
  return encoded;
}
