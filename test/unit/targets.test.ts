import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CanonicalMessage } from '../../schemas/canonical.js';
import { dedupeKey } from '../../schemas/canonical.js';
import { loadEventMapping } from '../../shared/event-mapping.js';
import { loadDatasetSchemas } from '../../shared/personalize/dataset-schema.js';
import { loadTargetsFile, parseTargets, routeMessage, TargetsError } from '../../shared/targets.js';

const defaults = { schemas: loadDatasetSchemas(), mapping: loadEventMapping({}) };
const dir = join(import.meta.dirname, '../../schemas/targets');
const view = (extra: Partial<Extract<CanonicalMessage, { kind: 'interaction' }>> = {}): CanonicalMessage => ({
  kind: 'interaction',
  source: 'segment',
  eventId: 'e1',
  sessionId: 's1',
  eventType: 'Product Viewed',
  timestamp: Date.now(),
  ...extra,
});

describe('targets configuration', () => {
  it('loads the example: the default by routes only, the video target with its own schemas and mapping', () => {
    const targets = loadTargetsFile(join(dir, 'example.json'), defaults)!;
    expect(targets.map((t) => t.name)).toEqual(['default', 'video']);
    expect(targets[0]!.schemas).toBe(defaults.schemas);
    expect(targets[1]!.schemas.items.fields.map((f) => f.name)).toContain('GENRES');
    expect(targets[1]!.mapping.events['Video Content Playing']?.eventType).toBe('Watch');
    expect(targets[1]!.trackingId).toBe('local-video-tracker');
  });

  it('names the target and field of a bad declaration', () => {
    const bad = (targets: unknown[]) => () => parseTargets({ targets }, dir, defaults, 'targets.json');
    expect(bad([{ name: 'Video!', routes: [{ all: true }] }])).toThrow(/targets\.0\.name: must be 1-32 of a-z/);
    expect(bad([{ name: 'video', routes: [] }])).toThrow(/targets\.0\.routes/);
    expect(bad([{ name: 'video', routes: [{ all: true }], datasets: { items: 'arn:aws:s3:::bucket' } }])).toThrow(/targets\.0\.datasets\.items: must be a Personalize dataset ARN/);
    expect(bad([{ name: 'a', routes: [{ all: true }] }, { name: 'a', routes: [{ all: true }] }])).toThrow(/target names must be unique/);
    expect(bad([{ name: 'default', trackingId: 't', routes: [{ all: true }] }])).toThrow(/give it routes only/);
    expect(bad([{ name: 'default', bulkMode: 'bootstrap', routes: [{ all: true }] }])).toThrow(/give it routes only/);
    expect(bad([{ name: 'tv', routes: [{ match: { in: 'raw', path: 'context.app.name', equals: ['TV'] } }] }])).toThrow(/targets\.0\.routes\.0/);
    expect(bad([{ name: 'video', bulkMode: 'backfill', routes: [{ all: true }] }])).toThrow(/targets\.0\.bulkMode/);
    expect(parseTargets({ targets: [{ name: 'video', bulkMode: 'bootstrap', routes: [{ all: true }] }] }, dir, defaults)[0]!.bulkMode).toBe('bootstrap');
    expect(bad([{ name: 'video', routes: [{ all: true }], mapping: 'missing.json' }])).toThrow(TargetsError);
    expect(bad([{ name: 'video', routes: [{ all: true }], mapping: 'missing.json' }])).toThrow(/target video mapping missing\.json/);
  });

  it('routes by source, by a value in the message, or everything; a message may go to several targets or none', () => {
    const targets = [
      { name: 'all', routes: [{ all: true as const }] },
      { name: 'feeds', routes: [{ sources: ['feed' as const] }] },
      { name: 'video', routes: [{ match: { path: 'eventType', equals: ['Video Content Playing'] } }, { match: { path: 'properties.catalog', equals: ['video'] } }] },
    ];
    expect(routeMessage(targets, view())).toEqual(['all']);
    expect(routeMessage(targets, view({ eventType: 'Video Content Playing' }))).toEqual(['all', 'video']);
    expect(routeMessage(targets, view({ properties: { catalog: 'video' } }))).toEqual(['all', 'video']);
    expect(routeMessage(targets, { kind: 'item', source: 'feed', eventId: 'i', itemId: 'x', timestamp: Date.now(), properties: {} })).toEqual(['all', 'feeds']);
    expect(routeMessage(targets.slice(1), view())).toEqual([]);
    // A value that is not a scalar never matches.
    expect(routeMessage(targets.slice(2), view({ properties: { catalog: { video: true } } }))).toEqual([]);
  });

  it('keeps a message sent to two targets as two messages, and a re-send to one target as a re-send', () => {
    expect(dedupeKey(view({ target: 'video' }))).not.toBe(dedupeKey(view()));
    expect(dedupeKey(view({ target: 'video' }))).toBe(dedupeKey(view({ target: 'video' })));
    expect(dedupeKey(view())).toBe('interaction\u0000s1\u0000e1');
  });
});
