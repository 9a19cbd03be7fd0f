// The nightly export on Athena for days too large for one Lambda (docs/export-at-scale.md), for
// serverless.yml. Every resource here carries `Condition: ExportAthena` (param exportAthena), so a
// stack without it has none of them. With it on, the nightly schedule starts the state machine
// instead of the export Lambda; its first step asks the Lambda for each target's archive size of the
// day (the default and every target of TARGETS_FILE, docs/targets.md) and runs a target's day in the
// Lambda as before (embedded engine) unless it is above exportAthenaMinArchiveBytes:
//
//   Plan (Lambda: per target, engine?) -> some target on Athena?
//     yes: DynamoDB ExportTableToPointInTime of the identity table -> poll DescribeExport (bounded)
//          (once per run: identity links are shared by every target)
//   -> Map over the targets, one at a time:
//     duckdb: ExportInLambda (Lambda: the target's day on the embedded engine)
//     athena: Prepare (Lambda: run id, folders) -> Map over the kinds: RowsText (Lambda) -> Athena
//             UNLOAD of the rows (startQueryExecution.sync) -> ReportText -> UNLOAD of the report
//             -> Finish (Lambda: CSV parts, imports, manifest under the target's root)
//   -> done
//   (one query text in the state at a time: Athena takes up to 262,144 bytes, a state holds 256 KiB)
//   any failure -> ExportFailed (a Fail state; the alarm below pages)
//
// Target names are not known at package time (the Lambda reads TARGETS_FILE): the targets' archives
// are read through tables whose partition `target` is projected as `injected` (every query names its
// target) over targets/${target}/archive/ and targets/${target}/forwarded/.
//
// Resources are scoped to this stack: the workgroup, the Glue database and its tables, the archive
// bucket's prefixes archive/, forwarded/, targets/*/archive/, targets/*/forwarded/ (read),
// exports/identity/ (the DynamoDB export) and athena/ (query results and UNLOAD output, every
// target's), the identity table and its exports, the export function.

/** DescribeExport is polled this often, at most this many times (2 hours), then the run fails. */
const IDENTITY_EXPORT_POLL_SECONDS = 60;
const IDENTITY_EXPORT_MAX_POLLS = 120;
/** The whole execution (identity export, six queries, finish) must end within this. */
const EXECUTION_TIMEOUT_SECONDS = 6 * 3600;
/** Athena refuses a per-query cutoff below 10 MB. */
const MIN_BYTES_SCANNED_CUTOFF = 10_000_000;
const CONDITION = 'ExportAthena';
const ARCHIVE_TABLE = 'archive_lines';
const LINKS_TABLE = 'identity_links';
const FORWARDED_TABLE = 'forwarded_lines';
const TARGET_ARCHIVE_TABLE = 'target_archive_lines';
const TARGET_FORWARDED_TABLE = 'target_forwarded_lines';
/** The non-default targets' archive prefixes (shared/archive.ts TARGETS_PREFIX): targets/<name>/archive/, targets/<name>/forwarded/. */
const TARGET_SOURCES = ['targets/*/archive/', 'targets/*/forwarded/'];
const IDENTITY_EXPORT_PREFIX = 'exports/identity';
const EXPORT_KINDS = ['interactions', 'items', 'users'];

class ParameterError extends Error {
  constructor(message) {
    super(message);
    this.stack = message;
  }
}

function integer(name, raw, { min, max }) {
  const text = String(raw ?? '').trim();
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) throw new ParameterError(`${name} must be an integer from ${min} to ${max}, not "${text}"`);
  return value;
}

function flag(name, raw) {
  const text = String(raw).trim();
  if (text !== 'true' && text !== 'false') throw new ParameterError(`${name} must be true or false, not "${text}"`);
  return text === 'true';
}

/** The parameters and names this file builds from (validated: a bad value stops packaging). */
async function settings(resolveVariable) {
  const param = (name) => resolveVariable(`param:${name}`);
  const service = String(await resolveVariable('self:service'));
  const stage = String(await resolveVariable('sls:stage'));
  const base = `${service}-${stage}`;
  return {
    enabled: flag('exportAthena', await param('exportAthena')),
    scheduleEnabled: flag('exportScheduleEnabled', await param('exportScheduleEnabled')),
    schedule: String(await param('exportSchedule')),
    minArchiveBytes: integer('exportAthenaMinArchiveBytes', await param('exportAthenaMinArchiveBytes'), { min: 0, max: Number.MAX_SAFE_INTEGER }),
    bytesScannedCutoff: integer('exportAthenaBytesScannedCutoff', await param('exportAthenaBytesScannedCutoff'), {
      min: MIN_BYTES_SCANNED_CUTOFF,
      max: Number.MAX_SAFE_INTEGER,
    }),
    scratchRetentionDays: integer('exportAthenaScratchRetentionDays', await param('exportAthenaScratchRetentionDays'), { min: 1, max: 3650 }),
    logRetentionDays: integer('logRetentionDays', await param('logRetentionDays'), { min: 1, max: 3653 }),
    base,
    // Glue/Athena names: lowercase letters, digits and underscores.
    database: `${base}_export`.toLowerCase().replace(/[^a-z0-9_]/g, '_'),
    workGroup: `${base}-export`,
    stateMachine: `${base}-export`,
    logGroup: `/aws/vendedlogs/states/${base}-export`,
  };
}

