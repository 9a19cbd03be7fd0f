import { contentEventId } from '../event-id.js';
import { mapEvent } from '../event-mapping.js';
import type { FieldError } from '../field-errors.js';
import {
  accept,
  asRecord,
  consentFlagsOf,
  describeType,
  emptyResult,
  firstId,
  guarded,
  idOf,
  isRecord,
  liftAttribution,
  mappedValue,
  omitKeys,
  parseTime,
  reject,
  sanitize,
  stringOf,
  type AdapterContext,
  type AdapterResult,
  type SourcePaths,
} from './types.js';
import type { ConsentSignal } from '../../schemas/canonical.js';

/**
 * Segment spec messages -> canonical messages (FACTS §6a, §6c). One code path serves the tracking
 * API (`/v1/batch`, `/v1/track`, ...: what analytics.js, the mobile SDKs and RudderStack send) and the
 * Segment Webhooks destination (one already-processed message per request, same spec).
 *
 * Event names are kept as the source wrote them ("Product Viewed"): the processor applies the event
 * mapping to every interaction, so translating here too would map twice (and "View" is no source
 * name: with `unmapped: "reject"` it would be refused). The mapping is still consulted here for what
 * only the source shape can answer: one interaction per product (`perProduct`), the product's
 * eventValue, and refusing unmapped names at the door when the mapping says "reject".
 */

export type SegmentCall = 'track' | 'page' | 'screen' | 'identify' | 'alias' | 'group';
const TYPES = new Set(['track', 'page', 'screen', 'identify', 'alias', 'group', 'delete']);

/**
 * Segment ecommerce spec: Product Viewed/Clicked/Added carry the product at the top level of
 * properties. Video spec: content events carry the video as asset_id, playback events as
 * content_asset_id, or content_asset_ids (docs/FACTS.md §11; see trackItem).
 */
const TRACK_ITEM_KEYS = ['product_id', 'item_id', 'sku', 'id', 'asset_id', 'content_asset_id'] as const;

/**
 * A track call's item: the first of TRACK_ITEM_KEYS, else a playback's `content_asset_ids` when it
 * names exactly one asset (a playback of several names no one title the event is about).
 */
function trackItem(properties: Record<string, unknown>): { id: string; key: string } | undefined {
  const item = firstId(properties, TRACK_ITEM_KEYS);
  if (item) return item;
  const assets: unknown = Object.hasOwn(properties, 'content_asset_ids') ? properties.content_asset_ids : undefined;
  if (!Array.isArray(assets) || assets.length !== 1) return undefined;
  const only: unknown = assets[0];
  return firstId({ 'content_asset_ids.0': only }, ['content_asset_ids.0']);
}
/** A product of `properties.products[]` (Order Completed, Checkout Started). */
const PRODUCT_ITEM_KEYS = ['product_id', 'sku', 'id'] as const;
/** page/screen: only an explicit item id; a page's `id`-like fields are not items. */
const PAGE_ITEM_KEYS = ['product_id', 'item_id', 'sku'] as const;

/** Set per send, not per event: not part of a message's content hash. */
const TRANSPORT_KEYS = ['sentAt', 'receivedAt', 'writeKey'] as const;

/** Segment's consent change event (FACTS §10): a `consent` message, never an interaction. */
export const CONSENT_EVENT = 'Segment Consent Preference Updated';
const CONSENT_PATH = 'context.consent.categoryPreferences';

/** Event names a page or screen call goes through the mapping as (map them to "View" to train on them). */
export const PAGE_EVENT = 'Page Viewed';
export const SCREEN_EVENT = 'Screen Viewed';

interface BatchDefaults {
  sentAt?: unknown;
  context?: Record<string, unknown>;
}

/** Tracking API batch: `{batch: [...], sentAt?, context?}`; batch-level fields apply under each message's own. */
export function fromSegmentBatch(body: unknown, ctx: AdapterContext): AdapterResult {
  return guarded(() => {
    const result = emptyResult();
    const clean = sanitize(body);
    if (!isRecord(clean)) {
      result.rejections.push({ index: -1, reason: `request body must be a JSON object with a "batch" array, got ${describeType(clean)}` });
      return result;
    }
    if (!Array.isArray(clean.batch)) {
      const errors = [{ path: 'batch', message: `must be an array of Segment messages, got ${describeType(clean.batch)}` }];
      reject(result, -1, errors);
      return result;
    }
    const defaults: BatchDefaults = { sentAt: clean.sentAt, context: asRecord(clean.context) };
    clean.batch.forEach((message, index) => convert(message, index, undefined, defaults, ctx, result));
    return result;
  });
}

