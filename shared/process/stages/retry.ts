/** A transient failure (a store, the archive, the queue): the whole batch is retried by Lambda. */
export class RetryBatch extends Error {
  override name = 'RetryBatch';
}

/** Runs a stage's I/O; a failure becomes a RetryBatch whose message names what failed. */
export async function orRetry<T>(what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw new RetryBatch(`${what}: ${(error as Error).message}`);
  }
}
