import { describe, expect, it } from 'vitest';
import { dynamoDocumentClient } from '../shared/aws/clients.js';
import { segmentSignature } from '../shared/collect/auth.js';
import { DynamoProfileStore } from '../shared/aws/dynamo-profiles.js';
import { LOCAL_CREDENTIALS, type StackSummary } from '../local/stack.js';
import { useEmulators } from './support/env.js';
import { drainDlq, eventTime, useLocalStack } from './support/stack.js';

useEmulators();

/**
 * Partial profile updates end to end, through the Segment webhook door of a local stack (a server
 * credential: it may send profile updates and deletions): identify traits
 * are merged into the stored profile (in the identity table) and PutUsers gets the merged record;
 * an incomplete one is held (no DLQ record), and a deletion removes the profile.
 */

// Segment's "plan" trait is the Users dataset's MEMBERSHIP_TYPE here.
const MAPPING = JSON.stringify({ unmapped: 'passthrough', events: { 'Product Viewed': { eventType: 'View' } }, traits: { plan: 'membershipType' } });
const stack = useLocalStack('profiles', { poller: { batchSize: 100, maxBatchingWindowMs: 50, pollIntervalMs: 50 }, processorEnv: { EVENT_MAPPING: MAPPING } });

const profiles = () => new DynamoProfileStore(dynamoDocumentClient(), stack().names.identityTable);
const recent = () => new Date(eventTime()).toISOString();

async function track(message: Record<string, unknown>): Promise<void> {
  const raw = JSON.stringify({ messageId: `m-${eventTime()}`, timestamp: recent(), ...message });
  const res = await fetch(`${stack().http.url}/v1/webhooks/segment`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-signature': segmentSignature(raw, LOCAL_CREDENTIALS.segmentSharedSecret) },
    body: raw,
  });
  expect({ status: res.status, body: await res.json() }).toMatchObject({ status: 200, body: { accepted: 1, filtered: 0 } });
  await stack().poller.idle();
}

const identify = (userId: string, traits: Record<string, unknown>) => track({ type: 'identify', anonymousId: `anon-${userId}`, userId, traits });
const usersSent = (userId: string) =>
  stack().personalize!.received('PutUsers')
    .flatMap((c) => c.request.users)
    .filter((u) => u.userId === userId)
    .map((u) => JSON.parse(u.properties ?? '{}') as Record<string, unknown>);
const stats = async () => ((await (await fetch(`${stack().http.url}/stats`)).json()) as { summary: StackSummary }).summary;

describe('identify traits are partial updates, merged into the stored profile', () => {
  it('identify {plan} then identify {country} for the same user: PutUsers gets both', async () => {
    await identify('prof-1', { plan: 'gold' });
    expect(usersSent('prof-1')).toEqual([{ membershipType: 'gold' }]);
    await identify('prof-1', { country: 'DE' });
    expect(usersSent('prof-1')).toEqual([{ membershipType: 'gold' }, { membershipType: 'gold', country: 'DE' }]);
    const stored = (await profiles().getProfiles([{ kind: 'user', id: 'prof-1' }])).get('user#prof-1');
    expect(Object.keys(stored?.properties ?? {}).sort()).toEqual(['country', 'membershipType']);
    expect(await drainDlq(stack())).toEqual([]);
  });

  it('holds an identify missing the required MEMBERSHIP_TYPE (no DLQ record, counted in /stats), then sends it once completed', async () => {
    const before = await stats();
    await identify('prof-2', { country: 'FR' });
    expect(usersSent('prof-2')).toEqual([]);
    expect(await drainDlq(stack())).toEqual([]);
    const after = await stats();
    expect(after.profilesHeld - before.profilesHeld).toBe(1);
    expect(after.deadLettered).toBe(before.deadLettered);

    await identify('prof-2', { plan: 'silver' });
    expect(usersSent('prof-2')).toEqual([{ membershipType: 'silver', country: 'FR' }]);
    expect((await stats()).profilesSent - after.profilesSent).toBe(1);
    expect(await drainDlq(stack())).toEqual([]);
  });

  it("a delete message removes the user's profile: a later partial identify is held, not completed from the old one", async () => {
    await identify('prof-3', { plan: 'gold', country: 'DE' });
    expect(usersSent('prof-3')).toEqual([{ membershipType: 'gold', country: 'DE' }]);
    await track({ type: 'delete', userId: 'prof-3' });
    expect((await profiles().getProfiles([{ kind: 'user', id: 'prof-3' }])).size).toBe(0);

    const before = await stats();
    await identify('prof-3', { country: 'IT' });
    expect(usersSent('prof-3')).toHaveLength(1);
    expect((await stats()).profilesHeld - before.profilesHeld).toBe(1);
    expect((await profiles().getProfiles([{ kind: 'user', id: 'prof-3' }])).get('user#prof-3')?.properties).toEqual({ country: { value: 'IT', at: expect.any(Number) as number } });
  });
});
