import { CONSENT_KEY_PREFIX } from '../identity/store.js';
import { type StoredConsent } from './policy.js';

/**
 * The latest consent per user and per anonymous session, in the identity table beside the links
 * and profiles: one item per key under the partition key `consent#user#<userId>` /
 * `consent#session#<sessionId>`, with no `userId` attribute (so the byUser index and
 * deleteLinksOfUser never see it; isReservedKey keeps sessions of that spelling unlinked).
 */

export { CONSENT_KEY_PREFIX };

export type ConsentKind = 'user' | 'session';

export interface ConsentKey {
  kind: ConsentKind;
  id: string;
}

/** A change to merge into the stored state of a key (per choice, the latest wins: policy.ts mergeStored). */
export interface ConsentUpdate extends ConsentKey {
  consent: StoredConsent;
}

/** What a put changed: the state before (undefined: none) and after. Unchanged keys are not listed. */
export interface ConsentChange {
  key: ConsentKey;
  before: StoredConsent | undefined;
  after: StoredConsent;
}

/** The port the processor, export, redrive and replay use; DynamoConsentStore is the production adapter. */
export interface ConsentStore {
  /** The stored states of these keys, by consentKeyOf; absent keys have none. */
  getConsents(keys: readonly ConsentKey[]): Promise<Map<string, StoredConsent>>;
  /** Merges each update into its key's stored state; an older choice never replaces a newer one. */
  putConsents(updates: readonly ConsentUpdate[]): Promise<ConsentChange[]>;
  /** Removes the user's state and these sessions' (a user's deletion); absent ones are no error. */
  deleteConsentsOf(userId: string, sessionIds: readonly string[]): Promise<void>;
}

/** The map key of getConsents: `user#<id>`, `session#<id>`. */
export const consentKeyOf = (key: ConsentKey): string => `${key.kind}#${key.id}`;

/** The partition key in the identity table: `consent#user#<id>`, `consent#session#<id>`. */
export const consentTableKey = (key: ConsentKey): string => `${CONSENT_KEY_PREFIX}${consentKeyOf(key)}`;
