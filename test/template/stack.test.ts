import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { LOCAL_CREDENTIALS } from '../../local/stack.js';
import variableList from '../../serverless/environment.json' with { type: 'json' };
import { COLLECTOR_PATHS, ROUTES } from '../../shared/collect/collector.js';
import {
  actionsOf,
  asArray,
  environmentOf,
  functions,
  isIntrinsic,
  isObject,
  packageStack,
  policyStatements,
  REPO,
  props,
  referencedId,
  resourcesOfType,
  scalar,
  type Json,
  type JsonObject,
  type Packaged,
  type Resource,
  type Statement,
  type Template,
} from './template.js';

// The collector reads its credentials through Powertools; here it gets what Secrets Manager would
// hold right after the stack created the secret.
const secretValue = vi.hoisted(() => ({ current: '' }));
vi.mock('@aws-lambda-powertools/parameters/secrets', () => ({ getSecret: () => Promise.resolve(secretValue.current) }));
const { loadCollectorSecrets } = await import('../../shared/collect/secrets.js');

/** The stack as `npm run package` builds it with every parameter at its default. */
let packaged: Packaged;
let t: Template;

beforeAll(async () => {
  packaged = await packageStack(['--stage', 'ci']);
  t = packaged.effective;
}, 120_000);

const resource = (id: string): Resource => {
  const found = t.Resources[id];
  if (!found) throw new Error(`no resource ${id} in the template`);
  return found;
};

/** Resource `*` is allowed only for these actions, each because the API has no resource-level permission. */
const STAR_RESOURCE_ACTIONS: Record<string, string> = {
  'personalize:PutEvents': 'FACTS §1d: PutEvents needs Resource "*"',
  'personalize:PutItems': 'same API family as PutEvents (personalize-events)',
  'personalize:PutUsers': 'same API family as PutEvents (personalize-events)',
  'personalize:ListDatasetImportJobs': 'a List action without a resource type',
  'personalize:ListDataDeletionJobs': 'a List action without a resource type',
};

/** What each role may do. A change here is a reviewed change of the stack's privileges. */
const EXPECTED_ACTIONS: Record<string, string[]> = {
  CollectRole: ['kinesis:PutRecords', 'logs:CreateLogStream', 'logs:PutLogEvents', 'secretsmanager:GetSecretValue'],
  ProcessRole: [
    'dynamodb:BatchGetItem', 'dynamodb:BatchWriteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query',
    'kinesis:DescribeStream', 'kinesis:DescribeStreamSummary', 'kinesis:GetRecords', 'kinesis:GetShardIterator', 'kinesis:ListShards',
    'logs:CreateLogStream', 'logs:PutLogEvents',
    'personalize:PutEvents', 'personalize:PutItems', 'personalize:PutUsers',
    's3:PutObject', 'secretsmanager:GetSecretValue', 'sqs:SendMessage',
  ],
  ExportRole: [
    'dynamodb:BatchGetItem', 'iam:PassRole', 'logs:CreateLogStream', 'logs:PutLogEvents',
    'personalize:CreateDatasetImportJob', 'personalize:ListDatasetImportJobs',
    's3:DeleteObject', 's3:GetObject', 's3:ListBucket', 's3:PutObject', 'secretsmanager:GetSecretValue',
  ],
  RedriveRole: [
    'kinesis:GetRecords', 'kinesis:GetShardIterator', 'kinesis:PutRecords',
    'logs:CreateLogStream', 'logs:PutLogEvents',
    's3:GetObject', 's3:PutObject', 'sqs:ChangeMessageVisibility', 'sqs:DeleteMessage', 'sqs:ReceiveMessage', 'sqs:SendMessage',
  ],
  PersonalizeDeletionsRole: [
    'iam:PassRole', 'logs:CreateLogStream', 'logs:PutLogEvents',
    'personalize:CreateDataDeletionJob', 'personalize:DescribeDataDeletionJob', 'personalize:ListDataDeletionJobs', 'personalize:ListDatasetImportJobs',
    's3:DeleteObject', 's3:GetObject', 's3:ListBucket', 's3:PutObject',
  ],
  PersonalizeImportRole: ['s3:GetObject', 's3:ListBucket'],
};

/** Object keys each role may touch in the archive bucket, per action. */
const EXPECTED_OBJECT_PREFIXES: Record<string, Record<string, string[]>> = {
  ProcessRole: { 's3:PutObject': ['archive/*', 'control/deletions/*', 'control/personalize-deletions/pending/*', 'dlq-payloads/*', 'forwarded/*'] },
  ExportRole: {
    's3:GetObject': ['archive/*', 'control/*', 'forwarded/*', 'imports/*'],
    's3:PutObject': ['control/deletions.snapshot', 'control/deletions/*', 'imports/*'],
    's3:DeleteObject': ['control/deletions.snapshot', 'control/deletions/*', 'imports/*'],
  },
  RedriveRole: { 's3:GetObject': ['dlq-payloads/*'], 's3:PutObject': ['dlq-payloads/*'] },
  PersonalizeDeletionsRole: {
    's3:GetObject': ['control/personalize-deletions/*'],
    's3:PutObject': ['control/personalize-deletions/*'],
    's3:DeleteObject': ['control/personalize-deletions/*'],
  },
  PersonalizeImportRole: { 's3:GetObject': ['control/personalize-deletions/input/*', 'imports/*'] },
};

function roleStatements(roleId: string) {
  return policyStatements(t).identity.filter((s) => s.owner === roleId).map((s) => s.statement);
}

