// The stack's CloudWatch alarms for serverless.yml, generated from the tables below: most alarms
// differ only in their metric, name and description, so each is one row here instead of 16 lines of
// YAML. Every alarm notifies the alarm topic (serverless/resources/alarm-topic.yml) when it fires and
// when it clears. The alarm on a failed Athena export lives with that feature (athena-export.cjs).
//
// Values are returned with serverless variables (${self:...}, ${param:...}) still in them: osls
// resolves those after loading this file, exactly as if they were written in serverless.yml.

const ref = (id) => ({ Ref: id });
const getAtt = (id, attribute) => ({ 'Fn::GetAtt': [id, attribute] });

const NAME_PREFIX = '${self:service}-${sls:stage}-';
const NAMESPACE = '${self:custom.metricsNamespace}';
/** The dimension the pipeline's own (EMF) metrics carry, so the stages of one account stay apart. */
const SERVICE_DIMENSION = { Name: 'service', Value: '${self:custom.metricsService}' };

/**
 * Errors and throttles of every function (test/template checks that none is missing).
 * `id`: the function's key in serverless.yml, capitalised (its logical id is `<id>LambdaFunction`);
 * `slug`: the alarm name's middle part.
 */
const FUNCTIONS = [
  {
    id: 'Collect',
    slug: 'collect',
    errors: 'The collect function failed invocations.',
    throttles: 'The collect function was throttled (account or reserved concurrency exhausted); callers got errors.',
  },
  {
    id: 'Process',
    slug: 'process',
    errors: 'The process function failed whole batches (they are bisected and retried, then dead-lettered).',
    throttles: 'The process function was throttled; the stream backs up until it runs again.',
  },
  {
    id: 'Export',
    slug: 'export',
    errors: 'The nightly export failed; it is not retried automatically. Re-run it for the failed date.',
    throttles: 'The export function was throttled.',
  },
  {
    id: 'PersonalizeDeletions',
    slug: 'personalize-deletions',
    errors: 'The daily Personalize deletion step failed; the next run retries everything it had not finished.',
    throttles: 'The Personalize deletion step was throttled.',
  },
  {
    id: 'Redrive',
    slug: 'redrive',
    errors: 'A redrive run failed; messages it had not finished stay in the dead-letter queue.',
    throttles: 'The redrive function was throttled.',
  },
];

/**
 * The collector's `door` dimension values (EMF collect_status_5xx, dimensions service + door), with
 * the metric-math id of each. An alarm cannot use SEARCH, so the doors are listed one by one.
 */
const COLLECTOR_DOORS = [
  { id: 'tracker', door: 'tracker' },
  { id: 'segment', door: 'segment-webhook' },
  { id: 'mparticle', door: 'mparticle-webhook' },
  { id: 'items', door: 'items-feed' },
  { id: 'users', door: 'users-feed' },
  { id: 'privacy', door: 'privacy' },
  { id: 'unknown', door: 'unknown' },
];

/**
 * One row per alarm. `name`: after `<service>-<stage>-`; `metric`: namespace, name, dimensions
 * (or `metrics`: a metric-math query); the rest defaults to "more than 0 in 5 minutes, summed".
 */