const sub = (text) => ({ 'Fn::Sub': text });
const ref = (id) => ({ Ref: id });
const getAtt = (id, attribute) => ({ 'Fn::GetAtt': [id, attribute] });
const bucketObjects = (prefix) => sub(`\${ArchiveBucket.Arn}/${prefix}*`);
const arn = (service, resource) => sub(`arn:\${AWS::Partition}:${service}:\${AWS::Region}:\${AWS::AccountId}:${resource}`);

// ------------------------------------------------------------------ Glue catalog

async function database({ resolveVariable }) {
  const s = await settings(resolveVariable);
  return {
    Type: 'AWS::Glue::Database',
    Condition: CONDITION,
    Properties: {
      CatalogId: ref('AWS::AccountId'),
      DatabaseInput: { Name: s.database, Description: `${s.base}: the archive and identity exports, read by the nightly export on Athena` },
    },
  };
}

const TEXT_INPUT = 'org.apache.hadoop.mapred.TextInputFormat';
const TEXT_OUTPUT = 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat';

/** gzip NDJSON read as text: one string column holding each line whole (the rules parse it). */
function linesTable({ name, description, projection, partitionKeys, template, location }) {
  return {
    Type: 'AWS::Glue::Table',
    Condition: CONDITION,
    Properties: {
      CatalogId: ref('AWS::AccountId'),
      DatabaseName: ref('ExportAthenaDatabase'),
      TableInput: {
        Name: name,
        Description: description,
        TableType: 'EXTERNAL_TABLE',
        Parameters: { EXTERNAL: 'TRUE', 'projection.enabled': 'true', ...projection, 'storage.location.template': sub(template) },
        PartitionKeys: partitionKeys.map((key) => ({ Name: key, Type: 'string' })),
        StorageDescriptor: {
          Columns: [{ Name: 'line', Type: 'string' }],
          Location: sub(location),
          InputFormat: TEXT_INPUT,
          OutputFormat: TEXT_OUTPUT,
          Compressed: true,
          SerdeInfo: { SerializationLibrary: 'org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe', Parameters: { 'serialization.format': '1' } },
        },
      },
    },
  };
}

/** Partition projection of a `dt=<day>` folder. The archive rejects event times before 2000-01-01 (schemas/canonical.ts). */
const DAY_PROJECTION = {
  'projection.dt.type': 'date',
  'projection.dt.format': 'yyyy-MM-dd',
  'projection.dt.range': '2000-01-01,NOW',
  'projection.dt.interval': '1',
  'projection.dt.interval.unit': 'DAYS',
};

/** Partition projection of archive/<kind>/dt=<day>/hour=<HH>/. */
const ARCHIVE_PROJECTION = {
  'projection.kind.type': 'enum',
  'projection.kind.values': EXPORT_KINDS.join(','),
  ...DAY_PROJECTION,
  'projection.hour.type': 'integer',
  'projection.hour.range': '0,23',
  'projection.hour.digits': '2',
};

/**
 * A target's name, projected as `injected`: a query must name it (`target = '...'`, Athena refuses
 * one that does not), so the names need not be known when the stack is packaged.
 */
const TARGET_PROJECTION = { 'projection.target.type': 'injected' };

/**
 * The archive as text. LazySimpleSerDe with its default field delimiter \001, which JSON text never
 * holds raw, so an invalid line is counted, not lost; gzip is recognised by the objects' .gz
 * extension. Partitions are projected from the key layout archive/<kind>/dt=<day>/hour=<HH>/: no
 * crawler, no MSCK.
 */
async function archiveTable() {
  return linesTable({
    name: ARCHIVE_TABLE,
    description: 'Archive lines (gzip NDJSON), one string per line; partition projection on kind, dt, hour',
    projection: ARCHIVE_PROJECTION,
    partitionKeys: ['kind', 'dt', 'hour'],
    template: 's3://${ArchiveBucket}/archive/${!kind}/dt=${!dt}/hour=${!hour}/',
    location: 's3://${ArchiveBucket}/archive/',
  });
}

/** The other targets' archives (targets/<name>/archive/...), read like archive_lines; `target` injected. */
async function targetArchiveTable() {
  return linesTable({
    name: TARGET_ARCHIVE_TABLE,
    description: 'Archive lines of the targets other than the default (targets/<name>/archive/); partition projection on target (injected), kind, dt, hour',
    projection: { ...TARGET_PROJECTION, ...ARCHIVE_PROJECTION },
    partitionKeys: ['target', 'kind', 'dt', 'hour'],
    template: 's3://${ArchiveBucket}/targets/${!target}/archive/${!kind}/dt=${!dt}/hour=${!hour}/',
    location: 's3://${ArchiveBucket}/targets/',
  });
}

