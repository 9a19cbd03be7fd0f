import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Page } from 'puppeteer-core';
import { describe, expect, it } from 'vitest';
import type { ReceivedEvent } from '../../local/personalize-server.js';
import { LOCAL_CREDENTIALS, LOCAL_TRACKING_ID } from '../../local/stack.js';
import { windowEventId } from '../../shared/personalize/preflight.js';
import { useEmulators } from '../support/env.js';
import { drainDlq } from '../support/stack.js';
import { waitFor, type CallResult, type Exchange, type HarnessGlobals, type SegmentPageConfig, type TrackerTab } from './support/browser.js';
import { useTrackerStack } from './support/harness.js';

/**
 * Two targets (schemas/targets/example.json: the retail `default` and the VIDEO_ON_DEMAND `video`)
 * fed by the published @segment/analytics-next in headless Chromium, from a page on its own origin,
 * through the collector's HTTP interface (CORS) of the local stack, to the local Personalize. The
 * page sends what a video player integration sends per Segment's Video spec (docs/FACTS.md §11) and
 * one retail event; the test asserts what each target's tracker received, and what was on the wire.
 */

useEmulators();

const TARGETS_FILE = fileURLToPath(new URL('../../schemas/targets/example.json', import.meta.url));
const VIDEO_TRACKER = 'local-video-tracker';
const WRITE_KEY = LOCAL_CREDENTIALS.trackerWriteKey;
/** schemas/targets/video/event-mapping.json: every Watch of a title is one eventId per 600 s window. */
const HEARTBEAT_WINDOW_S = 600;
/** Segment's Video spec suggests a heartbeat every 10 s while content plays. */
const HEARTBEAT_INTERVAL_MS = 10_000;

// The collector and processor read TARGETS_FILE from process.env (startLocalStack sets it before importing them).
const { running, open } = useTrackerStack('video-targets', { segment: 'Segment analytics-next' }, { processorEnv: { TARGETS_FILE } });

const collectorOrigin = () => running().stack.http.url;

