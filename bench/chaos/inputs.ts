import { seededRandom } from '../../test/support/seeded-random.js';
import { segmentSignature } from '../../shared/collect/auth.js';

/**
 * The chaos run's inputs, generated from a seed: HTTP requests for every front door, the ledger of
 * what each canonical eventId must become, and a few raw records for the stream itself. Pure: no
 * I/O, same seed -> same requests.
 */

export type DoorName = 'tracker-batch' | 'track' | 'segment-webhook' | 'mparticle' | 'items-feed' | 'users-feed' | 'raw-producer';

/** What must become of one canonical eventId (or one raw record). */
export type Expectation =
  /** archived, and received by Personalize (PutEvents by eventId; PutItems/PutUsers by item/user id) */
  | 'deliver'
  /** an item/user update whose merged record still misses a required field: archived, held, never sent, no DLQ */
  | 'held'
  /** an identity link: archived (identity table), never sent to Personalize */
  | 'link'
  /** archived, then refused by Personalize (rejectEvent hook): DLQ stage personalize */
  | 'personalize-reject'
  /** passes the door, refused by the processor's pre-flight: DLQ stage preflight */
  | 'preflight'
  /** refused at the door with a reason (per message or for the whole request) */
  | 'door'
  /** a raw record that cannot be decoded or validated: DLQ stage decode/validate */
  | 'decode';

export interface LedgerEntry {
  id: string;
  door: DoorName;
  kind: 'interaction' | 'item' | 'user' | 'identify' | 'raw';
  expect: Expectation;
  /** The invalid variant (for the table), e.g. "bad timestamp". */
  variant?: string;
  /** PutItems/PutUsers are keyed by item/user id, not eventId. */
  personalizeKey?: string;
  /** Raw records: how the DLQ payload may show them (utf8 text or base64 bytes). */
  payloadKeys?: string[];
}

export interface OutgoingRequest {
  seq: number;
  door: DoorName;
  path: string;
  headers: Record<string, string>;
  body: string;
  /** Canonical ids per source-message index of the body (for per-message rejections). */
  idsByIndex: string[][];
  /** A resend of an earlier request (same bytes, same ids). */
  duplicateOf?: number;
  /** Expected request-level answer, when the whole request is invalid. */
  requestLevel?: 'malformed' | 'too-large';
}

export interface RawRecord {
  partitionKey: string;
  data: Buffer;
  id: string;
}

export interface Credentials {
  trackerWriteKey: string;
  segmentSharedSecret: string;
  mparticleAuthorization: string;
  feedApiKey: string;
}

export interface InputOptions {
  /** Source messages sent through the doors. */
  events: number;
  seed: number;
  invalidRate: number;
  duplicateRate: number;
  /** Share of valid tracker interactions the Personalize endpoint refuses (at least one). */
  personalizeRejectRate: number;
  trackerBatchSize: number;
  rawRecords: number;
  /** Event times are spread over the hour before this. */
  now: number;
  credentials: Credentials;
}

export interface Inputs {
  requests: OutgoingRequest[];
  ledger: Map<string, LedgerEntry>;
  /** eventIds the Personalize endpoint must refuse. */
  personalizeRejects: Set<string>;
  /** Raw records put straight on the stream (a misbehaving producer), KPL ones truncated. */
  raw: RawRecord[];
  /** Raw records that a KPL aggregate of valid records was cut from: built by the caller (needs the aggregator). */
  kplSources: { id: string; records: { partitionKey: string; data: Buffer }[]; cutAt: number }[];
  sourceMessages: Record<DoorName, number>;
  /** PII the generator put into traits (the data-protection checks look for it downstream). */
  piiValues: string[];
}

const basic = (user: string) => `Basic ${Buffer.from(`${user}:`).toString('base64')}`;

/** Per-message invalid variants per door, with what the door should say. */
const TRACKER_VARIANTS = ['missing ids', 'bad timestamp', 'epoch seconds', 'future timestamp', 'wrong type', 'oversized', 'unknown type'] as const;
type TrackerVariant = (typeof TRACKER_VARIANTS)[number];

/** Request-level invalid tracker batches: every 200th batch, from the 8th and 12th on (the small run hits both). */
const MALFORMED_EVERY = 200;
const MALFORMED_AT = 7;
const TOO_LARGE_AT = 11;

