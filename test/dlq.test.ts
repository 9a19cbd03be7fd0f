import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetQueueAttributesCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InteractionMessage } from '../schemas/canonical.js';
import { sqsClient } from '../shared/aws/clients.js';
import { main as dlqCli } from '../cli/dlq.js';
import { startLocalStack, type LocalStack } from '../local/stack.js';
import { useEmulators } from './support/env.js';
import { eventTime, isDeadLetter, send, isolatedStack } from './support/stack.js';

useEmulators();

/** Event names not listed are dead-lettered (stage validate, after decoding). */
const STRICT_MAPPING = JSON.stringify({ unmapped: 'reject', events: { View: { eventType: 'View' } } });

let stack: LocalStack;
let stateDir: string;

function interaction(eventId: string, extra: Partial<InteractionMessage> = {}): InteractionMessage {
  return { kind: 'interaction', source: 'segment', eventId, sessionId: `s-${eventId}`, eventType: 'View', itemId: `item-${eventId}`, timestamp: eventTime(), ...extra };
}

/** Runs `npm run dlq` in-process against the stack's stack.json. */
async function dlq(args: string[] = []): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await dlqCli(args, {
    env: { ...process.env, LOCAL_STATE_DIR: stateDir, REDRIVE_WAIT_SECONDS: '0' },
    out: (line) => out.push(line),
    err: (line) => err.push(line),
  });
  return { code, out, err };
}

async function listJson(args: string[] = []): Promise<unknown[]> {
  const run = await dlq(['--json', ...args]);
  expect(run.code).toBe(0);
  return run.out.map((line) => JSON.parse(line) as unknown);
}

const eventIds = (records: unknown[]) => records.filter(isDeadLetter).map((r) => r.eventId ?? '?').sort();

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'dlq-'));
  stack = await startLocalStack({
    ...isolatedStack('dlq', 1),
    stateDir,
    poller: { batchSize: 100, maxBatchingWindowMs: 100, pollIntervalMs: 50, maxRetryAttempts: 1 },
    processorEnv: { EVENT_MAPPING: STRICT_MAPPING, PERSONALIZE_MAX_ATTEMPTS: '1' },
  });
  // No eventId of its own, and no sessionId.
  const { sessionId: _none, eventId: _id, ...anonymous } = interaction('unused', { source: 'mparticle' });
  await send(stack, [
    interaction('dlq-null-session', { sessionId: 'null' }),
    interaction('dlq-hover', { eventType: 'Product Hovered' }),
    JSON.stringify(anonymous),
    '{"kind": "interaction",',
    interaction('dlq-ok'),
  ]);
  await stack.poller.idle();
  // Not ours: the listing shows it without failing.
  await sqsClient().send(new SendMessageCommand({ QueueUrl: stack.names.dlqUrl, MessageBody: 'hello from elsewhere' }));
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  await rm(stateDir, { recursive: true, force: true });
});

describe('dead-letter records explain themselves', () => {
  it('a message that fails validation is dead-lettered with its eventId, kind and source', async () => {
    const records = (await listJson(['--stage', 'validate'])).filter(isDeadLetter);
    const nullSession = records.find((r) => r.eventId === 'dlq-null-session');
    expect(nullSession).toMatchObject({ stage: 'validate', kind: 'interaction', source: 'segment' });
    expect(nullSession!.reason).toMatch(/^sessionId: /);
    expect(records.find((r) => r.eventId === 'dlq-hover')).toMatchObject({ kind: 'interaction', source: 'segment' });
    // Without an eventId of its own: the content hash the processor gives such a message.
    const noSession = records.find((r) => r.source === 'mparticle');
    expect(noSession).toMatchObject({ kind: 'interaction', eventId: expect.stringMatching(/^h-[0-9a-f]{40}$/) as string });
    // Not JSON: nothing to label.
    const [notJson] = (await listJson(['--stage', 'decode'])).filter(isDeadLetter);
    expect(notJson).toMatchObject({ stage: 'decode', source: 'unknown' });
    expect(notJson).not.toHaveProperty('eventId');
  });
});

describe('npm run dlq', () => {
  it('lists every message as a table, without consuming any: a second listing shows the same', async () => {
    const first = await dlq();
    expect(first.code).toBe(0);
    const [header, ...rows] = first.out;
    expect(header).toMatch(/^reason\s+stage\s+eventId\s+kind\s+source\s+payload$/);
    const table = rows.slice(0, -1);
    expect(table).toHaveLength(5);
    expect(table.find((l) => l.includes('dlq-null-session'))).toMatch(/^sessionId: .*\s+validate\s+dlq-null-session\s+interaction\s+segment\s+\{"kind":"interaction"/);
    expect(table.find((l) => l.includes('hello from elsewhere'))).toMatch(/^message body is not JSON\s+unrecognised\s+hello from elsewhere$/);
    expect(first.out.at(-1)).toMatch(/^5 listed of 5 read from http.*\(about 5 visible\)/);
    for (const row of table) expect(row.length).toBeLessThan(60 + 12 + 40 + 12 + 16 + 80 + 5 * 2 + 1);

    const second = await dlq();
    expect(second.out).toEqual(first.out);
  });

  it('--json prints one full record per line; the queue still holds every message afterwards', async () => {
    const run = await dlq(['--json']);
    expect(run.out).toHaveLength(5);
    const records = run.out.map((line) => JSON.parse(line) as unknown);
    expect(eventIds(records)).toEqual(expect.arrayContaining(['dlq-hover', 'dlq-null-session']));
    const full = records.filter(isDeadLetter).find((r) => r.eventId === 'dlq-null-session')!;
    expect(Object.keys(full)).toEqual(expect.arrayContaining(['reason', 'stage', 'source', 'receivedAt', 'payload', 'shardId', 'sequenceNumber', 'errors', 'failedAt']));
    expect(JSON.parse(full.payload)).toMatchObject({ eventId: 'dlq-null-session', sessionId: 'null' });
    expect(records).toContainEqual({ body: 'hello from elsewhere' });
    expect(run.err.join('\n')).toMatch(/5 listed of 5 read/);
  });

  it('filters by --stage and by a --reason substring, and stops at --limit', async () => {
    expect(eventIds(await listJson(['--stage', 'validate']))).toHaveLength(3);
    expect(await listJson(['--stage', 'unrecognised'])).toEqual([{ body: 'hello from elsewhere' }]);
    expect(eventIds(await listJson(['--reason', 'HAS NO ENTRY in the event mapping']))).toEqual(['dlq-hover']);
    expect(await listJson(['--stage', 'decode', '--reason', 'sessionId'])).toEqual([]);
    const limited = await dlq(['--limit', '2']);
    expect(limited.out).toHaveLength(1 + 2 + 1);
    expect(limited.out.at(-1)).toMatch(/reached --limit 2/);
  });

  it('refuses an unknown stage or a bad limit', async () => {
    await expect(dlq(['--stage', 'nope'])).rejects.toThrow(/--stage must be one of decode, validate, preflight, personalize, on-failure, unrecognised/);
    await expect(dlq(['--limit', '0'])).rejects.toThrow(/--limit must be a positive whole number/);
  });

  it('after all the listings, every message is still in the queue, and visible', async () => {
    const out = await sqsClient().send(
      new GetQueueAttributesCommand({ QueueUrl: stack.names.dlqUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
    );
    expect(out.Attributes).toMatchObject({ ApproximateNumberOfMessages: '5', ApproximateNumberOfMessagesNotVisible: '0' });
  });
});
