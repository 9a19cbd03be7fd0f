import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteMessageCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { Context } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { InteractionMessage } from '../schemas/canonical.js';
import { sqsClient } from '../shared/aws/clients.js';
import type { RedriveSummary } from '../shared/ops/redrive.js';
import { main as redriveCli } from '../cli/redrive.js';
import { startLocalStack, type LocalStack } from '../local/stack.js';
import type { KinesisOnFailureRecord } from '../local/poller.js';
import { useEmulators } from './support/env.js';
import { drainDlq, eventTime, isDeadLetter, send, isolatedStack } from './support/stack.js';

useEmulators();

/** The processor starts strict: event names not listed are dead-lettered. */
const STRICT_MAPPING = JSON.stringify({ unmapped: 'reject', events: { View: { eventType: 'View' }, 'Product Viewed': { eventType: 'View' } } });
const PASSTHROUGH_MAPPING = JSON.stringify({ unmapped: 'passthrough', events: { 'Product Viewed': { eventType: 'View' } } });

let stack: LocalStack;
let stateDir: string;
// Imported once the stack has set the processor's environment (the logger reads its level at import).
let processor: typeof import('../shared/process/handle.js');
let processorDepsFromEnv: typeof import('../shared/process/runtime.js').processorDepsFromEnv;

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'redrive-'));
  stack = await startLocalStack({
    ...isolatedStack('redrive', 1),
    stateDir,
    poller: { batchSize: 100, maxBatchingWindowMs: 100, pollIntervalMs: 50, maxRetryAttempts: 1 },
    processorEnv: { EVENT_MAPPING: STRICT_MAPPING, PERSONALIZE_MAX_ATTEMPTS: '1' },
  });
  processor = await import('../shared/process/handle.js');
  ({ processorDepsFromEnv } = await import('../shared/process/runtime.js'));
}, 60_000);

afterAll(async () => {
  await stack?.stop();
  await rm(stateDir, { recursive: true, force: true });
});

beforeEach(async () => {
  await stack.poller.idle();
  stack.personalize!.setFaults({ serverErrorRate: 0, rejectEvent: undefined });
  stack.personalize!.reset();
  await drainDlq(stack);
});

afterEach(() => {
  // Back to the processor configuration the stack started with.
  processor.setProcessorDeps(undefined);
});

function interaction(eventId: string, extra: Partial<InteractionMessage> = {}): InteractionMessage {
  return { kind: 'interaction', source: 'native', eventId, sessionId: `s-${eventId}`, eventType: 'View', itemId: `item-${eventId}`, timestamp: eventTime(), ...extra };
}

/** Runs `npm run redrive` in-process against the stack's stack.json; returns its exit code and output. */
async function redrive(args: string[] = [], env: Record<string, string> = {}): Promise<{ code: number; output: string }> {
  const lines: string[] = [];
  const code = await redriveCli(args, {
    env: { ...process.env, LOCAL_STATE_DIR: stateDir, REDRIVE_WAIT_SECONDS: '0', ...env },
    out: (line) => lines.push(line),
    err: (line) => lines.push(line),
  });
  return { code, output: lines.join('\n') };
}

/** Every message body as it is (drainDlq parses JSON, and one of these is not). */
async function drainRaw(): Promise<string[]> {
  const sqs = sqsClient();
  const bodies: string[] = [];
  for (;;) {
    const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: stack.names.dlqUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
    if (!out.Messages?.length) return bodies;
    for (const m of out.Messages) {
      bodies.push(m.Body ?? '');
      await sqs.send(new DeleteMessageCommand({ QueueUrl: stack.names.dlqUrl, ReceiptHandle: m.ReceiptHandle }));
    }
  }
}

const delivered = () => new Set(stack.personalize!.receivedEvents().map((e) => e.eventId));

