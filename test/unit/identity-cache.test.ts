import { describe, expect, it } from 'vitest';
import { LinkCache } from '../../shared/identity/cache.js';
import type { IdentityLink } from '../../shared/identity/store.js';

const link = (sessionId: string, userId = `user-of-${sessionId}`): IdentityLink => ({ sessionId, userId, linkedAt: 1, eventId: `e-${sessionId}`, source: 'native' });

function setup(options: Partial<{ positiveTtlMs: number; negativeTtlMs: number; maxEntries: number }> = {}) {
  const clock = { ms: 0 };
  const cache = new LinkCache({ positiveTtlMs: 60_000, negativeTtlMs: 5_000, maxEntries: 100, ...options }, () => clock.ms);
  return { clock, cache };
}

describe('LinkCache', () => {
  it('tells apart "not cached" (undefined), "no link" (null) and a link', () => {
    const { cache } = setup();
    cache.setLink(link('a'));
    cache.setMissing('b');
    expect(cache.get('a')).toEqual(link('a'));
    expect(cache.get('b')).toBeNull();
    expect(cache.get('c')).toBeUndefined();
  });

  it('expires a link after positiveTtlMs and "no link" after negativeTtlMs', () => {
    const { clock, cache } = setup({ positiveTtlMs: 60_000, negativeTtlMs: 5_000 });
    cache.setLink(link('a'));
    cache.setMissing('b');
    clock.ms = 4_999;
    expect(cache.get('b')).toBeNull();
    clock.ms = 5_000;
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toEqual(link('a'));
    clock.ms = 59_999;
    expect(cache.get('a')).toEqual(link('a'));
    clock.ms = 60_000;
    expect(cache.get('a')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('does not cache "no link" when negativeTtlMs is 0', () => {
    const { cache } = setup({ negativeTtlMs: 0 });
    cache.setMissing('b');
    expect(cache.get('b')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('caches nothing when maxEntries is 0', () => {
    const { cache } = setup({ maxEntries: 0 });
    cache.setLink(link('a'));
    expect(cache.size).toBe(0);
  });

  it('holds at most maxEntries, evicting the least recently used', () => {
    const { cache } = setup({ maxEntries: 3 });
    cache.setLink(link('a'));
    cache.setLink(link('b'));
    cache.setMissing('c');
    expect(cache.get('a')).toEqual(link('a')); // a is now the most recent; b the least
    cache.setLink(link('d'));
    expect(cache.size).toBe(3);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toEqual(link('a'));
    expect(cache.get('c')).toBeNull();
    expect(cache.get('d')).toEqual(link('d'));
  });

  it('never grows past its bound however many sessions it sees', () => {
    const { cache } = setup({ maxEntries: 50 });
    for (let i = 0; i < 1_000; i++) {
      if (i % 2) cache.setLink(link(`s${i}`));
      else cache.setMissing(`s${i}`);
      expect(cache.size).toBeLessThanOrEqual(50);
    }
    expect(cache.get('s999')).toEqual(link('s999'));
    expect(cache.get('s949')).toBeUndefined();
  });

  it('overwrites an entry in place, renewing its expiry', () => {
    const { clock, cache } = setup({ negativeTtlMs: 5_000, positiveTtlMs: 60_000 });
    cache.setMissing('a');
    clock.ms = 4_000;
    cache.setLink(link('a', 'u1'));
    clock.ms = 10_000;
    expect(cache.get('a')?.userId).toBe('u1');
    cache.delete('a');
    expect(cache.get('a')).toBeUndefined();
  });
});
