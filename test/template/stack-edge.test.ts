import { createRequire } from 'node:module';
import { beforeAll, describe, expect, it } from 'vitest';
import { COLLECTOR_PATHS, ROUTES } from '../../shared/collect/collector.js';
import { packageStack, props, resourcesOfType, type Json, type JsonObject, type Template } from './template.js';

/** serverless/protection.cjs: what serverless.yml loads for the edge web ACL and the parameter checks. */
interface Protection {
  check(context: { resolveVariable: (variable: string) => Promise<unknown> }): Promise<string>;
  serverDoorPaths: string[];
  webAclProperties(settings: { name: string; rateLimit: number; serverRateLimit: number; ipReputation: boolean }): JsonObject;
  standaloneTemplate(settings: { name: string; rateLimit: number; serverRateLimit: number; ipReputation: boolean }): {
    Resources: { WebAcl: { Type: string; Properties: JsonObject } };
  };
}
const protection = createRequire(import.meta.url)('../../serverless/protection.cjs') as Protection;

/** Production deployed to us-east-1: the stack creates the CLOUDFRONT web ACL itself. */
let t: Template;

beforeAll(async () => {
  const packaged = await packageStack(['--stage', 'prod', '--region', 'us-east-1', '--param=edgeIpReputationList=true']);
  t = packaged.effective;
}, 120_000);

type Rule = JsonObject & { Name: string; Priority: number; Statement: JsonObject; Action?: JsonObject; OverrideAction?: JsonObject };

const webAcl = () => {
  const found = resourcesOfType(t, 'AWS::WAFv2::WebACL');
  expect(found).toHaveLength(1);
  return props(found[0]![1]) as JsonObject & { Rules: Rule[] };
};
const rule = (name: string): Rule => {
  const found = webAcl().Rules.find((r) => r.Name === name);
  if (!found) throw new Error(`no web ACL rule ${name}`);
  return found;
};
const rateStatement = (name: string) => rule(name).Statement.RateBasedStatement as JsonObject & { ScopeDownStatement: JsonObject };

/** The exact paths a statement matches (an OR of exact, untransformed URI path matches). */
function exactPaths(statement: Json | undefined): string[] {
  const statements = ((statement as JsonObject).OrStatement as JsonObject).Statements as JsonObject[];
  return statements.map((s) => {
    const match = s.ByteMatchStatement as JsonObject;
    expect(match).toMatchObject({ FieldToMatch: { UriPath: {} }, PositionalConstraint: 'EXACTLY', TextTransformations: [{ Priority: 0, Type: 'NONE' }] });
    return match.SearchString as string;
  });
}

describe('edge web ACL (stack in us-east-1)', () => {
  it('is created in the stack with scope CLOUDFRONT, lets traffic through by default and is attached to the distribution', () => {
    const acl = webAcl();
    expect(acl).toMatchObject({ Scope: 'CLOUDFRONT', DefaultAction: { Allow: {} }, Name: 'personalize-ingest-prod-edge' });
    expect(acl.VisibilityConfig).toMatchObject({ CloudWatchMetricsEnabled: true, SampledRequestsEnabled: true });
    const [distribution] = resourcesOfType(t, 'AWS::CloudFront::Distribution');
    const config = props(distribution![1]).DistributionConfig as JsonObject;
    expect(config.WebACLId).toEqual({ 'Fn::GetAtt': [resourcesOfType(t, 'AWS::WAFv2::WebACL')[0]![0], 'Arn'] });
    expect(t.Outputs?.EdgeWebAclArn).toMatchObject({ Value: { 'Fn::GetAtt': ['EdgeWebAcl', 'Arn'] } });
  });

  it('limits every client IP to edgeRateLimit requests per 5 minutes on the tracker doors and every other path', () => {
    const statement = rateStatement('per-ip-public');
    expect(statement).toMatchObject({ Limit: 2000, EvaluationWindowSec: 300, AggregateKeyType: 'IP' });
    const exempt = exactPaths((statement.ScopeDownStatement.NotStatement as JsonObject).Statement);
    // Every tracker path (public write keys, anyone can send) is under the public limit.
    for (const path of COLLECTOR_PATHS.filter((p) => ROUTES[p]!.door === 'tracker')) expect(exempt).not.toContain(path);
    expect(rule('per-ip-public').Action).toEqual({
      Block: { CustomResponse: { ResponseCode: 429, ResponseHeaders: [{ Name: 'retry-after', Value: '60' }] } },
    });
  });

  it('gives the secret-credential doors (webhooks, feeds, privacy) their own higher per-IP limit, and exactly those', () => {
    const statement = rateStatement('per-ip-server');
    expect(statement).toMatchObject({ Limit: 100_000, EvaluationWindowSec: 300, AggregateKeyType: 'IP' });
    const serverDoors = COLLECTOR_PATHS.filter((p) => ROUTES[p]!.door !== 'tracker').sort();
    expect(exactPaths(statement.ScopeDownStatement).sort()).toEqual(serverDoors);
    expect(exactPaths((rateStatement('per-ip-public').ScopeDownStatement.NotStatement as JsonObject).Statement).sort()).toEqual(serverDoors);
    expect(protection.serverDoorPaths).toEqual(serverDoors);
    expect(rule('per-ip-server').Action).toEqual(rule('per-ip-public').Action);
  });

  it('runs the optional AWS managed IP reputation list first', () => {
    const rules = [...webAcl().Rules].sort((a, b) => a.Priority - b.Priority);
    expect(rules.map((r) => r.Name)).toEqual(['aws-ip-reputation', 'per-ip-public', 'per-ip-server']);
    expect(rules[0]).toMatchObject({
      OverrideAction: { None: {} },
      Statement: { ManagedRuleGroupStatement: { VendorName: 'AWS', Name: 'AWSManagedRulesAmazonIpReputationList' } },
    });
    for (const r of rules) expect(r.VisibilityConfig).toMatchObject({ CloudWatchMetricsEnabled: true });
  });

  it('is the same web ACL the standalone template for other regions creates', () => {
    const settings = { name: 'personalize-ingest-prod-edge', rateLimit: 2000, serverRateLimit: 100_000, ipReputation: true };
    const standalone = protection.standaloneTemplate(settings).Resources.WebAcl;
    expect(standalone.Type).toBe('AWS::WAFv2::WebACL');
    expect(standalone.Properties).toEqual(webAcl());
  });
});