const ALARMS = [
  {
    id: 'DeadLetterQueueDepthAlarm',
    name: 'dlq-not-empty',
    description: 'Records are waiting in the dead-letter queue. Read their reasons, fix, then run the redrive function.',
    metric: { namespace: 'AWS/SQS', name: 'ApproximateNumberOfMessagesVisible', dimensions: [{ Name: 'QueueName', Value: getAtt('DeadLetterQueue', 'QueueName') }] },
    statistic: 'Maximum',
  },
  {
    id: 'ProcessIteratorAgeAlarm',
    name: 'process-iterator-age',
    description:
      'The processor is falling behind the stream (records wait longer than ${param:iteratorAgeAlarmMs} ms). Check its errors, throttles and Personalize throttling; records older than the stream retention are lost.',
    metric: { namespace: 'AWS/Lambda', name: 'IteratorAge', dimensions: [{ Name: 'FunctionName', Value: ref('ProcessLambdaFunction') }] },
    statistic: 'Maximum',
    // Lag that pages someone: the maximum over a minute, 5 minutes in a row.
    period: 60,
    evaluationPeriods: 5,
    threshold: '${param:iteratorAgeAlarmMs}',
  },
  // The collector's own count of 5xx answers, summed over every door.
  {
    id: 'Collector5xxAlarm',
    name: 'collect-5xx',
    description: 'The collector answered 5xx (mostly 503 - Kinesis did not store some messages; senders retry).',
    metrics: [
      { Id: 'total', Label: 'collect_status_5xx (all doors)', Expression: 'SUM(FILL(METRICS(), 0))', ReturnData: true },
      ...COLLECTOR_DOORS.map(({ id, door }) => ({
        Id: id,
        ReturnData: false,
        MetricStat: {
          Metric: { Namespace: NAMESPACE, MetricName: 'collect_status_5xx', Dimensions: [SERVICE_DIMENSION, { Name: 'door', Value: door }] },
          Period: 300,
          Stat: 'Sum',
        },
      })),
    ],
  },
  // 5xx that never reached the collector's own metric: a crash (answered 500 by the error
  // middleware), a timeout, or a failed integration.
  {
    id: 'HttpApi5xxAlarm',
    name: 'http-api-5xx',
    description: 'The HTTP API answered 5xx (collector crashed, timed out or could not be invoked).',
    metric: { namespace: 'AWS/ApiGateway', name: '5xx', dimensions: [{ Name: 'ApiId', Value: ref('HttpApi') }] },
  },
  {
    id: 'PersonalizeDeletionFailedAlarm',
    name: 'personalize-deletion-failed',
    description:
      "A Personalize data deletion job FAILED (reason in the deletion step's log and control/personalize-deletions/audit/). Its users stay pending; the next run creates a new job.",
    // Emitted by the deletion step (shared/personalize-deletion/runtime.ts).
    metric: { namespace: NAMESPACE, name: 'personalize_deletion_jobs_failed', dimensions: [SERVICE_DIMENSION] },
    period: 86400,
  },
  ...FUNCTIONS.flatMap(({ id, slug, errors, throttles }) =>
    [
      ['Errors', errors],
      ['Throttles', throttles],
    ].map(([metricName, description]) => ({
      id: `${id}${metricName}Alarm`,
      name: `${slug}-${metricName.toLowerCase()}`,
      description,
      metric: { namespace: 'AWS/Lambda', name: metricName, dimensions: [{ Name: 'FunctionName', Value: ref(`${id}LambdaFunction`) }] },
    })),
  ),
];

/** The AWS::CloudWatch::Alarm resource of one row. */
function alarmResource(row) {
  const query = row.metrics
    ? { Metrics: row.metrics }
    : {
        Namespace: row.metric.namespace,
        MetricName: row.metric.name,
        Dimensions: row.metric.dimensions,
        Statistic: row.statistic ?? 'Sum',
        Period: row.period ?? 300,
      };
  return {
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      AlarmName: `${NAME_PREFIX}${row.name}`,
      AlarmDescription: row.description,
      ...query,
      EvaluationPeriods: row.evaluationPeriods ?? 1,
      Threshold: row.threshold ?? 0,
      ComparisonOperator: 'GreaterThanThreshold',
      // No data (no traffic, no runs) is not an incident.
      TreatMissingData: 'notBreaching',
      AlarmActions: [ref('AlarmTopic')],
      OKActions: [ref('AlarmTopic')],
    },
  };
}

/** CloudFormation resources by logical id, for `Resources:` in serverless.yml. */
function alarmResources(rows = ALARMS) {
  return Object.fromEntries(rows.map((row) => [row.id, alarmResource(row)]));
}

module.exports = { ALARMS, FUNCTIONS, COLLECTOR_DOORS, alarmResources, resources: alarmResources() };