const segment = (page: Page) => ({
  load: (config: SegmentPageConfig) => page.evaluate((c) => (globalThis as unknown as HarnessGlobals).segmentHarness.load(c), config),
  track: (event: string, properties: Record<string, unknown>, messageId: string) =>
    page.evaluate((e, p, m) => (globalThis as unknown as HarnessGlobals).segmentHarness.track(e, p, m), event, properties, messageId),
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const parseBody = (request: Exchange): Record<string, unknown> => JSON.parse(request.postData ?? 'null') as Record<string, unknown>;

/** What the browser exchanged with the collector, and what each tracker got so far, for failure messages. */
const context = (t: TrackerTab) => () =>
  [
    `requests other than the page's own (collector: ${collectorOrigin()}):`,
    t.network.describe((e) => e.origin !== running().pages.origin),
    'received at Personalize:',
    ...running()
      .stack.personalize!.receivedEvents()
      .map((e) => `  ${e.trackingId} ${e.eventId ?? '-'} ${e.eventType} item=${e.itemId ?? '-'}`),
  ].join('\n');

/** Waits until a tracker holds an event for each id; answers that tracker's events. */
async function atTracker(t: TrackerTab, trackingId: string, eventIds: readonly string[], timeoutMs = 10_000): Promise<ReceivedEvent[]> {
  const personalize = running().stack.personalize!;
  return waitFor(
    `events ${eventIds.join(', ')} at tracker ${trackingId}`,
    () => {
      const got = personalize.receivedEvents().filter((e) => e.trackingId === trackingId);
      return eventIds.every((id) => got.some((e) => e.eventId === id)) ? got : undefined;
    },
    { timeoutMs, context: context(t) },
  );
}

/** The heartbeat's eventId at the video target: its window's (shared/personalize/preflight.ts). */
function heartbeatWindowId(call: CallResult, sessionId: string, itemId: string): string {
  const message = { kind: 'interaction', source: 'segment', eventId: call.messageId, sessionId, eventType: 'Video Content Playing', itemId, timestamp: Date.parse(call.timestamp) } as const;
  return windowEventId(message, 'Watch', HEARTBEAT_WINDOW_S);
}

/** Waits, when needed, so that two heartbeats `gapMs` apart from now fall in one 600 s window (windows are epoch-aligned). */
async function awayFromWindowEdge(gapMs: number): Promise<void> {
  const windowMs = HEARTBEAT_WINDOW_S * 1000;
  const left = windowMs - (Date.now() % windowMs);
  if (left < gapMs + 5_000) await sleep(left + 500);
}

describe('@segment/analytics-next in Chromium, two targets (retail default and VIDEO_ON_DEMAND)', () => {
  it('routes Video spec events to the video tracker as Click/Watch (heartbeats and completion as one windowed Watch) and every event to the retail tracker', async () => {
    const t = await open('/segment.html');
    const sdk = segment(t.page);
    const { anonymousId } = await sdk.load({ writeKey: WRITE_KEY, apiHost: `${collectorOrigin().replace(/^http:\/\//, '')}/v1` });
    expect(anonymousId).not.toBe('');
    const run = `vt-${randomUUID().slice(0, 8)}`;
    const film = `${run}-film-1`;
    const sku = `${run}-sku-1`;
    /** The player's playback session (Video spec `session_id`), not the visitor's session. */
    const playback = { session_id: `${run}-player-1` };
    const content = { ...playback, asset_id: film, pod_id: `${run}-pod-1`, title: 'The Long Take', program: 'The Long Take', genre: 'drama', publisher: 'Studio 9', total_length: 5400, livestream: false };

    // A player's calls, as the Video spec names them: playback events carry the player's state
    // (content_asset_ids on Playback Started), content events the title (asset_id).
    const player = { ...playback, content_asset_ids: [film], content_pod_ids: [`${run}-pod-1`], position: 0, total_length: 5400, video_player: 'html5', sound: 80, full_screen: false, livestream: false };
    const playbackStarted = await sdk.track('Video Playback Started', player, `${run}-playback-started`);
    const contentStarted = await sdk.track('Video Content Started', { ...content, position: 0 }, `${run}-content-started`);
    await awayFromWindowEdge(HEARTBEAT_INTERVAL_MS);
    const heartbeat1 = await sdk.track('Video Content Playing', { ...content, position: 10 }, `${run}-playing-1`);
    await sleep(HEARTBEAT_INTERVAL_MS);
    const heartbeat2 = await sdk.track('Video Content Playing', { ...content, position: 20 }, `${run}-playing-2`);
    const contentCompleted = await sdk.track('Video Content Completed', { ...content, position: 5400 }, `${run}-content-completed`);
    const productViewed = await sdk.track('Product Viewed', { product_id: sku, name: 'Popcorn maker', price: 49.5, currency: 'USD' }, `${run}-product-viewed`);
    const calls = [playbackStarted, contentStarted, heartbeat1, heartbeat2, contentCompleted, productViewed];

    // The SDK stamped the heartbeats ~10 s apart, in one window: one eventId at the video target.
    expect(Date.parse(heartbeat2.timestamp) - Date.parse(heartbeat1.timestamp)).toBeGreaterThanOrEqual(HEARTBEAT_INTERVAL_MS - 500);
    const windowId = heartbeatWindowId(heartbeat1, anonymousId, film);
    expect(heartbeatWindowId(heartbeat2, anonymousId, film)).toBe(windowId);

    // Every Watch of the title in the window shares its eventId: the completion joins the heartbeats'.
    expect(heartbeatWindowId(contentCompleted, anonymousId, film)).toBe(windowId);
    const videoIds = [contentStarted.messageId, windowId];
    await atTracker(t, VIDEO_TRACKER, videoIds);
    await atTracker(t, LOCAL_TRACKING_ID, calls.map((c) => c.messageId));
    await running().stack.poller.idle();
    const sent = running().stack.personalize!.receivedEvents();
    const video = sent.filter((e) => e.trackingId === VIDEO_TRACKER);
    const retail = sent.filter((e) => e.trackingId === LOCAL_TRACKING_ID);
    const one = (events: ReceivedEvent[], eventId: string) => events.find((e) => e.eventId === eventId);

    // Video target: the title's Click (Video Content Started) and one Watch for the window: the two
    // heartbeats and the completion share its eventId (sent once per processor batch they fell in).
    // Video Playback Started is the player's event, not routed here (example.json).
    expect([...new Set(video.map((e) => e.eventId))].sort(), context(t)()).toEqual([...videoIds].sort());
    expect(video.filter((e) => e.eventId === windowId).length).toBeGreaterThanOrEqual(1);
    expect(video.filter((e) => e.eventId === windowId).length).toBeLessThanOrEqual(3);
    for (const e of video.filter((e) => e.eventId === windowId)) expect(e).toMatchObject({ eventType: 'Watch', itemId: film, sessionId: anonymousId });
    expect(one(video, contentStarted.messageId)).toMatchObject({ eventType: 'Click', itemId: film, sessionId: anonymousId });
    expect(video.some((e) => e.eventId === productViewed.messageId || e.itemId === sku)).toBe(false);
    expect(video.every((e) => e.userId === undefined)).toBe(true);
    // Shaped by the video Interactions schema: of the player's properties none is a column there; DEVICE
    // is the adapter's (context.library.name).
    for (const e of video) expect(JSON.parse(e.properties ?? '{}')).toEqual({ device: 'analytics.js' });

    // Retail (default) target: every event once, under its own messageId; its mapping makes
    // Product Viewed a View and passes the video names through (unmapped: passthrough).
    expect(retail.map((e) => e.eventId).sort()).toEqual(calls.map((c) => c.messageId).sort());
    expect(one(retail, productViewed.messageId)).toMatchObject({ eventType: 'View', itemId: sku, sessionId: anonymousId });
    // Its one title, from content_asset_ids (the Segment adapter reads a one-title list).
    expect(one(retail, playbackStarted.messageId)).toMatchObject({ eventType: 'Video Playback Started', itemId: film, sessionId: anonymousId });
    for (const [call, type] of [[contentStarted, 'Video Content Started'], [heartbeat1, 'Video Content Playing'], [heartbeat2, 'Video Content Playing'], [contentCompleted, 'Video Content Completed']] as const) {
      expect(one(retail, call.messageId)).toMatchObject({ eventType: type, itemId: film, sessionId: anonymousId });
    }
    // Event time: the SDK's stamp, to the second (Personalize's sentAt is epoch seconds).
    for (const call of calls) expect(Math.abs(one(retail, call.messageId)!.sentAt - Date.parse(call.timestamp) / 1000)).toBeLessThanOrEqual(1);
    expect(await drainDlq(running().stack)).toEqual([]);

    // The wire: one POST /v1/t per call, through CORS, with the Video spec properties as the page passed them.
    const posts = t.network.requestsTo(collectorOrigin(), 'POST');
    expect(posts.map((p) => p.path), context(t)()).toEqual(calls.map(() => '/v1/t'));
    for (const post of posts) {
      expect(post.status, context(t)()).toBe(200);
      expect([running().pages.origin, '*']).toContain(post.responseHeaders['access-control-allow-origin']);
    }
    const bodies = posts.map(parseBody);
    expect(bodies.map((b) => [b.type, b.event, b.messageId])).toEqual([
      ['track', 'Video Playback Started', playbackStarted.messageId],
      ['track', 'Video Content Started', contentStarted.messageId],
      ['track', 'Video Content Playing', heartbeat1.messageId],
      ['track', 'Video Content Playing', heartbeat2.messageId],
      ['track', 'Video Content Completed', contentCompleted.messageId],
      ['track', 'Product Viewed', productViewed.messageId],
    ]);
    // Properties go out as passed (snake_case, arrays kept: nothing renamed or flattened by the SDK).
    expect(bodies.map((b) => b.properties)).toEqual([
      player,
      { ...content, position: 0 },
      { ...content, position: 10 },
      { ...content, position: 20 },
      { ...content, position: 5400 },
      { product_id: sku, name: 'Popcorn maker', price: 49.5, currency: 'USD' },
    ]);
    // Anonymous: analytics-next writes `"userId": null` (not absent), which the adapter takes as no user.
    for (const b of bodies) expect(b).toMatchObject({ anonymousId, userId: null, writeKey: WRITE_KEY, context: { library: { name: 'analytics.js' } } });
    expect(t.network.external()).toEqual([]);
  }, 60_000);
});
