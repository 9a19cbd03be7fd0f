import { beforeAll, describe, expect, it } from 'vitest';
import { cors as httpCors } from '../../shared/collect/http-contract.js';
import { loadEventMapping } from '../../shared/event-mapping.js';
import { parseEnv, readCollectorEnv, readExportEnv, readProcessorEnv } from '../../shared/config.js';
import { redriveEnvSchema } from '../../shared/ops/redrive-runtime.js';
import {
  actionsOf,
  environmentOf,
  functions,
  packageStack,
  policyStatements,
  props,
  referencedId,
  resourcesOfType,
  scalar,
  type JsonObject,
  type Resource,
  type Template,
} from './template.js';

/** The stack packaged for production with every optional switch turned on. */
const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:shop/ingest-collector-AbCdEf';
const ORIGINS = 'https://shop.example.com,https://m.example.com';
const DATASETS = 'arn:aws:personalize:eu-west-1:123456789012:dataset/shop';

let t: Template;

beforeAll(async () => {
  const packaged = await packageStack([
    '--stage', 'prod',
    '--region', 'eu-west-1',
    '--param=shardCount=0',
    '--param=alarmEmail=oncall@example.com',
    `--param=corsAllowedOrigins=${ORIGINS}`,
    `--param=collectorSecretArn=${SECRET_ARN}`,
    '--param=archiveTransitionDays=45',
    '--param=archiveRetentionDays=400',
    '--param=parallelizationFactor=4',
    '--param=personalizeTrackingId=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0',
    `--param=interactionsDatasetArn=${DATASETS}/INTERACTIONS`,
    `--param=itemsDatasetArn=${DATASETS}/ITEMS`,
    `--param=usersDatasetArn=${DATASETS}/USERS`,
  ]);
  t = packaged.effective;
}, 120_000);

const resource = (id: string): Resource => {
  const found = t.Resources[id];
  if (!found) throw new Error(`no resource ${id} in the template`);
  return found;
};