function subString(value: Json | undefined): string | undefined {
  if (!isObject(value)) return undefined;
  const sub = value['Fn::Sub'];
  if (typeof sub === 'string') return sub;
  if (Array.isArray(sub) && typeof sub[0] === 'string') return sub[0];
  return undefined;
}

describe('least privilege', () => {
  it('gives every function a role of its own, named after it, that no other function uses', () => {
    const fns = functions(t);
    expect(fns.length).toBeGreaterThanOrEqual(4);
    const roleOf = new Map<string, string>();
    for (const fn of fns) {
      const roleId = referencedId(props(fn.resource).Role);
      // A function added without `role:` falls back to the framework's shared IamRoleLambdaExecution.
      expect(roleId, `${fn.id} must use its own role ${fn.base}Role`).toBe(`${fn.base}Role`);
      expect(resource(roleId!).Type).toBe('AWS::IAM::Role');
      expect([...roleOf.values()], `${roleId} is shared`).not.toContain(roleId);
      roleOf.set(fn.id, roleId!);
    }
    expect(t.Resources.IamRoleLambdaExecution).toBeUndefined();
  });

  it('lets each function role be assumed by Lambda only, and write logs only to its own log group', () => {
    for (const fn of functions(t)) {
      const role = props(resource(`${fn.base}Role`));
      const trust = asArray((role.AssumeRolePolicyDocument as JsonObject).Statement as Json[]);
      expect(trust).toEqual([{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }]);
      const logs = roleStatements(`${fn.base}Role`).filter((s) => actionsOf(s).some((a) => a.startsWith('logs:')));
      expect(logs.map((s) => referencedId(s.Resource))).toEqual([`${fn.base}LogGroup`]);
      expect(resource(`${fn.base}LogGroup`).Type).toBe('AWS::Logs::LogGroup');
    }
  });

  it('allows no wildcard actions and no NotAction/NotResource anywhere', () => {
    const { identity, bucket } = policyStatements(t);
    for (const { owner, statement } of [...identity, ...bucket.filter((s) => s.statement.Effect === 'Allow')]) {
      expect(statement.NotAction, `${owner} ${statement.Sid}`).toBeUndefined();
      expect(statement.NotResource, `${owner} ${statement.Sid}`).toBeUndefined();
      for (const action of actionsOf(statement)) expect(action, `${owner} ${statement.Sid}`).not.toContain('*');
    }
    expect(identity.every(({ statement }) => statement.Effect === 'Allow')).toBe(true);
  });

  it('uses Resource "*" only for the Personalize actions that cannot be scoped, and ARNs of this stack otherwise', () => {
    const starGrants: string[] = [];
    for (const { owner, statement } of policyStatements(t).identity) {
      for (const target of asArray(statement.Resource as Json | Json[])) {
        if (target === '*') {
          for (const action of actionsOf(statement)) {
            expect(STAR_RESOURCE_ACTIONS, `${owner} grants ${action} on "*"`).toHaveProperty([action]);
            starGrants.push(action);
          }
        } else {
          // No literal ARNs: every resource is derived from this stack (Ref, GetAtt or Sub on them).
          expect(isIntrinsic(target), `${owner} ${statement.Sid}: ${JSON.stringify(target)}`).toBe(true);
        }
      }
    }
    expect([...new Set(starGrants)].sort()).toEqual(Object.keys(STAR_RESOURCE_ACTIONS).sort());
  });

  it('grants each role exactly the actions its function calls', () => {
    const roles = resourcesOfType(t, 'AWS::IAM::Role').map(([id]) => id);
    expect(roles.sort()).toEqual(Object.keys(EXPECTED_ACTIONS).sort());
    for (const [roleId, expected] of Object.entries(EXPECTED_ACTIONS)) {
      const granted = new Set(roleStatements(roleId).flatMap(actionsOf));
      expect([...granted].sort(), roleId).toEqual([...expected].sort());
    }
  });

  it('keeps S3 object access within each role\'s key prefixes', () => {
    for (const [roleId, perAction] of Object.entries(EXPECTED_OBJECT_PREFIXES)) {
      for (const [action, prefixes] of Object.entries(perAction)) {
        const keys = roleStatements(roleId)
          .filter((s) => actionsOf(s).includes(action))
          .flatMap((s) => asArray(s.Resource as Json | Json[]))
          .map((r) => subString(r)?.replace('${ArchiveBucket.Arn}/', ''));
        expect(keys.sort(), `${roleId} ${action}`).toEqual([...prefixes].sort());
      }
    }
  });

  it('restricts bucket listing to the prefixes a role reads', () => {
    const listing = (roleId: string) => roleStatements(roleId).find((s) => actionsOf(s).includes('s3:ListBucket'));
    expect(listing('ExportRole')?.Condition).toEqual({ StringLike: { 's3:prefix': ['archive/*', 'forwarded/*', 'control/*', 'imports/*'] } });
    expect(listing('PersonalizeImportRole')?.Condition).toEqual({ StringLike: { 's3:prefix': ['imports/*', 'control/personalize-deletions/input/*'] } });
    expect(listing('PersonalizeDeletionsRole')?.Condition).toEqual({ StringLike: { 's3:prefix': 'control/personalize-deletions/*' } });
  });

  it('lets the export pass only the import role, and only to Personalize', () => {
    const pass = roleStatements('ExportRole').find((s) => actionsOf(s).includes('iam:PassRole'));
    expect(referencedId(pass?.Resource)).toBe('PersonalizeImportRole');
    expect(pass?.Condition).toEqual({ StringEquals: { 'iam:PassedToService': 'personalize.amazonaws.com' } });
    expect(environmentOf(resource('ExportLambdaFunction')).PERSONALIZE_IMPORT_ROLE_ARN).toEqual({ 'Fn::GetAtt': ['PersonalizeImportRole', 'Arn'] });
  });

  it('lets only Personalize, acting for this account, assume the import role', () => {
    const trust = asArray((props(resource('PersonalizeImportRole')).AssumeRolePolicyDocument as JsonObject).Statement as Json[]);
    expect(trust).toHaveLength(1);
    const [statement] = trust as JsonObject[];
    expect(statement?.Principal).toEqual({ Service: 'personalize.amazonaws.com' });
    expect(statement?.Condition).toMatchObject({ StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } });
  });

  it('scopes the collector to putting records on the stream and reading its one secret', () => {
    const statements = roleStatements('CollectRole');
    const target = (action: string) => statements.find((s) => actionsOf(s).includes(action))?.Resource;
    expect(referencedId(target('kinesis:PutRecords'))).toBe('IngestStream');
    expect(target('secretsmanager:GetSecretValue')).toEqual({ Ref: 'CollectorSecret' });
  });

  it('lets the processor send to the dead-letter queue the event source mapping fails over to', () => {
    const send = roleStatements('ProcessRole').find((s) => actionsOf(s).includes('sqs:SendMessage'));
    expect(referencedId(send?.Resource)).toBe('DeadLetterQueue');
    const query = roleStatements('ProcessRole').find((s) => actionsOf(s).includes('dynamodb:Query'));
    expect(subString(query?.Resource)).toBe('${IdentityTable.Arn}/index/byUser');
  });
});

