import { RudderAnalytics, type ApiObject, type IdentifyTraits } from '@rudderstack/analytics-js/bundled';
import type { CallResult, RudderHarness, RudderPageConfig } from '../support/browser.js';

/**
 * Page entry for @rudderstack/analytics-js, `bundled` build (its plugins are in the bundle instead of
 * being fetched from cdn.rudderlabs.com), bundled by esbuild and loaded by test/trackers/browser.test.ts.
 * The source config the SDK would fetch from the control plane comes from `getSourceConfig`.
 */

let rudder: RudderAnalytics | undefined;

function loaded(): RudderAnalytics {
  if (!rudder) throw new Error('rudderHarness.load was not called');
  return rudder;
}

const field = (value: unknown, name: string): unknown =>
  value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[name] : undefined;
const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);

/** The SDK hands the callback the event it queued for the data plane. */
function result(event: unknown): CallResult {
  const anonymousId = text(field(event, 'anonymousId'));
  const userId = text(field(event, 'userId'));
  return {
    messageId: text(field(event, 'messageId')) ?? '',
    timestamp: text(field(event, 'originalTimestamp')) ?? '',
    ...(anonymousId && { anonymousId }),
    ...(userId && { userId }),
  };
}

/** Resolves with the callback's argument, or rejects if the SDK never calls back. */
function called(start: (callback: (event?: unknown) => void) => void, what: string): Promise<CallResult> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`rudderanalytics.${what} did not call back within 5 s`)), 5_000);
    start((event) => {
      clearTimeout(timer);
      resolve(result(event));
    });
  });
}

const harness: RudderHarness = {
  async load(config: RudderPageConfig) {
    const instance = new RudderAnalytics();
    rudder = instance;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('rudderanalytics did not become ready within 5 s')), 5_000);
      instance.load(config.writeKey, config.dataPlaneUrl, {
        getSourceConfig: () => config.sourceConfig as ApiObject,
        polyfillIfRequired: false,
        ...(config.queueOptions && { queueOptions: config.queueOptions }),
        logLevel: 'WARN',
      });
      instance.ready(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return { anonymousId: instance.getAnonymousId() ?? '' };
  },
  track(event, properties) {
    return called((cb) => loaded().track(event, properties as ApiObject, cb), 'track');
  },
  page(category, name, properties) {
    return called((cb) => loaded().page(category, name, properties as ApiObject, cb), 'page');
  },
  identify(userId, traits) {
    return called((cb) => loaded().identify(userId, traits as IdentifyTraits, cb), 'identify');
  },
};

Object.assign(globalThis, { rudderHarness: harness });
