import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CanonicalMessage, InteractionMessage } from '../schemas/canonical.js';
import { s3Client } from '../shared/aws/clients.js';
import { S3Bucket } from '../shared/aws/s3-bucket.js';
import { recordDeletion } from '../shared/deletion.js';
import { REPLAY_KINDS, replayArchive, type Checkpoint } from '../shared/ops/replay.js';
import { replayRuntimeFromEnv } from '../shared/ops/replay-runtime.js';
import type { PersonalizeSender } from '../shared/personalize/forward.js';
import { main as replayCli } from '../cli/replay.js';
import { knownUserSessionId } from '../shared/personalize/put-session.js';
import { startLocalStack, type LocalStack } from '../local/stack.js';
import { useEmulators } from './support/env.js';
import { eventTime, readArchive, send, isolatedStack } from './support/stack.js';

useEmulators();

let stack: LocalStack;
let stateDir: string;

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'replay-'));
  stack = await startLocalStack({
    ...isolatedStack('replay', 1),
    stateDir,
    poller: { batchSize: 100, maxBatchingWindowMs: 100, pollIntervalMs: 50 },
  });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  await rm(stateDir, { recursive: true, force: true });
});

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

function interaction(sessionId: string, eventId: string, extra: Partial<InteractionMessage> = {}): InteractionMessage {
  return { kind: 'interaction', source: 'native', eventId, sessionId, eventType: 'View', itemId: `item-${eventId}`, timestamp: eventTime(), ...extra };
}

/** Batch b: two sessions of three events; the first batch also carries an item and a user. */
function batch(b: number): CanonicalMessage[] {
  const messages: CanonicalMessage[] = [];
  for (let s = 0; s < 2; s++) {
    // Batch 1's second session belongs to a user who asks to be deleted before the replay.
    const userId = b === 1 && s === 1 ? 'rp-deleted' : `rp-user-${b}-${s}`;
    for (let e = 0; e < 3; e++) messages.push(interaction(`rp-b${b}-s${s}`, `rp-b${b}-s${s}-e${e}`, { userId }));
  }
  if (b === 0) {
    messages.push({ kind: 'item', source: 'feed', eventId: 'rp-item', itemId: 'rp-sku', timestamp: eventTime(), properties: { categoryL1: 'shoes', price: 10, creationTimestamp: Date.now() - 86_400_000 } });
    messages.push({ kind: 'user', source: 'feed', eventId: 'rp-profile', userId: 'rp-user-0-0', timestamp: eventTime(), properties: { membershipType: 'gold' } });
  }
  return messages;
}

