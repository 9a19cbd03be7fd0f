import { seededRandom } from '../../test/support/seeded-random.js';
/**
 * A realistic synthetic day of clickstream, as trackers and back-office feeds would post it to the
 * collector: Segment tracking-API batches (`POST /v1/batch`) per device, catalog feeds
 * (`/v1/items`) and profile feeds (`/v1/users`). Deterministic for a seed, so every run of every
 * measurement sees the same data.
 *
 * Shape:
 * - session lengths are log-normal (many sessions of 1–5 events, a few of hundreds);
 * - session starts follow a daily curve (quiet at night, busy in the evening);
 * - `loginShare` of sessions start anonymous and log in part-way (identify, some alias), a share
 *   belong to a known user from the start, the rest stay anonymous;
 * - items are picked by a Zipf law (a few popular products), users likewise;
 * - some plain page views (no product: the collector filters them), orders of 1–3 products;
 * - catalog and profile updates arrive in periodic feeds, popular ids updated more than once;
 * - `retryShare` of tracker requests are sent twice (a tracker retrying after a timeout): duplicates.
 */

export interface DayOptions {
  sessions: number;
  seed?: number;
  /** UTC midnight the day starts at; default yesterday (the schema refuses far-future times). */
  dayStartMs?: number;
  catalogSize?: number;
  users?: number;
  /** Share of sessions anonymous at first that log in part-way (the issue asks for 20–40%). */
  loginShare?: number;
  /** Share of sessions of a user already logged in. */
  knownShare?: number;
  retryShare?: number;
  /** Tracker batching: at most this many messages, or this long since the first, per request. */
  flushAt?: number;
  flushMs?: number;
  itemFeedEveryMs?: number;
  userFeedEveryMs?: number;
}

export type RequestPath = '/v1/batch' | '/v1/items' | '/v1/users';

export interface TimedRequest {
  /** When the request reaches the collector (epoch ms). */
  at: number;
  path: RequestPath;
  body: Record<string, unknown>;
  /** Source messages in the body. */
  messages: number;
  retry: boolean;
}

export interface DayStats {
  sessions: number;
  loginSessions: number;
  knownSessions: number;
  anonymousSessions: number;
  trackerMessages: number;
  itemUpdates: number;
  userUpdates: number;
  retriedRequests: number;
  longestSession: number;
}

export interface SyntheticDay {
  dayStartMs: number;
  requests: TimedRequest[];
  stats: DayStats;
}

const DAY_MS = 86_400_000;