/**
 * What PutEvents accepted (docs/bulk-modes.md): the processor's gzip NDJSON under
 * forwarded/interactions/dt=<day>/, read as whole lines like the archive; partition dt projected.
 */
async function forwardedTable() {
  return linesTable({
    name: FORWARDED_TABLE,
    description: 'Interactions PutEvents accepted (gzip NDJSON {sessionId, eventId}), one string per line; partition projection on dt',
    projection: DAY_PROJECTION,
    partitionKeys: ['dt'],
    template: 's3://${ArchiveBucket}/forwarded/interactions/dt=${!dt}/',
    location: 's3://${ArchiveBucket}/forwarded/interactions/',
  });
}

/** What PutEvents accepted for the other targets (targets/<name>/forwarded/interactions/); `target` injected. */
async function targetForwardedTable() {
  return linesTable({
    name: TARGET_FORWARDED_TABLE,
    description: 'Interactions PutEvents accepted for the targets other than the default (targets/<name>/forwarded/interactions/); partition projection on target (injected), dt',
    projection: { ...TARGET_PROJECTION, ...DAY_PROJECTION },
    partitionKeys: ['target', 'dt'],
    template: 's3://${ArchiveBucket}/targets/${!target}/forwarded/interactions/dt=${!dt}/',
    location: 's3://${ArchiveBucket}/targets/',
  });
}

/** DYNAMODB_JSON items: {"Item": {"sessionId": {"S": ...}, ...}}; only the attributes the links relation reads. */
const IDENTITY_ITEM_TYPE =
  'struct<sessionid:struct<s:string>,userid:struct<s:string>,linkedat:struct<n:string>,expiresat:struct<n:string>,' +
  'claims:struct<l:array<struct<m:struct<userid:struct<s:string>,linkedat:struct<n:string>>>>>>';

/**
 * A DynamoDB export of the identity table (ExportTableToPointInTime, DYNAMODB_JSON) lands in
 * exports/identity/AWSDynamoDB/<export id>/data/. Partition `export_id` is projected as `injected`:
 * a query must name the export it reads (the prepare step puts this run's id in the text).
 */
async function linksTable() {
  return {
    Type: 'AWS::Glue::Table',
    Condition: CONDITION,
    Properties: {
      CatalogId: ref('AWS::AccountId'),
      DatabaseName: ref('ExportAthenaDatabase'),
      TableInput: {
        Name: LINKS_TABLE,
        Description: 'Identity table exports (DynamoDB export to S3, DYNAMODB_JSON); partition export_id, projection injected',
        TableType: 'EXTERNAL_TABLE',
        Parameters: {
          EXTERNAL: 'TRUE',
          'projection.enabled': 'true',
          'projection.export_id.type': 'injected',
          'storage.location.template': sub(`s3://\${ArchiveBucket}/${IDENTITY_EXPORT_PREFIX}/AWSDynamoDB/\${!export_id}/data/`),
        },
        PartitionKeys: [{ Name: 'export_id', Type: 'string' }],
        StorageDescriptor: {
          Columns: [{ Name: 'item', Type: IDENTITY_ITEM_TYPE }],
          Location: sub(`s3://\${ArchiveBucket}/${IDENTITY_EXPORT_PREFIX}/AWSDynamoDB/`),
          InputFormat: TEXT_INPUT,
          OutputFormat: TEXT_OUTPUT,
          Compressed: true,
          // Case-insensitive (the default, said out loud): Item.sessionId.S is item.sessionid.s.
          SerdeInfo: { SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe', Parameters: { 'case.insensitive': 'TRUE' } },
        },
      },
    },
  };
}

// ------------------------------------------------------------------ Athena

/**
 * The export's own workgroup. Enforced: a query cannot pick another result location or turn off
 * encryption; results go to athena/results/ in the archive bucket (SSE-S3, like the bucket), which
 * a lifecycle rule expires; a query scanning more than the cutoff is cancelled (a runaway query
 * costs at most the cutoff at Athena's per-TB price).
 */
async function workGroup({ resolveVariable }) {
  const s = await settings(resolveVariable);
  return {
    Type: 'AWS::Athena::WorkGroup',
    Condition: CONDITION,
    Properties: {
      Name: s.workGroup,
      Description: `${s.base} nightly export (UNLOAD of days too large for one Lambda)`,
      State: 'ENABLED',
      // Stack deletion removes the workgroup with its query history instead of failing on it.
      RecursiveDeleteOption: true,
      WorkGroupConfiguration: {
        EnforceWorkGroupConfiguration: true,
        PublishCloudWatchMetricsEnabled: true,
        BytesScannedCutoffPerQuery: s.bytesScannedCutoff,
        EngineVersion: { SelectedEngineVersion: 'Athena engine version 3' },
        ResultConfiguration: {
          OutputLocation: sub('s3://${ArchiveBucket}/athena/results/'),
          EncryptionConfiguration: { EncryptionOption: 'SSE_S3' },
          ExpectedBucketOwner: ref('AWS::AccountId'),
        },
      },
    },
  };
}

// ------------------------------------------------------------------ Step Functions

const FAILED = 'ExportFailed';
const catchAll = [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: FAILED }];
/** Throttled (reserved concurrency 1: a run by hand at the same time): it did not run, so it may be retried. */
const lambdaRetry = [{ ErrorEquals: ['Lambda.TooManyRequestsException'], IntervalSeconds: 5, MaxAttempts: 8, BackoffRate: 2 }];

