import { hash } from 'node:crypto';
import type { Event as PersonalizeEvent } from '@aws-sdk/client-personalize-events';
import type { CanonicalMessage, InteractionMessage } from '../../schemas/canonical.js';
import { mapEvent, type EventMapping } from '../event-mapping.js';
import type { FieldError } from '../field-errors.js';
import type { DatasetSchemas } from './dataset-schema.js';
import type { ProfileScalar } from '../profile/profile.js';
import { buildEvent, shapeProfileUpdate, type Built } from './requests.js';

/**
 * What the processor makes of one valid message before Personalize: the event mapping, then the
 * request's shape against the dataset schemas. The processor's stages and the redrive's recheck
 * both use these, so a record redriven is judged exactly as the processor will judge it.
 */

export interface MessageChecks {
  mapping: EventMapping;
  schemas: DatasetSchemas;
}

export type Mapped<M> = { ok: true; message: M } | { ok: false; reason: string; errors: FieldError[] };

/**
 * The eventId every event of one heartbeat window shares (`oncePerSeconds`): a hash of the type,
 * session, item and window, so any processor, batch or replay derives the same id.
 */
export function windowEventId(m: InteractionMessage, eventType: string, seconds: number): string {
  const window = Math.floor(m.timestamp / (seconds * 1000));
  return `w-${hash('sha256', JSON.stringify([eventType, m.sessionId, m.itemId ?? '', seconds, window]))}`;
}

/** Source event name to Personalize event type (and value); the message is copied only when the mapping changes it. */
export function mapInteraction(mapping: EventMapping, m: InteractionMessage): Mapped<InteractionMessage> {
  const mapped = mapEvent(mapping, m.eventType, m.properties, m.eventValue);
  if (!mapped.ok) return { ok: false, reason: mapped.reason, errors: [{ path: 'eventType', message: mapped.reason }] };
  const window = mapped.entry?.oncePerSeconds;
  if (window !== undefined) {
    const eventId = windowEventId(m, mapped.eventType, window);
    return { ok: true, message: { ...m, eventId, eventType: mapped.eventType, ...(mapped.eventValue !== undefined && { eventValue: mapped.eventValue }) } };
  }
  const unchanged = mapped.eventType === m.eventType && (mapped.eventValue === undefined || (Object.hasOwn(m, 'eventValue') && Object.is(m.eventValue, mapped.eventValue)));
  if (unchanged) return { ok: true, message: m };
  return { ok: true, message: { ...m, eventType: mapped.eventType, ...(mapped.eventValue !== undefined && { eventValue: mapped.eventValue }) } };
}

export type Preflight =
  | { kind: 'interaction'; built: Built<PersonalizeEvent> }
  | { kind: 'item' | 'user'; built: Built<Record<string, ProfileScalar>> }
  | { kind: 'none' };

/**
 * The Personalize request a (mapped) message becomes, checked against every limit: an event for an
 * interaction, sent with `userId` (its own or the stitched one); a partial update for an item or
 * user, checked alone (the stored record may hold what it lacks). Other kinds send nothing.
 */
export function preflightMessage(m: CanonicalMessage, checks: MessageChecks, userId?: string): Preflight {
  switch (m.kind) {
    case 'interaction':
      return { kind: 'interaction', built: buildEvent(m, checks.schemas.interactions, userId) };
    case 'item':
      return { kind: 'item', built: shapeProfileUpdate('item', m.properties, checks.schemas.items, checks.mapping.itemProperties) };
    case 'user':
      return { kind: 'user', built: shapeProfileUpdate('user', m.properties, checks.schemas.users, checks.mapping.traits) };
    default:
      return { kind: 'none' };
  }
}
