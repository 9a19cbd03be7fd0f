import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { build } from 'esbuild';
import puppeteer, { type Browser, type BrowserContext, type CDPSession, type Page, type Protocol } from 'puppeteer-core';

/**
 * Harness for driving real browser tracking SDKs against the local stack: a headless Chromium,
 * the SDKs bundled from node_modules with esbuild (no CDN), a page server on its own origin (so the
 * collector is cross-origin and CORS preflights really happen), and a network log read from the
 * DevTools protocol (preflights, headers, bodies, CORS errors) to state what the SDKs actually sent.
 */

export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Starts Chromium; throws (never skips) when it is not installed. */
export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`Chromium is required for the browser tracker tests and is not installed at ${CHROMIUM_PATH} (apt-get install chromium)`);
  }
  return puppeteer.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    timeout: 20_000,
    args: [
      '--no-sandbox',
      '--headless=new',
      // Only 127.0.0.1 resolves: an SDK reaching for its CDN or API fails fast instead of waiting on
      // the network, and the network log still records the attempt (see NetworkLog.external).
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  });
}

/** One page entry (test/trackers/pages/*.ts) bundled for the browser with its SDK inlined. */
export async function bundlePage(entry: string): Promise<string> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'iife',
    target: 'chrome120',
    define: { 'process.env.NODE_ENV': '"production"' },
    logLevel: 'silent',
  });
  const output = result.outputFiles[0];
  if (!output) throw new Error(`esbuild produced no output for ${entry}`);
  return output.text;
}

export interface PageServer {
  origin: string;
  close(): Promise<void>;
}

/** A static server for the test pages on 127.0.0.1 with an OS-picked port: an origin other than the stack's. */
export async function startPageServer(files: Record<string, { contentType: string; body: string }>): Promise<PageServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const file = Object.hasOwn(files, path) ? files[path] : undefined;
    if (!file) {
      res.writeHead(path === '/favicon.ico' ? 204 : 404).end();
      return;
    }
    res.writeHead(200, { 'content-type': file.contentType, 'cache-control': 'no-store' }).end(file.body);
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** An HTML page that loads one bundle. */
export function htmlPage(title: string, script: string): { contentType: string; body: string } {
  return {
    contentType: 'text/html; charset=utf-8',
    body: `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title><script src="${script}"></script></head><body><h1>${title}</h1></body></html>`,
  };
}

/** One request as the browser made it, with its response or failure. */
export interface Exchange {
  id: string;
  method: string;
  url: string;
  origin: string;
  path: string;
  /** A CORS preflight the browser sent on its own; `for` is the request it was sent for. */
  preflight: boolean;
  for?: string;
  /** Lower-cased names; the headers on the wire when DevTools reported them. */
  requestHeaders: Record<string, string>;
  postData?: string;
  status?: number;
  responseHeaders: Record<string, string>;
  responseBody?: string;
  /** net::ERR_... when the request failed in the browser (CORS, DNS, refused). */
  failure?: string;
  /** The CORS check that failed, e.g. "HeaderDisallowedByPreflightResponse (x-retry-count)". */
  corsError?: string;
  finished: boolean;
}

const lower = (headers: Record<string, unknown> | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(headers ?? {}).map(([name, value]) => [name.toLowerCase(), String(value)]));

function postDataOf(request: Protocol.Network.Request): string | undefined {
  if (request.postData !== undefined) return request.postData;
  const entries = request.postDataEntries;
  if (!entries || entries.length === 0) return undefined;
  return entries.map((e) => Buffer.from(e.bytes ?? '', 'base64').toString('utf8')).join('');
}

/** Every request a page makes, from the DevTools protocol (which, unlike page events, reports CORS errors). */
export class NetworkLog {
  private readonly byId = new Map<string, Exchange>();
  readonly console: string[] = [];

  private constructor(private readonly cdp: CDPSession) {}