/**
 * `payload`: the event object. `next` undefined: the last state of a Map iteration, whose output is
 * `$.result` only (the iteration's result, not its inputs).
 */
function invokeExport(payload, resultSelector, resultPath, next, { nested = false } = {}) {
  return {
    Type: 'Task',
    Resource: 'arn:aws:states:::lambda:invoke',
    Parameters: { FunctionName: '${ExportFunctionArn}', Payload: payload },
    ResultSelector: resultSelector,
    ResultPath: resultPath,
    ...(next === undefined ? { OutputPath: resultPath, End: true } : { Next: next }),
    Retry: lambdaRetry,
    // Inside a Map a failure ends the iteration; the outer Map's own Catch goes to ExportFailed.
    ...(!nested && { Catch: catchAll }),
  };
}

/** Where the queries read and write: filled in from this stack's resources. */
const PLACES = {
  bucket: '${ArchiveBucket}',
  database: '${Database}',
  archiveTable: '${ArchiveTable}',
  linksTable: '${LinksTable}',
  forwardedTable: '${ForwardedTable}',
  targetArchiveTable: '${TargetArchiveTable}',
  targetForwardedTable: '${TargetForwardedTable}',
};

/** The Lambda writes one statement's UNLOAD text into $.text (replacing the previous one). */
function queryTextTask(statement, next) {
  return invokeExport(
    {
      athena: 'query',
      statement,
      'kind.$': '$.kind',
      'target.$': '$.target',
      'date.$': '$.date',
      'identityExportArn.$': '$.identityExportArn',
      'nowSeconds.$': '$.nowSeconds',
      'anonymous.$': '$.anonymous',
      'bulkMode.$': '$.bulkMode',
      ...PLACES,
    },
    { 'query.$': '$.Payload.query' },
    '$.text',
    next,
    { nested: true },
  );
}

/**
 * An UNLOAD, waited for (.sync). Not retried when it fails: it may have written part of its output,
 * and UNLOAD refuses a folder that is not empty; a new execution writes to new folders.
 * Only a start refused for too many queries at once (nothing written) is retried.
 */
function unload(queryPath, resultPath, next) {
  return {
    Type: 'Task',
    Resource: 'arn:aws:states:::athena:startQueryExecution.sync',
    Parameters: {
      'QueryString.$': queryPath,
      WorkGroup: '${WorkGroup}',
      QueryExecutionContext: { Catalog: 'AwsDataCatalog', Database: '${Database}' },
    },
    ResultSelector: {
      'queryId.$': '$.QueryExecution.QueryExecutionId',
      'bytesScanned.$': '$.QueryExecution.Statistics.DataScannedInBytes',
    },
    ResultPath: resultPath,
    Next: next,
    Retry: [{ ErrorEquals: ['Athena.TooManyRequestsException'], IntervalSeconds: 30, MaxAttempts: 5, BackoffRate: 2 }],
  };
}

