import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { PersonalizeClient } from '@aws-sdk/client-personalize';
import { PersonalizeEventsClient } from '@aws-sdk/client-personalize-events';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { NodeHttpHandler } from '@smithy/node-http-handler';

/**
 * AWS clients, built once per container. Endpoints are never set here: the SDK itself honours
 * AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>, so any run can be pointed at other endpoints.
 * Retries use the SDK's own retry modes (AWS_RETRY_MODE / AWS_MAX_ATTEMPTS, or the defaults below).
 */

const httpHandler = () =>
  new NodeHttpHandler({ connectionTimeout: 3_000, requestTimeout: 10_000 });

/** True when the S3 endpoint is overridden (emulators and most S3-compatible stores need path style). */
export function s3EndpointOverridden(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL);
}

export interface ClientOptions {
  region?: string;
  /** Total attempts per call, first try included (SDK standard/adaptive retry). */
  maxAttempts?: number;
  retryMode?: 'standard' | 'adaptive';
}

export function kinesisClient(o: ClientOptions = {}): KinesisClient {
  // HTTP/1.1: the SDK's default HTTP/2 handler for Kinesis fails against the emulators, and
  // PutRecords/GetRecords gain nothing from HTTP/2 (only SubscribeToShard needs it).
  return new KinesisClient({ ...o, requestHandler: httpHandler() });
}

export function dynamoDocumentClient(o: ClientOptions = {}): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(new DynamoDBClient({ ...o, requestHandler: httpHandler() }), {
    marshallOptions: { removeUndefinedValues: true },
  });
}

export function s3Client(o: ClientOptions = {}): S3Client {
  return new S3Client({
    ...o,
    requestHandler: httpHandler(),
    forcePathStyle: s3EndpointOverridden(),
    // Without these, a streamed PutObject to an S3 emulator is stored with aws-chunked framing.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export function sqsClient(o: ClientOptions = {}): SQSClient {
  return new SQSClient({ ...o, requestHandler: httpHandler() });
}

export function personalizeEventsClient(o: ClientOptions = {}): PersonalizeEventsClient {
  return new PersonalizeEventsClient({ ...o, requestHandler: httpHandler() });
}

/** The Personalize control plane (dataset import jobs); AWS_ENDPOINT_URL_PERSONALIZE points it elsewhere. */
export function personalizeClient(o: ClientOptions = {}): PersonalizeClient {
  return new PersonalizeClient({ ...o, requestHandler: httpHandler() });
}
