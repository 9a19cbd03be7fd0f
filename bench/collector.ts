import { collect } from '../shared/collect/collector.js';
import type { HttpRequest } from '../shared/collect/http.js';
import { CallLog, FakeKinesis } from './lib/fake-aws.js';
import { entry, gcIfExposed, isMain, median, row, timed, type Measure } from './lib/harness.js';
import { collectorDeps, toHttpRequest } from './lib/pipeline-data.js';
import { generateDay } from './lib/synthetic-day.js';

/**
 * Measurement 4: collector throughput. collect() over 100-message Segment tracking-API batches
 * (`POST /v1/batch`, Basic auth with a write key, checked in constant time), the Segment adapter,
 * canonical validation and the producer's PutRecords planning, with Kinesis answered in memory;
 * next to the floor measured in the same process on the same requests: JSON.parse + JSON.stringify
 * of each request body. CPU seconds, alternating floor and collector passes, medians.
 */

export const MESSAGES_PER_REQUEST = 100;
const SESSIONS = { full: 4_000, quick: 60 } as const;

/** The day's tracker messages, in arrival order, re-cut into requests of 100 (a server-side batcher). */
export function segmentBatches(sessions: number): HttpRequest[] {
  const day = generateDay({ sessions });
  const messages = day.requests.filter((r) => r.path === '/v1/batch' && !r.retry).flatMap((r) => r.body.batch as unknown[]);
  const requests: HttpRequest[] = [];
  for (let i = 0; i + MESSAGES_PER_REQUEST <= messages.length; i += MESSAGES_PER_REQUEST) {
    const at = day.dayStartMs + i;
    requests.push(toHttpRequest({ at, path: '/v1/batch', body: { batch: messages.slice(i, i + MESSAGES_PER_REQUEST) }, messages: MESSAGES_PER_REQUEST, retry: false }));
  }
  return requests;
}

export function floorPass(requests: readonly HttpRequest[]): number {
  let sink = 0;
  for (const request of requests) sink += JSON.stringify(JSON.parse(request.rawBody.toString('utf8'))).length;
  return sink;
}

export async function collectorPass(requests: readonly HttpRequest[]): Promise<{ accepted: number; records: number; calls: number }> {
  const log = new CallLog();
  const kinesis = new FakeKinesis(log, 2);
  const deps = collectorDeps(kinesis);
  let accepted = 0;
  for (const request of requests) {
    const { response, report } = await collect(request, deps);
    if (response.status !== 200) throw new Error(`collector answered ${response.status}: ${JSON.stringify(response.body)}`);
    accepted += report.accepted + report.filtered;
  }
  return { accepted, records: kinesis.shards.reduce((n, s) => n + s.length, 0), calls: log.count('Kinesis.PutRecords') };
}

export const measure: Measure = async ({ quick, repeats }) => {
  const requests = segmentBatches(quick ? SESSIONS.quick : SESSIONS.full);
  const messages = requests.length * MESSAGES_PER_REQUEST;
  const bytes = requests.reduce((n, r) => n + r.rawBody.length, 0);
  const warm = await collectorPass(requests);
  if (warm.accepted !== messages) throw new Error(`collector accepted or filtered ${warm.accepted} of ${messages} messages`);
  floorPass(requests);
  const runs: number[] = [];
  const floorRuns: number[] = [];
  for (let i = 0; i < repeats; i++) {
    gcIfExposed();
    const f = await timed(() => void floorPass(requests));
    floorRuns.push(messages / f.cpu);
    gcIfExposed();
    const c = await timed(async () => void (await collectorPass(requests)));
    runs.push(messages / c.cpu);
  }
  return {
    title: 'Collector throughput (100-message Segment batches, Kinesis answered in memory)',
    params: { requests: requests.length, messages, messagesPerRequest: MESSAGES_PER_REQUEST, meanRequestBytes: Math.round(bytes / requests.length), streamRecords: warm.records, putRecordsCalls: warm.calls, repeats },
    tables: [
      {
        title: `collect() over ${requests.length} POST /v1/batch requests of ${MESSAGES_PER_REQUEST} messages`,
        rows: [
          row({
            name: 'Collector messages / CPU-second (= per core)',
            headline: true,
            figure: median(runs),
            unit: 'messages/s',
            floor: median(floorRuns),
            floorKind: 'floor',
            runs,
            floorRuns,
            note: 'no target set by the issue',
          }),
        ],
      },
    ],
    notes: [
      'Floor: JSON.parse + JSON.stringify of each request body. The collector also authenticates (SHA-256 digests compared in constant time), sanitises the body, converts each Segment message (event mapping, per-product split of orders, content-hash ids where a message has none), validates the canonical message (zod), serialises each record and plans PutRecords within the 500-record / 5 MiB limits.',
      `${warm.records} stream records from ${messages} messages (plain page views are filtered, orders split per product), ${warm.calls} PutRecords calls.`,
    ],
  };
};

if (isMain(import.meta.url)) await entry('collector', 'collector.ts', measure);