/** One target's day on Athena: Prepare -> the kinds' UNLOADs -> Finish; the states of a target iteration. */
function athenaStates() {
  return {
    Prepare: invokeExport(
      { athena: 'prepare', 'target.$': '$.target', 'date.$': '$.date', 'identityExportArn.$': '$.identityExportArn', ...PLACES },
      { 'runId.$': '$.Payload.runId', 'anonymous.$': '$.Payload.anonymous', 'bulkMode.$': '$.Payload.bulkMode', 'nowSeconds.$': '$.Payload.nowSeconds', 'kinds.$': '$.Payload.kinds' },
      '$.prepared',
      'Queries',
      { nested: true },
    ),
    Queries: {
      Type: 'Map',
      ItemsPath: '$.prepared.kinds',
      ItemSelector: {
        'kind.$': '$$.Map.Item.Value.kind',
        'rowsPrefix.$': '$$.Map.Item.Value.rowsPrefix',
        'reportPrefix.$': '$$.Map.Item.Value.reportPrefix',
        'target.$': '$.target',
        'date.$': '$.date',
        'identityExportArn.$': '$.identityExportArn',
        'nowSeconds.$': '$.prepared.nowSeconds',
        'anonymous.$': '$.prepared.anonymous',
        'bulkMode.$': '$.prepared.bulkMode',
      },
      MaxConcurrency: EXPORT_KINDS.length,
      ItemProcessor: {
        ProcessorConfig: { Mode: 'INLINE' },
        StartAt: 'RowsText',
        States: {
          RowsText: queryTextTask('rows', 'UnloadRows'),
          UnloadRows: unload('$.text.query', '$.rowsResult', 'ReportText'),
          ReportText: queryTextTask('report', 'UnloadReport'),
          UnloadReport: unload('$.text.query', '$.reportResult', 'KindDone'),
          KindDone: {
            Type: 'Pass',
            Parameters: {
              'kind.$': '$.kind',
              'rowsPrefix.$': '$.rowsPrefix',
              'reportPrefix.$': '$.reportPrefix',
              'rowsQueryId.$': '$.rowsResult.queryId',
              'rowsBytesScanned.$': '$.rowsResult.bytesScanned',
              'reportQueryId.$': '$.reportResult.queryId',
              'reportBytesScanned.$': '$.reportResult.bytesScanned',
            },
            End: true,
          },
        },
      },
      ResultPath: '$.queries',
      Next: 'Finish',
    },
    Finish: invokeExport(
      {
        athena: 'finish',
        'target.$': '$.target',
        'date.$': '$.date',
        'options.$': '$.options',
        'anonymous.$': '$.prepared.anonymous',
        'bulkMode.$': '$.prepared.bulkMode',
        'startedAt.$': '$$.Execution.StartTime',
        'kinds.$': '$.queries',
      },
      { 'summary.$': '$.Payload' },
      '$.result',
      undefined,
      { nested: true },
    ),
  };
}

