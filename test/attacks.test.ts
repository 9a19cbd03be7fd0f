import { describe, expect, it } from 'vitest';
import { dynamoDocumentClient } from '../shared/aws/clients.js';
import { DynamoIdentityStore } from '../shared/aws/dynamo-identity.js';
import { LOCAL_CREDENTIALS } from '../local/stack.js';
import { useEmulators } from './support/env.js';
import { useLocalStack } from './support/stack.js';

/**
 * The attacks of SECURITY.md, each sent as a request through the local stack's doors by someone
 * holding only what a web page shows (the public write key), with the outcome asserted where it
 * lands: the stream's effects at the local Personalize endpoint and in the identity table.
 */

useEmulators();
const stack = useLocalStack('attacks');

const publicKey = { authorization: `Basic ${Buffer.from(`${LOCAL_CREDENTIALS.trackerWriteKey}:`).toString('base64')}` };
const serverKey = { authorization: `Basic ${Buffer.from(`${LOCAL_CREDENTIALS.serverWriteKey}:`).toString('base64')}` };

const at = (secondsAgo: number) => new Date(Date.now() - secondsAgo * 1000).toISOString();
const links = () => new DynamoIdentityStore(dynamoDocumentClient(), stack().names.identityTable);

async function post(path: string, body: unknown, headers: Record<string, string>) {
  const res = await fetch(`${stack().http.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as { rejected?: { reason: string }[]; filtered?: number } };
}

describe('what a public write key cannot do', () => {
  it('cannot delete a user: the request is refused with the door to use, and the victim keeps their links', async () => {
    expect((await post('/v1/identify', { anonymousId: 'victim-anon', userId: 'victim-1', messageId: 'v-id', timestamp: at(600) }, serverKey)).status).toBe(200);
    await stack().poller.idle();
    const attack = await post('/v1/batch', { batch: [{ type: 'delete', userId: 'victim-1', messageId: 'del-attack', timestamp: at(1) }] }, publicKey);
    expect(attack.status).toBe(400);
    expect(attack.body.rejected?.[0]?.reason).toMatch(/may not request deletions/);
    await stack().poller.idle();
    expect((await links().getLinks(['victim-anon'])).get('victim-anon')?.userId).toBe('victim-1');
  });

  it("cannot replace someone's profile: identify traits from a public key send no PutUsers", async () => {
    const res = await post('/v1/identify', { userId: 'victim-2', messageId: 'p-attack', timestamp: at(1), traits: { membershipType: 'banned' } }, publicKey);
    expect(res).toMatchObject({ status: 200, body: { filtered: 1 } });
    await stack().poller.idle();
    expect(stack().personalize!.received('PutUsers')).toEqual([]);
  });

  it("cannot keep a session it linked first: after the victim's login, the session's events are the victim's", async () => {
    // The attacker identifies on an anonymousId it then passes on (a shared ?ajs_aid= link).
    expect((await post('/v1/identify', { anonymousId: 'shared-anon', userId: 'attacker', messageId: 'hijack-id', timestamp: at(300) }, publicKey)).status).toBe(200);
    await stack().poller.idle();
    expect((await post('/v1/identify', { anonymousId: 'shared-anon', userId: 'victim-3', messageId: 'victim-login', timestamp: at(120) }, publicKey)).status).toBe(200);
    await stack().poller.idle();
    const view = { type: 'track', anonymousId: 'shared-anon', event: 'Product Viewed', messageId: 'after-login', timestamp: at(60), properties: { product_id: 'p-1' } };
    expect((await post('/v1/batch', { batch: [view] }, publicKey)).status).toBe(200);
    await stack().poller.idle();
    const event = stack().personalize!.receivedEvents().find((e) => e.eventId === 'after-login');
    expect(event?.userId).toBe('victim-3');
  });

  it('gets 401 for a wrong header key without the body being parsed: even a 250,000-deep array costs no parse', async () => {
    const deep = `${'['.repeat(250_000)}${']'.repeat(250_000)}`;
    const res = await fetch(`${stack().http.url}/v1/batch`, { method: 'POST', headers: { authorization: `Basic ${Buffer.from('stolen:').toString('base64')}` }, body: deep });
    expect(res.status).toBe(401);
    // Without a header, the body's key is found by one bounded scan: still 401, never a parse error.
    const noHeader = await fetch(`${stack().http.url}/v1/batch`, { method: 'POST', body: deep });
    expect(noHeader.status).toBe(401);
  });
});
