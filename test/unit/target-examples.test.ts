import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkPropertyRenames, parseEventMapping } from '../../shared/event-mapping.js';
import { parseDatasetSchema } from '../../shared/personalize/dataset-schema.js';

/** The VIDEO_ON_DEMAND example target (schemas/targets/video, docs/targets.md) is valid as shipped. */

const dir = join(import.meta.dirname, '../../schemas/targets/video');
const read = (name: string): unknown => JSON.parse(readFileSync(join(dir, name), 'utf8'));

describe('the VIDEO_ON_DEMAND example target', () => {
  const schemas = {
    interactions: parseDatasetSchema(read('interactions.json'), 'Interactions'),
    items: parseDatasetSchema(read('items.json'), 'Items'),
    users: parseDatasetSchema(read('users.json'), 'Users'),
  };

  it('has the fields the domain requires (docs/FACTS.md §11)', () => {
    const names = (s: { fields: readonly { name: string }[] }) => s.fields.map((f) => f.name);
    expect(names(schemas.interactions)).toEqual(expect.arrayContaining(['USER_ID', 'ITEM_ID', 'TIMESTAMP', 'EVENT_TYPE']));
    expect(names(schemas.items)).toEqual(expect.arrayContaining(['ITEM_ID', 'GENRES', 'CREATION_TIMESTAMP']));
    expect(names(schemas.users)).toEqual(expect.arrayContaining(['USER_ID', 'SUBSCRIPTION_MODEL']));
  });

  it('maps Segment Video spec events to Watch and Click only, and its renames name schema fields', () => {
    const mapping = parseEventMapping(read('event-mapping.json'), 'schemas/targets/video/event-mapping.json');
    expect(new Set(Object.values(mapping.events).map((e) => e.eventType))).toEqual(new Set(['Watch', 'Click']));
    expect(mapping.events['Video Content Playing']?.eventType).toBe('Watch');
    expect(mapping.events['Video Playback Completed']?.eventType).toBe('Watch');
    expect(() => checkPropertyRenames(mapping, schemas, 'video mapping')).not.toThrow();
  });
});