function definition(s) {
  return {
    Comment: `${s.base} nightly export: per target, the embedded engine in the export Lambda, or Athena for a day above ${s.minArchiveBytes} archive bytes (docs/export-at-scale.md)`,
    StartAt: 'Plan',
    TimeoutSeconds: EXECUTION_TIMEOUT_SECONDS,
    States: {
      Plan: invokeExport(
        { athena: 'plan', 'input.$': '$', minArchiveBytes: s.minArchiveBytes },
        {
          'date.$': '$.Payload.date',
          'options.$': '$.Payload.options',
          'athena.$': '$.Payload.athena',
          'targets.$': '$.Payload.targets',
        },
        '$.plan',
        'NeedsIdentityExport',
      ),
      // The identity table export is shared by every target run on Athena: one per run, none when
      // every target runs in the Lambda.
      NeedsIdentityExport: {
        Type: 'Choice',
        Choices: [{ Variable: '$.plan.athena', BooleanEquals: true, Next: 'StartIdentityExport' }],
        Default: 'NoIdentityExport',
      },
      NoIdentityExport: { Type: 'Pass', Result: { arn: 'none', status: 'NOT_NEEDED', polls: 0 }, ResultPath: '$.identityExport', Next: 'Targets' },
      // A point-in-time export of the identity table (no read capacity used): links written after
      // the day still count, as when the Lambda reads the table at export time.
      StartIdentityExport: {
        Type: 'Task',
        Resource: 'arn:aws:states:::aws-sdk:dynamodb:exportTableToPointInTime',
        Parameters: {
          TableArn: '${IdentityTableArn}',
          S3Bucket: '${ArchiveBucket}',
          S3BucketOwner: '${AccountId}',
          S3Prefix: IDENTITY_EXPORT_PREFIX,
          S3SseAlgorithm: 'AES256',
          ExportFormat: 'DYNAMODB_JSON',
          ExportType: 'FULL_EXPORT',
          'ClientToken.$': '$$.Execution.Name',
        },
        ResultSelector: { 'arn.$': '$.ExportDescription.ExportArn', status: 'IN_PROGRESS', polls: 0 },
        ResultPath: '$.identityExport',
        Next: 'WaitForIdentityExport',
        Catch: catchAll,
      },
      WaitForIdentityExport: { Type: 'Wait', Seconds: IDENTITY_EXPORT_POLL_SECONDS, Next: 'DescribeIdentityExport' },
      DescribeIdentityExport: {
        Type: 'Task',
        Resource: 'arn:aws:states:::aws-sdk:dynamodb:describeExport',
        Parameters: { 'ExportArn.$': '$.identityExport.arn' },
        ResultSelector: { 'status.$': '$.ExportDescription.ExportStatus' },
        ResultPath: '$.identityExportStatus',
        Next: 'CountPoll',
        Catch: catchAll,
      },
      CountPoll: {
        Type: 'Pass',
        Parameters: {
          'arn.$': '$.identityExport.arn',
          'status.$': '$.identityExportStatus.status',
          'polls.$': 'States.MathAdd($.identityExport.polls, 1)',
        },
        ResultPath: '$.identityExport',
        Next: 'IdentityExportDone',
      },
      IdentityExportDone: {
        Type: 'Choice',
        Choices: [
          { Variable: '$.identityExport.status', StringEquals: 'COMPLETED', Next: 'Targets' },
          { Variable: '$.identityExport.status', StringEquals: 'FAILED', Next: 'IdentityExportFailed' },
          { Variable: '$.identityExport.polls', NumericGreaterThanEquals: IDENTITY_EXPORT_MAX_POLLS, Next: 'IdentityExportTimedOut' },
        ],
        Default: 'WaitForIdentityExport',
      },
      IdentityExportFailed: { Type: 'Fail', Error: 'IdentityExportFailed', Cause: 'DescribeExport reported FAILED for the identity table export' },
      IdentityExportTimedOut: {
        Type: 'Fail',
        Error: 'IdentityExportTimedOut',
        Cause: `the identity table export did not complete within ${IDENTITY_EXPORT_MAX_POLLS} polls of ${IDENTITY_EXPORT_POLL_SECONDS} s`,
      },
      // Every target, the default first, one at a time (as the export Lambda runs them): the
      // function has a reserved concurrency of 1, and a target's Athena queries run 3 at a time.
      Targets: {
        Type: 'Map',
        ItemsPath: '$.plan.targets',
        ItemSelector: {
          'target.$': '$$.Map.Item.Value.target',
          'engine.$': '$$.Map.Item.Value.engine',
          'date.$': '$.plan.date',
          'options.$': '$.plan.options',
          'identityExportArn.$': '$.identityExport.arn',
        },
        MaxConcurrency: 1,
        ItemProcessor: {
          ProcessorConfig: { Mode: 'INLINE' },
          StartAt: 'TargetEngine',
          States: {
            TargetEngine: {
              Type: 'Choice',
              Choices: [{ Variable: '$.engine', StringEquals: 'athena', Next: 'Prepare' }],
              Default: 'ExportInLambda',
            },
            // The target's day on the embedded engine, with the options of the Lambda's own {date} run.
            ExportInLambda: invokeExport(
              { athena: 'embedded', 'target.$': '$.target', 'date.$': '$.date', 'options.$': '$.options' },
              { 'summary.$': '$.Payload' },
              '$.result',
              undefined,
              { nested: true },
            ),
            ...athenaStates(),
          },
        },
        ResultPath: '$.results',
        Next: 'ExportDone',
        Catch: catchAll,
      },
      ExportDone: { Type: 'Succeed' },
      [FAILED]: { Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' },
    },
  };
}

async function stateMachine({ resolveVariable }) {
  const s = await settings(resolveVariable);
  return {
    Type: 'AWS::StepFunctions::StateMachine',
    Condition: CONDITION,
    Properties: {
      StateMachineName: s.stateMachine,
      StateMachineType: 'STANDARD',
      RoleArn: getAtt('ExportStateMachineRole', 'Arn'),
      Definition: definition(s),
      DefinitionSubstitutions: {
        ExportFunctionArn: getAtt('ExportLambdaFunction', 'Arn'),
        IdentityTableArn: getAtt('IdentityTable', 'Arn'),
        ArchiveBucket: ref('ArchiveBucket'),
        AccountId: ref('AWS::AccountId'),
        WorkGroup: ref('ExportAthenaWorkGroup'),
        Database: ref('ExportAthenaDatabase'),
        ArchiveTable: ref('ExportAthenaArchiveTable'),
        LinksTable: ref('ExportAthenaLinksTable'),
        ForwardedTable: ref('ExportAthenaForwardedTable'),
        TargetArchiveTable: ref('ExportAthenaTargetArchiveTable'),
        TargetForwardedTable: ref('ExportAthenaTargetForwardedTable'),
      },
      // Step and error records only: execution data (SQL texts, counts) stays in the execution history.
      LoggingConfiguration: {
        Level: 'ALL',
        IncludeExecutionData: false,
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: getAtt('ExportStateMachineLogGroup', 'Arn') } }],
      },
    },
  };
}

async function stateMachineLogGroup({ resolveVariable }) {
  const s = await settings(resolveVariable);
  // /aws/vendedlogs/: Step Functions delivers there without growing the account's log resource policy.
  return { Type: 'AWS::Logs::LogGroup', Condition: CONDITION, Properties: { LogGroupName: s.logGroup, RetentionInDays: s.logRetentionDays } };
}

const trust = (service) => ({
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Principal: { Service: service },
      Action: 'sts:AssumeRole',
      Condition: { StringEquals: { 'aws:SourceAccount': ref('AWS::AccountId') } },
    },
  ],
});

