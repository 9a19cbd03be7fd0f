import { eventTimeSchema, type ConsentSignal } from '../../schemas/canonical.js';
import { contentEventId } from '../event-id.js';
import { mapEvent } from '../event-mapping.js';
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
  isSafeKey,
  liftAttribution,
  mappedValue,
  parseTime,
  reject,
  sanitize,
  stringOf,
  type AdapterContext,
  type AdapterResult,
  type SourcePaths,
} from './types.js';

/**
 * mParticle outbound Webhook batch -> canonical messages (FACTS §6b, §6c). A batch belongs to one
 * user (mpid) and carries that user's identities and attributes beside `events[]`.
 *
 * As for Segment, interactions keep source event names and the processor applies the mapping;
 * commerce actions are named by the Segment ecommerce spec (below), so one mapping config rules
 * both sources.
 */

/**
 * mParticle `product_action.action` -> the Segment ecommerce event it means. These names then go
 * through the event mapping like Segment's own (bundled: "Product Viewed" -> View, "Order
 * Completed" -> Purchase, ...), instead of a second mParticle section in the config.
 */
export const commerceActions: Readonly<Record<string, string>> = {
  view_detail: 'Product Viewed',
  click: 'Product Clicked',
  add_to_cart: 'Product Added',
  remove_from_cart: 'Product Removed',
  add_to_wishlist: 'Product Added to Wishlist',
  checkout: 'Checkout Started',
  purchase: 'Order Completed',
};

/** Actions deliberately not sent, with the reason counted. */
const SKIPPED_ACTIONS: Readonly<Record<string, string>> = {
  refund: 'refund: taking back a purchase is not an interaction to train on',
  remove_from_wish_list: 'remove_from_wish_list: no Personalize event type for it',
  checkout_option: 'checkout_option: a checkout setting, not an interaction with a product',
};

/** Event name a screen_view naming an item goes through the mapping as (same as a Segment screen call). */
export const SCREEN_EVENT = 'Screen Viewed';

const ITEM_KEYS = ['product_id', 'item_id', 'sku', 'id'] as const;

/** mParticle identity types that carry the customer's own user id (outbound array form, inbound map form). */
const CUSTOMER_ID_TYPES = new Set(['customer_id', 'customerid']);

interface Batch {
  /** customer_id identity, if any: the user the sessions belong to */
  customerId?: string;
  mpid?: string;
  /** customer_id, else the mpid (mParticle's own stable profile id) */
  userId?: string;
  userIdPath: string;
  /** batch_id, else source_request_id, else a hash of the batch: base of ids built from batch-level data */
  baseId: string;
  device?: string;
  /** the batch's consent_state, carried on every message built from the batch */
  consent?: ConsentSignal;
}

const CONSENT_PATH = 'consent_state';

export function fromMParticleBatch(body: unknown, ctx: AdapterContext): AdapterResult {
  return guarded(() => {
    const result = emptyResult();
    const clean = sanitize(body);
    if (!isRecord(clean)) {
      result.rejections.push({ index: -1, reason: `request body must be an mParticle batch (a JSON object), got ${describeType(clean)}` });
      return result;
    }
    const events = clean.events ?? [];
    if (!Array.isArray(events)) {
      reject(result, -1, [{ path: 'events', message: `must be an array of events, got ${describeType(events)}` }]);
      return result;
    }

    const customerId = customerIdOf(clean.user_identities);
    const mpid = idOf(clean.mpid);
    const platform = stringOf(asRecord(clean.device_info)?.platform);
    const consent = consentOf(clean.consent_state);
    const batch: Batch = {
      ...(customerId !== undefined && { customerId }),
      ...(mpid !== undefined && { mpid }),
      // Without a customer_id the mpid is the user: mParticle keeps it stable per profile, so the
      // events train the model (FACTS §1d: an anonymous id used as the userId is trained on, but
      // cannot later be merged with a login). With a customer_id, sessions are linked below.
      ...((customerId ?? mpid) !== undefined && { userId: customerId ?? mpid }),
      userIdPath: customerId !== undefined ? 'user_identities' : 'mpid',
      baseId: idOf(clean.batch_id) ?? idOf(clean.source_request_id) ?? contentEventId(clean),
      ...(platform !== undefined && { device: platform.toLowerCase() }),
      ...(consent !== undefined && { consent }),
    };

    // Earliest event time per real session (for identity links) and the latest event time (profile version).
    const sessions = new Map<string, number>();
    let latest: number | undefined;
    const interactions = emptyResult();
    events.forEach((event, index) => {
      const seen = convertEvent(event, index, batch, ctx, interactions);
      if (seen === undefined) return;
      latest = Math.max(latest ?? seen.time, seen.time);
      if (seen.session !== undefined) sessions.set(seen.session, Math.min(sessions.get(seen.session) ?? seen.time, seen.time));
    });

    // Links first: the processor records them before resolving anything that depends on them.
    if (batch.customerId !== undefined) {
      for (const [session, time] of sessions) {
        accept(
          result,
          -1,
          {
            kind: 'identify',
            source: 'mparticle',
            eventId: `${batch.baseId}:identify:${session}`,
            timestamp: time,
            sessionId: session,
            userId: batch.customerId,
            consent: batch.consent,
          },
          { userId: 'user_identities', sessionId: 'events.data.session_uuid', consent: CONSENT_PATH },
        );
      }
    }
    result.messages.push(...interactions.messages);
    result.rejections.push(...interactions.rejections);
    result.filtered.push(...interactions.filtered);
    userAttributes(clean, batch, latest, ctx, result);
    consentOnly(clean, batch, ctx, result);
    return result;
  });
}