export function generateInputs(options: InputOptions): Inputs {
  const random = seededRandom(options.seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const int = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
  const ledger = new Map<string, LedgerEntry>();
  const requests: OutgoingRequest[] = [];
  const personalizeRejects = new Set<string>();
  const piiValues: string[] = [];
  const sourceMessages: Record<DoorName, number> = {
    'tracker-batch': 0,
    track: 0,
    'segment-webhook': 0,
    mparticle: 0,
    'items-feed': 0,
    'users-feed': 0,
    'raw-producer': 0,
  };
  const prefix = `c${options.seed}`;
  const { credentials } = options;
  let clock = options.now - 3_600_000;
  const nextTime = () => (clock += int(1, 30));
  const iso = (ms: number) => new Date(ms).toISOString();
  const add = (entry: LedgerEntry) => {
    if (ledger.has(entry.id)) throw new Error(`generator produced ${entry.id} twice`);
    ledger.set(entry.id, entry);
  };

  // Door shares of the source messages.
  const total = options.events;
  const counts = {
    track: Math.max(1, Math.round(total * 0.01)),
    webhook: Math.max(1, Math.round(total * 0.01)),
    mparticle: Math.max(1, Math.round(total * 0.05)),
    items: Math.max(1, Math.round(total * 0.03)),
    users: Math.max(1, Math.round(total * 0.01)),
  };
  const trackerCount = total - counts.track - counts.webhook - counts.mparticle - counts.items - counts.users;

  // Sessions emit runs of events, so one Kinesis batch holds several events per session (as real traffic does).
  let sessionNo = 0;
  let userNo = 0;
  let session = { id: '', userId: undefined as string | undefined, left: 0, identifyAt: -1 };
  const nextSession = () => {
    sessionNo++;
    const left = int(3, 15);
    const loggedIn = random() < 0.3;
    // Some anonymous sessions log in halfway: the identify links the session and carries traits.
    const identifyAt = !loggedIn && random() < 0.15 ? Math.floor(left / 2) : -1;
    session = { id: `${prefix}-anon-${sessionNo}`, userId: loggedIn ? `${prefix}-user-${++userNo}` : undefined, left, identifyAt };
  };

  let validInteractions = 0;
  const rejectEvery = Math.max(1, Math.round(1 / options.personalizeRejectRate));
  /** A valid tracker interaction: deliver, or (one in rejectEvery) refused by Personalize. */
  const interactionExpectation = (id: string): Expectation => {
    validInteractions++;
    if (validInteractions % rejectEvery === Math.min(rejectEvery - 1, 500) % rejectEvery) {
      personalizeRejects.add(id);
      return 'personalize-reject';
    }
    return 'deliver';
  };

  /** One Segment message (tracker or webhook); returns it with its canonical ids (ledger filled). */
  const segmentMessage = (door: DoorName, n: number, invalid: boolean): { message: Record<string, unknown>; ids: string[] } => {
    if (session.left <= 0) nextSession();
    session.left--;
    const messageId = `${prefix}-${door}-${n}`;
    const time = nextTime();
    const product = `sku-${int(1, 5000)}`;
    const ids = session.userId !== undefined ? { userId: session.userId, anonymousId: session.id } : { anonymousId: session.id };
    if (session.left === session.identifyAt && !invalid && door === 'tracker-batch') {
      const userId = `${prefix}-user-${++userNo}`;
      session.userId = userId;
      const email = `${userId}@example.com`;
      piiValues.push(email);
      add({ id: messageId, door, kind: 'identify', expect: 'link' });
      add({ id: `${messageId}:traits`, door, kind: 'user', expect: 'deliver', personalizeKey: userId });
      return {
        message: { type: 'identify', messageId, anonymousId: session.id, userId, timestamp: iso(time), traits: { membershipType: pick(['gold', 'silver', 'bronze']), email, firstName: 'Chaos' } },
        ids: [messageId, `${messageId}:traits`],
      };
    }
    const message: Record<string, unknown> = {
      type: 'track',
      messageId,
      ...ids,
      event: pick(['Product Viewed', 'Product Viewed', 'Product Clicked', 'Product Added']),
      timestamp: iso(time),
      properties: { product_id: product, price: int(1, 200) },
      context: { library: { name: 'analytics.js' } },
    };
    if (door === 'segment-webhook') Object.assign(message, { receivedAt: iso(time + 50), sentAt: iso(time + 20), originalTimestamp: iso(time) });
    if (!invalid) {
      add({ id: messageId, door, kind: 'interaction', expect: interactionExpectation(messageId) });
      return { message, ids: [messageId] };
    }
    const variant: TrackerVariant = pick(TRACKER_VARIANTS);
    switch (variant) {
      case 'missing ids':
        delete message.anonymousId;
        delete message.userId;
        break;
      case 'bad timestamp':
        message.timestamp = pick(['yesterday', '2024-02-31T10:00:00Z', '', '12:00']);
        if (message.timestamp === '') {
          // Missing altogether: no time field to fall back on either.
          delete message.timestamp;
          delete message.originalTimestamp;
        }
        break;
      case 'epoch seconds':
        message.timestamp = Math.floor(time / 1000);
        break;
      case 'future timestamp':
        message.timestamp = iso(options.now + 3 * 86_400_000);
        break;
      case 'wrong type':
        if (random() < 0.5) message.properties = 'product_id=sku-1';
        else message.event = 42;
        break;
      case 'oversized':
        message.properties = { product_id: product, note: 'x'.repeat(40_000) };
        break;
      case 'unknown type':
        message.type = 'purchase';
        break;
    }
    add({ id: messageId, door, kind: 'interaction', expect: 'door', variant });
    return { message, ids: [messageId] };
  };

  let seq = 0;
  const push = (request: Omit<OutgoingRequest, 'seq'>) => requests.push({ seq: seq++, ...request });

  // Tracker batches (/v1/batch, /v1/import), ~trackerBatchSize messages each.
  let made = 0;
  let batchNo = 0;
  while (made < trackerCount) {
    const size = Math.min(trackerCount - made, int(Math.ceil(options.trackerBatchSize * 0.5), Math.ceil(options.trackerBatchSize * 1.5)));
    const level = batchNo % MALFORMED_EVERY === MALFORMED_AT ? 'malformed' : batchNo % MALFORMED_EVERY === TOO_LARGE_AT ? 'too-large' : undefined;
    const messages: Record<string, unknown>[] = [];
    const idsByIndex: string[][] = [];
    for (let i = 0; i < size; i++) {
      const invalid = level === undefined && random() < options.invalidRate;
      const { message, ids } = segmentMessage('tracker-batch', made + i, invalid);
      messages.push(message);
      idsByIndex.push(ids);
    }
    if (level !== undefined) {
      // The whole request is refused: its messages are door rejections, whatever they were.
      for (const ids of idsByIndex) {
        for (const id of ids) {
          const entry = ledger.get(id)!;
          personalizeRejects.delete(id);
          ledger.set(id, { id, door: entry.door, kind: entry.kind, expect: 'door', variant: level === 'malformed' ? 'truncated JSON body' : 'body over the size limit' });
        }
      }
      if (level === 'too-large') messages.push({ type: 'track', padding: 'p'.repeat(520_000) });
    }
    const beacon = random() < 0.1;
    const payload = { batch: messages, sentAt: iso(clock + 100), context: { library: { name: 'analytics-node' } }, ...(beacon && { writeKey: credentials.trackerWriteKey }) };
    let body = JSON.stringify(payload);
    if (level === 'malformed') body = body.slice(0, Math.floor(body.length / 2));
    push({
      door: 'tracker-batch',
      path: random() < 0.9 ? '/v1/batch' : '/v1/import',
      headers: beacon ? {} : { authorization: basic(credentials.trackerWriteKey) },
      body,
      idsByIndex,
      ...(level !== undefined && { requestLevel: level }),
    });
    sourceMessages['tracker-batch'] += size;
    made += size;
    batchNo++;
  }

  // Single calls (/v1/track) and the Segment webhook (one signed message per request).
  for (let n = 0; n < counts.track; n++) {
    const { message, ids } = segmentMessage('track', n, random() < options.invalidRate);
    // The route names the call; an invalid "type" stays in the body.
    if (message.type === 'track') delete message.type;
    push({ door: 'track', path: '/v1/track', headers: { authorization: basic(credentials.trackerWriteKey) }, body: JSON.stringify(message), idsByIndex: [ids] });
    sourceMessages.track++;
  }
  for (let n = 0; n < counts.webhook; n++) {
    const { message, ids } = segmentMessage('segment-webhook', n, random() < options.invalidRate);
    const body = JSON.stringify(message);
    push({ door: 'segment-webhook', path: '/v1/webhooks/segment', headers: { 'x-signature': segmentSignature(body, credentials.segmentSharedSecret) }, body, idsByIndex: [ids] });
    sourceMessages['segment-webhook']++;
  }

  // mParticle batches: one user and session per batch; the batch's identity link is a derived message.
  let mpMade = 0;
  let mpBatch = 0;
  while (mpMade < counts.mparticle) {
    const size = Math.min(counts.mparticle - mpMade, int(10, 40));
    const batchId = 9_000_000 + options.seed * 100_000 + mpBatch;
    const sessionId = `${prefix}-mp-session-${mpBatch}`;
    const customerId = `${prefix}-mp-user-${mpBatch}`;
    const events: Record<string, unknown>[] = [];
    const idsByIndex: string[][] = [];
    for (let i = 0; i < size; i++) {
      const id = `${prefix}-mp-${mpMade + i}`;
      const data: Record<string, unknown> = {
        event_name: pick(['Product Viewed', 'Product Clicked']),
        source_message_id: id,
        session_uuid: sessionId,
        timestamp_unixtime_ms: nextTime(),
        custom_attributes: { product_id: `sku-${int(1, 5000)}` },
      };
      // The first event stays valid, so the batch's link always has a time.
      if (i > 0 && random() < options.invalidRate) {
        const variant = pick(['missing event name', 'bad timestamp', 'attributes not an object'] as const);
        if (variant === 'missing event name') delete data.event_name;
        else if (variant === 'bad timestamp') data.timestamp_unixtime_ms = pick(['soon', -5, 1_700_000_000]);
        else data.custom_attributes = ['product_id', 'sku-1'];
        add({ id, door: 'mparticle', kind: 'interaction', expect: 'door', variant });
      } else {
        add({ id, door: 'mparticle', kind: 'interaction', expect: interactionExpectation(id) });
      }
      events.push({ event_type: 'custom_event', data });
      idsByIndex.push([id]);
    }
    add({ id: `${batchId}:identify:${sessionId}`, door: 'mparticle', kind: 'identify', expect: 'link' });
    const body = JSON.stringify({
      batch_id: batchId,
      mpid: 700_000 + mpBatch,
      environment: 'production',
      schema_version: 2,
      user_identities: [{ identity_type: 'customer_id', identity: customerId, timestamp_unixtime_ms: clock }],
      device_info: { platform: pick(['iOS', 'Android']) },
      events,
      timestamp_unixtime_ms: clock + 500,
    });
    push({ door: 'mparticle', path: '/v1/webhooks/mparticle', headers: { authorization: credentials.mparticleAuthorization }, body, idsByIndex });
    sourceMessages.mparticle += size;
    mpMade += size;
    mpBatch++;
  }

  // Catalog and profile feeds, 50 per request. Some entries fail at the door, some in pre-flight, and
  // some are partial updates of a new id (a required field missing) that the processor holds.
  const feed = (door: 'items-feed' | 'users-feed', count: number) => {
    const isItems = door === 'items-feed';
    let done = 0;
    while (done < count) {
      const size = Math.min(count - done, 50);
      const entries: Record<string, unknown>[] = [];
      const idsByIndex: string[][] = [];
      for (let i = 0; i < size; i++) {
        const n = done + i;
        const key = `${prefix}-${isItems ? 'item' : 'profile'}-${n}`;
        const eventId = `${key}-v1`;
        const properties: Record<string, unknown> = isItems
          ? { categoryL1: pick(['shoes', 'bags', 'hats']), price: int(5, 500), creationTimestamp: options.now - 86_400_000 * int(1, 300), brand: 'acme' }
          : { membershipType: pick(['gold', 'silver']), country: 'FR' };
        const entry: Record<string, unknown> = { eventId, [isItems ? 'itemId' : 'userId']: key, timestamp: nextTime(), properties };
        let expect: Expectation = 'deliver';
        let variant: string | undefined;
        // Entries 3 and 4 of each feed always carry a wrong-typed required field and miss one, so even a
        // short run dead-letters one in pre-flight and holds one.
        if (n === 3 || n === 4 || random() < options.invalidRate) {
          variant =
            n === 3
              ? 'wrong type of a required field'
              : n === 4
                ? 'missing required field'
                : pick(isItems ? ['missing id', 'properties not an object', 'missing required field', 'wrong type of a required field'] : ['missing id', 'bad timestamp', 'missing required field', 'wrong type of a required field']);
          if (variant === 'missing id') delete entry[isItems ? 'itemId' : 'userId'];
          else if (variant === 'properties not an object') entry.properties = 'shoes';
          else if (variant === 'bad timestamp') entry.timestamp = 'last tuesday';
          else if (variant === 'missing required field') delete properties[isItems ? 'categoryL1' : 'membershipType'];
          // A flat value the column cannot take: an object under a column name never gets this far
          // (PII_MODE=allow removes it before the archive, so the update would be held, not refused).
          else properties[isItems ? 'price' : 'membershipType'] = isItems ? 'cheap' : 'gold'.repeat(300);
          expect = variant === 'missing required field' ? 'held' : variant === 'wrong type of a required field' ? 'preflight' : 'door';
        }
        add({ id: eventId, door, kind: isItems ? 'item' : 'user', expect, ...(variant !== undefined && { variant }), personalizeKey: key });
        entries.push(entry);
        idsByIndex.push([eventId]);
      }
      const headers: Record<string, string> = random() < 0.5 ? { authorization: `Bearer ${credentials.feedApiKey}` } : { 'x-api-key': credentials.feedApiKey };
      push({ door, path: isItems ? '/v1/items' : '/v1/users', headers, body: JSON.stringify({ [isItems ? 'items' : 'users']: entries }), idsByIndex });
      sourceMessages[door] += size;
      done += size;
    }
  };
  feed('items-feed', counts.items);
  feed('users-feed', counts.users);

  // Interleave the doors (a real day mixes them), then add duplicate deliveries later in the order.
  for (let i = requests.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [requests[i], requests[j]] = [requests[j]!, requests[i]!];
  }
  const ordered: OutgoingRequest[] = [];
  const later: { at: number; request: OutgoingRequest }[] = [];
  requests.forEach((request, position) => {
    ordered.push(request);
    if (random() < options.duplicateRate) later.push({ at: position + int(3, 60), request: { ...request, seq: seq++, duplicateOf: request.seq } });
    for (let k = later.length - 1; k >= 0; k--) {
      if (later[k]!.at <= position) {
        ordered.push(later[k]!.request);
        later.splice(k, 1);
      }
    }
  });
  ordered.push(...later.map((l) => l.request));

  // A misbehaving producer writing straight to the stream: the processor's decoder must catch it.
  const raw: RawRecord[] = [];
  const kplSources: Inputs['kplSources'] = [];
  for (let n = 0; n < options.rawRecords; n++) {
    const id = `${prefix}-raw-${n}`;
    const variant = n % 5;
    const partitionKey = `${prefix}-raw-pk-${n}`;
    if (variant === 4) {
      // A KPL aggregate of three valid records, cut short: the caller aggregates (it needs the KPL library).
      const records = [0, 1, 2].map((k) => ({
        partitionKey,
        data: Buffer.from(JSON.stringify({ kind: 'interaction', eventId: `${id}-kpl-${k}`, sessionId: partitionKey, eventType: 'View', itemId: 'sku-1', timestamp: nextTime() })),
      }));
      kplSources.push({ id, records, cutAt: 0.3 + random() * 0.6 });
      add({ id, door: 'raw-producer', kind: 'raw', expect: 'decode', variant: 'truncated KPL aggregate' });
      continue;
    }
    const data =
      variant === 0
        ? Buffer.from(`{"kind":"interaction","eventId":"${id}", truncated`)
        : variant === 1
          ? Buffer.from([0xff, 0xfe, 0x00, 0x41, 0xc3, 0x28, n & 0xff])
          : variant === 2
            ? Buffer.from(JSON.stringify({ kind: 'interaction', eventId: id, sessionId: 'undefined', eventType: 'View', timestamp: nextTime() }))
            : Buffer.from(JSON.stringify([{ kind: 'interaction', eventId: id }]));
    const variantName = ['not JSON', 'not UTF-8', 'invalid session id', 'JSON array'][variant]!;
    raw.push({ partitionKey, data, id });
    add({ id, door: 'raw-producer', kind: 'raw', expect: 'decode', variant: variantName, payloadKeys: payloadKeys(data) });
  }
  sourceMessages['raw-producer'] = options.rawRecords;
  return { requests: ordered, ledger, personalizeRejects, raw, kplSources, sourceMessages, piiValues };
}

/** How a DLQ record may carry these bytes: as UTF-8 text when they are text, else base64. */
export function payloadKeys(data: Buffer): string[] {
  const keys = [data.toString('base64')];
  try {
    keys.push(new TextDecoder('utf-8', { fatal: true }).decode(data));
  } catch {
    // not text: base64 only
  }
  return keys;
}
