import { parseJsonExact } from '../shared/json.js';
import { segmentBatches } from './collector.js';

/**
 * The cost of exact ids (shared/json.ts): the native parser against parseJsonExact on the same
 * bodies. Segment tracking batches have no 16-digit run and stay on the native path; mParticle
 * batches carry an int64 mpid and take the lossless parser. µs per request body, median of passes.
 * Run: npx tsx bench/json-parse.ts
 */

function mparticleBodies(n: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    const events = Array.from({ length: 20 }, (_, j) =>
      `{"event_type":"custom_event","data":{"event_name":"Product Viewed","event_id":-600000000000000${String(1000 + j)},"session_uuid":"s-${i}","timestamp_unixtime_ms":1764000000000,"custom_attributes":{"product_id":"sku-${j}","price":"12.5"}}}`,
    );
    return `{"mpid":88800000000000${String(10000 + i)},"environment":"production","events":[${events.join(',')}]}`;
  });
}

function perBody(bodies: readonly string[], parse: (text: string) => unknown, passes = 7): number {
  const times: number[] = [];
  for (let p = 0; p < passes; p++) {
    const start = process.hrtime.bigint();
    for (const body of bodies) parse(body);
    times.push(Number(process.hrtime.bigint() - start) / 1000 / bodies.length);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
}

const segment = segmentBatches(1200).map((r) => r.rawBody.toString('utf8'));
const mparticle = mparticleBodies(500);
for (const [name, bodies] of [['Segment batch (100 messages)', segment], ['mParticle batch (20 events, int64 ids)', mparticle]] as const) {
  const native = perBody(bodies, (t) => JSON.parse(t) as unknown);
  const exact = perBody(bodies, parseJsonExact);
  console.log(`${name}: ${bodies.length} bodies, JSON.parse ${native.toFixed(1)} µs, parseJsonExact ${exact.toFixed(1)} µs (${(exact / native).toFixed(2)}x)`);
}
