import { AsyncLocalStorage } from 'node:async_hooks';
import type { ArchiveStore } from '../../shared/archive.js';
import type { DeadLetterQueue } from '../../shared/dlq.js';
import type { IdentityStore } from '../../shared/identity/store.js';
import type { PersonalizeSender } from '../../shared/personalize/forward.js';
import type { ProcessorDeps } from '../../shared/process/process-batch.js';
import type { ProfileStore } from '../../shared/profile/store.js';
import type { PollerHandler } from '../../local/poller.js';

/**
 * Fault injection around the processor's real adapters (installed with setProcessorDeps) and around
 * each invocation (LocalStackOptions.wrapProcessor):
 * - DynamoDB and S3: every n-th call fails, half of them before the call and half after it (the
 *   write happened, the answer was lost), as a timeout or a 5xx after the SDK's retries would;
 * - crashes: every n-th invocation dies after its k-th Personalize call (1..3), or just before
 *   returning when it makes fewer calls. Dying means: the poller sees an uncaught error, and the
 *   invocation has no further effect (its later calls fail, its dead letters are not sent).
 * Schedules are counters, not dice, so even a small run hits every fault and a rerun hits the same ones.
 */

export interface FaultSchedule {
  /** One DynamoDB (identity links and profiles) call in this many fails. */
  dynamoEvery: number;
  /** One S3 (archive) call in this many fails. */
  s3Every: number;
  /** One invocation in this many crashes. */
  crashEvery: number;
}

export interface FaultCounters {
  invocations: number;
  crashes: number;
  crashedMidForward: number;
  crashedBeforeReturn: number;
  dynamoCalls: number;
  dynamoFaults: number;
  s3Calls: number;
  s3Faults: number;
  /** Effects a crashed invocation tried after its crash and did not get. */
  suppressedAfterCrash: number;
}

interface Invocation {
  /** Crash after this many Personalize calls; undefined: no crash planned. */
  crashAfter?: number;
  calls: number;
  crashed: boolean;
  crash?: (reason: string) => void;
}

export class CrashError extends Error {
  override name = 'InjectedCrash';
}

export class InjectedFault extends Error {
  override name = 'InjectedFault';
}

export class ChaosFaults {
  readonly counters: FaultCounters = {
    invocations: 0,
    crashes: 0,
    crashedMidForward: 0,
    crashedBeforeReturn: 0,
    dynamoCalls: 0,
    dynamoFaults: 0,
    s3Calls: 0,
    s3Faults: 0,
    suppressedAfterCrash: 0,
  };
  private readonly current = new AsyncLocalStorage<Invocation>();

  constructor(private readonly schedule: FaultSchedule) {}

  /** For LocalStackOptions.wrapProcessor. */
  wrapHandler = (handler: PollerHandler): PollerHandler => {
    return async (event, context) => {
      const n = ++this.counters.invocations;
      const every = this.schedule.crashEvery;
      // The 3rd invocation, then one in `every`: a short run sees a crash too.
      const planned = every > 0 && n % every === 3 % every;
      const invocation: Invocation = { calls: 0, crashed: false, ...(planned && { crashAfter: 1 + (n % 3) }) };
      if (!planned) return this.current.run(invocation, () => handler(event, context));

      const crashed = new Promise<never>((_, reject) => {
        invocation.crash = (reason) => {
          invocation.crashed = true;
          reject(new CrashError(reason));
        };
      });
      const run = this.current.run(invocation, () => handler(event, context));
      // The rest of a crashed invocation runs on without effect; its outcome is nobody's.
      run.catch(() => undefined);
      crashed.catch(() => undefined);
      try {
        await Promise.race([run, crashed]);
      } catch (error) {
        if (error instanceof CrashError) {
          this.counters.crashes++;
          this.counters.crashedMidForward++;
        }
        throw error;
      }
      invocation.crashed = true;
      this.counters.crashes++;
      this.counters.crashedBeforeReturn++;
      throw new CrashError(`processor crashed (injected) before returning, after ${invocation.calls} Personalize calls`);
    };
  };

  /** The real adapters with faults around them. */
  wrapDeps(real: ProcessorDeps): ProcessorDeps {
    const identity: IdentityStore = {
      getLinks: (ids) => this.storeCall('dynamo', () => real.identity.getLinks(ids)),
      putLinks: (links) => this.storeCall('dynamo', () => real.identity.putLinks(links)),
    };
    const profiles: ProfileStore = {
      getProfiles: (keys) => this.storeCall('dynamo', () => real.profiles.getProfiles(keys)),
      putProfiles: (records) => this.storeCall('dynamo', () => real.profiles.putProfiles(records)),
      deleteProfiles: (keys) => this.storeCall('dynamo', () => real.profiles.deleteProfiles(keys)),
    };
    const archive: ArchiveStore = { put: (key, body) => this.storeCall('s3', () => real.archive.put(key, body)) };
    const personalize: PersonalizeSender = {
      putEvents: (input) => this.personalizeCall(() => real.personalize.putEvents(input)),
      putItems: (input) => this.personalizeCall(() => real.personalize.putItems(input)),
      putUsers: (input) => this.personalizeCall(() => real.personalize.putUsers(input)),
    };
    const dlq: DeadLetterQueue = {
      send: (records) => {
        if (this.current.getStore()?.crashed) {
          this.counters.suppressedAfterCrash++;
          return Promise.resolve([...records]);
        }
        return real.dlq.send(records);
      },
    };
    // Other fields (if the product adds some) pass through untouched.
    return { ...real, identity, profiles, archive, personalize, dlq };
  }

  private afterCrash(): boolean {
    if (!this.current.getStore()?.crashed) return false;
    this.counters.suppressedAfterCrash++;
    return true;
  }

  private async storeCall<T>(which: 'dynamo' | 's3', call: () => Promise<T>): Promise<T> {
    if (this.afterCrash()) throw new CrashError('invocation already crashed');
    const n = which === 'dynamo' ? ++this.counters.dynamoCalls : ++this.counters.s3Calls;
    const every = which === 'dynamo' ? this.schedule.dynamoEvery : this.schedule.s3Every;
    const fail = every > 0 && n % every === 2 % every;
    if (!fail) return call();
    if (which === 'dynamo') this.counters.dynamoFaults++;
    else this.counters.s3Faults++;
    const what = which === 'dynamo' ? 'DynamoDB' : 'S3';
    // Alternate: refused before the call, or done but the answer lost.
    if (Math.floor(n / every) % 2 === 0) throw new InjectedFault(`${what} call failed (injected): ServiceUnavailable`);
    await call();
    throw new InjectedFault(`${what} call timed out after it was applied (injected)`);
  }

  private async personalizeCall(call: () => Promise<void>): Promise<void> {
    if (this.afterCrash()) throw new CrashError('invocation already crashed');
    const invocation = this.current.getStore();
    try {
      await call();
    } finally {
      if (invocation?.crashAfter !== undefined && !invocation.crashed && ++invocation.calls >= invocation.crashAfter) {
        invocation.crash?.(`processor crashed (injected) after ${invocation.calls} Personalize calls`);
      }
    }
  }
}