  static async attach(page: Page): Promise<NetworkLog> {
    const cdp = await page.createCDPSession();
    const log = new NetworkLog(cdp);
    page.on('console', (m) => log.console.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log.console.push(`pageerror: ${e instanceof Error ? e.message : String(e)}`));
    cdp.on('Network.requestWillBeSent', (e) => {
      const url = new URL(e.request.url);
      const existing = log.byId.get(e.requestId);
      const exchange: Exchange = {
        id: e.requestId,
        method: e.request.method,
        url: e.request.url,
        origin: url.origin,
        path: url.pathname,
        preflight: e.initiator.type === 'preflight',
        ...(e.initiator.type === 'preflight' && e.initiator.requestId && { for: e.initiator.requestId }),
        // The extra-info event (the headers on the wire) can arrive first; keep what it gave.
        requestHeaders: { ...lower(e.request.headers), ...existing?.requestHeaders },
        ...(postDataOf(e.request) !== undefined && { postData: postDataOf(e.request) }),
        responseHeaders: {},
        finished: false,
      };
      log.byId.set(e.requestId, exchange);
    });
    cdp.on('Network.requestWillBeSentExtraInfo', (e) => {
      const exchange = log.byId.get(e.requestId);
      const headers = lower(e.headers);
      if (exchange) Object.assign(exchange.requestHeaders, headers);
      else
        log.byId.set(e.requestId, {
          id: e.requestId, method: '?', url: '?', origin: '?', path: '?', preflight: false, requestHeaders: headers, responseHeaders: {}, finished: false,
        });
    });
    cdp.on('Network.responseReceived', (e) => {
      const exchange = log.byId.get(e.requestId);
      if (!exchange) return;
      exchange.status = e.response.status;
      exchange.responseHeaders = lower(e.response.headers);
    });
    cdp.on('Network.loadingFinished', (e) => {
      const exchange = log.byId.get(e.requestId);
      if (!exchange) return;
      exchange.finished = true;
      if (exchange.method === 'POST') {
        cdp
          .send('Network.getResponseBody', { requestId: e.requestId })
          .then((body) => {
            exchange.responseBody = body.base64Encoded ? Buffer.from(body.body, 'base64').toString('utf8') : body.body;
          })
          .catch(() => undefined);
      }
    });
    cdp.on('Network.loadingFailed', (e) => {
      const exchange = log.byId.get(e.requestId);
      if (!exchange) return;
      exchange.finished = true;
      exchange.failure = e.errorText;
      if (e.corsErrorStatus) {
        exchange.corsError = `${e.corsErrorStatus.corsError}${e.corsErrorStatus.failedParameter ? ` (${e.corsErrorStatus.failedParameter})` : ''}`;
      }
    });
    await cdp.send('Network.enable');
    return log;
  }

  all(): Exchange[] {
    return [...this.byId.values()].filter((e) => e.method !== '?');
  }

  /** Requests the page made itself (not preflights) to an origin, optionally one method. */
  requestsTo(origin: string, method?: string): Exchange[] {
    return this.all().filter((e) => !e.preflight && e.origin === origin && (method === undefined || e.method === method));
  }

  /** The preflights the browser sent for a request. */
  preflightsFor(request: Exchange): Exchange[] {
    return this.all().filter((e) => e.preflight && e.for === request.id);
  }

  /**
   * The preflight whose answer let `request` go out: its own, or (Chrome caches preflight answers
   * for the collector's max-age) the last one for the same URL before it.
   */
  authorizingPreflight(request: Exchange): Exchange | undefined {
    const all = this.all();
    const own = all.filter((e) => e.preflight && e.for === request.id);
    if (own.length > 0) return own.at(-1);
    const before = all.slice(0, all.indexOf(request));
    return before.filter((e) => e.preflight && e.url === request.url).at(-1);
  }

  /** Like DevTools' "Disable cache": also bypasses Chrome's CORS preflight cache, so every request shows its own preflight. */
  async disableCache(): Promise<void> {
    await this.cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  }

  /** Requests that left 127.0.0.1 (a CDN, the SDK vendor's API, a polyfill service). */
  external(): Exchange[] {
    return this.all().filter((e) => !/^(https?:\/\/127\.0\.0\.1(:\d+)?|data:|blob:)/.test(e.url));
  }

  /** One line per request (those `which` picks), then the page's console, for failure messages. */
  describe(which: (e: Exchange) => boolean = () => true): string {
    const lines = this.all()
      .filter(which)
      .map((e) => {
        const outcome = e.failure ? `FAILED ${e.failure}${e.corsError ? ` cors=${e.corsError}` : ''}` : e.status !== undefined ? `${e.status}` : 'pending';
        const wanted = e.requestHeaders['access-control-request-headers'];
        const allowed = e.responseHeaders['access-control-allow-headers'];
        const cors = e.preflight ? ` [preflight asked=${wanted ?? '-'} allowed=${allowed ?? '-'} origin=${e.responseHeaders['access-control-allow-origin'] ?? '-'}]` : '';
        const body = e.responseBody ? ` body=${e.responseBody.slice(0, 300)}` : '';
        return `${e.method} ${e.url} -> ${outcome}${cors}${body}`;
      });
    const consoleLines = this.console.filter((l) => !l.startsWith('debug')).slice(-20);
    return [...(lines.length > 0 ? lines : ['(no requests)']), ...(consoleLines.length > 0 ? ['console:', ...consoleLines.map((l) => `  ${l}`)] : [])].join('\n');
  }
}

