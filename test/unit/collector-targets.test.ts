import { describe, expect, it } from 'vitest';
import { collectorTestSettings } from '../support/collector.js';
import type { CanonicalMessage } from '../../schemas/canonical.js';
import { collect, type CollectorDeps, type CollectorSettings } from '../../shared/collect/collector.js';
import { loadCollectorSecrets } from '../../shared/collect/secrets.js';
import { ConfigError } from '../../shared/config.js';
import { loadEventMapping, parseEventMapping } from '../../shared/event-mapping.js';
import type { PutOutcome, StreamRecord } from '../../shared/stream-producer.js';
import { doorMapping, parseTargets } from '../../shared/targets.js';
import { collectorDepsFromEnv } from '../../shared/collect/runtime.js';
import { join } from 'node:path';
import { loadDatasetSchemas } from '../../shared/personalize/dataset-schema.js';

// Routing at the door (docs/targets.md): by the write key a request carried, named by its id in the
// collector's credentials, and the per-request record limit counted after the fan-out to targets.

const KEYS = { web: 'wk-shop-de-9f2c', app: 'wk-shop-fr-77aa', plain: 'wk-unnamed-0001' };
const ENV = {
  TRACKER_WRITE_KEYS: `${KEYS.web},${KEYS.app},${KEYS.plain}`,
  COLLECTOR_KEY_IDS: JSON.stringify({ [KEYS.web]: 'shop-de', [KEYS.app]: 'shop-fr' }),
};

const defaults = { schemas: loadDatasetSchemas(), mapping: loadEventMapping({}) };
const brandTargets = parseTargets(
  {
    targets: [
      { name: 'default', routes: [{ credentials: ['shop-de'] }] },
      { name: 'fr', trackingId: 'tracker-fr', routes: [{ credentials: ['shop-fr'] }, { match: { path: 'properties.market', equals: ['fr'] } }] },
    ],
  },
  '.',
  defaults,
);

