import { contentEventId } from '../event-id.js';
import type { FieldError } from '../field-errors.js';
import {
  accept,
  describeType,
  emptyResult,
  guarded,
  idOf,
  isRecord,
  parseTime,
  reject,
  sanitize,
  type AdapterContext,
  type AdapterResult,
} from './types.js';

/**
 * Catalog and profile feeds from the back office: `POST /v1/items` `{items: [{itemId, properties,
 * timestamp?, eventId?}]}` and `POST /v1/users` `{users: [{userId, properties, timestamp?, eventId?}]}`.
 * Each entry is an upsert; the processor keeps the latest `timestamp` per id (canonical schema).
 *
 * `timestamp` (epoch ms or ISO-8601) is when this version of the record was produced. When the
 * back office gives none, the receive time is that version time: a catalog or profile update is
 * not clickstream, and "as of when we got it" orders successive updates correctly.
 */

interface Feed {
  list: 'items' | 'users';
  idKey: 'itemId' | 'userId';
  kind: 'item' | 'user';
}

export function fromItemsFeed(body: unknown, ctx: AdapterContext): AdapterResult {
  return fromFeed(body, ctx, { list: 'items', idKey: 'itemId', kind: 'item' });
}

export function fromUsersFeed(body: unknown, ctx: AdapterContext): AdapterResult {
  return fromFeed(body, ctx, { list: 'users', idKey: 'userId', kind: 'user' });
}

function fromFeed(body: unknown, ctx: AdapterContext, feed: Feed): AdapterResult {
  return guarded(() => {
    const result = emptyResult();
    const clean = sanitize(body);
    if (!isRecord(clean)) {
      result.rejections.push({ index: -1, reason: `request body must be a JSON object with an "${feed.list}" array, got ${describeType(clean)}` });
      return result;
    }
    const entries = clean[feed.list];
    if (!Array.isArray(entries)) {
      reject(result, -1, [{ path: feed.list, message: `must be an array, got ${describeType(entries)}` }]);
      return result;
    }
    entries.forEach((entry, index) => convertEntry(entry, index, feed, ctx, result));
    return result;
  });
}

function convertEntry(entry: unknown, index: number, feed: Feed, ctx: AdapterContext, result: AdapterResult): void {
  if (!isRecord(entry)) {
    reject(result, index, [{ path: '(entry)', message: `must be a JSON object, got ${describeType(entry)}` }]);
    return;
  }
  const errors: FieldError[] = [];
  const id = idOf(entry[feed.idKey]);
  if (id === undefined) errors.push({ path: feed.idKey, message: 'missing: a string or number id is required' });
  const rawProperties = entry.properties ?? {};
  if (!isRecord(rawProperties)) errors.push({ path: 'properties', message: `must be an object, got ${describeType(rawProperties)}` });
  const time = parseTime(entry.timestamp);
  if (time !== undefined && !time.ok) errors.push({ path: 'timestamp', message: time.message });
  if (errors.length > 0 || id === undefined || !isRecord(rawProperties) || (time !== undefined && !time.ok)) {
    reject(result, index, errors);
    return;
  }
  const candidate = {
    kind: feed.kind,
    source: 'feed',
    [feed.idKey]: id,
    timestamp: time?.value ?? ctx.receivedAt,
    properties: rawProperties,
  };
  // Default id: a hash of the record version (content and version time), so a resend of the same
  // version is recognised while a later update, even back to earlier content, is a new event.
  const eventId = idOf(entry.eventId) ?? contentEventId(candidate);
  accept(result, index, { ...candidate, eventId });
}