describe('stack parameters', () => {
  it('switches the stream to on-demand capacity when shardCount is 0', () => {
    const stream = props(resource('IngestStream'));
    expect(stream.StreamModeDetails).toEqual({ StreamMode: 'ON_DEMAND' });
    expect(stream).not.toHaveProperty('ShardCount');
    expect(stream.StreamEncryption).toEqual({ EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' });
  });

  it('subscribes the alarm e-mail address to the alarm topic', () => {
    const subscriptions = resourcesOfType(t, 'AWS::SNS::Subscription');
    expect(subscriptions).toHaveLength(1);
    expect(props(subscriptions[0]![1])).toEqual({ TopicArn: { Ref: 'AlarmTopic' }, Protocol: 'email', Endpoint: 'oncall@example.com' });
  });

  it('lets API Gateway answer CORS for exactly the configured origins', () => {
    const cors = props(resource('HttpApi')).CorsConfiguration as JsonObject;
    expect(cors.AllowOrigins).toEqual({ 'Fn::Split': [',', ORIGINS] });
    expect(cors.AllowMethods).toEqual(['POST', 'OPTIONS']);
    expect(environmentOf(resource('CollectLambdaFunction')).CORS_ALLOWED_ORIGINS).toBe(ORIGINS);
  });

  it('lets browsers send the headers real SDKs add on first and retried requests, and read Retry-After', () => {
    const cors = props(resource('HttpApi')).CorsConfiguration as JsonObject;
    // analytics.js: authorization, x-retry-count; RudderStack: anonymousid, sentat, rsa-* (docs/trackers.md).
    for (const header of ['content-type', 'authorization', 'x-retry-count', 'anonymousid', 'sentat', 'rsa-retry-attempt', 'rsa-retry-reason', 'rsa-since-first-attempt', 'rsa-since-last-attempt']) {
      expect(cors.AllowHeaders).toContain(header);
    }
    expect(cors.AllowHeaders).toEqual(httpCors.allowHeaders);
    expect(cors.ExposeHeaders).toEqual(['retry-after']);
    expect(cors.MaxAge).toBe(600);
  });

  it('uses an existing collector secret instead of creating one, and reads only that one', () => {
    expect(t.Resources.CollectorSecret).toBeUndefined();
    expect(environmentOf(resource('CollectLambdaFunction')).COLLECTOR_SECRET_ID).toBe(SECRET_ARN);
    const read = policyStatements(t).identity.find((s) => s.owner === 'CollectRole' && actionsOf(s.statement).includes('secretsmanager:GetSecretValue'));
    expect(read?.statement.Resource).toBe(SECRET_ARN);
  });

  it('takes archive tiering and expiry from parameters', () => {
    const rules = (props(resource('ArchiveBucket')).LifecycleConfiguration as JsonObject).Rules as JsonObject[];
    expect(rules.find((r) => r.Prefix === 'archive/')).toMatchObject({
      Transitions: [{ StorageClass: 'STANDARD_IA', TransitionInDays: '45' }],
      ExpirationInDays: '400',
    });
  });

  it('takes the parallelization factor from a parameter', () => {
    const [mapping] = resourcesOfType(t, 'AWS::Lambda::EventSourceMapping');
    expect(scalar(props(mapping![1]).ParallelizationFactor)).toBe('4');
  });

  it('keeps production logs longer', () => {
    for (const fn of functions(t)) expect(props(resource(`${fn.base}LogGroup`)).RetentionInDays).toBe(90);
  });
});

describe('function configuration', () => {
  /** What CloudFormation puts in place of each reference when the stack is deployed. */
  const DEPLOYED: Record<string, string> = {
    IngestStream: 'personalize-ingest-prod-events',
    IdentityTable: 'personalize-ingest-prod-IdentityTable-1A2B3C',
    ArchiveBucket: 'personalize-ingest-prod-archivebucket-1a2b3c',
    DeadLetterQueue: 'https://sqs.eu-west-1.amazonaws.com/123456789012/personalize-ingest-prod-dlq',
    PersonalizeImportRole: 'arn:aws:iam::123456789012:role/personalize-ingest-prod-PersonalizeImportRole-1A2B3C',
  };

  function deployedEnv(functionId: string): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [name, value] of Object.entries(environmentOf(resource(functionId)))) {
      const target = referencedId(value);
      if (target !== undefined) {
        const deployed = DEPLOYED[target];
        if (deployed === undefined) throw new Error(`${functionId} ${name} references ${target}, which this test does not know`);
        env[name] = deployed;
      } else {
        env[name] = scalar(value);
      }
    }
    return env;
  }

  it('is accepted by every function\'s own configuration parser', () => {
    expect(() => readCollectorEnv(deployedEnv('CollectLambdaFunction'))).not.toThrow();
    expect(readProcessorEnv(deployedEnv('ProcessLambdaFunction'))).toMatchObject({
      PERSONALIZE_ITEMS_DATASET_ARN: `${DATASETS}/ITEMS`,
      PERSONALIZE_USERS_DATASET_ARN: `${DATASETS}/USERS`,
      FORWARD_CONCURRENCY: 8,
    });
    expect(readExportEnv(deployedEnv('ExportLambdaFunction'))).toMatchObject({
      PERSONALIZE_INTERACTIONS_DATASET_ARN: `${DATASETS}/INTERACTIONS`,
      PERSONALIZE_IMPORT_ROLE_ARN: DEPLOYED.PersonalizeImportRole,
      EXPORT_IMPORT_MODE: 'auto',
      EXPORT_WORK_DIR: '/tmp',
    });
    expect(() => parseEnv(redriveEnvSchema, deployedEnv('RedriveLambdaFunction'), 'redrive')).not.toThrow();
    for (const fn of ['CollectLambdaFunction', 'ProcessLambdaFunction', 'RedriveLambdaFunction']) {
      expect(() => loadEventMapping(deployedEnv(fn)), fn).not.toThrow();
    }
  });
});
