import { AnalyticsBrowser, type Context } from '@segment/analytics-next';
import type { CallResult, SegmentHarness, SegmentPageConfig } from '../support/browser.js';

/**
 * Page entry for @segment/analytics-next (bundled by esbuild, loaded by test/trackers/browser.test.ts).
 * The settings a site would fetch from cdn.segment.com are passed as `cdnSettings`, so the SDK makes
 * no request but its deliveries to the collector.
 */

let analytics: AnalyticsBrowser | undefined;

function loaded(): AnalyticsBrowser {
  if (!analytics) throw new Error('segmentHarness.load was not called');
  return analytics;
}

function result(ctx: Context): CallResult {
  const { event } = ctx;
  return {
    messageId: event.messageId ?? '',
    timestamp: new Date(event.timestamp ?? Date.now()).toISOString(),
    ...(event.anonymousId && { anonymousId: event.anonymousId }),
    ...(event.userId && { userId: event.userId }),
  };
}

const harness: SegmentHarness = {
  async load(config: SegmentPageConfig) {
    analytics = AnalyticsBrowser.load({
      writeKey: config.writeKey,
      cdnSettings: {
        integrations: {
          'Segment.io': {
            apiKey: config.writeKey,
            apiHost: config.apiHost,
            protocol: 'http',
            ...(config.batching && { deliveryStrategy: { strategy: 'batching', config: config.batching } }),
          },
        },
        // Remote metrics would go to api.segment.io/v1/m (not the collector): off, as a site without them.
        metrics: { sampleRate: 0 },
      },
    });
    const [instance] = await analytics;
    return { anonymousId: instance.user().anonymousId() ?? '' };
  },
  async track(event, properties, messageId) {
    return result(await loaded().track(event, properties, { messageId }));
  },
  async page(name, properties, messageId) {
    return result(await loaded().page(null, name, properties, { messageId }));
  },
  async identify(userId, traits, messageId) {
    return result(await loaded().identify(userId, traits, { messageId }));
  },
};

Object.assign(globalThis, { segmentHarness: harness });
