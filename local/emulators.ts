import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dynalite from 'dynalite';
import kinesalite from 'kinesalite';
import { createSqsServer } from 'local-aws-sqs';
import S3rver from 's3rver';

/**
 * The AWS emulators of the one-machine stack, in-process on 127.0.0.1.
 * Traps are in ../shared/NOTES-tooling.md: Kinesis needs an HTTP/1.1 handler and stream names
 * (not ARNs), S3 needs path style and WHEN_REQUIRED checksums (both set in shared/aws/clients.ts).
 */

export interface EmulatorPorts {
  kinesis?: number;
  dynamodb?: number;
  s3?: number;
  sqs?: number;
}

const HOST = '127.0.0.1';

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => resolve((server.address() as AddressInfo).port));
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
}

export type EmulatedService = 'kinesis' | 'dynamodb' | 's3' | 'sqs';
export const EMULATED_SERVICES: readonly EmulatedService[] = ['kinesis', 'dynamodb', 's3', 'sqs'];
const ENDPOINT_VARIABLE: Record<EmulatedService, string> = {
  kinesis: 'AWS_ENDPOINT_URL_KINESIS',
  dynamodb: 'AWS_ENDPOINT_URL_DYNAMODB',
  s3: 'AWS_ENDPOINT_URL_S3',
  sqs: 'AWS_ENDPOINT_URL_SQS',
};

/** Services whose endpoint the environment already sets (AWS_ENDPOINT_URL_<SERVICE> or AWS_ENDPOINT_URL). */
export function servicesWithEndpoints(env: NodeJS.ProcessEnv = process.env): EmulatedService[] {
  if (env.AWS_ENDPOINT_URL) return [...EMULATED_SERVICES];
  return EMULATED_SERVICES.filter((service) => Boolean(env[ENDPOINT_VARIABLE[service]]));
}

export interface Emulators {
  /** Only the emulators that were started. */
  endpoints: Partial<Record<EmulatedService, string>>;
  /** The standard SDK endpoint variables that point clients at the started emulators. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/**
 * s3rver encrypts ListObjectsV2 continuation tokens with single DES, which OpenSSL 3 (Node 18+)
 * refuses, so every listing of more than 1,000 keys answered 500. Triple DES with the key repeated
 * three times is the same cipher and is still provided. Only 'des' calls on the CommonJS crypto
 * object (what s3rver requires) are rerouted; nothing in the pipeline uses DES.
 */
function allowS3rverContinuationTokens(): void {
  const crypto = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto') & { s3rverDes?: true };
  if (crypto.s3rverDes) return;
  try {
    crypto.createCipheriv('des', Buffer.alloc(8), Buffer.alloc(8));
    return; // DES available (e.g. --openssl-legacy-provider): nothing to do
  } catch {
    // OpenSSL 3 without the legacy provider
  }
  const widen = (args: unknown[]): unknown[] => {
    const [algorithm, key, ...rest] = args;
    return typeof algorithm === 'string' && algorithm.toLowerCase() === 'des' && Buffer.isBuffer(key) && key.length === 8
      ? ['des-ede3-cbc', Buffer.concat([key, key, key]), ...rest]
      : args;
  };
  const { createCipheriv, createDecipheriv } = crypto;
  // Every argument passes through; only the algorithm and key of 'des' calls change.
  crypto.createCipheriv = ((...args: unknown[]) => Reflect.apply(createCipheriv, crypto, widen(args)) as unknown) as typeof createCipheriv;
  crypto.createDecipheriv = ((...args: unknown[]) => Reflect.apply(createDecipheriv, crypto, widen(args)) as unknown) as typeof createDecipheriv;
  crypto.s3rverDes = true;
}

/** Starts the emulators (all four unless `only` says otherwise); port 0 (the default) lets the OS pick. */
export async function startEmulators(
  ports: EmulatorPorts = {},
  options: { dataDir?: string; only?: readonly EmulatedService[] } = {},
): Promise<Emulators> {
  const wanted = new Set(options.only ?? EMULATED_SERVICES);
  const endpoints: Partial<Record<EmulatedService, string>> = {};
  const closers: (() => Promise<void>)[] = [];
  const url = (port: number) => `http://${HOST}:${port}`;

  if (wanted.has('kinesis')) {
    const kinesis = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 });
    endpoints.kinesis = url(await listen(kinesis, ports.kinesis ?? 0));
    closers.push(() => closeServer(kinesis));
  }
  if (wanted.has('dynamodb')) {
    const dynamo = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
    endpoints.dynamodb = url(await listen(dynamo, ports.dynamodb ?? 0));
    closers.push(() => closeServer(dynamo));
  }
  if (wanted.has('s3')) {
    allowS3rverContinuationTokens();
    const s3Dir = options.dataDir ? join(options.dataDir, 's3') : await mkdtemp(join(tmpdir(), 'pi-s3-'));
    const s3 = new S3rver({ port: ports.s3 ?? 0, address: HOST, silent: true, directory: s3Dir });
    endpoints.s3 = url((await s3.run()).port);
    closers.push(async () => {
      await s3.close();
      if (!options.dataDir) await rm(s3Dir, { recursive: true, force: true });
    });
  }
  if (wanted.has('sqs')) {
    const sqs = await createSqsServer({ port: ports.sqs ?? 0, hostname: HOST, emulateQueueCreationLifecycle: false });
    endpoints.sqs = url((sqs.address() as AddressInfo).port);
    closers.push(() => closeServer(sqs));
  }
  const env: Record<string, string> = {};
  for (const service of EMULATED_SERVICES) {
    const endpoint = endpoints[service];
    if (endpoint) env[ENDPOINT_VARIABLE[service]] = endpoint;
  }
  return {
    endpoints,
    env,
    async close() {
      await Promise.all(closers.map((close) => close()));
    },
  };
}
