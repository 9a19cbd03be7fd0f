import type { TestProject } from 'vitest/node';
import { startEmulators, type Emulators } from '../local/emulators.js';

let emulators: Emulators | undefined;

/** One set of emulators for the whole run; each test file creates its own uniquely named resources. */
export async function setup(project: TestProject): Promise<void> {
  emulators = await startEmulators();
  project.provide('emulatorEnv', emulators.env);
}

export async function teardown(): Promise<void> {
  await emulators?.close();
}

declare module 'vitest' {
  export interface ProvidedContext {
    emulatorEnv: Record<string, string>;
  }
}
