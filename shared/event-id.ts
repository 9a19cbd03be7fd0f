import { createHash } from 'node:crypto';

/**
 * A stable id for a message that came without one: a hash of its content, never a random id, so a
 * retried send is recognised as the same event (DESIGN "Contracts"; FACTS §1b: Personalize ignores
 * repeats of an eventId in training). Keys are sorted so field order does not change the id.
 */
export function contentEventId(message: unknown): string {
  return `h-${createHash('sha256').update(stableJson(message, true)).digest('hex').slice(0, 40)}`;
}

function stableJson(value: unknown, top = false): string {
  if (Array.isArray(value)) return `[${value.map((v) => stableJson(v)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value)
      .filter((key) => !(top && key === 'eventId'))
      .sort()
      .map((key) => `${JSON.stringify(key)}:${stableJson((value as Record<string, unknown>)[key])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