async function stateMachineRole({ resolveVariable }) {
  const s = await settings(resolveVariable);
  const table = (name) => arn('glue', `table/\${ExportAthenaDatabase}/${name}`);
  return {
    Type: 'AWS::IAM::Role',
    Condition: CONDITION,
    Properties: {
      Description: `Runs the ${s.base} export state machine: identity export, Athena queries, the export function`,
      AssumeRolePolicyDocument: trust('states.amazonaws.com'),
      Policies: [
        {
          PolicyName: 'export-state-machine',
          PolicyDocument: {
            Version: '2012-10-17',
            Statement: [
              { Sid: 'InvokeExport', Effect: 'Allow', Action: 'lambda:InvokeFunction', Resource: getAtt('ExportLambdaFunction', 'Arn') },
              { Sid: 'IdentityExport', Effect: 'Allow', Action: 'dynamodb:ExportTableToPointInTime', Resource: getAtt('IdentityTable', 'Arn') },
              { Sid: 'IdentityExportStatus', Effect: 'Allow', Action: 'dynamodb:DescribeExport', Resource: sub('${IdentityTable.Arn}/export/*') },
              // What DynamoDB's export to S3 needs of its caller (DynamoDB developer guide, "Requesting a table export").
              {
                Sid: 'WriteIdentityExport',
                Effect: 'Allow',
                Action: ['s3:AbortMultipartUpload', 's3:PutObject', 's3:PutObjectAcl'],
                Resource: bucketObjects(`${IDENTITY_EXPORT_PREFIX}/`),
              },
              // Athena runs the queries with this role's permissions (Step Functions' Athena .sync
              // policy template, scoped to this stack's workgroup and catalog).
              {
                Sid: 'Queries',
                Effect: 'Allow',
                Action: ['athena:GetQueryExecution', 'athena:StartQueryExecution', 'athena:StopQueryExecution'],
                Resource: arn('athena', 'workgroup/${ExportAthenaWorkGroup}'),
              },
              { Sid: 'Catalog', Effect: 'Allow', Action: 'athena:GetDataCatalog', Resource: arn('athena', 'datacatalog/AwsDataCatalog') },
              {
                Sid: 'GlueTables',
                Effect: 'Allow',
                Action: ['glue:GetDatabase', 'glue:GetPartitions', 'glue:GetTable'],
                Resource: [
                  arn('glue', 'catalog'),
                  arn('glue', 'database/${ExportAthenaDatabase}'),
                  table(ARCHIVE_TABLE),
                  table(LINKS_TABLE),
                  table(FORWARDED_TABLE),
                  table(TARGET_ARCHIVE_TABLE),
                  table(TARGET_FORWARDED_TABLE),
                ],
              },
              // The targets' archives and forwarded records only: nothing else under targets/ (their imports/).
              {
                Sid: 'ReadSources',
                Effect: 'Allow',
                Action: 's3:GetObject',
                Resource: [bucketObjects('archive/'), bucketObjects('forwarded/'), ...TARGET_SOURCES.map(bucketObjects), bucketObjects(`${IDENTITY_EXPORT_PREFIX}/`)],
              },
              {
                Sid: 'ListSources',
                Effect: 'Allow',
                Action: 's3:ListBucket',
                Resource: getAtt('ArchiveBucket', 'Arn'),
                Condition: { StringLike: { 's3:prefix': ['archive/*', 'forwarded/*', ...TARGET_SOURCES.map((p) => `${p}*`), `${IDENTITY_EXPORT_PREFIX}/*`, 'athena/*'] } },
              },
              { Sid: 'Bucket', Effect: 'Allow', Action: ['s3:GetBucketLocation', 's3:ListBucketMultipartUploads'], Resource: getAtt('ArchiveBucket', 'Arn') },
              // Query results and every target's UNLOAD output (athena/exports/<date>/<run>/[targets/<name>/]).
              {
                Sid: 'WriteResults',
                Effect: 'Allow',
                Action: ['s3:AbortMultipartUpload', 's3:ListMultipartUploadParts', 's3:PutObject'],
                Resource: bucketObjects('athena/'),
              },
              // Vended log delivery: these CloudWatch Logs actions take no resource-level permission;
              // AWS requires Resource "*" for them (Step Functions developer guide, "Logging using CloudWatch Logs").
              {
                Sid: 'LogDelivery',
                Effect: 'Allow',
                Action: [
                  'logs:CreateLogDelivery',
                  'logs:DeleteLogDelivery',
                  'logs:DescribeLogGroups',
                  'logs:DescribeResourcePolicies',
                  'logs:GetLogDelivery',
                  'logs:ListLogDeliveries',
                  'logs:PutResourcePolicy',
                  'logs:UpdateLogDelivery',
                ],
                Resource: '*',
              },
            ],
          },
        },
      ],
    },
  };
}

/** What the export function needs besides its own role when the state machine runs it: the UNLOAD output. */
async function exportFunctionPolicy() {
  return {
    Type: 'AWS::IAM::Policy',
    Condition: CONDITION,
    Properties: {
      PolicyName: 'export-athena',
      Roles: [ref('ExportRole')],
      PolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'ListAthenaOutput',
            Effect: 'Allow',
            Action: 's3:ListBucket',
            Resource: getAtt('ArchiveBucket', 'Arn'),
            Condition: { StringLike: { 's3:prefix': 'athena/exports/*' } },
          },
          { Sid: 'ReadAthenaOutput', Effect: 'Allow', Action: 's3:GetObject', Resource: bucketObjects('athena/exports/') },
        ],
      },
    },
  };
}

