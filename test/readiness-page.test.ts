import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InteractionMessage } from '../schemas/canonical.js';
import { s3Client } from '../shared/aws/clients.js';
import { deletedUsersOf } from '../shared/deletion.js';
import { exportDay } from '../shared/export/export-day.js';
import { S3Bucket } from '../shared/aws/s3-bucket.js';
import { loadDatasetSchemas } from '../shared/personalize/dataset-schema.js';
import { startLocalStack, type LocalStack } from '../local/stack.js';
import { useEmulators } from './support/env.js';
import { at, daysAgo, entry, putArchiveBatch } from './support/export.js';
import { MemoryLinks } from './support/memory-export.js';
import { isolatedStack } from './support/stack.js';
import { launchBrowser } from './trackers/support/browser.js';

/**
 * The local stack's readiness page (`GET /readiness`), read in headless Chromium after two days
 * were exported: the verdict, the numbers and the charts, drawn without scripts or external assets.
 */

useEmulators();

let stack: LocalStack | undefined;
/** The launch error when Chromium is missing: every test then fails with it (none is skipped). */
let browser: Browser | Error | undefined;

beforeAll(async () => {
  browser = await launchBrowser().catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
  stack = await startLocalStack({ ...isolatedStack('readiness', 1), poller: { pollIntervalMs: 200 } });
}, 60_000);

afterAll(async () => {
  if (browser && !(browser instanceof Error)) await browser.close();
  await stack?.stop();
});

function running(): { stack: LocalStack; browser: Browser } {
  if (browser instanceof Error) throw browser;
  if (!stack || !browser) throw new Error('the stack or the browser did not start');
  return { stack, browser };
}

const view = (eventId: string, sessionId: string, timestamp: number, extra: Partial<InteractionMessage> = {}): InteractionMessage => ({
  kind: 'interaction', source: 'native', eventId, sessionId, eventType: 'View', itemId: `item-${eventId}`, timestamp, ...extra,
});

/** Evaluates an expression in the page (a string: this project's types have no DOM). */
async function read<T>(page: Page, expression: string): Promise<T> {
  return (await page.evaluate(expression)) as T;
}

/** Opens the page; fails on any request that leaves the stack (the page must work offline). */
async function openPage(b: Browser, url: string) {
  const page = await b.newPage();
  const requests: string[] = [];
  page.on('request', (request) => void requests.push(request.url()));
  const response = await page.goto(url, { waitUntil: 'load' });
  return { page, response, requests };
}

