import { dedupeKey, partitionKeyOf, type CanonicalMessage } from '../../schemas/canonical.js';
import { fromMParticleBatch } from '../adapters/mparticle.js';
import { fromSegmentBatch, fromSegmentMessage } from '../adapters/segment.js';
import { fromItemsFeed, fromUsersFeed } from '../adapters/feeds.js';
import type { AdapterContext, AdapterResult, EventClock, Rejection } from '../adapters/types.js';
import type { EventMapping } from '../event-mapping.js';
import { DEFAULT_TARGET, routeMessage, type RequestOrigin, type Target } from '../targets.js';
import type { PutOutcome, StreamRecord } from '../stream-producer.js';
import { admission, authenticate, type CredentialClass, type Door, type PublicProfileUpdates } from './trust.js';
import { fromPrivacyRequest } from '../adapters/privacy.js';
import type { CollectorSecrets } from './secrets.js';
import type { HttpRequest, HttpResponse } from './http.js';
import { parseJsonExact } from '../json.js';
import { hashPiiValue } from '../pii.js';
import { decodeBody } from './body.js';
import { routeKinds } from './http-contract.js';

/**
 * The front doors: authenticate, decode the source format into canonical messages, validate,
 * put them on the stream, and answer per message. Nothing downstream knows which door a message
 * came through except its `source`.
 */

export type { Door } from './trust.js';

export interface StreamWriter {
  put(records: readonly StreamRecord[]): Promise<PutOutcome>;
}

export interface CollectorSettings {
  /** Whole request body; Segment's tracking API takes up to 500 KB per batch. */
  maxBodyBytes: number;
  /** One canonical message; Segment's tracking API takes up to 32 KB per event. */
  maxMessageBytes: number;
  /** Source messages per request. */
  maxMessages: number;
  /** Canonical messages one source message may expand to (one interaction per product of an order). */
  maxExpandedPerMessage: number;
  /** Stream records per request, after expansion: one request must not flood a shard. */
  maxRecordsPerRequest: number;
  /** How far a tracker's sentAt may run ahead of our clock before its device clock is corrected. */
  clockSkewToleranceMs: number;
  /** Profile updates (identify traits) from public write keys: dropped by default (SECURITY.md). */
  publicProfileUpdates: PublicProfileUpdates;
  mapping: EventMapping;
  /**
   * Several targets (docs/targets.md): each interaction, item and user update becomes one stream
   * record per target its routes take it to, stamped with the target (none for `default`).
   * Identity, consent and deletion messages are about the person: one record, for every target.
   * Unset: one target, nothing stamped.
   */
  targets?: readonly Pick<Target, 'name' | 'routes'>[];
}

/** The stream records one admitted message becomes; empty when routes take it to no target. */
function recordsFor(message: CanonicalMessage, targets: CollectorSettings['targets'], origin: () => RequestOrigin): CanonicalMessage[] {
  if (targets === undefined || (message.kind !== 'interaction' && message.kind !== 'item' && message.kind !== 'user')) return [message];
  return routeMessage(targets, message, origin()).map((name) => (name === DEFAULT_TARGET ? message : { ...message, target: name }));
}

export interface CollectorDeps {
  stream: StreamWriter;
  secrets: () => Promise<CollectorSecrets>;
  settings: CollectorSettings;
}

export interface CollectReport {
  door?: Door;
  /** Which class of credential the request carried (never the credential). */
  credential?: CredentialClass;
  /** Deletion requests taken (audited in the log with the credential class and hashed user ids). */
  deletionsRequested: number;
  /** The users of those requests as keyed hashes (HMAC-SHA256 with the secret's auditHashKey), for the audit line. */
  deletedUserHashes?: string[];
  userHashKeyed?: boolean;
  status: number;
  accepted: number;
  rejected: number;
  filtered: number;
  notStored: number;
}

type SegmentCall = 'track' | 'page' | 'screen' | 'identify' | 'alias' | 'group';

interface Route {
  door: Door;
  /** How the door's event times are read (README "Event time"). */
  clock: EventClock;
  adapt(body: unknown, ctx: AdapterContext): AdapterResult;
  /** Source messages in the body, for the per-request limit (undefined: not countable yet). */
  count(body: unknown): number | undefined;
  /** The source message a canonical message of this index came from, as sent (targets route on it, `in: "sent"`). */
  sent(body: unknown, index: number): unknown;
}

const arrayLength = (value: unknown) => (Array.isArray(value) ? value.length : undefined);
const field = (body: unknown, name: string) =>
  body !== null && typeof body === 'object' && !Array.isArray(body) && Object.hasOwn(body, name) ? (body as Record<string, unknown>)[name] : undefined;
