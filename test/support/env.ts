import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';

/**
 * Points every AWS client in this test file at the shared emulators through the SDK's standard
 * endpoint variables, with dummy credentials. Call at the top of an integration test file.
 */
export function useEmulators(): Record<string, string> {
  const env = inject('emulatorEnv');
  Object.assign(process.env, env, {
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
  });
  return env;
}

/** A resource name no other test file uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}
