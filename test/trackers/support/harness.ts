import { fileURLToPath } from 'node:url';
import type { Browser } from 'puppeteer-core';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { startLocalStack, type LocalStack, type LocalStackOptions } from '../../../local/stack.js';
import { isolatedStack } from '../../support/stack.js';
import { bundlePage, htmlPage, launchBrowser, openTab, startPageServer, type PageServer, type TrackerTab } from './browser.js';

/**
 * What every real-browser tracker test sets up: the pages (each bundled from test/trackers/pages/<name>.ts
 * and served on its own loopback origin as /<name>.html), headless Chromium, and an isolated local
 * stack; the tab a test opened is closed after it. A missing Chromium fails every test with the
 * launch error (none is skipped).
 */
export interface TrackerStack {
  running: () => { stack: LocalStack; browser: Browser; pages: PageServer };
  /** Opens a page of the page server (e.g. `/segment.html`) in a new tab, closed after the test. */
  open: (path: string) => Promise<TrackerTab>;
}

export function useTrackerStack(name: string, pages: Record<string, string>, stackOptions: Partial<LocalStackOptions> = {}): TrackerStack {
  let stack: LocalStack | undefined;
  let browser: Browser | Error | undefined;
  let server: PageServer | undefined;
  let tab: TrackerTab | undefined;

  beforeAll(async () => {
    const files: Parameters<typeof startPageServer>[0] = {};
    for (const [page, title] of Object.entries(pages)) {
      files[`/${page}.html`] = htmlPage(title, `/${page}.js`);
      files[`/${page}.js`] = { contentType: 'text/javascript', body: await bundlePage(fileURLToPath(new URL(`../pages/${page}.ts`, import.meta.url))) };
    }
    server = await startPageServer(files);
    browser = await launchBrowser().catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
    stack = await startLocalStack({ ...isolatedStack(name, 1), poller: { batchSize: 500, maxBatchingWindowMs: 100, pollIntervalMs: 50 }, ...stackOptions });
  }, 50_000);

  afterAll(async () => {
    if (browser && !(browser instanceof Error)) await browser.close();
    await server?.close();
    await stack?.stop();
  });

  afterEach(async () => {
    await tab?.close();
    tab = undefined;
  });

  const running = () => {
    if (browser instanceof Error) throw browser;
    if (!stack || !browser || !server) throw new Error('the stack, the browser or the page server did not start');
    return { stack, browser, pages: server };
  };
  return {
    running,
    open: async (path) => (tab = await openTab(running().browser, `${running().pages.origin}${path}`)),
  };
}
