// Abuse protection of the collector for serverless.yml (README "Deploying to AWS", SECURITY.md):
//   - `check`: package-time validation of the parameters that CloudFormation would only reject at
//     deploy time (or never: a reserved concurrency of 0 would silently stop a function);
//   - `edgeWebAcl`: the AWS WAF web ACL (scope CLOUDFRONT) with the per-IP rate limits, built from
//     the same route list the collector reads (shared/collect/http-contract.json);
//   - run as a script, the same web ACL as a standalone CloudFormation template, for stacks outside
//     us-east-1 (a CLOUDFRONT web ACL can only be created in us-east-1):
//       node serverless/protection.cjs --name personalize-ingest-prod-edge --rate-limit 2000 > edge-web-acl.json
//       aws cloudformation deploy --region us-east-1 --stack-name personalize-ingest-prod-edge \
//         --template-file edge-web-acl.json
//     then deploy with --param="edgeWebAclArn=<the WebAclArn output>".
/* global process */
const contract = require('../shared/collect/http-contract.json');

/**
 * Route kinds whose callers authenticate with a secret (webhook signatures, feed and privacy keys):
 * a few servers (Segment, mParticle, your back office) sending a lot from shared egress IPs. They get
 * their own, higher per-IP limit; every other path (the tracker doors, public write keys) gets the
 * public one. test/template checks this list against the collector's doors.
 */
const SERVER_DOOR_KINDS = ['segment-webhook', 'mparticle-webhook', 'items-feed', 'users-feed', 'privacy-delete'];

const serverDoorPaths = Object.entries(contract.routes)
  .filter(([, kind]) => SERVER_DOOR_KINDS.includes(kind))
  .map(([path]) => path)
  .sort();

/** Evaluation window of both rate rules (AWS WAF allows 60, 120, 300 or 600 s). */
const WINDOW_SECONDS = 300;
/** AWS WAF's bounds for a rate-based rule's limit (requests per window per IP). */
const MIN_LIMIT = 10;
const MAX_LIMIT = 2_000_000_000;

class ParameterError extends Error {
  constructor(message) {
    super(message);
    // osls prints the stack of a failed resolver: the message is all the operator needs.
    this.stack = message;
  }
}

// Exact matches without transformations: a path that differs in any way (case, encoding, a trailing
// slash) is not a server door and falls under the lower, public limit.
const serverDoorStatement = {
  OrStatement: {
    Statements: serverDoorPaths.map((path) => ({
      ByteMatchStatement: {
        FieldToMatch: { UriPath: {} },
        PositionalConstraint: 'EXACTLY',
        SearchString: path,
        TextTransformations: [{ Priority: 0, Type: 'NONE' }],
      },
    })),
  },
};

const visibility = (metricName) => ({ SampledRequestsEnabled: true, CloudWatchMetricsEnabled: true, MetricName: metricName });

/** Blocked callers get 429 with Retry-After: SDKs back off and retry 429 (FACTS §7). */
const rateLimited = { Block: { CustomResponse: { ResponseCode: 429, ResponseHeaders: [{ Name: 'retry-after', Value: '60' }] } } };

/**
 * Properties of the AWS::WAFv2::WebACL.
 * @param {{name: string, rateLimit: number, serverRateLimit: number, ipReputation: boolean}} settings
 */
function webAclProperties({ name, rateLimit, serverRateLimit, ipReputation }) {
  const rules = [];
  if (ipReputation) {
    rules.push({
      Name: 'aws-ip-reputation',
      Priority: 0,
      OverrideAction: { None: {} },
      Statement: { ManagedRuleGroupStatement: { VendorName: 'AWS', Name: 'AWSManagedRulesAmazonIpReputationList' } },
      VisibilityConfig: visibility(`${name}-ip-reputation`),
    });
  }
  rules.push({
    Name: 'per-ip-public',
    Priority: 10,
    Action: rateLimited,
    Statement: {
      RateBasedStatement: {
        Limit: rateLimit,
        EvaluationWindowSec: WINDOW_SECONDS,
        AggregateKeyType: 'IP',
        ScopeDownStatement: { NotStatement: { Statement: serverDoorStatement } },
      },
    },
    VisibilityConfig: visibility(`${name}-per-ip-public`),
  });
  if (serverRateLimit > 0) {
    rules.push({
      Name: 'per-ip-server',
      Priority: 20,
      Action: rateLimited,
      Statement: {
        RateBasedStatement: {
          Limit: serverRateLimit,
          EvaluationWindowSec: WINDOW_SECONDS,
          AggregateKeyType: 'IP',
          ScopeDownStatement: serverDoorStatement,
        },
      },
      VisibilityConfig: visibility(`${name}-per-ip-server`),
    });
  }
  return {
    Name: name,
    Description: `Per-IP rate limits in front of the ${name.replace(/-edge$/, '')} collector`,
    Scope: 'CLOUDFRONT',
    DefaultAction: { Allow: {} },
    Rules: rules,
    VisibilityConfig: visibility(name),
  };
}

