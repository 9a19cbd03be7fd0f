import { z } from 'zod';

/**
 * Canonical messages: the one contract between the front doors (native, Segment, mParticle, feeds)
 * and everything downstream. Every adapter maps to these; the processor sees nothing else.
 *
 * Conventions (DESIGN "Contracts"):
 * - `timestamp` is the client's event time in epoch **milliseconds**; Personalize gets seconds.
 * - `eventId` is stable: the source's own id, or a content hash when the source has none.
 */

/** Personalize id fields are 1–256 characters (FACTS §1a, §2). */
export const ID_MAX = 256;
/** `recommendationId` is 1–40 characters (FACTS §1b). */
export const RECOMMENDATION_ID_MAX = 40;
/** Explicit impressions: 1–25 item ids (FACTS §1b). */
export const IMPRESSION_MAX = 25;
/** printable ASCII with at least one non-space (FACTS §1b, metricAttribution.eventAttributionSource). */
const ATTRIBUTION_SOURCE = /^[\x20-\x7E]*[\x21-\x7E]+[\x20-\x7E]*$/;

/** 2000-01-01T00:00:00Z: anything earlier is almost surely epoch seconds sent as milliseconds. */
export const MIN_EVENT_TIME_MS = 946_684_800_000;
/** Client clocks drift; more than a day ahead is a unit or clock error, not an event. */
export const MAX_FUTURE_SKEW_MS = 24 * 60 * 60 * 1000;

export const SOURCES = ['native', 'segment', 'mparticle', 'feed'] as const;
export const sourceSchema = z.enum(SOURCES);
export type Source = z.infer<typeof sourceSchema>;

/**
 * Control characters, lone surrogates and Unicode non-characters (U+FFFE, U+FDD0, ...): not text.
 * Personalize's JSON API would take some and the bulk CSV would carry them into training data
 * (a NUL or a lone surrogate is not valid UTF-8), so ids carrying them are refused at the door.
 */
const NOT_TEXT = /[\p{Cc}\p{Cs}\p{Noncharacter_Code_Point}]/u;

/** Where `value` stops being text, as a field error's message; undefined when it is all text. */
export function notTextAt(value: string): number | undefined {
  const match = NOT_TEXT.exec(value);
  return match?.index;
}

const id = (what: string) =>
  z
    .string({ error: `${what} must be a string` })
    .min(1, `${what} must not be empty`)
    .max(ID_MAX, `${what} is longer than ${ID_MAX} characters (Personalize limit)`)
    .check((ctx) => {
      const at = notTextAt(ctx.value);
      if (at !== undefined) {
        const code = ctx.value.codePointAt(at)!.toString(16).toUpperCase().padStart(4, '0');
        ctx.issues.push({ code: 'custom', input: ctx.value, message: `${what} contains U+${code} at character ${at}: control characters, lone surrogates and non-characters are not allowed` });
      }
    });

/** Personalize's EVENT_VALUE is an Avro float (docs/FACTS.md §4): finite and within float32 range. */
export const FLOAT32_MAX = 3.4028234663852886e38;

const PLACEHOLDER_IDS = new Set(['null', 'undefined', 'nan']);

/** Not blank and not a stringified null/undefined/NaN (checked on every message: one trim, no array). */
function isMeaningfulId(s: string): boolean {
  const trimmed = s.trim();
  return trimmed !== '' && !(trimmed.length <= 9 && PLACEHOLDER_IDS.has(trimmed.toLowerCase()));
}

/**
 * A session id Personalize can attribute: not blank, and not the stringified `null`/`undefined`
 * that broken trackers send (those would merge every anonymous visitor into one session).
 */
export const sessionIdSchema = id('sessionId').refine(isMeaningfulId,
  { message: 'sessionId is blank or the literal text null, undefined or nan' },
);
export const userIdSchema = id('userId').refine(isMeaningfulId,
  { message: 'userId is blank or the literal text null, undefined or nan' },
);

