import { GetCommand, PutCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, it } from 'vitest';
import { dynamoDocumentClient } from '../shared/aws/clients.js';
import { consentFromSignal, type StoredConsent } from '../shared/consent/policy.js';
import { consentTableKey, type ConsentKey } from '../shared/consent/store.js';
import { DynamoConsentStore } from '../shared/aws/dynamo-consent.js';
import { DynamoIdentityStore } from '../shared/aws/dynamo-identity.js';
import { createIdentityTable } from '../local/resources.js';
import { uniqueName, useEmulators } from './support/env.js';

useEmulators();

/** DynamoConsentStore against the DynamoDB emulator, in an identity table as serverless.yml creates it. */

const TABLE = uniqueName('consent');
const T = 1_750_000_000_000;
const at = (signal: Parameters<typeof consentFromSignal>[0], time: number): StoredConsent => consentFromSignal(signal, time);

beforeAll(async () => {
  await createIdentityTable(TABLE);
});

const store = (now?: () => number, ttlDays = 0) => new DynamoConsentStore(dynamoDocumentClient(), TABLE, ttlDays, now);

describe('DynamoConsentStore', () => {
  it('round trip: a user and a session, read back by consentKeyOf', async () => {
    const consent = at({ categories: { Personalization: true, 'Data Sharing': false }, purposes: { personalization: true }, dataSaleOptOut: false }, T);
    const changes = await store().putConsents([{ kind: 'user', id: 'rt-u', consent }, { kind: 'session', id: 'rt-s', consent }]);
    expect(changes).toHaveLength(2);
    expect(changes.every((c) => c.before === undefined)).toBe(true);
    const got = await store().getConsents([{ kind: 'user', id: 'rt-u' }, { kind: 'session', id: 'rt-s' }, { kind: 'user', id: 'rt-none' }]);
    expect(Object.fromEntries(got)).toEqual({ 'user#rt-u': consent, 'session#rt-s': consent });
    // An unchanged state is not written again.
    expect(await store().putConsents([{ kind: 'user', id: 'rt-u', consent }])).toEqual([]);
  });

  it('an older signal never overwrites a newer one; the keys it alone states are added', async () => {
    const newer = at({ categories: { Personalization: false } }, T + 1000);
    await store().putConsents([{ kind: 'user', id: 'old-u', consent: newer }]);
    const changes = await store().putConsents([{ kind: 'user', id: 'old-u', consent: at({ categories: { Personalization: true, Analytics: true } }, T) }]);
    expect(changes).toHaveLength(1);
    expect(changes[0]!.before).toEqual(newer);
    const stored = (await store().getConsents([{ kind: 'user', id: 'old-u' }])).get('user#old-u');
    expect(stored?.categories).toEqual({ Personalization: { value: false, at: T + 1000 }, Analytics: { value: true, at: T } });
  });

  it('concurrent writers (several shards) lose nothing: each key ends at its latest choice', async () => {
    const key: ConsentKey = { kind: 'user', id: 'race-u' };
    // Fewer writers than CONSENT_WRITE_ATTEMPTS: each may lose every race but the last.
    const writers = Array.from({ length: 6 }, (_, i) =>
      store().putConsents([{ ...key, consent: at({ categories: { [`c${i % 4}`]: i % 2 === 0 }, purposes: { [`p${i}`]: true } }, T + i) }]),
    );
    await Promise.all(writers);
    const stored = (await store().getConsents([key])).get('user#race-u')!;
    expect(Object.keys(stored.purposes).sort()).toEqual(Array.from({ length: 6 }, (_, i) => `p${i}`).sort());
    // c0 was last stated at i=4 (true), c1 at 5 (false), c2 at 2 (true), c3 at 3 (false).
    expect(stored.categories).toEqual({
      c0: { value: true, at: T + 4 },
      c1: { value: false, at: T + 5 },
      c2: { value: true, at: T + 2 },
      c3: { value: false, at: T + 3 },
    });
  });

  it('a write that lost a race between its read and its write is merged again, not lost', async () => {
    const key: ConsentKey = { kind: 'session', id: 'lost-s' };
    const real = dynamoDocumentClient();
    let interfered = false;
    let conflicts = 0;
    // Another writer stores a newer denial right after this store read the (empty) state.
    const client = {
      send: async (command: Parameters<DynamoDBDocumentClient['send']>[0]) => {
        if (command instanceof PutCommand && !interfered) {
          interfered = true;
          await store().putConsents([{ ...key, consent: at({ categories: { Analytics: false } }, T + 50) }]);
        }
        try {
          return await real.send(command);
        } catch (error) {
          if ((error as Error).name === 'ConditionalCheckFailedException') conflicts++;
          throw error;
        }
      },
    } as unknown as DynamoDBDocumentClient;
    const changes = await new DynamoConsentStore(client, TABLE).putConsents([{ ...key, consent: at({ categories: { Personalization: true } }, T) }]);
    expect(conflicts).toBe(1);
    expect(changes[0]?.before?.categories).toEqual({ Analytics: { value: false, at: T + 50 } });
    expect((await store().getConsents([key])).get('session#lost-s')?.categories).toEqual({
      Analytics: { value: false, at: T + 50 },
      Personalization: { value: true, at: T },
    });
  });

  it('more than 100 keys in one put and one get', async () => {
    const keys: ConsentKey[] = Array.from({ length: 230 }, (_, i) => ({ kind: i % 2 === 0 ? 'user' : 'session', id: `bulk-${i}` }));
    const changes = await store().putConsents(keys.map((k, i) => ({ ...k, consent: at({ categories: { Personalization: i % 3 !== 0 } }, T + i) })));
    expect(changes).toHaveLength(230);
    const got = await store().getConsents(keys);
    expect(got.size).toBe(230);
    expect(got.get('session#bulk-3')?.categories).toEqual({ Personalization: { value: false, at: T + 3 } });
  });

  it("deleteConsentsOf removes the user's state and the given sessions', nothing else", async () => {
    const consent = at({ categories: { Personalization: true } }, T);
    const identity = new DynamoIdentityStore(dynamoDocumentClient(), TABLE);
    await identity.putLinks([{ sessionId: 'del-s1', userId: 'del-u', linkedAt: T, eventId: 'e1', source: 'segment' }]);
    await store().putConsents([
      { kind: 'user', id: 'del-u', consent },
      { kind: 'session', id: 'del-s1', consent },
      { kind: 'session', id: 'del-s2', consent },
      { kind: 'session', id: 'del-other', consent },
    ]);
    await store().deleteConsentsOf('del-u', ['del-s1', 'del-s2']);
    const keys: ConsentKey[] = ['del-u', 'del-s1', 'del-s2', 'del-other'].map((id) => ({ kind: id === 'del-u' ? 'user' : 'session', id }));
    const left = await store().getConsents(keys);
    expect([...left.keys()]).toEqual(['session#del-other']);
    // The link is the identity store's to remove; the consent items never looked like one.
    expect((await identity.getLinks(['del-s1'])).get('del-s1')?.userId).toBe('del-u');
    expect(await identity.deleteLinksOfUser('del-u')).toHaveLength(1);
  });

  it('a session id spelled like a consent key is never linked (the link would replace the state)', async () => {
    const identity = new DynamoIdentityStore(dynamoDocumentClient(), TABLE);
    const consent = at({ categories: { Personalization: false } }, T);
    await store().putConsents([{ kind: 'user', id: 'spoof-u', consent }]);
    const spoof = consentTableKey({ kind: 'user', id: 'spoof-u' });
    await identity.putLinks([{ sessionId: spoof, userId: 'attacker', linkedAt: T, eventId: 'e', source: 'native' }]);
    expect((await store().getConsents([{ kind: 'user', id: 'spoof-u' }])).get('user#spoof-u')).toEqual(consent);
  });

  it('session states expire after CONSENT session TTL days from their last change; users never do', async () => {
    let now = T;
    const clock = () => now;
    const consent = at({ categories: { Personalization: true } }, T);
    await store(clock, 1).putConsents([{ kind: 'session', id: 'ttl-s', consent }, { kind: 'user', id: 'ttl-u', consent }]);
    const item = await dynamoDocumentClient().send(new GetCommand({ TableName: TABLE, Key: { sessionId: consentTableKey({ kind: 'user', id: 'ttl-u' }) } }));
    expect(item.Item?.expiresAt).toBeUndefined();
    now = T + 2 * 86_400_000;
    expect([...(await store(clock, 1).getConsents([{ kind: 'session', id: 'ttl-s' }, { kind: 'user', id: 'ttl-u' }])).keys()]).toEqual(['user#ttl-u']);
    // Written again over the expired item (its revision still guards the write).
    const later = at({ categories: { Personalization: false } }, now);
    expect(await store(clock, 1).putConsents([{ kind: 'session', id: 'ttl-s', consent: later }])).toEqual([
      { key: { kind: 'session', id: 'ttl-s' }, before: undefined, after: later },
    ]);
  });
});