describe('the readiness page', () => {
  it('says there is no report before the first export', async () => {
    const { stack, browser } = running();
    const { page, response } = await openPage(browser, `${stack.http.url}/readiness`);
    try {
      expect(response?.status()).toBe(200);
      expect(await read<string>(page, 'document.body.textContent')).toContain('No readiness report yet');
    } finally {
      await page.close();
    }
  });

  it('shows the verdict, the numbers and the charts of the latest export', async () => {
    const { stack, browser } = running();
    const bucket = stack.names.archiveBucket;
    const [day1, day2] = [daysAgo(3), daysAgo(2)];
    // Day 1: u1 twice (View, Purchase), an anonymous session linked to u2, one never linked, a stitched event of u3.
    await putArchiveBatch(bucket, [
      entry(view('a1', 's1', at(day1, '09:00:00'), { userId: 'u1' })),
      entry(view('a2', 's1', at(day1, '09:01:00'), { userId: 'u1', eventType: 'Purchase', eventValue: 9.5 })),
      entry(view('b1', 's-linked', at(day1, '09:02:00'))),
      entry(view('n1', 's-none', at(day1, '09:03:00'))),
      entry(view('c1', 's3', at(day1, '09:04:00')), 'u3'),
    ], { first: '1', last: '9' });
    // Day 2: u2 and u3 reach two interactions; <script> in an event type must stay text.
    await putArchiveBatch(bucket, [
      entry(view('b2', 's2', at(day2, '10:00:00'), { userId: 'u2' })),
      entry(view('c2', 's3', at(day2, '10:01:00'), { userId: 'u3', eventType: '<script>x</script>' })),
    ], { first: '10', last: '19' });
    const links = new MemoryLinks().add('s-linked', 'u2', at(day1, '12:00:00'));
    const deps = {
      archive: new S3Bucket(s3Client(), bucket),
      store: new S3Bucket(s3Client(), bucket),
      links,
      deletedUsers: () => Promise.resolve(deletedUsersOf([])),
      settings: { schemas: loadDatasetSchemas(), datasets: {} },
    };
    for (const date of [day1, day2]) await exportDay(deps, { date, import: false, bulkMode: 'bulk-only', engine: { memoryLimit: '256MB', threads: 1 } });

    const json = (await (await fetch(`${stack.http.url}/readiness.json`)).json()) as { line: string; interactions: { total: number } };
    expect(json.interactions.total).toBe(6);

    const { page, response, requests } = await openPage(browser, `${stack.http.url}/readiness`);
    try {
      expect(response?.status()).toBe(200);
      expect(await read<string>(page, "document.querySelector('#verdict').textContent")).toBe('NOT READY');
      expect(await read<string>(page, "document.querySelector('#line').textContent")).toBe(json.line);
      expect(json.line).toBe(
        'readiness: NOT READY — 6/1000 interactions, 3/25 users with ≥2 interactions, 100%/1% of users with ≥2 ' +
          '(recommended: 6/50000 interactions, 3/1000 users with ≥2)',
      );
      const checks = await read<string[][]>(page, `[...document.querySelectorAll('#checks tbody tr')].map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent.trim()))`);
      expect(checks).toEqual([
        ['interactions', '6', '1,000', 'fail'],
        ['users with ≥2 interactions', '3', '25', 'fail'],
        ['share of users with ≥2 interactions', '100%', '1%', 'pass'],
        ['interactions (recommended)', '6', '50,000', 'fail'],
        ['users with ≥2 interactions (recommended)', '3', '1,000', 'fail'],
      ]);

      // The day chart: one column per day, its segments summing to the day's interactions and anonymous events.
      const segments = await read<{ day: string; type: string; value: number; height: number }[]>(
        page,
        `[...document.querySelectorAll('#chart-days rect.seg')].map((r) => ({ day: r.dataset.day, type: r.dataset.type, value: Number(r.dataset.value), height: r.getBoundingClientRect().height }))`,
      );
      expect(segments.map(({ day, type, value }) => [day, type, value])).toEqual([
        [day1, 'View', 3],
        [day1, 'Purchase', 1],
        [day1, 'anonymous', 1],
        [day2, 'View', 1],
        [day2, '<script>x</script>', 1],
      ]);
      expect(segments.every((s) => s.height > 0)).toBe(true);
      // Drawn to scale: day 1's View column is three times a single interaction.
      expect(segments[0]!.height / segments[3]!.height).toBeCloseTo(3, 1);
      expect(await read<number>(page, "document.querySelectorAll('script').length")).toBe(0);

      const sources = await read<[string, number, number][]>(
        page,
        `[...document.querySelectorAll('#chart-sources rect.seg')].map((r) => [r.dataset.source, Number(r.dataset.value), Math.round(r.getBoundingClientRect().width)])`,
      );
      expect(sources).toEqual([
        ['own', 4, 411],
        ['stitched', 1, 103],
        ['backfilled', 1, 103],
        ['anonymous', 1, 103],
      ]);
      const gaps = await read<[string, string][]>(page, `[...document.querySelectorAll('#gaps tr')].map((r) => [r.dataset.gap, r.querySelector('td.n').textContent])`);
      expect(gaps).toEqual([
        ['items', '6'],
        ['items-without-metadata', '6'],
        ['users', '3'],
        ['users-without-profile', '3'],
      ]);
      expect(requests.every((url) => url.startsWith(stack.http.url))).toBe(true);
    } finally {
      await page.close();
    }
  }, 60_000);
});
