import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { s3Client } from '../shared/aws/clients.js';
import { S3Bucket } from '../shared/aws/s3-bucket.js';
import { segmentSignature } from '../shared/collect/auth.js';
import { LOCAL_CREDENTIALS, LOCAL_DATASET_GROUP_ARN, LOCAL_TRACKING_ID } from '../local/stack.js';
import { deletionStepDepsFromEnv } from '../shared/personalize-deletion/runtime.js';
import { runDeletionStep } from '../shared/personalize-deletion/step.js';
import { handleExportEvent, setExportRuntime, type ExportSummary } from '../shared/export/handle.js';
import { replayArchive } from '../shared/ops/replay.js';
import { windowEventId } from '../shared/personalize/preflight.js';
import { replayRuntimeFromEnv } from '../shared/ops/replay-runtime.js';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { useEmulators } from './support/env.js';
import { eventTime, readArchive, useLocalStack } from './support/stack.js';

// Two targets from one pipeline (docs/targets.md, schemas/targets/example.json): the retail default
// and a VIDEO_ON_DEMAND group. Through the doors: the tracker, the Segment webhook and the items feed.

useEmulators();
const TARGETS_FILE = join(import.meta.dirname, '../schemas/targets/example.json');
const VIDEO_TRACKER = 'local-video-tracker';
const VIDEO_ITEMS = 'arn:aws:personalize:us-east-1:000000000000:dataset/local-video/ITEMS';
const stack = useLocalStack('targets', { processorEnv: { TARGETS_FILE } });

/** The heartbeat's eventId at the video target: its 10-minute window's (schemas/targets/video/event-mapping.json). */
const PLAY_TIME = eventTime();
const PLAY_WINDOW_ID = windowEventId({ kind: 'interaction', source: 'segment', eventId: 'tg-play', sessionId: 'tg-anon', eventType: 'Video Content Playing', itemId: 'film-1', timestamp: PLAY_TIME }, 'Watch', 600);
/** The completed playback's: Watch entries of the video mapping all share their window's eventId. */
const DONE_TIME = eventTime();
const DONE_WINDOW_ID = windowEventId({ kind: 'interaction', source: 'segment', eventId: 'tg-done', sessionId: 'tg-user', userId: 'tg-user', eventType: 'Video Playback Completed', itemId: 'film-2', timestamp: DONE_TIME }, 'Watch', 600);
const basic = (user: string) => `Basic ${Buffer.from(`${user}:`).toString('base64')}`;
const iso = (offsetMs = 0) => new Date(eventTime(offsetMs)).toISOString();

