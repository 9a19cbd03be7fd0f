import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Shared by the operator CLIs (redrive, replay, delete-user, dlq, export, personalize-deletions):
 * point the AWS clients and the resource names at the local stack from its `stack.json`, or, with
 * `--aws`, leave everything to the environment (real credentials, names in DLQ_URL / STREAM_NAME / ARCHIVE_BUCKET / ...).
 */

export interface CliIo {
  env: NodeJS.ProcessEnv;
  out: (line: string) => void;
  err: (line: string) => void;
  /** Asks a long run to stop at its next safe point (Ctrl-C). */
  signal?: AbortSignal;
}

export const defaultIo: CliIo = {
  env: process.env,
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

interface StackFile {
  endpoints?: Record<string, string>;
  names?: { streamName?: string; identityTable?: string; archiveBucket?: string; dlqUrl?: string };
  region?: string;
  export?: { interactionsDatasetArn?: string; itemsDatasetArn?: string; usersDatasetArn?: string; importRoleArn?: string; datasetGroupArn?: string };
}

export class CliError extends Error {
  override name = 'CliError';
}

const ENDPOINT_VARIABLES: Record<string, string> = {
  kinesis: 'AWS_ENDPOINT_URL_KINESIS',
  dynamodb: 'AWS_ENDPOINT_URL_DYNAMODB',
  s3: 'AWS_ENDPOINT_URL_S3',
  sqs: 'AWS_ENDPOINT_URL_SQS',
  personalizeEvents: 'AWS_ENDPOINT_URL_PERSONALIZE_EVENTS',
  // The local control plane (import and deletion jobs).
  personalize: 'AWS_ENDPOINT_URL_PERSONALIZE',
};

/**
 * Fills `env` from the local stack's stack.json. Variables already set (not blank) win, so any one
 * part can be pointed elsewhere. The SDK reads endpoints from process.env, so they are set there too.
 * Without the file: a CliError, or with `optional` (the export CLI, which has no --aws), false.
 */
export async function useLocalStackFile(env: NodeJS.ProcessEnv, options: { optional?: boolean } = {}): Promise<boolean> {
  const file = resolve(env.LOCAL_STATE_DIR ?? '.local', 'stack.json');
  let stack: StackFile;
  try {
    stack = JSON.parse(await readFile(file, 'utf8')) as StackFile;
  } catch {
    if (options.optional) return false;
    throw new CliError(`no local stack found (${file}): start it with \`npm start\`, or pass --aws to use the AWS resources named in the environment`);
  }
  const unset = (e: NodeJS.ProcessEnv, name: string) => e[name] === undefined || e[name] === '';
  const setDefault = (name: string, value: string | undefined) => {
    if (value === undefined || value === 'aws') return;
    if (unset(env, name)) env[name] = value;
    if (env !== process.env && unset(process.env, name)) process.env[name] = value;
  };
  setDefault('AWS_REGION', stack.region ?? 'us-east-1');
  // The only pair s3rver accepts; the other emulators take anything.
  setDefault('AWS_ACCESS_KEY_ID', 'S3RVER');
  setDefault('AWS_SECRET_ACCESS_KEY', 'S3RVER');
  if (!env.AWS_ENDPOINT_URL) {
    for (const [service, variable] of Object.entries(ENDPOINT_VARIABLES)) setDefault(variable, stack.endpoints?.[service]);
  }
  setDefault('STREAM_NAME', stack.names?.streamName);
  setDefault('IDENTITY_TABLE', stack.names?.identityTable);
  setDefault('ARCHIVE_BUCKET', stack.names?.archiveBucket);
  setDefault('DLQ_URL', stack.names?.dlqUrl);
  setDefault('PERSONALIZE_DATASET_GROUP_ARN', stack.export?.datasetGroupArn);
  setDefault('PERSONALIZE_IMPORT_ROLE_ARN', stack.export?.importRoleArn);
  setDefault('PERSONALIZE_INTERACTIONS_DATASET_ARN', stack.export?.interactionsDatasetArn);
  setDefault('PERSONALIZE_ITEMS_DATASET_ARN', stack.export?.itemsDatasetArn);
  setDefault('PERSONALIZE_USERS_DATASET_ARN', stack.export?.usersDatasetArn);
  return true;
}

/** `--name value` and `--flag` arguments; positional arguments in order. */
export function parseArgs(argv: readonly string[], flags: readonly string[], options: readonly string[]): { flags: Set<string>; options: Map<string, string>; positional: string[] } {
  const out = { flags: new Set<string>(), options: new Map<string, string>(), positional: [] as string[] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      out.positional.push(arg);
      continue;
    }
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    if (flags.includes(name)) out.flags.add(name);
    else if (options.includes(name)) {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new CliError(`--${name} needs a value`);
      out.options.set(name, value);
    } else throw new CliError(`unknown option --${name}`);
  }
  return out;
}

/** True when this module is the script node/tsx was started with. */
export function isMain(moduleUrl: string): boolean {
  const script = process.argv[1];
  return script !== undefined && resolve(script) === fileURLToPath(moduleUrl);
}

/** Runs a CLI's main and exits with its status; usage errors print without a stack. */
export function runCli(main: (argv: string[], io: CliIo) => Promise<number>): void {
  // First Ctrl-C: stop at the next safe point; second: now.
  const controller = new AbortController();
  process.on('SIGINT', () => {
    if (controller.signal.aborted) process.exit(130);
    console.error('stopping after the current step (Ctrl-C again to quit now)');
    controller.abort();
  });
  main(process.argv.slice(2), { ...defaultIo, signal: controller.signal }).then(
    (code) => process.exit(code),
    (error: unknown) => {
      // Errors meant for the operator print as one line; anything else with its stack.
      const plain = error instanceof Error && ['CliError', 'ReplayError', 'ConfigError', 'EventMappingError'].includes(error.name);
      console.error(plain ? error.message : error);
      process.exit(error instanceof CliError ? 2 : 1);
    },
  );
}