export const eventTimeSchema = z
  .number({ error: 'timestamp must be epoch milliseconds (a number)' })
  .int('timestamp must be whole epoch milliseconds')
  .min(MIN_EVENT_TIME_MS, 'timestamp is before 2000-01-01: epoch seconds sent where milliseconds are expected?')
  .refine((t) => t <= Date.now() + MAX_FUTURE_SKEW_MS, {
    message: 'timestamp is more than 24 hours in the future',
  });

/** Free-form properties; the dataset schema decides later which keys are sent. */
export const propertiesSchema = z.record(z.string(), z.unknown());

/** Consent maps are small in every source (a CMP's categories, a workspace's purposes); bounded so a message cannot carry thousands. */
export const CONSENT_KEY_MAX = 64;
export const CONSENT_ENTRIES_MAX = 50;

const consentFlags = (what: string) =>
  z
    .record(
      z.string().min(1, `${what} names must not be empty`).max(CONSENT_KEY_MAX, `${what} names are at most ${CONSENT_KEY_MAX} characters`),
      z.boolean({ error: `${what} values must be true or false` }),
    )
    .refine((flags) => Object.keys(flags).length <= CONSENT_ENTRIES_MAX, { message: `at most ${CONSENT_ENTRIES_MAX} ${what}` });

/**
 * The consent signal a source sent with a message (FACTS §10), carried as sent; the collector
 * decides nothing with it. `categories`: Segment `context.consent.categoryPreferences`;
 * `purposes`: mParticle `consent_state.gdpr.<purpose>.consented`; `dataSaleOptOut`: mParticle
 * `consent_state.ccpa.data_sale_opt_out.consented`; `at`: when the user gave it (epoch ms), if the
 * source says.
 */
export const consentSchema = z.object({
  categories: consentFlags('consent categories').optional(),
  purposes: consentFlags('consent purposes').optional(),
  dataSaleOptOut: z.boolean({ error: 'dataSaleOptOut must be true or false' }).optional(),
  at: z.number().int('consent.at must be whole epoch milliseconds').min(MIN_EVENT_TIME_MS, 'consent.at is before 2000-01-01').optional(),
});

/**
 * The target (docs/targets.md) a per-target message goes to, when the deployment declares several;
 * absent: the default target. Stamped by the collector, one stream record per target.
 */
export const TARGET_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/;
const targetName = z.string().regex(TARGET_NAME_PATTERN, 'target must be 1-32 of a-z, 0-9 and -').optional();

const base = {
  eventId: id('eventId'),
  source: sourceSchema.default('native'),
  timestamp: eventTimeSchema,
};

export const interactionSchema = z.object({
  kind: z.literal('interaction'),
  ...base,
  target: targetName,
  sessionId: sessionIdSchema,
  userId: userIdSchema.optional(),
  /** Personalize event type, or a source event name that the event mapping translates. */
  eventType: id('eventType'),
  itemId: id('itemId').optional(),
  eventValue: z
    .number()
    .finite('eventValue must be a finite number')
    .refine((v) => Math.abs(v) <= FLOAT32_MAX, { message: `eventValue is outside the float range Personalize stores (±${FLOAT32_MAX})` })
    .optional(),
  recommendationId: z
    .string()
    .min(1, 'recommendationId must not be empty')
    .max(RECOMMENDATION_ID_MAX, `recommendationId is longer than ${RECOMMENDATION_ID_MAX} characters (Personalize limit)`)
    .optional(),
  impression: z
    .array(id('impression item id'))
    .min(1, 'impression must list at least one item id')
    .max(IMPRESSION_MAX, `impression lists more than ${IMPRESSION_MAX} item ids (Personalize limit)`)
    .optional(),
  eventAttributionSource: z
    .string()
    .max(1024, 'eventAttributionSource is longer than 1024 characters')
    .regex(ATTRIBUTION_SOURCE, 'eventAttributionSource must be printable ASCII with a non-space character')
    .optional(),
  properties: propertiesSchema.optional(),
  consent: consentSchema.optional(),
});