/** One message (`/v1/track` etc., or the Webhooks destination); `type` from the route when the body has none. */
export function fromSegmentMessage(body: unknown, type: SegmentCall | undefined, ctx: AdapterContext): AdapterResult {
  return guarded(() => {
    const result = emptyResult();
    const clean = sanitize(body);
    if (!isRecord(clean)) {
      result.rejections.push({ index: -1, reason: `request body must be a JSON object (one Segment message), got ${describeType(clean)}` });
      return result;
    }
    convert(clean, 0, type, {}, ctx, result);
    return result;
  });
}

interface Common {
  index: number;
  raw: Record<string, unknown>;
  eventId: string;
  timestamp: number;
  /** undefined only for alias, which needs none */
  sessionId: string | undefined;
  /** where the sessionId came from: anonymousId, or userId when the message has none */
  sessionPath: string;
  userId?: string;
  context: Record<string, unknown>;
  /** `context.consent.categoryPreferences`, when the message (or its batch) carries one */
  consent?: ConsentSignal;
}

function convert(
  message: unknown,
  index: number,
  routeType: SegmentCall | undefined,
  defaults: BatchDefaults,
  ctx: AdapterContext,
  result: AdapterResult,
): void {
  if (!isRecord(message)) {
    reject(result, index, [{ path: '(message)', message: `must be a JSON object, got ${describeType(message)}` }]);
    return;
  }
  const type = stringOf(message.type) ?? routeType;
  if (type === undefined) {
    reject(result, index, [{ path: 'type', message: 'missing: one of track, page, screen, identify, alias, group' }]);
    return;
  }
  if (!TYPES.has(type)) {
    reject(result, index, [{ path: 'type', message: `unknown Segment message type "${type.slice(0, 40)}"` }]);
    return;
  }
  if (type === 'group') {
    result.filtered.push({ index, reason: 'group calls (accounts) are not sent to Personalize' });
    return;
  }
  if (type === 'delete') {
    deletion(message, index, defaults, ctx, result);
    return;
  }

  const errors: FieldError[] = [];
  const userId = idOf(message.userId);
  const anonymousId = idOf(message.anonymousId);
  if (type !== 'alias' && userId === undefined && anonymousId === undefined) {
    errors.push({
      path: 'anonymousId',
      message: 'a Segment message needs anonymousId or userId (FACTS §6a); blank or "null"/"undefined" values do not count',
    });
  }
  const time = eventTime(message, defaults, ctx);
  if (!time.ok) errors.push({ path: time.path, message: time.message });
  if (errors.length > 0 || !time.ok) {
    reject(result, index, errors);
    return;
  }

  const common: Common = {
    index,
    raw: message,
    // A retried send repeats the messageId; without one, the message's own content is the id (never
    // random), less the transport fields a library rewrites on each retry.
    eventId: idOf(message.messageId) ?? contentEventId(omitKeys(message, TRANSPORT_KEYS)),
    timestamp: time.value,
    // Personalize requires a sessionId (FACTS §1a). A message with only a userId (server-side
    // libraries) uses the userId as its session: all of that user's server-side events form one
    // session, which is how FACTS §1d describes using ids when there is no anonymous session.
    sessionId: anonymousId ?? userId,
    sessionPath: anonymousId !== undefined ? 'anonymousId' : 'userId',
    ...(userId !== undefined && { userId }),
    context: { ...defaults.context, ...asRecord(message.context) },
  };
  const consent = consentOf(common.context);
  if (consent !== undefined) common.consent = consent;

  switch (type) {
    case 'track':
      return track(common, ctx, result);
    case 'page':
    case 'screen':
      return view(type, common, ctx, result);
    case 'identify':
      return identify(common, anonymousId, result);
    case 'alias':
      return alias(common, result);
  }
}

type Time = { ok: true; value: number } | { ok: false; path: string; message: string };

function timeField(message: Record<string, unknown>, field: string): Time | undefined {
  const parsed = parseTime(message[field]);
  if (parsed === undefined) return undefined;
  return parsed.ok ? parsed : { ok: false, path: field, message: parsed.message };
}

/**
 * The event time: when it happened, never when we received it (README "Event time").
 * - Already through Segment (webhook door, or a message carrying Segment's `receivedAt` or
 *   `originalTimestamp`): `timestamp` is Segment's corrected time (FACTS §8); without it,
 *   `originalTimestamp` corrected with Segment's own `receivedAt` and `sentAt`.
 * - `/v1/import` (historical): the time as given.
 * - Straight from a tracker: the library's `timestamp` is its device-clock time. Segment's formula
 *   `receivedAt − (sentAt − timestamp)` is applied only when `sentAt` runs ahead of our clock by more
 *   than the tolerance (a device clock that is ahead: latency can only make sentAt look older). A
 *   `sentAt` older than the arrival is latency or a queued/offline batch sent late (the Swift and
 *   Kotlin SDKs keep the first try's sentAt, FACTS §8): correcting it would move events to about
 *   the arrival time, so the device's time stands.
 * - No time at all: rejected; the receive time is never an event time.
 */