/**
 * consent_state (FACTS §10): `gdpr.<purpose>.consented` -> purposes, `ccpa.data_sale_opt_out.consented`
 * -> dataSaleOptOut, and `at` the latest `timestamp_unixtime_ms` among them that is a plausible time.
 * Entries whose `consented` is not a boolean are dropped (consentFlagsOf); no usable entry: no signal.
 */
function consentOf(state: unknown): ConsentSignal | undefined {
  const record = asRecord(state);
  if (record === undefined) return undefined;
  const gdpr = asRecord(record.gdpr);
  const purposes = consentFlagsOf(gdpr, (entry) => asRecord(entry)?.consented);
  const sale = asRecord(asRecord(record.ccpa)?.data_sale_opt_out);
  const dataSaleOptOut = typeof sale?.consented === 'boolean' ? sale.consented : undefined;
  if ((purposes === undefined || Object.keys(purposes).length === 0) && dataSaleOptOut === undefined) return undefined;
  let at: number | undefined;
  const times = [...Object.keys(purposes ?? {}).map((p) => asRecord(gdpr?.[p])?.timestamp_unixtime_ms), ...(dataSaleOptOut !== undefined ? [sale?.timestamp_unixtime_ms] : [])];
  for (const time of times) {
    const parsed = parseTime(time);
    if (parsed?.ok && eventTimeSchema.safeParse(parsed.value).success) at = Math.max(at ?? parsed.value, parsed.value);
  }
  return {
    ...(purposes !== undefined && Object.keys(purposes).length > 0 && { purposes }),
    ...(dataSaleOptOut !== undefined && { dataSaleOptOut }),
    ...(at !== undefined && { at }),
  };
}

/**
 * A batch whose consent_state no message carries (no events, or none that became a message): one
 * `consent` message for the batch's user, on the per-profile session events without one use.
 */
function consentOnly(clean: Record<string, unknown>, batch: Batch, ctx: AdapterContext, result: AdapterResult): void {
  const { consent } = batch;
  if (consent === undefined || result.messages.some((m) => 'consent' in m.message)) return;
  const sessionId = batch.mpid !== undefined ? `mpid-${batch.mpid}` : batch.customerId;
  if (sessionId === undefined) {
    result.filtered.push({ index: -1, reason: 'consent_state without customer_id or mpid: no user to attach it to' });
    return;
  }
  const batchTime = parseTime(clean.timestamp_unixtime_ms);
  accept(
    result,
    -1,
    {
      kind: 'consent',
      source: 'mparticle',
      eventId: `${batch.baseId}:consent`,
      timestamp: consent.at ?? (batchTime?.ok ? batchTime.value : ctx.receivedAt),
      sessionId,
      userId: batch.userId,
      consent,
    },
    { sessionId: 'mpid', userId: batch.userIdPath, consent: CONSENT_PATH, timestamp: 'consent_state' },
  );
}

