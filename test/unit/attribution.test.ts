import { describe, expect, it } from 'vitest';
import { addClaim, latestClaim, MAX_CLAIMS_PER_SESSION, userAt } from '../../shared/identity/attribution.js';

const T = 1_700_000_000_000;

describe('userAt: which login an anonymous event belongs to', () => {
  const claims = [
    { userId: 'a', linkedAt: T + 10 },
    { userId: 'b', linkedAt: T + 50 },
  ];
  it('the next login after the event, else the latest before it; none without claims', () => {
    expect(userAt(claims, T)).toBe('a');
    expect(userAt(claims, T + 10)).toBe('a');
    expect(userAt(claims, T + 11)).toBe('b');
    expect(userAt(claims, T + 99)).toBe('b');
    expect(userAt([], T)).toBeUndefined();
  });
});

describe('addClaim', () => {
  it('adds another user, keeps time order, and ignores the same user again after their own claim', () => {
    const one = addClaim([], { userId: 'a', linkedAt: T + 10 })!;
    expect(addClaim(one, { userId: 'a', linkedAt: T + 20 })).toBeUndefined();
    const two = addClaim(one, { userId: 'b', linkedAt: T + 5 })!;
    expect(two.map((c) => c.userId)).toEqual(['b', 'a']);
    expect(latestClaim(two)?.userId).toBe('a');
  });

  it("moves a user's claim earlier when they log in before it with nobody in between", () => {
    const claims = addClaim([{ userId: 'a', linkedAt: T + 10 }], { userId: 'a', linkedAt: T + 2 })!;
    expect(claims).toEqual([{ userId: 'a', linkedAt: T + 2 }]);
  });

  it(`keeps the newest ${MAX_CLAIMS_PER_SESSION} claims`, () => {
    let claims: { userId: string; linkedAt: number }[] = [];
    for (let i = 0; i < 30; i++) claims = addClaim(claims, { userId: `u${i}`, linkedAt: T + i })!;
    expect(claims).toHaveLength(MAX_CLAIMS_PER_SESSION);
    expect(claims[0]!.userId).toBe('u10');
  });
});