/** Catalog upsert -> PutItems. Latest `timestamp` per itemId wins. */
export const itemSchema = z.object({
  kind: z.literal('item'),
  ...base,
  target: targetName,
  itemId: id('itemId'),
  properties: propertiesSchema,
});

/** Profile upsert -> PutUsers. Latest `timestamp` per userId wins. */
export const userSchema = z.object({
  kind: z.literal('user'),
  ...base,
  target: targetName,
  userId: userIdSchema,
  properties: propertiesSchema,
  consent: consentSchema.optional(),
});

/** Segment `identify`: this anonymous session belongs to this user. */
export const identifySchema = z.object({
  kind: z.literal('identify'),
  ...base,
  sessionId: sessionIdSchema,
  userId: userIdSchema,
  traits: propertiesSchema.optional(),
  consent: consentSchema.optional(),
});

/** Segment `alias`: `previousId` (an anonymous id) is now `userId`. */
export const aliasSchema = z.object({
  kind: z.literal('alias'),
  ...base,
  previousId: sessionIdSchema,
  userId: userIdSchema,
  consent: consentSchema.optional(),
});

/**
 * An explicit consent change (Segment `Segment Consent Preference Updated`, or an mParticle batch
 * with a consent_state and no events): archived, never an interaction.
 */
export const consentMessageSchema = z.object({
  kind: z.literal('consent'),
  ...base,
  sessionId: sessionIdSchema,
  userId: userIdSchema.optional(),
  consent: consentSchema,
});

/**
 * A user's deletion request (Segment `delete`, or the delete-user tool): the processor removes the
 * user's identity links and records the deletion so every later export leaves the user out.
 */
export const deleteSchema = z.object({
  kind: z.literal('delete'),
  ...base,
  userId: userIdSchema,
});

export const canonicalMessageSchema = z.discriminatedUnion('kind', [
  interactionSchema,
  itemSchema,
  userSchema,
  identifySchema,
  aliasSchema,
  deleteSchema,
  consentMessageSchema,
]);

export type InteractionMessage = z.infer<typeof interactionSchema>;
export type ItemMessage = z.infer<typeof itemSchema>;
export type UserMessage = z.infer<typeof userSchema>;
export type IdentifyMessage = z.infer<typeof identifySchema>;
export type AliasMessage = z.infer<typeof aliasSchema>;
export type DeleteMessage = z.infer<typeof deleteSchema>;
export type ConsentMessage = z.infer<typeof consentMessageSchema>;
export type ConsentSignal = z.infer<typeof consentSchema>;
export type CanonicalMessage = z.infer<typeof canonicalMessageSchema>;
export type MessageKind = CanonicalMessage['kind'];

/** The session a message belongs to: the stream's partition key, so one session stays in order on one shard. */
export function partitionKeyOf(message: CanonicalMessage): string {
  switch (message.kind) {
    // A consent change goes with its session's events, so a mid-session change stays in order with them.
    case 'interaction':
    case 'identify':
    case 'consent':
      return message.sessionId;
    case 'alias':
      return message.previousId;
    case 'item':
      return message.itemId;
    case 'user':
    case 'delete':
      return message.userId;
  }
}

/**
 * What makes two messages "the same" for deduplication: a re-send of one message repeats its kind,
 * its entity (session, item, user) and its eventId. Two items, users or sessions that share a
 * caller's eventId are different messages.
 */
/** The target a message is stamped for (docs/targets.md); undefined: the default target. */
export function messageTarget(message: CanonicalMessage): string | undefined {
  return 'target' in message ? message.target : undefined;
}

export function dedupeKey(message: CanonicalMessage): string {
  const key = `${message.kind}\u0000${partitionKeyOf(message)}\u0000${message.eventId}`;
  // One source message sent to two targets is two messages, not a re-send.
  const target = messageTarget(message);
  return target === undefined ? key : `${key}\u0000${target}`;
}