/** Samples 0..n-1 with probability ∝ 1/(rank+1)^s. */
function zipf(n: number, s: number, random: () => number): () => number {
  const cdf = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    total += 1 / (i + 1) ** s;
    cdf[i] = total;
  }
  return () => {
    const x = random() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

function gaussian(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

function hex(random: () => number, length: number): string {
  let out = '';
  while (out.length < length) out += Math.floor(random() * 0x100000000).toString(16).padStart(8, '0');
  return out.slice(0, length);
}

function uuid(random: () => number): string {
  const h = hex(random, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const CATEGORIES = ['shoes', 'shirts', 'outerwear', 'accessories', 'bags', 'sportswear', 'kids', 'home'];
const BRANDS = ['acme', 'northwind', 'contoso', 'fabrikam', 'tailspin', 'wingtip'];
const COUNTRIES = ['US', 'GB', 'DE', 'FR', 'JP', 'BR', 'IN'];
const MEMBERSHIP = ['free', 'silver', 'gold'];
const DEVICES = [
  { library: { name: 'analytics.js', version: '2.11.1' }, userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36' },
  { library: { name: 'analytics-ios', version: '4.1.8' }, device: { type: 'ios', model: 'iPhone15,2' }, os: { name: 'iOS', version: '17.5' } },
  { library: { name: 'analytics-android', version: '4.11.3' }, device: { type: 'android', model: 'Pixel 8' }, os: { name: 'Android', version: '14' } },
];

const pick = <T>(list: readonly T[], random: () => number): T => list[Math.floor(random() * list.length)]!;

export function yesterdayUtc(now = Date.now()): number {
  return Math.floor(now / DAY_MS) * DAY_MS - DAY_MS;
}

export function generateDay(options: DayOptions): SyntheticDay {
  const random = seededRandom(options.seed ?? 20_240_601);
  const dayStartMs = options.dayStartMs ?? yesterdayUtc();
  const catalogSize = options.catalogSize ?? 5_000;
  const userCount = options.users ?? Math.max(50, Math.round(options.sessions * 0.6));
  const loginShare = options.loginShare ?? 0.3;
  const knownShare = options.knownShare ?? 0.4;
  const retryShare = options.retryShare ?? 0.015;
  const flushAt = options.flushAt ?? 20;
  const flushMs = options.flushMs ?? 10_000;
  const itemOf = zipf(catalogSize, 1.05, random);
  const userOf = zipf(userCount, 0.9, random);
  // Feeds scale with the day's traffic, so a small (quick) day keeps the full day's mix.
  const feedScale = Math.min(1, options.sessions / 12_000);
  const itemId = (i: number) => `sku-${String(i).padStart(5, '0')}`;
  const userId = (i: number) => `user-${String(i).padStart(6, '0')}`;

  const stats: DayStats = {
    sessions: options.sessions,
    loginSessions: 0,
    knownSessions: 0,
    anonymousSessions: 0,
    trackerMessages: 0,
    itemUpdates: 0,
    userUpdates: 0,
    retriedRequests: 0,
    longestSession: 0,
  };
  const requests: TimedRequest[] = [];

  // Evening peak (UTC 19–21), trough before dawn: accept a uniform time with the curve's probability.
  const sessionStart = () => {
    for (;;) {
      const t = random();
      const weight = 0.25 + 0.75 * (0.5 - 0.5 * Math.cos(2 * Math.PI * (t - 0.35)));
      if (random() < weight) return dayStartMs + Math.floor(t * DAY_MS);
    }
  };

  const traits = () => ({ membershipType: pick(MEMBERSHIP, random), country: pick(COUNTRIES, random), email_opt_in: random() < 0.5 });

  for (let s = 0; s < options.sessions; s++) {
    const length = Math.min(400, Math.max(1, Math.ceil(Math.exp(1.4 + 1.1 * gaussian(random)))));
    stats.longestSession = Math.max(stats.longestSession, length);
    const roll = random();
    const type = roll < loginShare ? 'login' : roll < loginShare + knownShare ? 'known' : 'anonymous';
    if (type === 'login') stats.loginSessions++;
    else if (type === 'known') stats.knownSessions++;
    else stats.anonymousSessions++;
    const anonymousId = uuid(random);
    const user = userId(userOf());
    const context = { ...pick(DEVICES, random), ip: `203.0.113.${Math.floor(random() * 254) + 1}`, locale: 'en-US' };
    const loginAt = type === 'login' ? Math.floor(random() * length) : -1;

    let t = sessionStart();
    const messages: { at: number; message: Record<string, unknown> }[] = [];
    const push = (message: Record<string, unknown>) => {
      messages.push({ at: t, message: { messageId: uuid(random), timestamp: new Date(t).toISOString(), anonymousId, context, ...message } });
    };
    if (type === 'known' && random() < 0.1) push({ type: 'identify', userId: user, ...(random() < 0.3 && { traits: traits() }) });
    for (let e = 0; e < length; e++) {
      if (e === loginAt) {
        if (random() < 0.15) push({ type: 'alias', previousId: anonymousId, userId: user });
        else push({ type: 'identify', userId: user, ...(random() < 0.5 && { traits: traits() }) });
        t += 1_000 + Math.floor(random() * 3_000);
      }
      const identified = type === 'known' || (type === 'login' && e >= loginAt);
      const who = identified ? { userId: user } : {};
      const product = itemId(itemOf());
      const price = Math.round((5 + random() * 195) * 100) / 100;
      const kind = random();
      if (kind < 0.6) push({ type: 'track', event: 'Product Viewed', ...who, properties: { product_id: product, name: `Product ${product}`, price, category: pick(CATEGORIES, random) } });
      else if (kind < 0.7) push({ type: 'track', event: 'Product Clicked', ...who, properties: { product_id: product, position: 1 + Math.floor(random() * 20) } });
      else if (kind < 0.78) push({ type: 'track', event: 'Product Added', ...who, properties: { product_id: product, price, quantity: 1, ...(random() < 0.2 && { discount: 'coupon' }) } });
      else if (kind < 0.8) push({ type: 'track', event: 'Product Added to Wishlist', ...who, properties: { product_id: product } });
      else if (kind < 0.9) push({ type: 'page', name: 'Product', ...who, properties: { product_id: product, path: `/p/${product}`, title: `Product ${product}` } });
      else if (kind < 0.97) push({ type: 'page', name: 'Category', ...who, properties: { path: `/c/${pick(CATEGORIES, random)}`, title: 'Category' } });
      else {
        const products = Array.from({ length: 1 + Math.floor(random() * 3) }, () => ({ product_id: itemId(itemOf()), price, quantity: 1 }));
        push({ type: 'track', event: 'Order Completed', ...who, properties: { order_id: `o-${hex(random, 10)}`, total: price * products.length, currency: 'USD', products } });
      }
      // Think time between events: mostly seconds, sometimes minutes.
      t += 1_000 + Math.floor(-Math.log(Math.max(random(), 1e-9)) * 25_000);
    }
    stats.trackerMessages += messages.length;

    // The tracker flushes every flushAt messages or flushMs after the first unsent one.
    for (let i = 0; i < messages.length; ) {
      let j = i + 1;
      while (j < messages.length && j - i < flushAt && messages[j]!.at - messages[i]!.at <= flushMs) j++;
      const group = messages.slice(i, j);
      const at = group[group.length - 1]!.at + 100 + Math.floor(random() * 400);
      const body = { batch: group.map((g) => g.message) };
      requests.push({ at, path: '/v1/batch', body, messages: group.length, retry: false });
      if (random() < retryShare) {
        stats.retriedRequests++;
        requests.push({ at: at + 2_000 + Math.floor(random() * 8_000), path: '/v1/batch', body, messages: group.length, retry: true });
      }
      i = j;
    }
  }

  // Catalog feed every few minutes: popular items change more often (price, stock).
  const itemEvery = options.itemFeedEveryMs ?? 10 * 60_000;
  for (let at = dayStartMs + itemEvery; at < dayStartMs + DAY_MS; at += itemEvery) {
    const n = Math.max(1, Math.round((5 + random() ** 2 * 60) * feedScale));
    const items = Array.from({ length: n }, (_, k) => {
      const i = itemOf();
      return {
        itemId: itemId(i),
        timestamp: at - 1_000 + k,
        properties: {
          category_l1: CATEGORIES[i % CATEGORIES.length],
          category_l2: `${CATEGORIES[i % CATEGORIES.length]}-${i % 7}`,
          price: Math.round((5 + random() * 195) * 100) / 100,
          brand: BRANDS[i % BRANDS.length],
          in_stock: random() < 0.9,
          creation_timestamp: dayStartMs - (i + 1) * 3_600_000,
          description: `A ${BRANDS[i % BRANDS.length]} product in ${CATEGORIES[i % CATEGORIES.length]}, item ${i}.`,
        },
      };
    });
    stats.itemUpdates += n;
    requests.push({ at, path: '/v1/items', body: { items }, messages: n, retry: false });
  }
  const userEvery = options.userFeedEveryMs ?? 30 * 60_000;
  for (let at = dayStartMs + userEvery; at < dayStartMs + DAY_MS; at += userEvery) {
    const n = Math.max(1, Math.round((3 + random() ** 2 * 40) * feedScale));
    const users = Array.from({ length: n }, (_, k) => ({ userId: userId(userOf()), timestamp: at - 1_000 + k, properties: traits() }));
    stats.userUpdates += n;
    requests.push({ at, path: '/v1/users', body: { users }, messages: n, retry: false });
  }

  requests.sort((a, b) => a.at - b.at);
  return { dayStartMs, requests, stats };
}