/** Entry `index` of the body's list `name` (a batch's messages, a feed's entries). */
const entryOf = (name: string) => (body: unknown, index: number) => {
  const list = field(body, name);
  return Array.isArray(list) ? (list[index] as unknown) : undefined;
};
/** One message per request: the body is the message. */
const wholeBody = (body: unknown) => body;

const segmentCall = (type: SegmentCall): Route => ({
  door: 'tracker',
  clock: 'device',
  adapt: (body, ctx) => fromSegmentMessage(body, type, ctx),
  count: () => 1,
  sent: wholeBody,
});

/** Segment's webhook posts one message per request; the Actions webhook can batch them. */
function adaptSegmentWebhook(body: unknown, ctx: AdapterContext): AdapterResult {
  if (Array.isArray(body)) return fromSegmentBatch({ batch: body }, ctx);
  if (Array.isArray(field(body, 'batch'))) return fromSegmentBatch(body, ctx);
  return fromSegmentMessage(body, undefined, ctx);
}

const segmentBatch: Route = { door: 'tracker', clock: 'device', adapt: fromSegmentBatch, count: (b) => arrayLength(field(b, 'batch')), sent: entryOf('batch') };

/** What each route name in http-contract.json does. */
const ROUTE_KINDS = {
  batch: segmentBatch,
  // Historical imports carry the times they mean: never corrected.
  import: { ...segmentBatch, clock: 'historical' },
  track: segmentCall('track'),
  page: segmentCall('page'),
  screen: segmentCall('screen'),
  identify: segmentCall('identify'),
  alias: segmentCall('alias'),
  group: segmentCall('group'),
  'segment-webhook': {
    door: 'segment-webhook',
    clock: 'source',
    adapt: adaptSegmentWebhook,
    count: (b) => arrayLength(b) ?? arrayLength(field(b, 'batch')) ?? 1,
    sent: (b, index) => (Array.isArray(b) ? (b[index] as unknown) : Array.isArray(field(b, 'batch')) ? entryOf('batch')(b, index) : b),
  },
  // An mParticle batch's events share its context (application_info, device_info, user_attributes): the batch is what was sent.
  'mparticle-webhook': { door: 'mparticle-webhook', clock: 'source', adapt: fromMParticleBatch, count: (b) => arrayLength(field(b, 'events')), sent: wholeBody },
  'items-feed': { door: 'items-feed', clock: 'source', adapt: fromItemsFeed, count: (b) => arrayLength(field(b, 'items')), sent: entryOf('items') },
  'privacy-delete': { door: 'privacy', clock: 'source', adapt: fromPrivacyRequest, count: (b) => arrayLength(field(b, 'userIds')) ?? 1, sent: wholeBody },
  'users-feed': { door: 'users-feed', clock: 'source', adapt: fromUsersFeed, count: (b) => arrayLength(field(b, 'users')), sent: entryOf('users') },
} satisfies Record<string, Route>;

function routesFromContract(): Record<string, Route> {
  const routes: Record<string, Route> = {};
  for (const [path, kind] of Object.entries(routeKinds)) {
    if (!Object.hasOwn(ROUTE_KINDS, kind)) throw new Error(`http-contract.json: route ${path} names unknown kind "${kind}"`);
    routes[path] = ROUTE_KINDS[kind as keyof typeof ROUTE_KINDS];
  }
  return routes;
}

/** Path -> door; short paths (`/v1/t`, `/v1/b`, ...) are the same doors as the long ones. */
export const ROUTES: Readonly<Record<string, Route>> = routesFromContract();

export const COLLECTOR_PATHS = Object.keys(ROUTES);

function answer(status: number, body: Record<string, unknown>, headers?: Record<string, string>): HttpResponse {
  return headers ? { status, body, headers } : { status, body };
}

const withoutBom = (text: string) => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);

const UNAUTHORIZED = answer(401, { success: false, message: 'missing or invalid credentials' });

/** Drops what the request's credential class may not send: rejected (never allowed) or filtered (a configured choice). */
function byCredential(
  adapted: AdapterResult,
  credential: CredentialClass,
  publicProfileUpdates: PublicProfileUpdates,
): { messages: AdapterResult['messages']; rejections: Rejection[]; filtered: AdapterResult['filtered'] } {
  const messages: AdapterResult['messages'] = [];
  const rejections: Rejection[] = [];
  const filtered: AdapterResult['filtered'] = [];
  for (const m of adapted.messages) {
    const verdict = admission(m.message.kind, credential, publicProfileUpdates);
    if (verdict.ok) messages.push(m);
    else if (verdict.filtered) filtered.push({ index: m.index, reason: verdict.reason });
    else rejections.push({ index: m.index, reason: verdict.reason });
  }
  return { messages, rejections, filtered };
}