function eventTime(message: Record<string, unknown>, defaults: BatchDefaults, ctx: AdapterContext): Time {
  const timestamp = timeField(message, 'timestamp');
  const original = timeField(message, 'originalTimestamp');
  const segmentReceivedAt = timeField(message, 'receivedAt');
  const clock = ctx.clock ?? 'source';
  const throughSegment = clock === 'source' || segmentReceivedAt !== undefined || original !== undefined;
  if (throughSegment && timestamp !== undefined) return timestamp;

  const deviceTime = original ?? timestamp;
  if (deviceTime === undefined) {
    return { ok: false, path: 'timestamp', message: 'missing: the event time (timestamp or originalTimestamp, ISO-8601) is required' };
  }
  if (!deviceTime.ok || clock === 'historical') return deviceTime;

  let sentAt = timeField(message, 'sentAt');
  if (sentAt === undefined) {
    const batchSentAt = parseTime(defaults.sentAt);
    if (batchSentAt !== undefined) sentAt = batchSentAt.ok ? batchSentAt : { ok: false, path: 'sentAt', message: `(batch) ${batchSentAt.message}` };
  }
  if (sentAt === undefined) return deviceTime;
  if (!sentAt.ok) return sentAt;
  if (segmentReceivedAt !== undefined) {
    // Segment's own receive time: its formula, on its server clock.
    return segmentReceivedAt.ok ? { ok: true, value: segmentReceivedAt.value - (sentAt.value - deviceTime.value) } : segmentReceivedAt;
  }
  const lead = sentAt.value - ctx.receivedAt;
  if (clock === 'device' && lead > (ctx.clockSkewToleranceMs ?? 0)) return { ok: true, value: deviceTime.value - lead };
  return deviceTime;
}

/** The consent object (FACTS §10) as a signal; non-boolean preferences are dropped (types.ts consentFlagsOf). */
function consentOf(context: Record<string, unknown>): ConsentSignal | undefined {
  const categories = consentFlagsOf(asRecord(context.consent)?.categoryPreferences);
  return categories === undefined ? undefined : { categories };
}

/** Context worth a categorical column: the device type (ios, android), else the library (analytics.js). */
function deviceOf(context: Record<string, unknown>): string | undefined {
  const device = stringOf(asRecord(context.device)?.type) ?? stringOf(asRecord(context.library)?.name);
  return device?.toLowerCase();
}

function propertiesOf(common: Common, result: AdapterResult): Record<string, unknown> | undefined {
  const raw = common.raw.properties;
  if (raw === undefined || raw === null) return {};
  if (isRecord(raw)) return raw;
  reject(result, common.index, [{ path: 'properties', message: `must be an object, got ${describeType(raw)}` }]);
  return undefined;
}

/** Interaction properties: the source's (the processor keeps what the dataset schema knows) plus `device`. */
function withDevice(properties: Record<string, unknown>, context: Record<string, unknown>): Record<string, unknown> | undefined {
  const device = deviceOf(context);
  const out = device !== undefined && !Object.hasOwn(properties, 'device') ? { ...properties, device } : properties;
  return Object.keys(out).length > 0 ? out : undefined;
}

function interactionPaths(common: Common, extra: Record<string, string>, attributionKeys: Record<string, string>): SourcePaths {
  const paths: Record<string, string> = {
    eventId: 'messageId',
    sessionId: common.sessionPath,
    userId: 'userId',
    timestamp: 'timestamp',
    eventType: 'event',
    properties: 'properties',
    consent: CONSENT_PATH,
    ...extra,
  };
  for (const [field, key] of Object.entries(attributionKeys)) paths[field] = `properties.${key}`;
  return paths;
}

function baseInteraction(common: Common) {
  return {
    kind: 'interaction',
    source: 'segment',
    sessionId: common.sessionId,
    userId: common.userId,
    timestamp: common.timestamp,
    consent: common.consent,
  };
}