describe('npm run redrive', () => {
  it('puts a record back on the stream once a config change fixes it, and it reaches Personalize and leaves the queue', async () => {
    await send(stack, [interaction('rd-hover', { eventType: 'Product Hovered' }), interaction('rd-ok')]);
    await stack.poller.idle();
    expect(delivered()).toEqual(new Set(['rd-ok']));

    // The operator relaxes the mapping for the processor, then redrives with the same configuration.
    processor.setProcessorDeps(processorDepsFromEnv({ ...process.env, EVENT_MAPPING: PASSTHROUGH_MAPPING }));
    const run = await redrive([], { EVENT_MAPPING: PASSTHROUGH_MAPPING });
    expect(run.code).toBe(0);
    expect(run.output).toMatch(/redriven\s+1\s/);
    expect(run.output).toMatch(/eventType "" has no entry in the event mapping\s+-> redriven 1/);
    await stack.poller.idle();

    const event = stack.personalize!.receivedEvents().find((e) => e.eventId === 'rd-hover');
    expect(event).toMatchObject({ eventType: 'Product Hovered', sessionId: 's-rd-hover' });
    expect(await drainDlq(stack)).toEqual([]);
  });

  it('keeps a record that still fails, with the new reason, a redrive count and the time, and counts again on the next run', async () => {
    await send(stack, [interaction('rd-bad', { sessionId: 'undefined' })]);
    await stack.poller.idle();

    const first = await redrive();
    expect(first.output).toMatch(/stillBad\s+1\s/);
    const second = await redrive(['--max', '5']);
    expect(second.output).toMatch(/stillBad\s+1\s/);

    const kept = (await drainDlq(stack)).filter(isDeadLetter);
    expect(kept).toHaveLength(1);
    expect(kept[0]).toMatchObject({ stage: 'validate', redriveAttempts: 2 });
    expect(JSON.parse(kept[0]!.payload)).toMatchObject({ eventId: 'rd-bad' });
    expect(kept[0]!.reason).toMatch(/sessionId is blank or the literal text null/);
    expect(Date.parse((kept[0] as { lastRedriveAt?: string }).lastRedriveAt ?? '')).toBeGreaterThan(Date.now() - 60_000);
  });

  it('sends a record Personalize refused back as it was, and Personalize takes it once it accepts it', async () => {
    stack.personalize!.setFaults({ rejectEvent: (event) => (event.eventId === 'rd-refused' ? 'item is blocked for now' : undefined) });
    await send(stack, [interaction('rd-refused')]);
    await stack.poller.idle();
    stack.personalize!.setFaults({ rejectEvent: undefined });

    const dry = await redrive(['--dry-run']);
    expect(dry.output).toMatch(/dry run: nothing was changed/);
    expect(dry.output).toMatch(/redriven\s+1\s/);
    await stack.poller.idle();
    expect(delivered().has('rd-refused')).toBe(false);

    expect((await redrive()).code).toBe(0);
    await stack.poller.idle();
    expect(delivered().has('rd-refused')).toBe(true);
    expect(await drainDlq(stack)).toEqual([]);
  });

  it("re-reads the range of an event source mapping's on-failure record from the stream and puts the records back", async () => {
    // Personalize fails every call: the poller retries once, then gives up with an on-failure record.
    stack.personalize!.setFaults({ serverErrorRate: 1 });
    await send(stack, [interaction('rd-esm-1', { sessionId: 's-esm' }), interaction('rd-esm-2', { sessionId: 's-esm' })]);
    await stack.poller.idle();
    stack.personalize!.setFaults({ serverErrorRate: 0 });
    expect(stack.poller.stats().onFailureRecordsSent).toBeGreaterThan(0);

    const run = await redrive();
    expect(run.output).toMatch(/reread\s+1\s/);
    expect(run.output).toMatch(/records put back on the stream: 2/);
    await stack.poller.idle();
    expect(delivered()).toEqual(new Set(['rd-esm-1', 'rd-esm-2']));
    expect(await drainDlq(stack)).toEqual([]);
  });

  it('keeps an on-failure record whose records left the stream, saying so, and leaves messages it does not know', async () => {
    const sqs = sqsClient();
    const gone: KinesisOnFailureRecord = {
      requestContext: { requestId: 'r-1', functionArn: 'arn:aws:lambda:us-east-1:000000000000:function:process', condition: 'RetryAttemptsExhausted', approximateInvokeCount: 3 },
      responseContext: { statusCode: 200, executedVersion: '$LATEST' },
      version: '1.0',
      timestamp: new Date().toISOString(),
      KinesisBatchInfo: {
        shardId: 'shardId-000000000042',
        startSequenceNumber: '49600000000000000000000000000000000000000000000000000001',
        endSequenceNumber: '49600000000000000000000000000000000000000000000000000009',
        approximateArrivalOfFirstRecord: new Date().toISOString(),
        approximateArrivalOfLastRecord: new Date().toISOString(),
        batchSize: 3,
        streamArn: stack.names.streamArn,
      },
    };
    await sqs.send(new SendMessageCommand({ QueueUrl: stack.names.dlqUrl, MessageBody: JSON.stringify(gone) }));
    await sqs.send(new SendMessageCommand({ QueueUrl: stack.names.dlqUrl, MessageBody: 'hello from somewhere else' }));

    const run = await redrive();
    expect(run.code).toBe(0);
    expect(run.output).toMatch(/expired\s+1\s/);
    expect(run.output).toMatch(/unrecognised\s+1\s/);

    const left = await drainRaw();
    expect(left).toHaveLength(2);
    expect(left).toContain('hello from somewhere else');
    const kept = left.map((body) => (body.startsWith('{') ? (JSON.parse(body) as Record<string, unknown>) : {})).find((m) => 'KinesisBatchInfo' in m);
    expect(kept).toMatchObject({ KinesisBatchInfo: gone.KinesisBatchInfo, redriveAttempts: 1 });
    expect(kept?.redriveReason).toMatch(/no longer on the stream \(retention expired\)/);
  });
});

describe('the redrive Lambda', () => {
  it('answers a manual dry-run invocation with the summary and changes nothing', async () => {
    await send(stack, [interaction('rd-lambda', { sessionId: 'null' })]);
    await stack.poller.idle();
    process.env.REDRIVE_WAIT_SECONDS = '0';
    const { handler } = await import('../functions/redrive/handler.js');
    const context = { getRemainingTimeInMillis: () => 600_000, functionName: 'redrive', awsRequestId: 'req-1' } as unknown as Context;
    const summary: RedriveSummary = await handler({ max: 10, dryRun: true }, context);
    expect(summary).toMatchObject({ dryRun: true, messages: 1, outcomes: { stillBad: 1 } });
    const kept = (await drainDlq(stack)).filter(isDeadLetter);
    expect(kept).toHaveLength(1);
    expect(kept[0]).not.toHaveProperty('redriveAttempts');
  });
});