/**
 * Headers the browser sets itself (cache-control and pragma: when the cache is disabled); every other
 * request header was set by the page's script.
 */
const BROWSER_HEADERS = new Set([
  'accept', 'accept-encoding', 'accept-language', 'cache-control', 'connection', 'content-length', 'cookie', 'host', 'origin', 'pragma', 'priority', 'referer', 'user-agent',
]);
const SAFELISTED_CONTENT_TYPES = new Set(['text/plain', 'multipart/form-data', 'application/x-www-form-urlencoded']);

/**
 * The headers of a request a CORS preflight must allow: what its own preflight asked for, else (a
 * cached preflight) its script-set headers that are not CORS-safelisted.
 */
export function headersNeedingPermission(request: Exchange, ownPreflight?: Exchange): string[] {
  const asked = ownPreflight?.requestHeaders['access-control-request-headers'];
  if (asked !== undefined) return asked.split(',').map((h) => h.trim().toLowerCase()).filter(Boolean).sort();
  return Object.entries(request.requestHeaders)
    .filter(([name, value]) => {
      if (BROWSER_HEADERS.has(name) || name.startsWith('sec-')) return false;
      if (name === 'content-type') return !SAFELISTED_CONTENT_TYPES.has(value.split(';')[0]!.trim().toLowerCase());
      return !['accept', 'accept-language', 'content-language'].includes(name);
    })
    .map(([name]) => name)
    .sort();
}

export interface TrackerTab {
  page: Page;
  network: NetworkLog;
  close(): Promise<void>;
}

/** A page in a fresh incognito context (no cookies or storage from other tests), on `url`. */
export async function openTab(browser: Browser, url: string): Promise<TrackerTab> {
  const context: BrowserContext = await browser.createBrowserContext();
  try {
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    const network = await NetworkLog.attach(page);
    await page.goto(url, { waitUntil: 'load', timeout: 10_000 });
    return { page, network, close: () => context.close() };
  } catch (error) {
    await context.close().catch(() => undefined);
    throw error;
  }
}

/** Another page in the same browser context as `tab` (same cookies and localStorage: a second tab, or the next page load). */
export async function openTabBeside(tab: TrackerTab, url: string): Promise<TrackerTab> {
  const page = await tab.page.browserContext().newPage();
  try {
    page.setDefaultTimeout(10_000);
    const network = await NetworkLog.attach(page);
    await page.goto(url, { waitUntil: 'load', timeout: 10_000 });
    return { page, network, close: () => page.close() };
  } catch (error) {
    await page.close().catch(() => undefined);
    throw error;
  }
}

/** Polls until `probe` returns a value, or throws naming what was awaited and `context()`. */
export async function waitFor<T>(what: string, probe: () => T | undefined, options: { timeoutMs?: number; context?: () => string } = {}): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${options.timeoutMs ?? 10_000} ms waiting for ${what}${options.context ? `\n${options.context()}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// --- What the page entries expose (test/trackers/pages/*.ts), shared with the tests. ---

/** What a tracker call produced in the browser: the event as the SDK built it. */
export interface CallResult {
  messageId: string;
  /** The event time the SDK put on the message (ISO-8601). */
  timestamp: string;
  anonymousId?: string;
  userId?: string;
}

export interface SegmentPageConfig {
  writeKey: string;
  /** host:port/v1, as in the Segment.io integration settings */
  apiHost: string;
  batching?: { size: number; timeout: number };
}

export interface SegmentHarness {
  load(config: SegmentPageConfig): Promise<{ anonymousId: string }>;
  track(event: string, properties: Record<string, unknown>, messageId: string): Promise<CallResult>;
  page(name: string, properties: Record<string, unknown>, messageId: string): Promise<CallResult>;
  identify(userId: string, traits: Record<string, unknown>, messageId: string): Promise<CallResult>;
}

export interface RudderPageConfig {
  writeKey: string;
  dataPlaneUrl: string;
  /** What the control plane would answer at /sourceConfig. */
  sourceConfig: Record<string, unknown>;
  /** The delivery queue's retry timing (the SDK's `queueOptions`); SDK defaults when absent. */
  queueOptions?: { minRetryDelay?: number; backoffFactor?: number; backoffJitter?: number };
}

export interface RudderHarness {
  load(config: RudderPageConfig): Promise<{ anonymousId: string }>;
  track(event: string, properties: Record<string, unknown>): Promise<CallResult>;
  page(category: string, name: string, properties: Record<string, unknown>): Promise<CallResult>;
  identify(userId: string, traits: Record<string, unknown>): Promise<CallResult>;
}

/** The page entries' globals. */
export interface HarnessGlobals {
  segmentHarness: SegmentHarness;
  rudderHarness: RudderHarness;
}