// ------------------------------------------------------------------ schedule

/** With exportAthena on, the nightly schedule starts the state machine (whose Plan step may still run the day in the Lambda). */
async function schedule({ resolveVariable }) {
  const s = await settings(resolveVariable);
  return {
    Type: 'AWS::Events::Rule',
    Condition: CONDITION,
    Properties: {
      Description: `Nightly export of yesterday's archive (${s.stateMachine} state machine)`,
      ScheduleExpression: s.schedule,
      State: s.scheduleEnabled ? 'ENABLED' : 'DISABLED',
      Targets: [{ Id: 'export-state-machine', Arn: ref('ExportStateMachine'), RoleArn: getAtt('ExportScheduleRole', 'Arn') }],
    },
  };
}

async function scheduleRole({ resolveVariable }) {
  const s = await settings(resolveVariable);
  return {
    Type: 'AWS::IAM::Role',
    Condition: CONDITION,
    Properties: {
      Description: `Lets the ${s.base} nightly schedule start the export state machine`,
      AssumeRolePolicyDocument: trust('events.amazonaws.com'),
      Policies: [
        {
          PolicyName: 'start-export',
          PolicyDocument: {
            Version: '2012-10-17',
            Statement: [{ Sid: 'StartExport', Effect: 'Allow', Action: 'states:StartExecution', Resource: ref('ExportStateMachine') }],
          },
        },
      ],
    },
  };
}

/** The export function's own schedule: off when the state machine takes the nightly run. */
async function lambdaScheduleEnabled({ resolveVariable }) {
  const s = await settings(resolveVariable);
  return s.scheduleEnabled && !s.enabled;
}

// ------------------------------------------------------------------ lifecycle, alarm, output

async function lifecycleRules({ resolveVariable }) {
  const s = await settings(resolveVariable);
  return [
    // Query results and UNLOAD output: read by the finish step within the run, kept a few days for a look.
    { Id: 'athena-scratch-expiry', Status: 'Enabled', Prefix: 'athena/', ExpirationInDays: s.scratchRetentionDays },
    // Identity table exports: a copy of the links, needed only by the run that made it.
    { Id: 'identity-exports-expiry', Status: 'Enabled', Prefix: `${IDENTITY_EXPORT_PREFIX}/`, ExpirationInDays: s.scratchRetentionDays },
  ].map((rule) => ({ 'Fn::If': [CONDITION, rule, ref('AWS::NoValue')] }));
}

async function lifecycleScratchRule(context) {
  return (await lifecycleRules(context))[0];
}

async function lifecycleIdentityExportRule(context) {
  return (await lifecycleRules(context))[1];
}

async function failedAlarm({ resolveVariable }) {
  const s = await settings(resolveVariable);
  const metric = (id, name) => ({
    Id: id,
    ReturnData: false,
    MetricStat: {
      Metric: { Namespace: 'AWS/States', MetricName: name, Dimensions: [{ Name: 'StateMachineArn', Value: ref('ExportStateMachine') }] },
      Period: 300,
      Stat: 'Sum',
    },
  });
  return {
    Type: 'AWS::CloudWatch::Alarm',
    Condition: CONDITION,
    Properties: {
      AlarmName: `${s.base}-export-state-machine-failed`,
      AlarmDescription: 'A nightly export execution failed, timed out or was aborted; it is not retried. Read its error in the execution history, then start a new execution with {"date": ...}.',
      Metrics: [
        { Id: 'total', Label: 'failed + timed out + aborted', Expression: 'SUM(FILL(METRICS(), 0))', ReturnData: true },
        metric('failed', 'ExecutionsFailed'),
        metric('timedOut', 'ExecutionsTimedOut'),
        metric('aborted', 'ExecutionsAborted'),
      ],
      EvaluationPeriods: 1,
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [ref('AlarmTopic')],
      OKActions: [ref('AlarmTopic')],
    },
  };
}

async function stateMachineOutput() {
  return {
    Condition: CONDITION,
    Description: 'The nightly export state machine (start it with {"date": "YYYY-MM-DD"} to re-run a day)',
    Value: ref('ExportStateMachine'),
  };
}

module.exports = {
  database,
  archiveTable,
  linksTable,
  forwardedTable,
  targetArchiveTable,
  targetForwardedTable,
  workGroup,
  stateMachine,
  stateMachineLogGroup,
  stateMachineRole,
  exportFunctionPolicy,
  schedule,
  scheduleRole,
  lambdaScheduleEnabled,
  lifecycleScratchRule,
  lifecycleIdentityExportRule,
  failedAlarm,
  stateMachineOutput,
  IDENTITY_EXPORT_POLL_SECONDS,
  IDENTITY_EXPORT_MAX_POLLS,
  EXECUTION_TIMEOUT_SECONDS,
  ARCHIVE_TABLE,
  LINKS_TABLE,
  FORWARDED_TABLE,
  TARGET_ARCHIVE_TABLE,
  TARGET_FORWARDED_TABLE,
};