/**
 * What a request may put on the stream: a source message that expands past the per-message limit
 * (an order with thousands of products) or pushes the request past its record limit is rejected
 * whole, with the limit, never truncated; an interaction that reuses another interaction's eventId
 * in the same request is rejected (Personalize trains on the first event of an eventId only).
 */
export function admit(
  messages: AdapterResult['messages'],
  limits: Pick<CollectorSettings, 'maxExpandedPerMessage' | 'maxRecordsPerRequest'>,
  /** Stream records a message becomes: one per target it is routed to (docs/targets.md). */
  recordsOf: (adapted: AdapterResult['messages'][number]) => number = () => 1,
): { messages: AdapterResult['messages']; rejections: Rejection[] } {
  const bySource = new Map<number, AdapterResult['messages']>();
  for (const m of messages) {
    const group = bySource.get(m.index);
    if (group) group.push(m);
    else bySource.set(m.index, [m]);
  }
  const out: AdapterResult['messages'] = [];
  const rejections: Rejection[] = [];
  const interactionOwners = new Map<string, { key: string; index: number }>();
  let records = 0;
  for (const [index, group] of bySource) {
    // Batch-level messages (index -1: an mParticle batch's link and profile) are the batch's own.
    if (index >= 0 && group.length > limits.maxExpandedPerMessage) {
      rejections.push({
        index,
        reason: `message expands to ${group.length} interactions (one per product), limit ${limits.maxExpandedPerMessage} per message (COLLECTOR_MAX_EXPANDED_PER_MESSAGE)`,
      });
      continue;
    }
    const groupRecords = group.reduce((n, m) => n + recordsOf(m), 0);
    if (index >= 0 && records + groupRecords > limits.maxRecordsPerRequest) {
      rejections.push({
        index,
        reason: `request expands to more than ${limits.maxRecordsPerRequest} stream records (COLLECTOR_MAX_RECORDS_PER_REQUEST); send this message in another request`,
      });
      continue;
    }
    for (const m of group) {
      if (m.message.kind === 'interaction') {
        const key = dedupeKey(m.message);
        const owner = interactionOwners.get(m.message.eventId);
        if (owner && owner.key !== key) {
          rejections.push({
            index,
            reason: `eventId: already used by message ${owner.index} of this request for another interaction; Personalize trains on the first event of an eventId only`,
          });
          continue;
        }
        interactionOwners.set(m.message.eventId, { key, index });
      }
      out.push(m);
      records += recordsOf(m);
    }
  }
  return { messages: out, rejections };
}

