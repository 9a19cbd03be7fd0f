import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { LOCAL_CREDENTIALS, LOCAL_ITEMS_DATASET_ARN, LOCAL_TRACKING_ID, LOCAL_USERS_DATASET_ARN, type LocalVariable } from './stack.js';

/**
 * Prints `--env NAME=value` flags for `serverless invoke local`, from the running local stack's
 * .local/stack.json, so a function invoked on its own talks to the same emulators.
 */
interface StackFile {
  endpoints: Record<string, string>;
  names: { identityTable: string; archiveBucket: string; dlqUrl: string; streamName: string };
  region?: string;
}

const file = resolve(process.env.LOCAL_STATE_DIR ?? '.local', 'stack.json');
let stack: StackFile;
try {
  stack = JSON.parse(await readFile(file, 'utf8')) as StackFile;
} catch {
  console.error(`${file} not found: start the local stack first (npm start)`);
  process.exit(1);
}
// The variables serverless/environment.json marks `invokeLocal` (the compiler holds this table to
// exactly that set), with the running stack's values: they replace the template's, which for
// `--stage local` hold parameter defaults (an empty tracking id) or the default names.
const variables: Record<LocalVariable<'invokeLocal'>, string> = {
  PERSONALIZE_TRACKING_ID: LOCAL_TRACKING_ID,
  PERSONALIZE_ITEMS_DATASET_ARN: LOCAL_ITEMS_DATASET_ARN,
  PERSONALIZE_USERS_DATASET_ARN: LOCAL_USERS_DATASET_ARN,
  IDENTITY_TABLE: stack.names.identityTable,
  ARCHIVE_BUCKET: stack.names.archiveBucket,
  DLQ_URL: stack.names.dlqUrl,
  STREAM_NAME: stack.names.streamName,
  // The collector's door credentials, as `npm start` configures them (no Secrets Manager locally).
  TRACKER_WRITE_KEYS: process.env.TRACKER_WRITE_KEYS ?? LOCAL_CREDENTIALS.trackerWriteKey,
  SERVER_WRITE_KEYS: process.env.SERVER_WRITE_KEYS ?? LOCAL_CREDENTIALS.serverWriteKey,
  PRIVACY_API_KEYS: process.env.PRIVACY_API_KEYS ?? LOCAL_CREDENTIALS.privacyApiKey,
  SEGMENT_SHARED_SECRET: process.env.SEGMENT_SHARED_SECRET ?? LOCAL_CREDENTIALS.segmentSharedSecret,
  FEED_API_KEYS: process.env.FEED_API_KEYS ?? LOCAL_CREDENTIALS.feedApiKey,
};
const env: Record<string, string | undefined> = {
  // The SDK's region, credentials and endpoints: the emulators', not function variables.
  AWS_REGION: stack.region ?? 'us-east-1',
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  AWS_ENDPOINT_URL_KINESIS: stack.endpoints.kinesis,
  AWS_ENDPOINT_URL_DYNAMODB: stack.endpoints.dynamodb,
  AWS_ENDPOINT_URL_S3: stack.endpoints.s3,
  AWS_ENDPOINT_URL_SQS: stack.endpoints.sqs,
  AWS_ENDPOINT_URL_PERSONALIZE_EVENTS: stack.endpoints.personalizeEvents,
  ...variables,
};
// The flags are expanded unquoted by the shell (`$(npx tsx local/invoke-env.ts)`), so a value with
// whitespace cannot travel that way (hence MPARTICLE_AUTHORIZATION, a "Basic ..." header, is not
// marked invokeLocal).
for (const [name, value] of Object.entries(env)) {
  if (value !== undefined && /\s/.test(value)) {
    console.error(`${name} not passed (contains whitespace)`);
    delete env[name];
  }
}
console.log(
  Object.entries(env)
    .filter(([, value]) => value !== undefined && value !== 'aws')
    .map(([name, value]) => `--env ${name}=${value}`)
    .join(' '),
);