/** The customer_id identity from the outbound array `[{identity_type, identity}]` or the inbound map `{customer_id}`. */
function customerIdOf(identities: unknown): string | undefined {
  if (Array.isArray(identities)) {
    for (const entry of identities) {
      if (!isRecord(entry)) continue;
      const type = stringOf(entry.identity_type)?.toLowerCase();
      if (type !== undefined && CUSTOMER_ID_TYPES.has(type)) {
        const id = idOf(entry.identity);
        if (id !== undefined) return id;
      }
    }
    return undefined;
  }
  if (isRecord(identities)) {
    for (const [type, value] of Object.entries(identities)) {
      if (CUSTOMER_ID_TYPES.has(type.toLowerCase())) {
        const id = idOf(value);
        if (id !== undefined) return id;
      }
    }
  }
  return undefined;
}

interface Seen {
  time: number;
  /** the event's own session id (not the mpid fallback) */
  session?: string;
}

interface EventCommon {
  index: number;
  data: Record<string, unknown>;
  eventId: string;
  eventIdPath: string;
  timestamp: number;
  sessionId: string;
  sessionPath: string;
}

/** Converts one event; returns its time and session when it has a valid time (whatever became of the event). */
function convertEvent(event: unknown, index: number, batch: Batch, ctx: AdapterContext, result: AdapterResult): Seen | undefined {
  if (!isRecord(event)) {
    reject(result, index, [{ path: '(event)', message: `must be a JSON object, got ${describeType(event)}` }]);
    return undefined;
  }
  const type = stringOf(event.event_type);
  if (type === undefined) {
    reject(result, index, [{ path: 'event_type', message: 'missing' }]);
    return undefined;
  }
  const data = event.data ?? {};
  if (!isRecord(data)) {
    reject(result, index, [{ path: 'data', message: `must be an object, got ${describeType(data)}` }]);
    return undefined;
  }

  const parsedTime = parseTime(data.timestamp_unixtime_ms);
  const time = parsedTime?.ok ? parsedTime.value : undefined;
  const ownSession = stringOf(data.session_uuid) ?? idOf(data.session_id);
  // Only plausible times date the batch-level messages (links, profile); the rest is rejected below.
  const seen: Seen | undefined =
    time === undefined || !eventTimeSchema.safeParse(time).success ? undefined : { time, ...(ownSession !== undefined && { session: ownSession }) };

  if (type !== 'custom_event' && type !== 'commerce_event' && type !== 'screen_view') {
    result.filtered.push({ index, reason: `${type.slice(0, 60)} events are not interactions` });
    return seen;
  }
  if (parsedTime === undefined || !parsedTime.ok) {
    // The batch's timestamp_unixtime_ms is mParticle's receive time, not the event's (FACTS §6b).
    const message = parsedTime === undefined ? 'missing: the event time (epoch ms) is required' : parsedTime.message;
    reject(result, index, [{ path: 'data.timestamp_unixtime_ms', message }]);
    return seen;
  }

  // Personalize requires a sessionId (FACTS §1a). Events without one (server-to-server feeds) use a
  // per-profile session, `mpid-<mpid>`, else the customer id.
  const sessionId = ownSession ?? (batch.mpid !== undefined ? `mpid-${batch.mpid}` : batch.customerId);
  if (sessionId === undefined) {
    reject(result, index, [{ path: 'data.session_uuid', message: 'missing: no session_uuid, session_id, mpid or customer_id to key the session' }]);
    return seen;
  }
  const sourceId = firstId(data, ['source_message_id', 'message_id', 'event_id']);
  const common: EventCommon = {
    index,
    data,
    // The source's id when it has one (int64 ids stringified); otherwise the event's content with its user.
    eventId: sourceId?.id ?? contentEventId({ mpid: batch.mpid, customerId: batch.customerId, event }),
    eventIdPath: `data.${sourceId?.key ?? 'source_message_id'}`,
    timestamp: time!,
    sessionId,
    sessionPath: stringOf(data.session_uuid) !== undefined ? 'data.session_uuid' : idOf(data.session_id) !== undefined ? 'data.session_id' : 'mpid',
  };
  const attributes = data.custom_attributes ?? {};
  if (!isRecord(attributes)) {
    reject(result, index, [{ path: 'data.custom_attributes', message: `must be an object, got ${describeType(attributes)}` }]);
    return seen;
  }
  if (type === 'custom_event') customEvent(common, attributes, batch, ctx, result);
  else if (type === 'commerce_event') commerceEvent(common, attributes, batch, ctx, result);
  else screenView(common, attributes, batch, ctx, result);
  return seen;
}