describe('encryption and exposure', () => {
  it('encrypts the stream with KMS', () => {
    expect(props(resource('IngestStream')).StreamEncryption).toEqual({ EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' });
  });

  it('encrypts every queue', () => {
    const queues = resourcesOfType(t, 'AWS::SQS::Queue');
    expect(queues.length).toBeGreaterThan(0);
    for (const [id, queue] of queues) {
      const p = props(queue);
      expect(p.SqsManagedSseEnabled === true || p.KmsMasterKeyId !== undefined, id).toBe(true);
    }
  });

  it('encrypts every table and keeps point-in-time recovery on', () => {
    for (const [id, table] of resourcesOfType(t, 'AWS::DynamoDB::Table')) {
      expect(props(table).SSESpecification, id).toEqual({ SSEEnabled: true });
      expect(props(table).PointInTimeRecoverySpecification, id).toEqual({ PointInTimeRecoveryEnabled: true });
    }
  });

  it('encrypts every bucket and blocks all public access to it', () => {
    const buckets = resourcesOfType(t, 'AWS::S3::Bucket');
    expect(buckets.map(([id]) => id).sort()).toEqual(['ArchiveBucket', 'ServerlessDeploymentBucket']);
    for (const [id, bucket] of buckets) {
      const rules = asArray((props(bucket).BucketEncryption as JsonObject | undefined)?.ServerSideEncryptionConfiguration as Json[]);
      expect(rules.length, id).toBeGreaterThan(0);
      expect(props(bucket).PublicAccessBlockConfiguration, id).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
    }
  });

  it('denies every non-TLS request to the archive bucket and its objects', () => {
    const statements = policyStatements(t).bucket.filter((s) => s.owner === 'ArchiveBucketPolicy').map((s) => s.statement);
    const deny = statements.find((s) => s.Effect === 'Deny');
    expect(deny).toMatchObject({ Principal: '*', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } });
    expect(deny?.Resource).toEqual([{ 'Fn::GetAtt': ['ArchiveBucket', 'Arn'] }, { 'Fn::Sub': '${ArchiveBucket.Arn}/*' }]);
  });

  it('denies every non-TLS request to the dead-letter queue, and to the framework\'s deployment bucket', () => {
    const policies = resourcesOfType(t, 'AWS::SQS::QueuePolicy');
    expect(policies).toHaveLength(1);
    const policy = props(policies[0]![1]);
    expect(policy.Queues).toEqual([{ Ref: 'DeadLetterQueue' }]);
    expect((policy.PolicyDocument as JsonObject).Statement).toEqual([
      {
        Sid: 'DenyInsecureTransport',
        Effect: 'Deny',
        Principal: '*',
        Action: 'sqs:*',
        Resource: { 'Fn::GetAtt': ['DeadLetterQueue', 'Arn'] },
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      },
    ]);
    const deployment = policyStatements(t).bucket.filter((s) => s.owner === 'ServerlessDeploymentBucketPolicy').map((s) => s.statement);
    expect(deployment.find((s) => s.Effect === 'Deny')).toMatchObject({ Principal: '*', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': false } } });
  });

  it('encrypts the alarm topic with a rotating customer managed key that only this stack\'s alarms may use besides IAM', () => {
    const topic = props(resource('AlarmTopic'));
    expect(topic.KmsMasterKeyId).toEqual({ Ref: 'AlarmTopicKey' });
    const key = props(resource('AlarmTopicKey'));
    expect(key.EnableKeyRotation).toBe(true);
    const statements = asArray((key.KeyPolicy as JsonObject).Statement as Json[]) as unknown as Statement[];
    expect(statements).toHaveLength(2);
    const [account, cloudwatch] = statements;
    // The KMS default: the account's IAM policies decide who else may use the key.
    expect(account).toMatchObject({ Effect: 'Allow', Principal: { AWS: { 'Fn::Sub': 'arn:${AWS::Partition}:iam::${AWS::AccountId}:root' } }, Action: 'kms:*' });
    // The AWS managed key alias/aws/sns cannot grant this: alarms could not publish to the topic.
    expect(cloudwatch).toMatchObject({ Effect: 'Allow', Principal: { Service: 'cloudwatch.amazonaws.com' } });
    expect(actionsOf(cloudwatch!).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey*']);
    const condition = cloudwatch!.Condition as { ArnLike: JsonObject; StringEquals: JsonObject };
    const source = subString(condition.ArnLike['aws:SourceArn']);
    expect(source).toMatch(/^arn:\$\{AWS::Partition\}:cloudwatch:\$\{AWS::Region\}:\$\{AWS::AccountId\}:alarm:/);
    const alarmName = new RegExp(`^${source!.split(':alarm:')[1]!.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);
    for (const [id, alarm] of resourcesOfType(t, 'AWS::CloudWatch::Alarm')) expect(scalar(props(alarm).AlarmName), id).toMatch(alarmName);
    expect(subString(condition.StringEquals['kms:EncryptionContext:aws:sns:topicArn'])).toBe(
      `arn:\${AWS::Partition}:sns:\${AWS::Region}:\${AWS::AccountId}:${scalar(topic.TopicName)}`,
    );
  });

  it('opens the archive bucket to nobody but Personalize reading imports/ for this account', () => {
    const allows = policyStatements(t).bucket.filter((s) => s.owner === 'ArchiveBucketPolicy' && s.statement.Effect === 'Allow');
    expect(allows.length).toBeGreaterThan(0);
    for (const { statement } of allows) {
      expect(statement.Principal).toEqual({ Service: 'personalize.amazonaws.com' });
      expect(actionsOf(statement).every((a) => a === 's3:GetObject' || a === 's3:ListBucket')).toBe(true);
      expect(statement.Condition).toMatchObject({ StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } });
      const objects = asArray(statement.Resource as Json | Json[]).map(subString).filter((s) => s !== undefined);
      for (const key of objects) expect(key).toBe('${ArchiveBucket.Arn}/imports/*');
    }
  });

  it('tiers and expires the archive, and expires import files and oversized dead letters, from parameters', () => {
    const rules = (props(resource('ArchiveBucket')).LifecycleConfiguration as JsonObject).Rules as JsonObject[];
    const archive = rules.find((r) => r.Prefix === 'archive/');
    expect(archive).toMatchObject({ Status: 'Enabled', Transitions: [{ StorageClass: 'STANDARD_IA', TransitionInDays: 30 }], ExpirationInDays: 365 });
    expect(rules.find((r) => r.Prefix === 'imports/')).toMatchObject({ Status: 'Enabled', ExpirationInDays: 30 });
    expect(rules.find((r) => r.Prefix === 'dlq-payloads/')).toMatchObject({ Status: 'Enabled', ExpirationInDays: 30 });
  });
});

describe('secrets', () => {
  const SECRET_VARIABLES = ['TRACKER_WRITE_KEYS', 'FEED_API_KEYS', 'SEGMENT_SHARED_SECRET', 'MPARTICLE_AUTHORIZATION'];
  const SECRET_NAME = /SECRET|PASSWORD|TOKEN|_KEYS?$|AUTHORIZATION|CREDENTIAL/i;

  it('puts no secret in any environment variable: only the secret\'s id, as a reference', () => {
    for (const fn of functions(t)) {
      for (const [name, value] of Object.entries(environmentOf(fn.resource))) {
        expect(SECRET_VARIABLES, `${fn.id} ${name}`).not.toContain(name);
        if (SECRET_NAME.test(name)) {
          expect(name, `${fn.id} ${name}`).toMatch(/_SECRET_(ID|ARN)$/);
          expect(isIntrinsic(value), `${fn.id} ${name} must reference the secret, not hold a value`).toBe(true);
        }
      }
    }
    expect(environmentOf(resource('CollectLambdaFunction')).COLLECTOR_SECRET_ID).toEqual({ Ref: 'CollectorSecret' });
  });

  it('keys the deletion registry with a generated secret that survives stack deletion, readable only by process and export', () => {
    const secret = resource('DeletionHashSecret');
    expect(secret).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    expect(props(secret).GenerateSecretString).toMatchObject({ GenerateStringKey: 'deletionHashKey', PasswordLength: 64 });
    for (const fn of ['ProcessLambdaFunction', 'ExportLambdaFunction']) {
      expect(environmentOf(resource(fn)).DELETION_HASH_SECRET_ID, fn).toEqual({ Ref: 'DeletionHashSecret' });
    }
    const readers = policyStatements(t)
      .identity.filter((s) => JSON.stringify(s.statement.Resource ?? null).includes('DeletionHashSecret'))
      .map((s) => s.owner)
      .sort();
    expect(readers).toEqual(['ExportRole', 'ProcessRole']);
  });

  it('holds no secret value anywhere in the template', () => {
    const text = JSON.stringify(packaged.raw);
    expect(text).not.toContain('"SecretString"');
    for (const value of Object.values(LOCAL_CREDENTIALS)) expect(text).not.toContain(value);
  });

  it('creates the collector secret with a generated write key and every other door closed', async () => {
    const generate = props(resource('CollectorSecret')).GenerateSecretString as JsonObject;
    expect(generate.GenerateStringKey).toBe('trackerWriteKeys');
    expect(generate.ExcludePunctuation).toBe(true);
    const placeholder = JSON.parse(scalar(generate.SecretStringTemplate)) as JsonObject;
    for (const value of Object.values(placeholder)) expect(value === '' || (Array.isArray(value) && value.length === 0)).toBe(true);
    // What Secrets Manager stores: the template plus the generated string under GenerateStringKey.
    secretValue.current = JSON.stringify({ ...placeholder, trackerWriteKeys: 'Gen3rat3dWriteKeyWithoutPunctuation0123' });
    const loaded = await loadCollectorSecrets({ COLLECTOR_SECRET_ID: 'personalize-ingest/ci/collector' });
    expect(loaded).toEqual({
      trackerWriteKeys: ['Gen3rat3dWriteKeyWithoutPunctuation0123'],
      serverWriteKeys: [],
      privacyApiKeys: [],
      feedApiKeys: [],
    });
  });
});

describe('front door', () => {
  it('routes every collector path, POST only, to the collect function with payload 2.0', () => {
    const routes = resourcesOfType(t, 'AWS::ApiGatewayV2::Route').map(([, r]) => scalar(props(r).RouteKey));
    expect(routes.sort()).toEqual(COLLECTOR_PATHS.map((path) => `POST ${path}`).sort());
    // The short paths analytics.js 2.0 and the mobile SDKs post to are routes of their own.
    for (const short of ['/v1/t', '/v1/p', '/v1/i', '/v1/a', '/v1/g', '/v1/s', '/v1/b']) expect(routes).toContain(`POST ${short}`);
    const integrations = resourcesOfType(t, 'AWS::ApiGatewayV2::Integration');
    expect(integrations).toHaveLength(1);
    const [, integration] = integrations[0]!;
    expect(referencedId(props(integration).IntegrationUri)).toBe('CollectLambdaFunction');
    expect(props(integration).PayloadFormatVersion).toBe('2.0');
  });

  it('throttles the API stage and sets the collector\'s payload limits', () => {
    const settings = props(resource('HttpApiStage')).DefaultRouteSettings as JsonObject;
    expect(settings.ThrottlingRateLimit).toBeGreaterThan(0);
    expect(settings.ThrottlingBurstLimit).toBeGreaterThan(0);
    const env = environmentOf(resource('CollectLambdaFunction'));
    expect(env).toMatchObject({ COLLECTOR_MAX_BODY_BYTES: '512000', COLLECTOR_MAX_MESSAGE_BYTES: '32768', COLLECTOR_MAX_MESSAGES: '4000' });
    expect(env.STREAM_NAME).toEqual({ Ref: 'IngestStream' });
  });

  it('leaves CORS off unless origins are configured', () => {
    expect(props(resource('HttpApi')).CorsConfiguration).toBeUndefined();
    expect(environmentOf(resource('CollectLambdaFunction')).CORS_ALLOWED_ORIGINS).toBe('');
  });

  it('logs every API request as one JSON line of request facts, never a header', () => {
    const stage = resource('HttpApiStage');
    const access = props(stage).AccessLogSettings as JsonObject;
    expect(referencedId(access.DestinationArn)).toBe('HttpApiLogGroup');
    expect(asArray(stage.DependsOn)).toContain('HttpApiLogGroup');
    expect(props(resource('HttpApiLogGroup')).RetentionInDays).toBe(30);
    const format = JSON.parse(scalar(access.Format)) as Record<string, string>;
    expect(format).toMatchObject({
      requestId: '$context.requestId',
      ip: '$context.identity.sourceIp',
      requestTime: '$context.requestTime',
      httpMethod: '$context.httpMethod',
      routeKey: '$context.routeKey',
      status: '$context.status',
      responseLength: '$context.responseLength',
      integrationError: '$context.integrationErrorMessage',
    });
    for (const [field, variable] of Object.entries(format)) {
      expect(variable, field).toMatch(/^\$context\.[\w.]+$/);
      // Headers (Authorization, x-api-key, X-Signature), the path with its query, the user agent: none.
      expect(variable, field).not.toMatch(/header|authori[sz]|signature|api-?key|userAgent|\.path$/i);
    }
  });

  it('puts no CloudFront or AWS WAF in front by default: the HTTP API URL is the collector URL', () => {
    expect(resourcesOfType(t, 'AWS::CloudFront::Distribution')).toEqual([]);
    expect(resourcesOfType(t, 'AWS::WAFv2::WebACL')).toEqual([]);
    expect(t.Outputs?.CollectorUrl).toMatchObject({ Value: { 'Fn::GetAtt': ['HttpApi', 'ApiEndpoint'] } });
    expect(t.Outputs).not.toHaveProperty('EdgeWebAclArn');
    // Off here, on for prod (stack-options.test.ts, stack-edge.test.ts).
    expect(packaged.raw.Resources.EdgeDistribution?.Condition).toBe('EdgeProtection');
    expect(packaged.raw.Resources.EdgeWebAcl?.Condition).toBe('CreateEdgeWebAcl');
  });

  it('reserves no concurrency for collect and process unless configured, and exactly one for the export', () => {
    expect(props(resource('CollectLambdaFunction'))).not.toHaveProperty('ReservedConcurrentExecutions');
    expect(props(resource('ProcessLambdaFunction'))).not.toHaveProperty('ReservedConcurrentExecutions');
    expect(props(resource('ExportLambdaFunction')).ReservedConcurrentExecutions).toBe(1);
    // Never 0: Lambda would throttle every invocation.
    for (const fn of functions(packaged.raw)) {
      const reserved = props(fn.resource).ReservedConcurrentExecutions;
      if (isObject(reserved)) expect(JSON.stringify(reserved), fn.id).toContain('"Ref":"AWS::NoValue"');
    }
  });

  it('keeps identity links until a user deletion by default: TTL on expiresAt enabled, IDENTITY_LINK_TTL_DAYS 0', () => {
    expect(props(resource('IdentityTable')).TimeToLiveSpecification).toEqual({ AttributeName: 'expiresAt', Enabled: true });
    expect(environmentOf(resource('ProcessLambdaFunction')).IDENTITY_LINK_TTL_DAYS).toBe('0');
  });

  it('provisions the stream with the configured shard count by default', () => {
    expect(props(resource('IngestStream')).StreamModeDetails).toEqual({ StreamMode: 'PROVISIONED' });
    expect(scalar(props(resource('IngestStream')).ShardCount)).toBe('1');
  });
});

describe('event source mapping', () => {
  it('is configured as DESIGN says: window, bisect, partial batch response, bounded retries and age, DLQ on failure', () => {
    const mappings = resourcesOfType(t, 'AWS::Lambda::EventSourceMapping');
    expect(mappings).toHaveLength(1);
    const p = props(mappings[0]![1]);
    expect(referencedId(p.FunctionName)).toBe('ProcessLambdaFunction');
    expect(referencedId(p.EventSourceArn)).toBe('IngestStream');
    expect(p.StartingPosition).toBe('TRIM_HORIZON');
    expect(p.BatchSize).toBe(100);
    expect(p.MaximumBatchingWindowInSeconds).toBeGreaterThanOrEqual(1);
    expect(p.BisectBatchOnFunctionError).toBe(true);
    expect(p.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
    expect(p.MaximumRetryAttempts).toBeGreaterThanOrEqual(0);
    expect(p.MaximumRetryAttempts).toBeLessThanOrEqual(10_000);
    expect(p.MaximumRecordAgeInSeconds).toBeGreaterThanOrEqual(60);
    expect(p.MaximumRecordAgeInSeconds).toBeLessThanOrEqual(604_800);
    expect(p.ParallelizationFactor).toBe(1);
    expect(p.DestinationConfig).toEqual({ OnFailure: { Destination: { 'Fn::GetAtt': ['DeadLetterQueue', 'Arn'] } } });
  });
});

describe('nightly export and redrive', () => {
  it('runs the export on a nightly schedule, without automatic retries', () => {
    const rules = resourcesOfType(t, 'AWS::Events::Rule');
    const rule = rules.find(([, r]) => asArray(props(r).Targets as Json[]).some((target) => isObject(target) && referencedId(target.Arn) === 'ExportLambdaFunction'));
    expect(rule).toBeDefined();
    expect(props(rule![1])).toMatchObject({ ScheduleExpression: 'cron(15 2 * * ? *)', State: 'ENABLED' });
    const permission = resourcesOfType(t, 'AWS::Lambda::Permission').find(([, p]) => referencedId(props(p).SourceArn) === rule![0]);
    expect(props(permission![1]).Principal).toBe('events.amazonaws.com');
    const invokeConfig = resourcesOfType(t, 'AWS::Lambda::EventInvokeConfig').find(([, c]) => referencedId(props(c).FunctionName) === 'ExportLambdaFunction');
    expect(props(invokeConfig![1]).MaximumRetryAttempts).toBe(0);
  });

  it('gives the export the time, memory, disk and settings a day of archive needs', () => {
    const p = props(resource('ExportLambdaFunction'));
    expect(p.Timeout).toBe(900);
    expect(p.MemorySize).toBeGreaterThanOrEqual(1024);
    expect(p.EphemeralStorage).toEqual({ Size: 4096 });
    expect(Object.keys(environmentOf(resource('ExportLambdaFunction')))).toEqual(
      expect.arrayContaining([
        'ARCHIVE_BUCKET', 'IDENTITY_TABLE', 'PERSONALIZE_INTERACTIONS_DATASET_ARN', 'PERSONALIZE_ITEMS_DATASET_ARN',
        'PERSONALIZE_USERS_DATASET_ARN', 'PERSONALIZE_IMPORT_ROLE_ARN', 'EXPORT_IMPORT_MODE', 'EXPORT_ANONYMOUS', 'EXPORT_WORK_DIR',
      ]),
    );
  });

  it('wires the redrive function to the queue, the stream and the archive', () => {
    expect(environmentOf(resource('RedriveLambdaFunction'))).toMatchObject({
      DLQ_URL: { Ref: 'DeadLetterQueue' },
      STREAM_NAME: { Ref: 'IngestStream' },
      ARCHIVE_BUCKET: { Ref: 'ArchiveBucket' },
    });
  });
});

describe('observability', () => {
  type Alarm = JsonObject & { Dimensions?: JsonObject[]; Metrics?: JsonObject[] };
  const alarms = (): [string, Alarm][] => resourcesOfType(t, 'AWS::CloudWatch::Alarm').map(([id, a]) => [id, props(a) as Alarm]);
  const dimension = (alarm: Alarm, name: string) => alarm.Dimensions?.find((d) => d.Name === name)?.Value;

  it('alarms when the dead-letter queue is not empty', () => {
    const found = alarms().find(([, a]) => a.Namespace === 'AWS/SQS' && a.MetricName === 'ApproximateNumberOfMessagesVisible');
    expect(found).toBeDefined();
    const [, alarm] = found!;
    expect(dimension(alarm, 'QueueName')).toEqual({ 'Fn::GetAtt': ['DeadLetterQueue', 'QueueName'] });
    expect(alarm).toMatchObject({ Threshold: 0, ComparisonOperator: 'GreaterThanThreshold' });
  });

  it('alarms when the processor falls behind the stream', () => {
    const found = alarms().find(([, a]) => a.MetricName === 'IteratorAge' || a.MetricName === 'GetRecords.IteratorAgeMilliseconds');
    expect(found).toBeDefined();
    expect(found![1]).toMatchObject({ Statistic: 'Maximum', Threshold: 300_000 });
  });

  it('alarms on errors and on throttles of every function', () => {
    for (const fn of functions(t)) {
      for (const metric of ['Errors', 'Throttles']) {
        const found = alarms().find(
          ([, a]) => a.Namespace === 'AWS/Lambda' && a.MetricName === metric && referencedId(dimension(a, 'FunctionName')) === fn.id,
        );
        expect(found, `${metric} alarm for ${fn.id}`).toBeDefined();
      }
    }
  });

  it('alarms on the collector\'s 5xx answers through every door, with the names the collector emits', () => {
    const env = environmentOf(resource('CollectLambdaFunction'));
    const found = alarms().find(([, a]) => a.Metrics?.some((m) => isObject(m.MetricStat) && (m.MetricStat.Metric as JsonObject).MetricName === 'collect_status_5xx'));
    expect(found).toBeDefined();
    const metrics = found![1].Metrics!;
    const doors = metrics
      .map((m) => (isObject(m.MetricStat) ? (m.MetricStat.Metric as JsonObject) : undefined))
      .filter((m) => m !== undefined)
      .map((m) => {
        expect(m.Namespace).toBe(env.POWERTOOLS_METRICS_NAMESPACE);
        const dims = m.Dimensions as JsonObject[];
        expect(dims.find((d) => d.Name === 'service')?.Value).toBe(env.POWERTOOLS_SERVICE_NAME);
        return dims.find((d) => d.Name === 'door')?.Value;
      });
    const expected = new Set([...Object.values(ROUTES).map((route) => route.door), 'unknown']);
    expect(new Set(doors)).toEqual(expected);
    expect(metrics.filter((m) => m.ReturnData === true)).toHaveLength(1);
    expect(alarms().some(([, a]) => a.Namespace === 'AWS/ApiGateway' && a.MetricName === '5xx')).toBe(true);
  });

  it('sends every alarm to the alarm topic, with no e-mail subscription unless an address is set', () => {
    for (const [id, alarm] of alarms()) expect(alarm.AlarmActions, id).toEqual([{ Ref: 'AlarmTopic' }]);
    expect(resourcesOfType(t, 'AWS::SNS::Subscription')).toEqual([]);
    expect(packaged.raw.Resources.AlarmEmailSubscription?.Condition).toBe('HasAlarmEmail');
  });

  it('keeps every function\'s logs for the configured retention', () => {
    for (const fn of functions(t)) {
      const group = props(resource(`${fn.base}LogGroup`));
      expect(group.LogGroupName).toBe(`/aws/lambda/${scalar(props(fn.resource).FunctionName)}`);
      expect(group.RetentionInDays).toBe(30);
      expect(asArray(fn.resource.DependsOn)).toContain(`${fn.base}LogGroup`);
    }
    for (const [id, group] of resourcesOfType(t, 'AWS::Logs::LogGroup')) expect(props(group).RetentionInDays, id).toBeGreaterThan(0);
  });

  describe('dashboard', () => {
    let body: { widgets: { properties: { title?: string; metrics?: Json[][] } }[] };
    let text: string;

    beforeAll(() => {
      const sub = (props(resource('Dashboard')).DashboardBody as JsonObject)['Fn::Sub'] as [string, JsonObject];
      const [source, variables] = sub;
      text = source;
      // Every ${...} must be something CloudFormation can substitute, or the deploy fails.
      for (const [, name] of source.matchAll(/\$\{([^}]+)\}/g)) {
        const [id, attribute] = name!.split('.');
        const known = name!.startsWith('AWS::') || name! in variables || (id! in t.Resources && (attribute === undefined || /^\w+$/.test(attribute)));
        expect(known, `unknown substitution \${${name}}`).toBe(true);
      }
      body = JSON.parse(source.replace(/\$\{[^}]+\}/g, '0')) as typeof body;
    });

    const widget = (title: string) => {
      const found = body.widgets.find((w) => w.properties.title?.startsWith(title));
      if (!found) throw new Error(`no dashboard widget "${title}"`);
      return JSON.stringify(found.properties);
    };

    it('is valid JSON once CloudFormation substitutes its references', () => {
      expect(body.widgets.length).toBeGreaterThanOrEqual(10);
    });

    it('shows collector requests by status and the stream\'s traffic and iterator age', () => {
      for (const status of ['2xx', '4xx', '5xx']) expect(widget('Collector requests by status')).toContain(`collect_status_${status}`);
      expect(widget('Stream: incoming records')).toContain('IncomingRecords');
      expect(widget('Stream: iterator age')).toContain('IteratorAge');
    });

    it('shows the processor\'s outcome counts, stitching and Personalize calls from its EMF namespace', () => {
      const processor = ['Processor: forwarded', 'Processor: dead-lettered', 'Processor: identity'].map(widget).join(' ');
      for (const name of ['forwardedEvents', 'deadLettered', 'stitched', 'stitchedRatio', 'putEventsCalls', 'retried', 'rejectedByPersonalize']) {
        expect(processor).toContain(`"${name}"`);
      }
      expect(text).toContain('"${Namespace}", "forwardedEvents", "service", "${Service}"');
      const [, variables] = (props(resource('Dashboard')).DashboardBody as JsonObject)['Fn::Sub'] as [string, JsonObject];
      const env = environmentOf(resource('ProcessLambdaFunction'));
      expect(variables.Namespace).toBe(env.POWERTOOLS_METRICS_NAMESPACE);
      expect(variables.Service).toBe(env.POWERTOOLS_SERVICE_NAME);
    });

    it('shows each target\'s forwarded, archived and exported counts by their target dimension (docs/targets.md)', () => {
      const perTarget = widget('Per target (TARGETS_FILE): events forwarded') + widget('Per target (TARGETS_FILE): nightly export');
      for (const name of ['forwardedEvents', 'archivedRecords', 'interactionsExported']) expect(perTarget).toContain(`MetricName=\\"${name}\\"`);
      expect(perTarget).toContain('{0,service,target}');
    });

    it('shows dead-letter queue depth, errors and throttles of every function, and the export run duration', () => {
      expect(widget('Dead-letter queue depth')).toContain('ApproximateNumberOfMessagesVisible');
      for (const fn of functions(t)) {
        expect(text).toContain(`\${${fn.id}}`);
      }
      const errors = body.widgets.find((w) => w.properties.title === 'Function errors')!.properties.metrics!;
      const throttles = body.widgets.find((w) => w.properties.title === 'Function throttles')!.properties.metrics!;
      expect(errors).toHaveLength(functions(t).length);
      expect(throttles).toHaveLength(functions(t).length);
      expect(widget('Nightly export: run duration')).toContain('Duration');
    });
  });
});

describe('template sources (serverless/)', () => {
  /** The one variable list the template, the local stack and invoke-local share. */
  const listed: Record<string, { functions: string | string[]; template?: string; omitWhenEmpty?: boolean }> = variableList.variables;
  /** `PersonalizeDeletions` (logical id base) -> `personalizeDeletions` (key in serverless.yml and the list). */
  const functionKey = (base: string) => base.charAt(0).toLowerCase() + base.slice(1);

  it('gives every function exactly the variables serverless/environment.json lists for it, and only those with a template value', () => {
    // omitWhenEmpty variables are empty here (TARGETS_FILE without param targetsFile): left out (targets.test.ts sets them).
    const deployed = functions(t).map((fn) => functionKey(fn.base));
    for (const [name, variable] of Object.entries(listed)) {
      if (variable.functions === 'all') continue;
      expect(Array.isArray(variable.functions), `${name}: functions must be "all" or a list`).toBe(true);
      for (const fn of variable.functions) expect(deployed, `${name} names function ${fn}`).toContain(fn);
    }
    for (const fn of functions(t)) {
      const key = functionKey(fn.base);
      const expected = Object.entries(listed)
        .filter(([, v]) => v.template !== undefined && v.omitWhenEmpty !== true && (v.functions === 'all' || v.functions.includes(key)))
        .map(([name]) => name);
      expect(Object.keys(environmentOf(fn.resource)).sort(), fn.id).toEqual(expected.sort());
    }
  });

  it('defines each logical id in one resource file only (osls would merge two silently), and each reaches the template', async () => {
    const dir = join(REPO, 'serverless/resources');
    const owners = new Map<string, string[]>();
    const own = (id: string, file: string) => owners.set(id, [...(owners.get(id) ?? []), file]);
    for (const file of (await readdir(dir)).filter((f) => f.endsWith('.yml'))) {
      let section = '';
      for (const line of (await readFile(join(dir, file), 'utf8')).split('\n')) {
        section = /^([A-Za-z]+):/.exec(line)?.[1] ?? section;
        const id = section === 'Resources' ? /^ {2}([A-Za-z][A-Za-z0-9]*):/.exec(line)?.[1] : undefined;
        if (id) own(id, file);
      }
    }
    const alarms = createRequire(import.meta.url)('../../serverless/alarms.cjs') as { resources: Record<string, unknown> };
    for (const id of Object.keys(alarms.resources)) own(id, 'alarms.cjs');
    expect(owners.size).toBeGreaterThan(40);
    for (const [id, files] of owners) {
      expect(files, id).toHaveLength(1);
      expect(packaged.raw.Resources[id], id).toBeDefined();
    }
  });
});

describe('packaging', () => {
  it('packages offline without AWS credentials, the DuckDB engine (70 MB) only in the export function\'s zip', () => {
    const { export: exportZip, ...others } = packaged.artifacts;
    expect(Object.keys(others).sort()).toEqual(['collect', 'personalizeDeletions', 'process', 'redrive']);
    // libduckdb.so alone compresses to about 26 MB; a bundle without it is 1-2 MB.
    expect(exportZip).toBeGreaterThan(20 * 1024 * 1024);
    for (const [name, bytes] of Object.entries(others)) expect(bytes, name).toBeLessThan(5 * 1024 * 1024);
  });

  it('has a handler file in the repo for every function it deploys', () => {
    expect(packaged.missingHandlers).toEqual([]);
  });
});
