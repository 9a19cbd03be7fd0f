import { defineConfig } from 'vitest/config';

/**
 * Two projects: `unit` (test/unit: pure logic and the embedded engine, no emulators, seconds) and
 * `integration` (everything else, against the in-process AWS emulators the global setup starts).
 * `npm test` runs both; `npm run test:unit` the first alone.
 */
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores: more workers only contend for the emulators.
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        extends: true,
        test: { name: 'integration', include: ['test/**/*.test.ts'], exclude: ['test/unit/**', '**/node_modules/**'], globalSetup: ['test/global-setup.ts'] },
      },
    ],
  },
});