describe('npm run replay', () => {
  it('resumes an interrupted replay: every archived event reaches Personalize with its eventId, no completed object is sent again', async () => {
    for (let b = 0; b < 4; b++) {
      await send(stack, batch(b));
      await stack.poller.idle();
    }
    await recordDeletion(new S3Bucket(s3Client(), stack.names.archiveBucket), 'rp-deleted', Date.now());
    const archive = await readArchive(stack.names.archiveBucket);
    const interactionObjects = [...archive.entries()].filter(([key]) => key.startsWith('archive/interactions/')).sort(([a], [b]) => (a < b ? -1 : 1));
    expect(interactionObjects.length).toBeGreaterThanOrEqual(4);
    const eventsOf = new Map(interactionObjects.map(([key, o]) => [key, o.records.map((r) => r.eventId)]));

    stack.personalize!.reset();
    stack.personalize!.setFaults({ rejectEvent: (event) => (event.eventId === 'rp-b2-s0-e1' ? 'refused on replay' : undefined) });
    const from = day(Date.now() - 86_400_000);
    const to = day(Date.now());
    const checkpointPath = join(stateDir, 'replay.checkpoint.json');
    const reportPath = join(stateDir, 'replay.rejections.ndjson');

    // Run 1 dies (like a killed process) on its third PutEvents call: the first object is done, the second is not.
    const runtime = replayRuntimeFromEnv({ ...process.env }, { from, to, kinds: REPLAY_KINDS, checkpointPath, reportPath, putEventsPerSecond: 0 });
    let calls = 0;
    const dying: PersonalizeSender = {
      putEvents: (input) => (++calls > 2 ? Promise.reject(new Error('process killed')) : runtime.deps.sender.putEvents(input)),
      putItems: (input) => runtime.deps.sender.putItems(input),
      putUsers: (input) => runtime.deps.sender.putUsers(input),
    };
    await expect(replayArchive({ ...runtime.deps, sender: dying }, runtime.settings)).rejects.toThrow(/not delivered .* run the same command again to resume/);
    const afterRun1 = JSON.parse(await readFile(checkpointPath, 'utf8')) as Checkpoint;
    expect(afterRun1).toMatchObject({ objectsDone: 1, finished: false, through: interactionObjects[0]![0] });
    const run1Count = stack.personalize!.receivedEvents().length;

    // Run 2: the same command, through the CLI.
    const lines: string[] = [];
    const io = { env: { ...process.env, LOCAL_STATE_DIR: stateDir }, out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
    const args = ['--from', from, '--to', to, '--checkpoint', checkpointPath, '--report', reportPath, '--rate', '200'];
    expect(await replayCli(args, io)).toBe(0);
    expect(lines.join('\n')).toMatch(/1 already sent before \(checkpoint\)/);

    const received = stack.personalize!.receivedEvents();
    const run2 = received.slice(run1Count).map((e) => e.eventId ?? '');
    const completedInRun1 = [...eventsOf.entries()].filter(([key]) => key <= afterRun1.through!).flatMap(([, ids]) => ids);
    expect(run2.filter((id) => completedInRun1.includes(id))).toEqual([]);

    // Nothing missing: every archived interaction but the deleted user's and the refused one, with its own eventId and user.
    const expected = [...eventsOf.values()].flat().filter((id) => !id.startsWith('rp-b1-s1-') && id !== 'rp-b2-s0-e1');
    expect(new Set(received.map((e) => e.eventId))).toEqual(new Set(expected));
    // A user's events name a session derived from the anonymous one (shared/personalize/put-session.ts).
    expect(received.find((e) => e.eventId === 'rp-b3-s0-e2')).toMatchObject({ userId: 'rp-user-3-0', sessionId: knownUserSessionId('rp-b3-s0') });
    // Only the object in flight when run 1 died may have been sent twice.
    const inFlight = new Set(eventsOf.get(interactionObjects[1]![0]));
    const counts = new Map<string, number>();
    for (const e of received) counts.set(e.eventId!, (counts.get(e.eventId!) ?? 0) + 1);
    for (const [id, n] of counts) expect({ id, n }).toEqual({ id, n: inFlight.has(id) ? n : 1 });

    expect(stack.personalize!.received('PutItems').flatMap((c) => c.request.items.map((i) => i.itemId))).toEqual(['rp-sku']);
    expect(stack.personalize!.received('PutUsers').flatMap((c) => c.request.users.map((u) => u.userId))).toEqual(['rp-user-0-0']);
    const report = (await readFile(reportPath, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(report).toMatchObject([{ eventId: 'rp-b2-s0-e1', stage: 'personalize', reason: expect.stringContaining('refused on replay') as string }]);

    // The replay only reads: the archive is as it was (so the export counts nothing twice).
    const after = await readArchive(stack.names.archiveBucket);
    expect([...after.keys()].sort()).toEqual([...archive.keys()].sort());

    // Run 3: nothing left to send.
    stack.personalize!.reset();
    expect(await replayCli(args, io)).toBe(0);
    expect(stack.personalize!.receivedEvents()).toEqual([]);
  });

  it('refuses a checkpoint written for another range', async () => {
    const checkpointPath = join(stateDir, 'other.checkpoint.json');
    const io = { env: { ...process.env, LOCAL_STATE_DIR: stateDir }, out: () => undefined, err: () => undefined };
    expect(await replayCli(['--from', '2026-01-01', '--to', '2026-01-01', '--kind', 'items', '--checkpoint', checkpointPath], io)).toBe(0);
    await expect(replayCli(['--from', '2026-01-01', '--to', '2026-01-02', '--kind', 'items', '--checkpoint', checkpointPath], io)).rejects.toThrow(
      /checkpoint is for --from 2026-01-01 --to 2026-01-01 --kind items/,
    );
  });
});