export async function collect(request: HttpRequest, deps: CollectorDeps): Promise<{ response: HttpResponse; report: CollectReport }> {
  const report: CollectReport = { status: 0, accepted: 0, rejected: 0, filtered: 0, notStored: 0, deletionsRequested: 0 };
  const done = (response: HttpResponse) => {
    report.status = response.status;
    return { response, report };
  };
  const route = Object.hasOwn(ROUTES, request.path) ? ROUTES[request.path] : undefined;
  if (!route) return done(answer(404, { success: false, message: `no route ${request.path}` }));
  report.door = route.door;
  if (request.method !== 'POST') return done(answer(405, { success: false, message: 'use POST' }, { allow: 'POST, OPTIONS' }));

  const { settings } = deps;
  if (request.rawBody.length > settings.maxBodyBytes) {
    return done(answer(413, { success: false, message: `request body is ${request.rawBody.length} bytes, limit ${settings.maxBodyBytes}` }));
  }

  // Reject before work: a credential in the headers (or a signature over the raw body) is checked
  // before the body is inflated or parsed. Only the tracker door without an Authorization header
  // (mobile SDKs, beacons) must look inside the body: inflated within the limit, then one bounded
  // scan for "writeKey", not a parse.
  const secrets = await deps.secrets();
  let decoded: ReturnType<typeof decodeBody> | undefined;
  const decode = () => (decoded ??= decodeBody(request.rawBody, request.headers['content-encoding'], settings.maxBodyBytes));
  const authenticated = authenticate(route.door, request.headers, request.rawBody, secrets, () => {
    const d = decode();
    return d.ok ? d.body : undefined;
  });
  if (authenticated === undefined) {
    // A body looked into for its key but not inflatable never showed it: say why rather than 401.
    if (decoded && !decoded.ok) return done(answer(decoded.status, { success: false, message: decoded.message }));
    return done(UNAUTHORIZED);
  }
  const { credential } = authenticated;
  report.credential = credential;
  const inflated = decode();
  if (!inflated.ok) return done(answer(inflated.status, { success: false, message: inflated.message }));

  // JSON whatever the Content-Type says: analytics.js sends text/plain (a CORS-simple type),
  // rudder-sdk-node application/x-www-form-urlencoded.
  let body: { ok: true; value: unknown } | { ok: false; error: string };
  try {
    body = { ok: true, value: parseJsonExact(withoutBom(inflated.body.toString('utf8'))) };
  } catch (error) {
    body = { ok: false, error: (error as Error).message };
  }
  if (!body.ok) return done(answer(400, { success: false, message: `request body is not valid JSON: ${body.error}` }));
  const count = route.count(body.value);
  if (count !== undefined && count > settings.maxMessages) {
    return done(answer(400, { success: false, message: `request carries ${count} messages, limit ${settings.maxMessages} per request` }));
  }

  const adapted = route.adapt(body.value, {
    receivedAt: request.receivedAt,
    mapping: settings.mapping,
    clock: route.clock,
    clockSkewToleranceMs: settings.clockSkewToleranceMs,
  });
  const trusted = byCredential(adapted, credential, settings.publicProfileUpdates);
  const copiesOf = new Map<CanonicalMessage, CanonicalMessage[]>();
  const copies = (message: CanonicalMessage, index: number) => {
    let routed = copiesOf.get(message);
    if (routed === undefined) {
      // Batch-level messages (index -1) were sent as the body itself.
      const origin = (): RequestOrigin => ({ credentialId: authenticated.keyId, sent: index >= 0 ? route.sent(body.value, index) : body.value });
      copiesOf.set(message, (routed = recordsFor(message, settings.targets, origin)));
    }
    return routed;
  };
  const admitted = admit(trusted.messages, settings, (m) => copies(m.message, m.index).length);
  const rejections: Rejection[] = [...adapted.rejections, ...trusted.rejections, ...admitted.rejections];
  const records: StreamRecord[] = [];
  const recordIndex: number[] = [];
  const accepted = new Set<number>();
  let routedNowhere = 0;
  for (const { index, message: admittedMessage } of admitted.messages) {
    const routed = copies(admittedMessage, index);
    if (routed.length === 0) routedNowhere++;
    for (const message of routed) {
      const data = Buffer.from(JSON.stringify(message satisfies CanonicalMessage));
      if (data.length > settings.maxMessageBytes) {
        rejections.push({ index, reason: `message is ${data.length} bytes, limit ${settings.maxMessageBytes} per message` });
        break;
      }
      records.push({ partitionKey: partitionKeyOf(message), data });
      recordIndex.push(index);
    }
  }
  // One rejected part of a source message (e.g. one product of an order) rejects none of the others.
  const rejectedIndexes = new Set(rejections.map((r) => r.index));

  const outcome = records.length > 0 ? await deps.stream.put(records) : { stored: [], failed: [], calls: 0 };
  const notStored = new Set(outcome.failed.map((f) => recordIndex[f.index]!));
  // Batch-level messages (index -1: mParticle links and profile) are not one of the caller's messages.
  for (const i of outcome.stored) if (recordIndex[i]! >= 0) accepted.add(recordIndex[i]!);
  for (const i of notStored) accepted.delete(i);
  report.accepted = accepted.size;
  report.rejected = rejectedIndexes.size;
  report.filtered = adapted.filtered.length + trusted.filtered.length + routedNowhere;
  report.deletionsRequested = admitted.messages.filter((m) => m.message.kind === 'delete').length;
  if (report.deletionsRequested > 0) {
    report.deletedUserHashes = admitted.messages.flatMap((m) => (m.message.kind === 'delete' ? [hashPiiValue(m.message.userId, secrets.auditHashKey ?? 'unkeyed')] : []));
    report.userHashKeyed = secrets.auditHashKey !== undefined;
  }
  report.notStored = notStored.size;

  const rejected = rejections.sort((a, b) => a.index - b.index).map((r) => ({ index: r.index, reason: r.reason, ...(r.errors && { errors: r.errors }) }));
  if (notStored.size > 0) {
    // A 5xx makes trackers retry; stable eventIds make the retried messages recognisable.
    return done(
      answer(
        503,
        { success: false, message: 'some messages could not be stored; retry them', notStored: [...notStored].sort((a, b) => a - b), accepted: accepted.size, rejected },
        { 'retry-after': '1' },
      ),
    );
  }
  const filtered = report.filtered;
  if (rejected.length === 0) return done(answer(200, { success: true, accepted: accepted.size, filtered }));
  if (accepted.size === 0 && filtered === 0) return done(answer(400, { success: false, accepted: 0, rejected }));
  return done(answer(207, { success: false, accepted: accepted.size, filtered, rejected }));
}
