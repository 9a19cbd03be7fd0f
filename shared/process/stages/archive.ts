import type { KinesisStreamRecord } from 'aws-lambda';
import pMap from 'p-map';
import { buildArchiveObjects, buildForwardedObjects, type ArchiveObject, type ArchiveStore, type SequenceRange } from '../../archive.js';
import type { Entry } from '../../entry.js';
import type { BatchCounts } from '../report.js';
import { orRetry } from './retry.js';

const ARCHIVE_CONCURRENCY = 4;

/** The batch's sequence range, which names its archive objects (a redelivered batch overwrites its own). */
export function sequenceRangeOf(records: readonly KinesisStreamRecord[], accepted: readonly Entry[]): SequenceRange {
  return {
    shardId: accepted[0]?.ref.shardId ?? records[0]!.eventID.split(':')[0] ?? 'shardId-unknown',
    firstSequenceNumber: records[0]!.kinesis.sequenceNumber,
    lastSequenceNumber: records[records.length - 1]!.kinesis.sequenceNumber,
  };
}

async function putAll(archive: ArchiveStore, objects: readonly ArchiveObject[]): Promise<void> {
  await pMap(objects, (o) => archive.put(o.key, o.body), { concurrency: ARCHIVE_CONCURRENCY });
}

/** Stage 7, archive, before forwarding: the archive is the system of record. */
export async function archiveStage(accepted: readonly Entry[], range: SequenceRange, archive: ArchiveStore): Promise<BatchCounts> {
  const objects = buildArchiveObjects(accepted, range);
  await orRetry('archive', () => putAll(archive, objects));
  return { archivedObjects: objects.length, archivedRecords: objects.reduce((n, o) => n + o.records, 0) };
}

/**
 * Stage 9, the record of what PutEvents accepted, kept so the bulk import leaves it out. Not
 * written: the batch is retried, and Personalize ignores a re-sent eventId in training (FACTS §1b),
 * so nothing doubles.
 */
export async function forwardedRecordStage(delivered: readonly Entry[], range: SequenceRange, archive: ArchiveStore): Promise<BatchCounts> {
  const objects = buildForwardedObjects(delivered, range);
  await orRetry('forwarded record', () => putAll(archive, objects));
  return { forwardedRecordObjects: objects.length };
}