function collector(targets: CollectorSettings['targets'], limits: Partial<CollectorSettings> = {}) {
  const records: CanonicalMessage[] = [];
  const deps: CollectorDeps = {
    stream: {
      put(batch: readonly StreamRecord[]): Promise<PutOutcome> {
        records.push(...batch.map((r) => JSON.parse(Buffer.from(r.data).toString('utf8')) as CanonicalMessage));
        return Promise.resolve({ stored: batch.map((_, i) => i), failed: [], calls: 1 });
      },
    },
    secrets: () => loadCollectorSecrets(ENV),
    settings: collectorTestSettings({ ...(targets && { targets }), ...limits }),
  };
  const post = async (key: string, batch: unknown[]) => {
    const { response } = await collect(
      {
        method: 'POST',
        path: '/v1/batch',
        headers: { authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}` },
        rawBody: Buffer.from(JSON.stringify({ batch })),
        receivedAt: Date.now(),
      },
      deps,
    );
    return response;
  };
  return { post, records };
}

const view = (messageId: string, properties: Record<string, unknown> = {}) => ({
  type: 'track',
  event: 'Product Viewed',
  messageId,
  anonymousId: 'anon-1',
  timestamp: new Date(Date.now() - 60_000).toISOString(),
  properties: { product_id: 'sku-1', ...properties },
});

describe('routing by credential at the collector', () => {
  it('sends each brand key to its own target, by the id the credentials give the key', async () => {
    const { post, records } = collector(brandTargets);
    expect((await post(KEYS.web, [view('de-1')])).body).toMatchObject({ success: true, accepted: 1, filtered: 0 });
    expect((await post(KEYS.app, [view('fr-1')])).body).toMatchObject({ success: true, accepted: 1, filtered: 0 });
    expect(records.map((r) => [r.eventId, 'target' in r ? r.target : 'default'])).toEqual([
      ['de-1', 'default'],
      ['fr-1', 'fr'],
    ]);
  });

  it('combines credential and value routes: a German-key event about the French market goes to both', async () => {
    const { post, records } = collector(brandTargets);
    await post(KEYS.web, [view('both-1', { market: 'fr' })]);
    expect(records.map((r) => ('target' in r ? r.target : 'default'))).toEqual(['default', 'fr']);
  });

  it("routes by a field of the message as the source sent it (Segment's context.app.name), which the canonical message does not keep", async () => {
    const byApp = parseTargets(
      { targets: [{ name: 'default', routes: [{ all: true }] }, { name: 'tv', routes: [{ match: { in: 'sent', path: 'context.app.name', equals: ['Streamly TV'] } }] }] },
      '.',
      defaults,
    );
    const { post, records } = collector(byApp);
    const fromApp = (messageId: string, app: string) => ({ ...view(messageId), context: { app: { name: app, version: '4.2' }, library: { name: 'analytics-kotlin' } } });
    const response = await post(KEYS.plain, [fromApp('app-1', 'Streamly TV'), fromApp('app-2', 'Streamly Phone'), view('web-1')]);
    expect(response.body).toMatchObject({ accepted: 3, filtered: 0 });
    expect(records.map((r) => [r.eventId, 'target' in r ? r.target : 'default'])).toEqual([
      ['app-1', 'default'],
      ['app-1', 'tv'],
      ['app-2', 'default'],
      ['web-1', 'default'],
    ]);
  });

  it('filters, with a count, what a key without an id sends when only credential routes exist', async () => {
    const { post, records } = collector(brandTargets);
    const response = await post(KEYS.plain, [view('nowhere-1')]);
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ accepted: 0, filtered: 1 });
    expect(records).toEqual([]);
  });

  it('counts the per-request record limit after the fan-out: a message that would pass it is rejected whole, with the limit', async () => {
    const both = parseTargets({ targets: [{ name: 'default', routes: [{ all: true }] }, { name: 'copy', routes: [{ all: true }] }] }, '.', defaults);
    const { post, records } = collector(both, { maxRecordsPerRequest: 3 });
    const response = await post(KEYS.web, [view('limit-1'), view('limit-2')]);
    expect(response.status).toBe(207);
    expect(response.body).toMatchObject({ accepted: 1, rejected: [{ index: 1, reason: expect.stringContaining('more than 3 stream records') as unknown }] });
    expect(records.map((r) => r.eventId)).toEqual(['limit-1', 'limit-1']);
  });
});

describe("the doors' mapping with several targets", () => {
  const example = join(import.meta.dirname, '../../schemas/targets/example.json');
  const strictRetail = JSON.stringify({ unmapped: 'reject', events: { 'Product Viewed': { eventType: 'View' } } });

  it("takes a name only another target maps, where the deployment's own mapping rejects unmapped names", async () => {
    const deps = collectorDepsFromEnv({ ...ENV, STREAM_NAME: 'events', TARGETS_FILE: example, EVENT_MAPPING: strictRetail });
    const records: CanonicalMessage[] = [];
    deps.stream = { put: (batch) => Promise.resolve({ stored: batch.map((_, i) => (records.push(JSON.parse(Buffer.from(batch[i]!.data).toString('utf8')) as CanonicalMessage), i)), failed: [], calls: 1 }) };
    const body = { batch: [{ ...view('door-1'), event: 'Video Content Playing', properties: { asset_id: 'film-1' } }, { ...view('door-2'), event: 'Hover' }] };
    const { response } = await collect(
      { method: 'POST', path: '/v1/batch', headers: { authorization: `Basic ${Buffer.from(`${KEYS.web}:`).toString('base64')}` }, rawBody: Buffer.from(JSON.stringify(body)), receivedAt: Date.now() },
      deps,
    );
    // The video target maps the heartbeat, so the door takes it (the retail copy is the processor's to judge);
    // no target maps Hover and both reject unmapped names, so Hover is refused at the door, with the reason.
    expect(response.body).toMatchObject({ accepted: 1, rejected: [{ index: 1, reason: expect.stringContaining('"Hover" has no entry') as unknown }] });
    expect(records.map((r) => [r.eventId, 'target' in r ? r.target : 'default'])).toEqual([
      ['door-1', 'default'],
      ['door-1', 'video'],
    ]);
  });

  it('refuses targets that disagree on splitting a product list, naming both', () => {
    const order = (perProduct: boolean) => parseEventMapping({ events: { 'Order Completed': { eventType: 'Purchase', ...(perProduct && { perProduct, eventValue: 'price' }) } } });
    const targets = [
      { name: 'default', mapping: order(true) },
      { name: 'b2b', mapping: order(false) },
    ];
    expect(() => doorMapping(defaults.mapping, targets)).toThrow(/target b2b mapping entry "Order Completed": one interaction, but target default's says perProduct with value price/);
    expect(doorMapping(defaults.mapping, undefined)).toBe(defaults.mapping);
    expect(doorMapping(defaults.mapping, [targets[0]!, { name: 'copy', mapping: order(true) }]).events['Order Completed']?.perProduct).toBe(true);
  });
});

describe('key ids in the collector credentials', () => {
  it('refuses an id for a key no list holds, naming the id and never the key', async () => {
    const error = await loadCollectorSecrets({ TRACKER_WRITE_KEYS: KEYS.web, COLLECTOR_KEY_IDS: JSON.stringify({ 'wk-typo-secret': 'shop-it' }) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('shop-it');
    expect((error as Error).message).not.toContain('wk-typo-secret');
  });

  it('refuses a malformed id or document without quoting a key', async () => {
    for (const bad of [JSON.stringify({ [KEYS.web]: 'has space' }), '{not json', JSON.stringify([KEYS.web])]) {
      const error = await loadCollectorSecrets({ TRACKER_WRITE_KEYS: KEYS.web, COLLECTOR_KEY_IDS: bad }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toContain('COLLECTOR_KEY_IDS');
      expect((error as Error).message).not.toContain(KEYS.web);
    }
  });

  it('declares credential routes by id; a route with a bad id names the target and field', () => {
    expect(() => parseTargets({ targets: [{ name: 'x', routes: [{ credentials: ['bad id'] }] }] }, '.', defaults, 'targets.json')).toThrow(/targets\.0\.routes\.0/);
  });
});
