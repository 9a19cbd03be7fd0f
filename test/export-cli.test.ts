import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InteractionMessage } from '../schemas/canonical.js';
import { dynamoDocumentClient, kinesisClient, s3Client, sqsClient } from '../shared/aws/clients.js';
import type { ExportManifest } from '../shared/export/manifest.js';
import { DynamoIdentityStore } from '../shared/aws/dynamo-identity.js';
import { startLocalPersonalizeControl, type LocalPersonalizeControl } from '../local/personalize-control.js';
import { createResources } from '../local/resources.js';
import { useEmulators, uniqueName } from './support/env.js';
import { at, csvRecords, daysAgo, entry, listKeys, putArchiveBatch, readText } from './support/export.js';

const emulatorEnv = useEmulators();
const run = promisify(execFile);

let control: LocalPersonalizeControl;
let stateDir: string;
const names = { identityTable: uniqueName('cli-identity'), archiveBucket: uniqueName('cli-archive') };
const day = daysAgo(4);

/** `npm run export -- ...` as a user runs it: the CLI in its own process, configured by .local/stack.json only. */
async function exportCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LOCAL_STATE_DIR: stateDir, NODE_NO_WARNINGS: '1' };
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'cli/export.ts', ...args], { env, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

beforeAll(async () => {
  control = await startLocalPersonalizeControl({ s3: s3Client(), activateAfterMs: 0 });
  await createResources(
    { kinesis: kinesisClient(), s3: s3Client(), sqs: sqsClient() },
    { ...names, streamName: uniqueName('cli-stream'), shardCount: 1, dlqName: uniqueName('cli-dlq') },
  );
  stateDir = await mkdtemp(join(tmpdir(), 'pi-cli-'));
  const group = `arn:aws:personalize:us-east-1:000000000000:dataset/${uniqueName('cli')}`;
  await writeFile(
    join(stateDir, 'stack.json'),
    JSON.stringify({
      endpoints: { s3: emulatorEnv.AWS_ENDPOINT_URL_S3, dynamodb: emulatorEnv.AWS_ENDPOINT_URL_DYNAMODB, personalize: control.url },
      names,
      region: 'us-east-1',
      export: { interactionsDatasetArn: `${group}/INTERACTIONS`, usersDatasetArn: `${group}/USERS`, importRoleArn: 'arn:aws:iam::000000000000:role/import' },
    }),
  );
  const view = (eventId: string, sessionId: string, time: string): InteractionMessage => ({
    kind: 'interaction', source: 'native', eventId, sessionId, eventType: 'View', itemId: `item-${eventId}`, timestamp: at(day, time),
  });
  await putArchiveBatch(names.archiveBucket, [entry(view('v1', 'cli-s1', '08:00:00')), entry(view('v2', 'cli-s2', '08:01:00'))], { first: '1', last: '2' });
  await new DynamoIdentityStore(dynamoDocumentClient(), names.identityTable).putLinks([
    { sessionId: 'cli-s1', userId: 'cli-user', linkedAt: at(day, '09:00:00'), eventId: 'l', source: 'native' },
  ]);
});

afterAll(async () => {
  await control?.close();
  if (stateDir) await rm(stateDir, { recursive: true, force: true });
});

describe('npm run export', () => {
  it('exports a day against the local stack described by stack.json and prints a summary table', async () => {
    const { code, stdout } = await exportCli(['--date', day]);
    expect(code).toBe(0);
    expect(stdout).toContain(`export ${day} (complement): manifest s3://${names.archiveBucket}/imports/manifests/${day}.json`);
    expect(stdout).toMatch(/^kind +objects +read +rejected +duplicates +older versions +backfilled +streamed +anon no link +deleted users +published before +exported +revision +held \(pending\)$/m);
    expect(stdout).toMatch(/^interactions +1 +2 +0 +0 +0 +1 +0 +1 +0 +0 +1 +r1 +1$/m);
    expect(stdout).toContain('interactions held: 1 rows in 1 file(s) under imports/interactions/pending/');
    expect(stdout).toContain('items: no items dataset ARN configured');
    const rows = csvRecords(await readText(names.archiveBucket, `imports/interactions/pending/interactions-${day}-r1-001.csv`));
    expect(rows.map((r) => [r.USER_ID, r.ITEM_ID])).toEqual([['cli-user', 'item-v1']]);
  });

  it('writes the CSVs only with --no-import, and prints the manifest with --json', async () => {
    const { code, stdout } = await exportCli(['--date', day, '--no-import', '--bulk-mode', 'bootstrap', '--anonymous', 'session-as-user', '--json']);
    expect(code).toBe(0);
    const manifest = JSON.parse(stdout) as ExportManifest;
    expect(manifest.options).toMatchObject({ bulkMode: 'bootstrap', import: false, anonymous: 'session-as-user' });
    expect(manifest.kinds.interactions).toMatchObject({ exported: 2, sessionAsUser: 1, backfilled: 1 });
    expect(await listKeys(names.archiveBucket, `imports/interactions/dt=${day}/`)).toEqual([`imports/interactions/dt=${day}/interactions-${day}-001.csv`]);
  });

  it('refuses a run that would import interactions twice, with the reason, and exits 1', async () => {
    const { code, stdout, stderr } = await exportCli(['--date', day, '--anonymous', 'session-as-user']);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/session-as-user is refused in complement mode/);
  });

  it('prints the readiness verdict in one line, and carries it in the --json manifest', async () => {
    const { code, stdout } = await exportCli(['--date', day, '--no-import']);
    expect(code).toBe(0);
    const verdict =
      'readiness: NOT READY — 1/1000 interactions, 0/25 users with ≥2 interactions, 0%/1% of users with ≥2 ' +
      '(recommended: 1/50000 interactions, 0/1000 users with ≥2)';
    expect(stdout.split('\n').filter((line) => line.startsWith('readiness:'))).toEqual([verdict]);
    const json = await exportCli(['--date', day, '--no-import', '--json']);
    expect(json.code).toBe(0);
    const manifest = JSON.parse(json.stdout) as ExportManifest;
    expect(manifest.readiness).toMatchObject({ verdict: 'NOT READY', recommended: false, key: `imports/readiness/${day}.json`, line: verdict });
    const report = JSON.parse(await readText(names.archiveBucket, 'imports/readiness/latest.json')) as { interactions: { total: number; anonymous: number } };
    expect(report.interactions).toMatchObject({ total: 1, anonymous: 1 });
  });

  it('answers a bad flag with the reason and the usage, exit code 2', async () => {
    const { code, stderr } = await exportCli(['--date', '2026-02-30']);
    expect(code).toBe(2);
    expect(stderr).toContain('--date must be a UTC day written YYYY-MM-DD, got "2026-02-30"');
    expect(stderr).toContain('usage: npm run export --');
  });
});