function track(common: Common, ctx: AdapterContext, result: AdapterResult): void {
  const { index } = common;
  const event = stringOf(common.raw.event);
  if (event === undefined) {
    reject(result, index, [{ path: 'event', message: 'missing: a track call needs the event name' }]);
    return;
  }
  if (event === CONSENT_EVENT) {
    consentChange(common, result);
    return;
  }
  const properties = propertiesOf(common, result);
  if (!properties) return;
  const mapped = mapEvent(ctx.mapping, event, properties, undefined);
  if (!mapped.ok) {
    reject(result, index, [{ path: 'event', message: mapped.reason }]);
    return;
  }
  const attribution = liftAttribution(properties);

  if (mapped.entry?.perProduct) {
    const products = properties.products;
    if (products === undefined || (Array.isArray(products) && products.length === 0)) {
      result.filtered.push({ index, reason: `"${event}" has no products: nothing to record per product` });
      return;
    }
    if (!Array.isArray(products)) {
      reject(result, index, [{ path: 'properties.products', message: `must be an array of products, got ${describeType(products)}` }]);
      return;
    }
    // One interaction per product; the order's own properties (order_id, total, coupon, ...) go with each.
    const orderProperties = withDevice(omitKeys(attribution.rest, ['products']), common.context);
    products.forEach((product, j) => {
      const at = `properties.products.${j}`;
      if (!isRecord(product)) {
        reject(result, index, [{ path: at, message: `must be a product object, got ${describeType(product)}` }]);
        return;
      }
      const item = firstId(product, PRODUCT_ITEM_KEYS);
      if (!item) {
        reject(result, index, [{ path: `${at}.product_id`, message: 'missing: a product needs product_id, sku or id' }]);
        return;
      }
      accept(
        result,
        index,
        {
          ...baseInteraction(common),
          // Stable per product: a retried order yields the same ids.
          eventId: `${common.eventId}:${j}`,
          eventType: event,
          itemId: item.id,
          eventValue: mappedValue(mapped.entry, product),
          ...attribution.fields,
          properties: orderProperties,
        },
        interactionPaths(common, { itemId: `${at}.${item.key}`, eventValue: `${at}.${mapped.entry?.eventValue ?? 'price'}` }, attribution.keys),
      );
    });
    return;
  }

  const item = trackItem(properties);
  accept(
    result,
    index,
    {
      ...baseInteraction(common),
      eventId: common.eventId,
      eventType: event,
      itemId: item?.id,
      eventValue: mappedValue(mapped.entry, properties),
      ...attribution.fields,
      properties: withDevice(attribution.rest, common.context),
    },
    interactionPaths(common, { itemId: `properties.${item?.key ?? 'product_id'}`, eventValue: `properties.${mapped.entry?.eventValue ?? ''}` }, attribution.keys),
  );
}

/**
 * `Segment Consent Preference Updated`: the preferences sit in the event's own
 * `context.consent.categoryPreferences` (analytics-next consent-tools sends no properties). Checked
 * before the event mapping: it is not an interaction, whatever the mapping says of unknown names.
 */
function consentChange(common: Common, result: AdapterResult): void {
  if (common.consent === undefined) {
    result.filtered.push({ index: common.index, reason: `${CONSENT_EVENT} without ${CONSENT_PATH}: no preference to record` });
    return;
  }
  accept(
    result,
    common.index,
    {
      kind: 'consent',
      source: 'segment',
      eventId: common.eventId,
      timestamp: common.timestamp,
      sessionId: common.sessionId,
      userId: common.userId,
      consent: common.consent,
    },
    { eventId: 'messageId', sessionId: common.sessionPath, userId: 'userId', timestamp: 'timestamp', consent: CONSENT_PATH },
  );
}

/**
 * page/screen: an interaction only when it names an item (a product detail page); a plain page view
 * says nothing about any item, so it is filtered. Such views go through the mapping as "Page Viewed"
 * / "Screen Viewed": by default they reach Personalize under those names, kept apart from the
 * "Product Viewed" track call many sites send for the same view, unless the mapping merges them.
 */
function view(type: 'page' | 'screen', common: Common, ctx: AdapterContext, result: AdapterResult): void {
  const properties = propertiesOf(common, result);
  if (!properties) return;
  const item = firstId(properties, PAGE_ITEM_KEYS);
  if (!item) {
    result.filtered.push({ index: common.index, reason: `${type} without an item id (properties.product_id, item_id or sku)` });
    return;
  }
  const event = type === 'page' ? PAGE_EVENT : SCREEN_EVENT;
  const mapped = mapEvent(ctx.mapping, event, properties, undefined);
  if (!mapped.ok) {
    // Not a rejection: the caller sent a valid page call; the deployment chose not to take page views.
    result.filtered.push({ index: common.index, reason: mapped.reason });
    return;
  }
  const attribution = liftAttribution(properties);
  accept(
    result,
    common.index,
    {
      ...baseInteraction(common),
      eventId: common.eventId,
      eventType: event,
      itemId: item.id,
      eventValue: mappedValue(mapped.entry, properties),
      ...attribution.fields,
      properties: withDevice(attribution.rest, common.context),
    },
    interactionPaths(common, { itemId: `properties.${item.key}`, eventType: 'type' }, attribution.keys),
  );
}