async function post(path: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const raw = JSON.stringify(body);
  const res = await fetch(`${stack().http.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: raw });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('several targets from one pipeline', () => {
  it('routes each event to the tracker of every target that takes it, mapped and shaped by that target, and archives it per target', async () => {
    const tracker = await post(
      '/v1/batch',
      {
        batch: [
          { type: 'track', event: 'Product Viewed', messageId: 'tg-view', anonymousId: 'tg-anon', timestamp: iso(), properties: { product_id: 'sku-1', discount: 'spring' } },
          { type: 'track', event: 'Video Content Playing', messageId: 'tg-play', anonymousId: 'tg-anon', timestamp: new Date(PLAY_TIME).toISOString(), properties: { asset_id: 'film-1', position: 30, discount: 'spring' } },
        ],
      },
      { authorization: basic(LOCAL_CREDENTIALS.trackerWriteKey) },
    );
    expect(tracker).toMatchObject({ status: 200, body: { accepted: 2 } });

    const webhook = { type: 'track', event: 'Video Playback Completed', messageId: 'tg-done', userId: 'tg-user', timestamp: new Date(DONE_TIME).toISOString(), properties: { content_asset_ids: ['film-2'], session_id: 'player-1' } };
    const segment = await post('/v1/webhooks/segment', webhook, { 'x-signature': segmentSignature(JSON.stringify(webhook), LOCAL_CREDENTIALS.segmentSharedSecret) });
    expect(segment).toMatchObject({ status: 200, body: { accepted: 1 } });

    const feed = await post(
      '/v1/items',
      { items: [{ itemId: 'film-1', timestamp: eventTime(), properties: { genre: 'drama|thriller', owner: 'studio-9', creationTimestamp: '2026-01-01T00:00:00Z', catalog: 'video' } }] },
      { authorization: `Bearer ${LOCAL_CREDENTIALS.feedApiKey}` },
    );
    expect(feed).toMatchObject({ status: 200, body: { accepted: 1 } });
    await stack().poller.idle();

    const sent = stack().personalize!.receivedEvents();
    const on = (trackingId: string) => new Map(sent.filter((e) => e.trackingId === trackingId).map((e) => [e.eventId, e]));
    const retail = on(LOCAL_TRACKING_ID);
    const video = on(VIDEO_TRACKER);

    // The retail target takes everything, with its own mapping (Product Viewed -> View; video names pass through).
    expect(retail.get('tg-view')).toMatchObject({ eventType: 'View', itemId: 'sku-1' });
    expect(retail.get('tg-play')).toMatchObject({ eventType: 'Video Content Playing', itemId: 'film-1' });
    expect(retail.get('tg-done')).toMatchObject({ eventType: 'Video Playback Completed', itemId: 'film-2', userId: 'tg-user' });
    // The video target takes the video events only, mapped to the domain's Watch and Click; the
    // heartbeat carries its window's eventId (oncePerSeconds: one Watch per 10 minutes trains).
    expect([...video.keys()].sort()).toEqual([PLAY_WINDOW_ID, DONE_WINDOW_ID].sort());
    expect(video.get(PLAY_WINDOW_ID)).toMatchObject({ eventType: 'Watch', itemId: 'film-1' });
    expect(video.get(DONE_WINDOW_ID)).toMatchObject({ eventType: 'Watch', itemId: 'film-2', userId: 'tg-user' });
    // Shaped by each target's schema: the retail interactions have DISCOUNT, the video ones do not.
    expect(JSON.parse(retail.get('tg-play')!.properties ?? '{}')).toMatchObject({ discount: 'spring' });
    expect(JSON.parse(video.get(PLAY_WINDOW_ID)!.properties ?? '{}')).not.toHaveProperty('discount');

    // The film goes to the video catalog, shaped by its Items schema; retail holds it (no CATEGORY_L1, PRICE).
    const putItems = stack().personalize!.received('PutItems');
    const videoItems = putItems.filter((c) => c.request.datasetArn === VIDEO_ITEMS).flatMap((c) => c.request.items);
    expect(videoItems).toEqual([{ itemId: 'film-1', properties: expect.stringContaining('"genres":"drama|thriller"') as unknown }]);
    expect(putItems.filter((c) => c.request.datasetArn !== VIDEO_ITEMS).flatMap((c) => c.request.items.map((i) => i.itemId))).not.toContain('film-1');

    // One archive per target: the video target's lines under targets/video/, mapped for it.
    const bucket = stack().names.archiveBucket;
    const videoLines = [...(await readArchive(bucket, 'targets/video/archive/interactions/')).values()].flatMap((o) => o.records);
    expect(new Map(videoLines.map((l) => [l.eventId, l.kind === 'interaction' ? l.eventType : undefined]))).toEqual(
      new Map([
        [PLAY_WINDOW_ID, 'Watch'],
        [DONE_WINDOW_ID, 'Watch'],
      ]),
    );
    const retailLines = [...(await readArchive(bucket, 'archive/interactions/')).values()].flatMap((o) => o.records).filter((l) => l.eventId.startsWith('tg-'));
    expect(retailLines.map((l) => l.eventId).sort()).toEqual(['tg-done', 'tg-play', 'tg-view']);
  });

  it('exports each target over its own archive, with its schema, and its own record of what PutEvents accepted', async () => {
    setExportRuntime(undefined);
    const date = new Date(eventTime()).toISOString().slice(0, 10);
    const summary = (await handleExportEvent({ date, import: false })) as ExportSummary;
    setExportRuntime(undefined);
    // Complement mode: what PutEvents accepted (the user's event) is in each target's forwarded record, so
    // not in its bulk data; the anonymous events have no login to attribute them to yet.
    expect(summary.kinds.interactions).toMatchObject({ read: 3, streamed: 1, anonymousWithoutLink: 2, exported: 0 });
    const video = summary.targets?.video;
    expect(video?.manifestKey).toBe(`imports/manifests/${date}.json`);
    expect(video?.kinds.interactions).toMatchObject({ read: 2, streamed: 1, anonymousWithoutLink: 1, exported: 0 });
    expect(video?.kinds.items).toMatchObject({ read: 1, rejected: 0, exported: 1 });
    const videoFiles = (await new S3Bucket(s3Client(), stack().names.archiveBucket).list('targets/video/imports/')).map((o) => o.key);
    expect(videoFiles.some((k) => k.startsWith('targets/video/imports/items/') && k.endsWith('.csv'))).toBe(true);
    expect(videoFiles).toContain(`targets/video/imports/manifests/${date}.json`);
    // The mapping's renames (genre -> GENRES, owner -> CONTENT_OWNER) reach the bulk file too, not only PutItems.
    const itemsCsv = videoFiles.find((k) => k.startsWith('targets/video/imports/items/') && k.endsWith('.csv'))!;
    const csv = (await new S3Bucket(s3Client(), stack().names.archiveBucket).get(itemsCsv)).toString('utf8').trim().split('\n');
    const header = csv[0]!.split(',');
    const row = csv.find((line) => line.startsWith('film-1,'))!.split(',');
    expect(row[header.indexOf('GENRES')]).toBe('drama|thriller');
    expect(row[header.indexOf('CONTENT_OWNER')]).toBe('studio-9');

    // Each target's readiness report, on the local page: the video one counts the video group's events only.
    const readiness = async (query: string) => {
      const res = await fetch(`${stack().http.url}/readiness.json${query}`);
      return { status: res.status, body: (await res.json()) as { interactions?: { byType: Record<string, number>; anonymous: number }; message?: string } };
    };
    const videoReport = await readiness('?target=video');
    expect(videoReport.status).toBe(200);
    expect(videoReport.body.interactions?.byType).toEqual({ Watch: 1 });
    expect(videoReport.body.interactions?.anonymous).toBe(1);
    expect((await readiness('')).body.interactions?.byType).toEqual({ 'Video Playback Completed': 1 });
    expect(await readiness('?target=radio')).toMatchObject({ status: 404, body: { message: 'target radio is not declared (declared: default, video)' } });
    const page = await (await fetch(`${stack().http.url}/readiness?target=video`)).text();
    expect(page).toContain('<h1>Personalize readiness: target video</h1>');
    expect(page).toContain('<a href="/readiness">default</a>');

    // A direct invocation may export one target only (bootstrapping a new group while another streams).
    const videoOnly = (await handleExportEvent({ date, import: false, target: 'video' })) as ExportSummary;
    expect(videoOnly.kinds.interactions).toMatchObject({ read: 2, streamed: 1 });
    expect(videoOnly.targets).toBeUndefined();
    await expect(handleExportEvent({ date, import: false, target: 'radio' })).rejects.toThrow(/target radio is not declared in TARGETS_FILE/);
    setExportRuntime(undefined);
  });

  it('replays one target from its own archive, to its own tracker, as it was mapped for it', async () => {
    const date = new Date(eventTime()).toISOString().slice(0, 10);
    const dir = await mkdtemp(join(tmpdir(), 'targets-replay-'));
    stack().personalize!.reset();
    const options = { from: date, to: date, kinds: ['interactions' as const], checkpointPath: join(dir, 'cp.json'), reportPath: join(dir, 'rejections.ndjson'), putEventsPerSecond: 0, target: 'video' };
    const runtime = replayRuntimeFromEnv({ ...process.env }, options);
    const summary = await replayArchive(runtime.deps, runtime.settings);
    expect(summary).toMatchObject({ finished: true, eventsSent: 2, rejected: 0 });
    const sent = stack().personalize!.receivedEvents();
    expect(sent.map((e) => [e.trackingId, e.eventId, e.eventType]).sort()).toEqual([
      [VIDEO_TRACKER, DONE_WINDOW_ID, 'Watch'],
      [VIDEO_TRACKER, PLAY_WINDOW_ID, 'Watch'],
    ].sort());
    expect(() => replayRuntimeFromEnv({ ...process.env }, { ...options, target: 'radio' })).toThrow(/--target radio is not declared in TARGETS_FILE/);
  });

  it('deletes a person from the dataset group of every target', async () => {
    const res = await post('/v1/privacy/delete', { userIds: ['tg-user'] }, { authorization: `Bearer ${LOCAL_CREDENTIALS.privacyApiKey}` });
    expect(res.status).toBe(200);
    await stack().poller.idle();
    const report = await runDeletionStep(deletionStepDepsFromEnv({ ...process.env, PERSONALIZE_DELETION_PASSES: '1' }));
    expect(report.created.map((j) => j.datasetGroupArn).sort()).toEqual([LOCAL_DATASET_GROUP_ARN, 'arn:aws:personalize:us-east-1:000000000000:dataset-group/local-video'].sort());
  });
});