describe('parameter checks at package time (serverless/protection.cjs)', () => {
  const DEFAULTS: Record<string, unknown> = {
    'self:service': 'personalize-ingest',
    'sls:stage': 'prod',
    'self:provider.region': 'eu-west-1',
    'param:edgeProtection': true,
    'param:edgeWebAclArn': 'arn:aws:wafv2:us-east-1:123456789012:global/webacl/shop-edge/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0',
    'param:edgeRateLimit': 2000,
    'param:edgeServerRateLimit': 100_000,
    'param:edgeIpReputationList': false,
    'param:collectReservedConcurrency': 100,
    'param:processReservedConcurrency': 0,
    'param:identityLinkTtlDays': 0,
    'param:httpAccessLogs': true,
  };
  const check = (overrides: Record<string, unknown> = {}) => {
    const values = { ...DEFAULTS, ...overrides };
    return protection.check({
      resolveVariable: (variable) => (variable in values ? Promise.resolve(values[variable]) : Promise.reject(new Error(`unknown ${variable}`))),
    });
  };

  it('accepts a production stack outside us-east-1 that names its web ACL, and any stack without edge protection', async () => {
    await expect(check()).resolves.toBe('ok');
    await expect(check({ 'param:edgeProtection': false, 'param:edgeWebAclArn': '' })).resolves.toBe('ok');
    await expect(check({ 'self:provider.region': 'us-east-1', 'param:edgeWebAclArn': '' })).resolves.toBe('ok');
  });

  it('refuses edge protection outside us-east-1 without a web ACL, instead of failing at deploy time', async () => {
    await expect(check({ 'param:edgeWebAclArn': '' })).rejects.toThrow(/only creates in us-east-1.*edgeWebAclArn/s);
    await expect(check({ 'param:edgeWebAclArn': 'arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/x/y' })).rejects.toThrow(/CLOUDFRONT-scope/);
  });

  it('refuses limits AWS WAF or Lambda would reject, and a reserved concurrency that would stop a function', async () => {
    await expect(check({ 'param:edgeRateLimit': 5 })).rejects.toThrow(/edgeRateLimit/);
    await expect(check({ 'param:edgeServerRateLimit': 0 })).resolves.toBe('ok');
    await expect(check({ 'param:collectReservedConcurrency': -1 })).rejects.toThrow(/collectReservedConcurrency/);
    await expect(check({ 'param:processReservedConcurrency': '' })).resolves.toBe('ok');
    await expect(check({ 'param:identityLinkTtlDays': 1.5 })).rejects.toThrow(/identityLinkTtlDays/);
    await expect(check({ 'param:edgeProtection': 'yes' })).rejects.toThrow(/edgeProtection must be true or false/);
  });
});