function paths(common: EventCommon, batch: Batch, extra: Record<string, string>, attributionKeys: Record<string, string>): SourcePaths {
  const out: Record<string, string> = {
    eventId: common.eventIdPath,
    sessionId: common.sessionPath,
    userId: batch.userIdPath,
    timestamp: 'data.timestamp_unixtime_ms',
    properties: 'data.custom_attributes',
    consent: CONSENT_PATH,
    ...extra,
  };
  for (const [field, key] of Object.entries(attributionKeys)) out[field] = `data.custom_attributes.${key}`;
  return out;
}

function interaction(common: EventCommon, batch: Batch, attributes: Record<string, unknown>) {
  const attribution = liftAttribution(attributes);
  const properties =
    batch.device !== undefined && !Object.hasOwn(attribution.rest, 'device') ? { ...attribution.rest, device: batch.device } : attribution.rest;
  return {
    attribution,
    fields: {
      kind: 'interaction',
      source: 'mparticle',
      sessionId: common.sessionId,
      userId: batch.userId,
      timestamp: common.timestamp,
      consent: batch.consent,
      ...attribution.fields,
      ...(Object.keys(properties).length > 0 && { properties }),
    },
  };
}

/**
 * custom_event: the event name through the mapping; the item from custom_attributes. Custom
 * attributes are flat key/values, so a `perProduct` entry yields one interaction here.
 */
function customEvent(common: EventCommon, attributes: Record<string, unknown>, batch: Batch, ctx: AdapterContext, result: AdapterResult): void {
  const name = stringOf(common.data.event_name);
  if (name === undefined) {
    reject(result, common.index, [{ path: 'data.event_name', message: 'missing: a custom_event needs its name' }]);
    return;
  }
  const mapped = mapEvent(ctx.mapping, name, attributes, undefined);
  if (!mapped.ok) {
    reject(result, common.index, [{ path: 'data.event_name', message: mapped.reason }]);
    return;
  }
  const item = firstId(attributes, ITEM_KEYS);
  const { attribution, fields } = interaction(common, batch, attributes);
  accept(
    result,
    common.index,
    { ...fields, eventId: common.eventId, eventType: name, itemId: item?.id, eventValue: mappedValue(mapped.entry, attributes) },
    paths(common, batch, { eventType: 'data.event_name', itemId: `data.custom_attributes.${item?.key ?? 'product_id'}` }, attribution.keys),
  );
}

/**
 * commerce_event: one interaction per product of `product_action` (whatever the entry's perProduct:
 * a commerce event's products are the items acted on), itemId = product `id`, eventValue per the
 * mapping entry (price × quantity, see mappedValue), eventId `${eventId}:${i}`. Promotion and
 * impression events carry no product action and are filtered.
 */
