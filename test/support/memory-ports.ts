import type { PutEventsCommandInput, PutItemsCommandInput, PutUsersCommandInput } from '@aws-sdk/client-personalize-events';
import type { ArchiveStore } from '../../shared/archive.js';
import { mergeStored, sameConsent, type StoredConsent } from '../../shared/consent/policy.js';
import { consentKeyOf, type ConsentChange, type ConsentKey, type ConsentStore, type ConsentUpdate } from '../../shared/consent/store.js';
import type { DeadLetterQueue, DeadLetterRecord } from '../../shared/dlq.js';
import type { IdentityLink, IdentityStore } from '../../shared/identity/store.js';
import type { PersonalizeSender } from '../../shared/personalize/forward.js';
import { profileKeyOf, type Profile, type ProfileKey } from '../../shared/profile/profile.js';
import type { ProfileStore } from '../../shared/profile/store.js';

/**
 * The processor's ports answered in memory, for benchmarks and property-based tests: no SDK
 * command objects, no serialisation, so what is measured or fuzzed is the processor's own work.
 */

export interface CapturedRequests {
  putEvents: PutEventsCommandInput[];
  putItems: PutItemsCommandInput[];
  putUsers: PutUsersCommandInput[];
}

export class MemoryIdentityStore implements IdentityStore {
  readonly links = new Map<string, IdentityLink>();
  getLinks(sessionIds: readonly string[]): Promise<Map<string, IdentityLink>> {
    const found = new Map<string, IdentityLink>();
    for (const id of sessionIds) {
      const link = this.links.get(id);
      if (link) found.set(id, link);
    }
    return Promise.resolve(found);
  }
  putLinks(links: readonly IdentityLink[]): Promise<void> {
    // First link wins, as in the table: the stitcher only writes sessions it found unlinked.
    for (const link of links) if (!this.links.has(link.sessionId)) this.links.set(link.sessionId, link);
    return Promise.resolve();
  }
}

export class MemoryProfileStore implements ProfileStore {
  /** By profileKeyOf. */
  readonly profiles = new Map<string, Profile>();
  reads = 0;
  writes = 0;
  getProfiles(keys: readonly ProfileKey[]): Promise<Map<string, Profile>> {
    this.reads++;
    const found = new Map<string, Profile>();
    for (const key of keys) {
      const profile = this.profiles.get(profileKeyOf(key));
      // A copy, as a read from the table would be: the caller's merge never edits the stored one.
      if (profile) found.set(profileKeyOf(key), structuredClone(profile));
    }
    return Promise.resolve(found);
  }
  putProfiles(profiles: readonly Profile[]): Promise<void> {
    this.writes++;
    for (const profile of profiles) this.profiles.set(profileKeyOf(profile), structuredClone(profile));
    return Promise.resolve();
  }
  deleteProfiles(keys: readonly ProfileKey[]): Promise<void> {
    for (const key of keys) this.profiles.delete(profileKeyOf(key));
    return Promise.resolve();
  }
  get(kind: ProfileKey['kind'], id: string): Profile | undefined {
    return this.profiles.get(profileKeyOf({ kind, id }));
  }
}

/** The consent store in memory: the same merge as DynamoConsentStore (latest choice per key), no races to lose. */
export class MemoryConsentStore implements ConsentStore {
  /** By consentKeyOf. */
  readonly states = new Map<string, StoredConsent>();
  getConsents(keys: readonly ConsentKey[]): Promise<Map<string, StoredConsent>> {
    const found = new Map<string, StoredConsent>();
    for (const key of keys) {
      const state = this.states.get(consentKeyOf(key));
      if (state) found.set(consentKeyOf(key), structuredClone(state));
    }
    return Promise.resolve(found);
  }
  putConsents(updates: readonly ConsentUpdate[]): Promise<ConsentChange[]> {
    const changes = new Map<string, ConsentChange>();
    for (const u of updates) {
      const k = consentKeyOf(u);
      const before = this.states.get(k);
      const after = mergeStored(before, u.consent)!;
      if (sameConsent(before, after)) continue;
      this.states.set(k, structuredClone(after));
      // Several updates of one key: one change, from the state before the first.
      changes.set(k, { key: { kind: u.kind, id: u.id }, before: changes.has(k) ? changes.get(k)!.before : before, after });
    }
    return Promise.resolve([...changes.values()].map((c) => structuredClone(c)));
  }
  deleteConsentsOf(userId: string, sessionIds: readonly string[]): Promise<void> {
    this.states.delete(consentKeyOf({ kind: 'user', id: userId }));
    for (const id of sessionIds) this.states.delete(consentKeyOf({ kind: 'session', id }));
    return Promise.resolve();
  }
}

export class MemoryArchive implements ArchiveStore {
  objects = 0;
  bytes = 0;
  put(_key: string, body: Buffer): Promise<void> {
    this.objects++;
    this.bytes += body.length;
    return Promise.resolve();
  }
}

export class MemoryDlq implements DeadLetterQueue {
  readonly records: DeadLetterRecord[] = [];
  send(records: readonly DeadLetterRecord[]): Promise<DeadLetterRecord[]> {
    this.records.push(...records);
    return Promise.resolve([]);
  }
}

export class MemoryPersonalize implements PersonalizeSender {
  /** Set to keep every request. */
  captured: CapturedRequests | undefined;
  calls = 0;
  putEvents(input: PutEventsCommandInput): Promise<void> {
    this.calls++;
    this.captured?.putEvents.push(input);
    return Promise.resolve();
  }
  putItems(input: PutItemsCommandInput): Promise<void> {
    this.calls++;
    this.captured?.putItems.push(input);
    return Promise.resolve();
  }
  putUsers(input: PutUsersCommandInput): Promise<void> {
    this.calls++;
    this.captured?.putUsers.push(input);
    return Promise.resolve();
  }
}
