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
/** A CLOUDFRONT web ACL lives in us-east-1; a stack elsewhere is given one (README "Deploying to AWS"). */
const WEB_ACL_ARN = 'arn:aws:wafv2:us-east-1:123456789012:global/webacl/shop-ingest-edge/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';

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
    `--param=edgeWebAclArn=${WEB_ACL_ARN}`,
    '--param=processReservedConcurrency=4',
    '--param=identityLinkTtlDays=400',
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
    for (const header of ['content-type', 'authorization', 'x-retry-count', 'anonymousid', 'sentat', 'rsa-retry-attempt', 'rsa-retry-reason', 'rsa-since-first-attempt', 'rsa-since-last-attempt', 'rsa-recovered']) {
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

  it('keeps production logs longer, API access logs included', () => {
    for (const fn of functions(t)) expect(props(resource(`${fn.base}LogGroup`)).RetentionInDays).toBe(90);
    expect(props(resource('HttpApiLogGroup')).RetentionInDays).toBe(90);
  });

  it('reserves concurrency for the collector in production, and for the processor when asked', () => {
    expect(props(resource('CollectLambdaFunction')).ReservedConcurrentExecutions).toBe(100);
    expect(scalar(props(resource('ProcessLambdaFunction')).ReservedConcurrentExecutions)).toBe('4');
  });

  it('expires identity links after identityLinkTtlDays', () => {
    expect(environmentOf(resource('ProcessLambdaFunction')).IDENTITY_LINK_TTL_DAYS).toBe('400');
    expect(props(resource('IdentityTable')).TimeToLiveSpecification).toEqual({ AttributeName: 'expiresAt', Enabled: true });
  });
});

describe('edge protection (on in production)', () => {
  const distribution = () => {
    const found = resourcesOfType(t, 'AWS::CloudFront::Distribution');
    expect(found).toHaveLength(1);
    return props(found[0]![1]).DistributionConfig as JsonObject;
  };

  it('puts CloudFront with the given web ACL in front of the HTTP API and makes it the collector URL', () => {
    const config = distribution();
    expect(config.WebACLId).toBe(WEB_ACL_ARN);
    // The stack creates no web ACL of its own outside us-east-1.
    expect(resourcesOfType(t, 'AWS::WAFv2::WebACL')).toEqual([]);
    expect(config.Origins).toEqual([
      expect.objectContaining({
        Id: 'http-api',
        DomainName: { 'Fn::Sub': '${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}' },
        CustomOriginConfig: expect.objectContaining({ OriginProtocolPolicy: 'https-only', OriginSSLProtocols: ['TLSv1.2'] }) as unknown,
      }),
    ]);
    expect(t.Outputs?.CollectorUrl).toMatchObject({ Value: { 'Fn::Sub': 'https://${EdgeDistribution.DomainName}' } });
    expect(t.Outputs?.EdgeWebAclArn).toMatchObject({ Value: WEB_ACL_ARN });
  });

  it('passes every tracker request through: POST and preflights, all viewer headers but Host, the body, nothing cached, HTTPS only', () => {
    const behavior = distribution().DefaultCacheBehavior as JsonObject;
    expect(behavior.TargetOriginId).toBe('http-api');
    expect(behavior.ViewerProtocolPolicy).toBe('https-only');
    // CloudFront only offers GET+HEAD, +OPTIONS, or all seven; POST needs all seven.
    expect(behavior.AllowedMethods).toEqual(expect.arrayContaining(['POST', 'OPTIONS']));
    expect(behavior.AllowedMethods).toHaveLength(7);
    expect(behavior.CachedMethods).toEqual(['GET', 'HEAD']);
    // Managed-CachingDisabled, and Managed-AllViewerExceptHostHeader: Authorization, Content-Type,
    // Content-Encoding, X-Signature, x-api-key and the CORS request headers all reach the collector;
    // Host stays the API's own (API Gateway answers 403 to a foreign Host).
    expect(behavior.CachePolicyId).toBe('4135ea2d-6df8-44a3-9df3-4b5a84be39ad');
    expect(behavior.OriginRequestPolicyId).toBe('b689b0a8-53d0-40ab-baf2-68738e2966ac');
    expect(behavior).not.toHaveProperty('ForwardedValues');
    expect(behavior).not.toHaveProperty('FunctionAssociations');
    expect(behavior).not.toHaveProperty('LambdaFunctionAssociations');
  });

  it('keeps the stage-wide API throttle behind the edge', () => {
    const settings = props(resource('HttpApiStage')).DefaultRouteSettings as JsonObject;
    expect(settings).toMatchObject({ ThrottlingRateLimit: 1000, ThrottlingBurstLimit: 2000 });
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
    DeletionHashSecret: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:personalize-ingest/prod/deletion-hash-AbCdEf',
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