/**
 * identify: with anonymousId and userId, an identity link (the anonymous session belongs to the
 * user, FACTS §1d); with traits and a userId, also a profile upsert. Anonymous traits have no
 * Personalize user to belong to, so they are not sent.
 */
function identify(common: Common, anonymousId: string | undefined, result: AdapterResult): void {
  const { index, userId } = common;
  if (userId === undefined) {
    result.filtered.push({ index, reason: 'identify without userId: anonymous traits are not sent (Personalize users are keyed by userId)' });
    return;
  }
  // Segment's libraries send traits at the top level; RudderStack's browser SDK in context.traits.
  const traitsPath = common.raw.traits === undefined || common.raw.traits === null ? 'context.traits' : 'traits';
  const rawTraits = traitsPath === 'traits' ? common.raw.traits : common.context.traits;
  if (rawTraits !== undefined && rawTraits !== null && !isRecord(rawTraits)) {
    reject(result, index, [{ path: traitsPath, message: `must be an object, got ${describeType(rawTraits)}` }]);
    return;
  }
  const traits = asRecord(rawTraits);
  const hasTraits = traits !== undefined && Object.keys(traits).length > 0;
  if (anonymousId === undefined && !hasTraits) {
    result.filtered.push({ index, reason: 'identify with only a userId and no traits: nothing to record' });
    return;
  }
  const paths = { eventId: 'messageId', sessionId: 'anonymousId', userId: 'userId', timestamp: 'timestamp', properties: traitsPath, consent: CONSENT_PATH };
  const consent = common.consent;
  if (anonymousId !== undefined) {
    accept(
      result,
      index,
      { kind: 'identify', source: 'segment', eventId: common.eventId, timestamp: common.timestamp, sessionId: anonymousId, userId, consent },
      paths,
    );
  }
  if (hasTraits) {
    accept(
      result,
      index,
      { kind: 'user', source: 'segment', eventId: `${common.eventId}:traits`, timestamp: common.timestamp, userId, properties: traits, consent },
      paths,
    );
  }
}

/**
 * delete (FACTS §6a: `{type:"delete", userId, timestamp}`) -> a deletion request for that user.
 * Without a usable time the request's arrival stands in: a deletion is never refused for its timestamp.
 */
function deletion(message: Record<string, unknown>, index: number, defaults: BatchDefaults, ctx: AdapterContext, result: AdapterResult): void {
  const userId = idOf(message.userId);
  if (userId === undefined) {
    reject(result, index, [{ path: 'userId', message: 'missing: a delete message needs the userId to delete' }]);
    return;
  }
  const time = eventTime(message, defaults, ctx);
  accept(
    result,
    index,
    {
      kind: 'delete',
      source: 'segment',
      eventId: idOf(message.messageId) ?? contentEventId(omitKeys(message, TRANSPORT_KEYS)),
      timestamp: time.ok ? time.value : ctx.receivedAt,
      userId,
    },
    { eventId: 'messageId', userId: 'userId', timestamp: 'timestamp' },
  );
}

/**
 * alias: `previousId` (usually the anonymousId, which analytics.js fills in) is now `userId`.
 * The Webhooks destination's doc example spells them "Previous ID" / "User ID" (FACTS §6a), so
 * those are read too.
 */
function alias(common: Common, result: AdapterResult): void {
  const { index, raw } = common;
  const previousId = idOf(raw.previousId) ?? idOf(raw['Previous ID']);
  const userId = common.userId ?? idOf(raw['User ID']);
  const errors: FieldError[] = [];
  if (previousId === undefined) errors.push({ path: 'previousId', message: 'missing: alias needs the previous id' });
  if (userId === undefined) errors.push({ path: 'userId', message: 'missing: alias needs the new userId' });
  if (previousId === undefined || userId === undefined) {
    reject(result, index, errors);
    return;
  }
  if (previousId === userId) {
    result.filtered.push({ index, reason: 'alias of a userId to itself: nothing to link' });
    return;
  }
  accept(
    result,
    index,
    { kind: 'alias', source: 'segment', eventId: common.eventId, timestamp: common.timestamp, previousId, userId, consent: common.consent },
    { eventId: 'messageId', previousId: 'previousId', userId: 'userId', timestamp: 'timestamp', consent: CONSENT_PATH },
  );
}