function integer(name, raw, { min, max, zero = false }) {
  const text = String(raw ?? '').trim();
  if (zero && (text === '' || text === '0')) return 0;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw new ParameterError(`${name} must be ${zero ? '0 (off) or ' : ''}an integer from ${min} to ${max}, not "${text}"`);
  }
  return value;
}

function flag(name, raw) {
  const text = String(raw).trim();
  if (text !== 'true' && text !== 'false') throw new ParameterError(`${name} must be true or false, not "${text}"`);
  return text === 'true';
}

async function edgeSettings(resolveVariable) {
  const param = (name) => resolveVariable(`param:${name}`);
  const service = await resolveVariable('self:service');
  const stage = await resolveVariable('sls:stage');
  return {
    enabled: flag('edgeProtection', await param('edgeProtection')),
    webAclArn: String((await param('edgeWebAclArn')) ?? '').trim(),
    region: String(await resolveVariable('self:provider.region')),
    name: `${service}-${stage}-edge`,
    rateLimit: integer('edgeRateLimit', await param('edgeRateLimit'), { min: MIN_LIMIT, max: MAX_LIMIT }),
    serverRateLimit: integer('edgeServerRateLimit', await param('edgeServerRateLimit'), { min: MIN_LIMIT, max: MAX_LIMIT, zero: true }),
    ipReputation: flag('edgeIpReputationList', await param('edgeIpReputationList')),
  };
}

const WEB_ACL_ARN = /^arn:aws[\w-]*:wafv2:us-east-1:\d{12}:global\/webacl\/[\w-]+\/[\w-]+$/;

/** Throws (and so stops `package`/`deploy`) on a parameter CloudFormation would reject late or never. */
async function check({ resolveVariable }) {
  const edge = await edgeSettings(resolveVariable);
  if (edge.enabled && edge.webAclArn === '' && edge.region !== 'us-east-1') {
    throw new ParameterError(
      `edgeProtection needs an AWS WAF web ACL of scope CLOUDFRONT, which AWS only creates in us-east-1. ` +
        `This stack deploys to ${edge.region}: create the web ACL in us-east-1 (node serverless/protection.cjs prints ` +
        `its template, README "Deploying to AWS") and pass --param="edgeWebAclArn=<its ARN>", or set edgeProtection=false.`,
    );
  }
  if (edge.webAclArn !== '' && !WEB_ACL_ARN.test(edge.webAclArn)) {
    throw new ParameterError(`edgeWebAclArn must be the ARN of a CLOUDFRONT-scope web ACL (arn:aws:wafv2:us-east-1:<account>:global/webacl/<name>/<id>), not "${edge.webAclArn}"`);
  }
  for (const name of ['collectReservedConcurrency', 'processReservedConcurrency']) {
    integer(name, await resolveVariable(`param:${name}`), { min: 1, max: 10_000, zero: true });
  }
  integer('identityLinkTtlDays', await resolveVariable('param:identityLinkTtlDays'), { min: 1, max: 36_500, zero: true });
  flag('httpAccessLogs', await resolveVariable('param:httpAccessLogs'));
  return 'ok';
}

/** The web ACL resource of serverless.yml (created only when the stack makes its own, see Conditions). */
async function edgeWebAcl({ resolveVariable }) {
  const edge = await edgeSettings(resolveVariable);
  return { Type: 'AWS::WAFv2::WebACL', Condition: 'CreateEdgeWebAcl', Properties: webAclProperties(edge) };
}

/** The standalone template (us-east-1) for stacks in other regions. */
function standaloneTemplate(settings) {
  return {
    AWSTemplateFormatVersion: '2010-09-09',
    Description: `AWS WAF web ACL (scope CLOUDFRONT) for ${settings.name}; deploy in us-east-1 and pass its ARN as edgeWebAclArn`,
    Resources: { WebAcl: { Type: 'AWS::WAFv2::WebACL', Properties: webAclProperties(settings) } },
    Outputs: { WebAclArn: { Value: { 'Fn::GetAtt': ['WebAcl', 'Arn'] } } },
  };
}

module.exports = {
  check,
  edgeWebAcl,
  serverDoorPaths,
  webAclProperties,
  standaloneTemplate,
  SERVER_DOOR_KINDS,
  WINDOW_SECONDS,
};

if (require.main === module) {
  const args = process.argv.slice(2);
  const option = (name, fallback) => {
    const at = args.indexOf(`--${name}`);
    return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
  };
  try {
    const settings = {
      name: option('name', 'personalize-ingest-prod-edge'),
      rateLimit: integer('--rate-limit', option('rate-limit', '2000'), { min: MIN_LIMIT, max: MAX_LIMIT }),
      serverRateLimit: integer('--server-rate-limit', option('server-rate-limit', '100000'), { min: MIN_LIMIT, max: MAX_LIMIT, zero: true }),
      ipReputation: flag('--ip-reputation-list', option('ip-reputation-list', 'false')),
    };
    process.stdout.write(`${JSON.stringify(standaloneTemplate(settings), null, 2)}\n`);
  } catch (error) {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = 1;
  }
}
