import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
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

export interface Emulators {
  endpoints: { kinesis: string; dynamodb: string; s3: string; sqs: string };
  /** The standard SDK endpoint variables that point every client at these emulators. */
  env: Record<string, string>;
  close(): Promise<void>;
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

/** Starts all four emulators; port 0 (the default) lets the OS pick. */
export async function startEmulators(ports: EmulatorPorts = {}, dataDir?: string): Promise<Emulators> {
  const s3Dir = dataDir ? join(dataDir, 's3') : await mkdtemp(join(tmpdir(), 'pi-s3-'));
  const kinesis = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 });
  const dynamo = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const s3 = new S3rver({ port: ports.s3 ?? 0, address: HOST, silent: true, directory: s3Dir });
  const sqs = await createSqsServer({ port: ports.sqs ?? 0, hostname: HOST, emulateQueueCreationLifecycle: false });

  const [kinesisPort, dynamoPort, s3Address] = await Promise.all([
    listen(kinesis, ports.kinesis ?? 0),
    listen(dynamo, ports.dynamodb ?? 0),
    s3.run(),
  ]);
  const sqsPort = (sqs.address() as AddressInfo).port;

  const endpoints = {
    kinesis: `http://${HOST}:${kinesisPort}`,
    dynamodb: `http://${HOST}:${dynamoPort}`,
    s3: `http://${HOST}:${s3Address.port}`,
    sqs: `http://${HOST}:${sqsPort}`,
  };
  return {
    endpoints,
    env: {
      AWS_ENDPOINT_URL_KINESIS: endpoints.kinesis,
      AWS_ENDPOINT_URL_DYNAMODB: endpoints.dynamodb,
      AWS_ENDPOINT_URL_S3: endpoints.s3,
      AWS_ENDPOINT_URL_SQS: endpoints.sqs,
    },
    async close() {
      await Promise.all([closeServer(kinesis), closeServer(dynamo), closeServer(sqs), s3.close()]);
      if (!dataDir) await rm(s3Dir, { recursive: true, force: true });
    },
  };
}