function commerceEvent(common: EventCommon, attributes: Record<string, unknown>, batch: Batch, ctx: AdapterContext, result: AdapterResult): void {
  const { index } = common;
  const action = common.data.product_action;
  if (action === undefined || action === null) {
    result.filtered.push({ index, reason: 'commerce_event without product_action (promotion or impression): no product acted on' });
    return;
  }
  if (!isRecord(action)) {
    reject(result, index, [{ path: 'data.product_action', message: `must be an object, got ${describeType(action)}` }]);
    return;
  }
  const name = stringOf(action.action);
  if (name === undefined) {
    reject(result, index, [{ path: 'data.product_action.action', message: 'missing' }]);
    return;
  }
  if (Object.hasOwn(SKIPPED_ACTIONS, name)) {
    result.filtered.push({ index, reason: SKIPPED_ACTIONS[name]! });
    return;
  }
  const event = Object.hasOwn(commerceActions, name) ? commerceActions[name] : undefined;
  if (event === undefined) {
    result.filtered.push({ index, reason: `product action "${name.slice(0, 40)}" has no Personalize event type` });
    return;
  }
  const products = action.products;
  if (products === undefined || products === null || (Array.isArray(products) && products.length === 0)) {
    result.filtered.push({ index, reason: `${name} without products: nothing to record per product` });
    return;
  }
  if (!Array.isArray(products)) {
    reject(result, index, [{ path: 'data.product_action.products', message: `must be an array of products, got ${describeType(products)}` }]);
    return;
  }
  const mapped = mapEvent(ctx.mapping, event, undefined, undefined);
  if (!mapped.ok) {
    reject(result, index, [{ path: 'data.product_action.action', message: mapped.reason }]);
    return;
  }
  const { attribution, fields } = interaction(common, batch, attributes);
  products.forEach((product, j) => {
    const at = `data.product_action.products.${j}`;
    if (!isRecord(product)) {
      reject(result, index, [{ path: at, message: `must be a product object, got ${describeType(product)}` }]);
      return;
    }
    const itemId = idOf(product.id);
    if (itemId === undefined) {
      reject(result, index, [{ path: `${at}.id`, message: 'missing: a product needs its id' }]);
      return;
    }
    accept(
      result,
      index,
      { ...fields, eventId: `${common.eventId}:${j}`, eventType: event, itemId, eventValue: mappedValue(mapped.entry, product) },
      paths(common, batch, { eventType: 'data.product_action.action', itemId: `${at}.id`, eventValue: `${at}.${mapped.entry?.eventValue ?? 'price'}` }, attribution.keys),
    );
  });
}

/** screen_view: an interaction only when custom_attributes name an item; a plain screen says nothing about items. */
function screenView(common: EventCommon, attributes: Record<string, unknown>, batch: Batch, ctx: AdapterContext, result: AdapterResult): void {
  const item = firstId(attributes, ITEM_KEYS);
  if (!item) {
    result.filtered.push({ index: common.index, reason: 'screen_view without an item id in custom_attributes (product_id, item_id, sku or id)' });
    return;
  }
  const mapped = mapEvent(ctx.mapping, SCREEN_EVENT, attributes, undefined);
  if (!mapped.ok) {
    result.filtered.push({ index: common.index, reason: mapped.reason });
    return;
  }
  const { attribution, fields } = interaction(common, batch, attributes);
  accept(
    result,
    common.index,
    { ...fields, eventId: common.eventId, eventType: SCREEN_EVENT, itemId: item.id, eventValue: mappedValue(mapped.entry, attributes) },
    paths(common, batch, { eventType: 'event_type', itemId: `data.custom_attributes.${item.key}` }, attribution.keys),
  );
}

/**
 * user_attributes -> one profile upsert, versioned at the batch's latest event time (else the
 * batch's timestamp, else our receive time: a profile version, not clickstream). mParticle's
 * reserved attributes are `$`-prefixed (`$gender`); the prefix is dropped so they meet a GENDER
 * column, unless the same key is also sent without it.
 */
function userAttributes(clean: Record<string, unknown>, batch: Batch, latest: number | undefined, ctx: AdapterContext, result: AdapterResult): void {
  const raw = clean.user_attributes;
  if (raw === undefined || raw === null) return;
  if (!isRecord(raw)) {
    reject(result, -1, [{ path: 'user_attributes', message: `must be an object, got ${describeType(raw)}` }]);
    return;
  }
  if (Object.keys(raw).length === 0) return;
  if (batch.userId === undefined) {
    result.filtered.push({ index: -1, reason: 'user_attributes without customer_id or mpid: no user to attach them to' });
    return;
  }
  const properties: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    const bare = key.startsWith('$') ? key.slice(1) : key;
    if (bare === '' || !isSafeKey(bare) || (bare !== key && Object.hasOwn(raw, bare))) continue;
    properties[bare] = value;
  }
  const batchTime = parseTime(clean.timestamp_unixtime_ms);
  const timestamp = latest ?? (batchTime?.ok ? batchTime.value : ctx.receivedAt);
  accept(
    result,
    -1,
    { kind: 'user', source: 'mparticle', eventId: `${batch.baseId}:attributes`, timestamp, userId: batch.userId, properties, consent: batch.consent },
    { userId: batch.userIdPath, consent: CONSENT_PATH, properties: 'user_attributes', timestamp: latest !== undefined ? 'events.data.timestamp_unixtime_ms' : 'timestamp_unixtime_ms' },
  );
}
