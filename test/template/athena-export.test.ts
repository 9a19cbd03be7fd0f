import { createRequire } from 'node:module';
import { beforeAll, describe, expect, it } from 'vitest';
import { athenaEmbeddedEventSchema, athenaFinishEventSchema, athenaPlanEventSchema, athenaPrepareEventSchema, athenaQueryEventSchema } from '../../shared/export/athena/orchestrate.js';
import { ATHENA_TABLE_NAMES } from '../../shared/export/athena/relations.js';
import {
  actionsOf,
  asArray,
  isIntrinsic,
  isObject,
  packageStack,
  policyStatements,
  props,
  referencedId,
  resourcesOfType,
  type Json,
  type JsonObject,
  type Resource,
  type Statement,
  type Template,
} from './template.js';

/** The export on Athena (serverless/athena-export.cjs), packaged with the switch on and off. */
const athenaModule = createRequire(import.meta.url)('../../serverless/athena-export.cjs') as {
  IDENTITY_EXPORT_MAX_POLLS: number;
  IDENTITY_EXPORT_POLL_SECONDS: number;
  workGroup(context: { resolveVariable(variable: string): Promise<unknown> }): Promise<JsonObject>;
};

const ATHENA_RESOURCES: Record<string, string> = {
  ExportAthenaDatabase: 'AWS::Glue::Database',
  ExportAthenaArchiveTable: 'AWS::Glue::Table',
  ExportAthenaLinksTable: 'AWS::Glue::Table',
  ExportAthenaForwardedTable: 'AWS::Glue::Table',
  ExportAthenaTargetArchiveTable: 'AWS::Glue::Table',
  ExportAthenaTargetForwardedTable: 'AWS::Glue::Table',
  ExportAthenaWorkGroup: 'AWS::Athena::WorkGroup',
  ExportStateMachine: 'AWS::StepFunctions::StateMachine',
  ExportStateMachineLogGroup: 'AWS::Logs::LogGroup',
  ExportStateMachineRole: 'AWS::IAM::Role',
  ExportAthenaPolicy: 'AWS::IAM::Policy',
  ExportSchedule: 'AWS::Events::Rule',
  ExportScheduleRole: 'AWS::IAM::Role',
  ExportStateMachineFailedAlarm: 'AWS::CloudWatch::Alarm',
};

let on: Template;
let off: Template;

beforeAll(async () => {
  const [withAthena, without] = await Promise.all([
    packageStack([
      '--stage', 'ci',
      '--region', 'eu-west-1',
      '--param=exportAthena=true',
      '--param=exportAthenaMinArchiveBytes=5000000000',
      '--param=exportAthenaBytesScannedCutoff=50000000000',
      '--param=exportAthenaScratchRetentionDays=5',
    ]),
    packageStack(['--stage', 'ci', '--region', 'eu-west-1']),
  ]);
  on = withAthena.effective;
  off = without.effective;
}, 180_000);

const resource = (t: Template, id: string): Resource => {
  const found = t.Resources[id];
  if (!found) throw new Error(`no resource ${id} in the template`);
  return found;
};
const subString = (value: Json | undefined): string | undefined => {
  if (!isObject(value)) return undefined;
  const sub = value['Fn::Sub'];
  return typeof sub === 'string' ? sub : Array.isArray(sub) && typeof sub[0] === 'string' ? sub[0] : undefined;
};
const statementsOf = (t: Template, owner: string): Statement[] =>
  policyStatements(t).identity.filter((s) => s.owner === owner).map((s) => s.statement);
const lifecycleRules = (t: Template) => (props(resource(t, 'ArchiveBucket')).LifecycleConfiguration as JsonObject).Rules as JsonObject[];
/** The schedule rule that targets `targetId`. */
const scheduleOf = (t: Template, targetId: string) =>
  resourcesOfType(t, 'AWS::Events::Rule').find(([, r]) => asArray(props(r).Targets as Json[]).some((x) => isObject(x) && referencedId(x.Arn) === targetId));

describe('with exportAthena off (the default)', () => {
  it('creates none of the Athena resources, rules or outputs', () => {
    for (const id of Object.keys(ATHENA_RESOURCES)) expect(off.Resources[id], id).toBeUndefined();
    for (const type of ['AWS::Glue::Database', 'AWS::Glue::Table', 'AWS::Athena::WorkGroup', 'AWS::StepFunctions::StateMachine']) {
      expect(resourcesOfType(off, type), type).toEqual([]);
    }
    expect(lifecycleRules(off).map((r) => r.Prefix)).not.toEqual(expect.arrayContaining(['athena/']));
    expect(lifecycleRules(off).map((r) => r.Prefix)).not.toContain('exports/identity/');
    expect(off.Outputs?.ExportStateMachineArn).toBeUndefined();
  });

  it('leaves the nightly schedule on the export function', () => {
    const rule = scheduleOf(off, 'ExportLambdaFunction');
    expect(props(rule![1])).toMatchObject({ ScheduleExpression: 'cron(15 2 * * ? *)', State: 'ENABLED' });
    expect(policyStatements(off).identity.filter((s) => s.owner === 'ExportAthenaPolicy')).toEqual([]);
  });
});

describe('with exportAthena on', () => {
  it('creates every Athena resource, each behind the ExportAthena condition', async () => {
    for (const [id, type] of Object.entries(ATHENA_RESOURCES)) expect(resource(on, id).Type, id).toBe(type);
    // In the raw template (before conditions are decided) every one of them names the condition.
    const raw = (await packageStack(['--stage', 'ci'])).raw;
    for (const id of Object.keys(ATHENA_RESOURCES)) expect(raw.Resources[id]?.Condition, id).toBe('ExportAthena');
    expect(raw.Conditions?.ExportAthena).toEqual({ 'Fn::Equals': ['false-athena', 'true-athena'] });
  }, 120_000);

  describe('Glue catalog', () => {
    it('reads the archive as text lines with partitions projected from its key layout', () => {
      const p = props(resource(on, 'ExportAthenaArchiveTable'));
      expect(p.DatabaseName).toEqual({ Ref: 'ExportAthenaDatabase' });
      const input = p.TableInput as JsonObject;
      expect(input.Name).toBe(ATHENA_TABLE_NAMES.archiveTable);
      expect(input.TableType).toBe('EXTERNAL_TABLE');
      expect(input.PartitionKeys).toEqual([
        { Name: 'kind', Type: 'string' },
        { Name: 'dt', Type: 'string' },
        { Name: 'hour', Type: 'string' },
      ]);
      expect(input.Parameters).toMatchObject({
        'projection.enabled': 'true',
        'projection.kind.type': 'enum',
        'projection.kind.values': 'interactions,items,users',
        'projection.dt.type': 'date',
        'projection.dt.format': 'yyyy-MM-dd',
        'projection.dt.range': '2000-01-01,NOW',
        'projection.hour.type': 'integer',
        'projection.hour.range': '0,23',
        'projection.hour.digits': '2',
        // The archive's key layout (shared/archive.ts): archive/<kind>/dt=<day>/hour=<HH>/.
        'storage.location.template': { 'Fn::Sub': 's3://${ArchiveBucket}/archive/${!kind}/dt=${!dt}/hour=${!hour}/' },
      });
      const storage = input.StorageDescriptor as JsonObject;
      expect(storage.Columns).toEqual([{ Name: 'line', Type: 'string' }]);
      expect(storage.Location).toEqual({ 'Fn::Sub': 's3://${ArchiveBucket}/archive/' });
      expect(storage.InputFormat).toBe('org.apache.hadoop.mapred.TextInputFormat');
      expect((storage.SerdeInfo as JsonObject).SerializationLibrary).toBe('org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe');
      // No field delimiter JSON text can hold raw: each line stays one value.
      expect((storage.SerdeInfo as JsonObject).Parameters).not.toHaveProperty('field.delim');
    });

    it('reads the identity table exports as DynamoDB JSON, one injected partition per export', () => {
      const input = props(resource(on, 'ExportAthenaLinksTable')).TableInput as JsonObject;
      expect(input.Name).toBe(ATHENA_TABLE_NAMES.linksTable);
      expect(input.PartitionKeys).toEqual([{ Name: 'export_id', Type: 'string' }]);
      expect(input.Parameters).toMatchObject({
        'projection.enabled': 'true',
        'projection.export_id.type': 'injected',
        'storage.location.template': { 'Fn::Sub': 's3://${ArchiveBucket}/exports/identity/AWSDynamoDB/${!export_id}/data/' },
      });
      const storage = input.StorageDescriptor as JsonObject;
      expect((storage.SerdeInfo as JsonObject).SerializationLibrary).toBe('org.openx.data.jsonserde.JsonSerDe');
      const [item] = storage.Columns as JsonObject[];
      expect(item?.Name).toBe('item');
      // Every attribute the links relation reads (shared/export/athena/relations.ts).
      for (const field of ['sessionid:struct<s:string>', 'userid:struct<s:string>', 'linkedat:struct<n:string>', 'expiresat:struct<n:string>', 'claims:struct<l:array<struct<m:struct<userid:struct<s:string>,linkedat:struct<n:string>>>>>']) {
        expect(item?.Type).toContain(field);
      }
    });

    it('reads what PutEvents accepted as whole lines, one projected partition per day of forwarded/interactions/', () => {
      const input = props(resource(on, 'ExportAthenaForwardedTable')).TableInput as JsonObject;
      expect(input.Name).toBe(ATHENA_TABLE_NAMES.forwardedTable);
      expect(input.PartitionKeys).toEqual([{ Name: 'dt', Type: 'string' }]);
      expect(input.Parameters).toMatchObject({
        'projection.enabled': 'true',
        'projection.dt.type': 'date',
        'storage.location.template': { 'Fn::Sub': 's3://${ArchiveBucket}/forwarded/interactions/dt=${!dt}/' },
      });
      const storage = input.StorageDescriptor as JsonObject;
      expect(storage.Columns).toEqual([{ Name: 'line', Type: 'string' }]);
      expect((storage.SerdeInfo as JsonObject).Parameters).not.toHaveProperty('field.delim');
    });

    it('reads the other targets\' archives and forwarded records under targets/<name>/, the target an injected partition (no names at package time)', () => {
      const archive = props(resource(on, 'ExportAthenaTargetArchiveTable'));
      expect(archive.DatabaseName).toEqual({ Ref: 'ExportAthenaDatabase' });
      const input = archive.TableInput as JsonObject;
      expect(input.Name).toBe(ATHENA_TABLE_NAMES.targetArchiveTable);
      expect(input.PartitionKeys).toEqual(['target', 'kind', 'dt', 'hour'].map((Name) => ({ Name, Type: 'string' })));
      // The default's table with `target` in front: the same columns, SerDe and projections.
      const base = props(resource(on, 'ExportAthenaArchiveTable')).TableInput as JsonObject;
      const baseParameters = { ...(base.Parameters as JsonObject) };
      delete baseParameters['storage.location.template'];
      expect(input.Parameters).toEqual({
        ...baseParameters,
        // Athena refuses a query without `target = '<literal>'` on an injected key (partition projection, "injected" type).
        'projection.target.type': 'injected',
        // The processor's layout for a target (shared/process/process-batch.ts): targets/<name>/archive/<kind>/dt=<day>/hour=<HH>/.
        'storage.location.template': { 'Fn::Sub': 's3://${ArchiveBucket}/targets/${!target}/archive/${!kind}/dt=${!dt}/hour=${!hour}/' },
      });
      expect(input.StorageDescriptor).toEqual({ ...(base.StorageDescriptor as JsonObject), Location: { 'Fn::Sub': 's3://${ArchiveBucket}/targets/' } });

      const forwarded = props(resource(on, 'ExportAthenaTargetForwardedTable')).TableInput as JsonObject;
      expect(forwarded.Name).toBe(ATHENA_TABLE_NAMES.targetForwardedTable);
      expect(forwarded.PartitionKeys).toEqual([{ Name: 'target', Type: 'string' }, { Name: 'dt', Type: 'string' }]);
      expect(forwarded.Parameters).toMatchObject({
        'projection.enabled': 'true',
        'projection.target.type': 'injected',
        'projection.dt.type': 'date',
        'storage.location.template': { 'Fn::Sub': 's3://${ArchiveBucket}/targets/${!target}/forwarded/interactions/dt=${!dt}/' },
      });
      expect((forwarded.StorageDescriptor as JsonObject).Columns).toEqual([{ Name: 'line', Type: 'string' }]);
    });

    it('names the database after the stack, as Athena allows (lowercase, underscores)', () => {
      expect((props(resource(on, 'ExportAthenaDatabase')).DatabaseInput as JsonObject).Name).toBe('personalize_ingest_ci_export');
    });
  });

  it('runs queries in an enforced workgroup that writes encrypted results to the archive bucket and cuts runaway scans', () => {
    const p = props(resource(on, 'ExportAthenaWorkGroup'));
    expect(p.Name).toBe('personalize-ingest-ci-export');
    const config = p.WorkGroupConfiguration as JsonObject;
    expect(config.EnforceWorkGroupConfiguration).toBe(true);
    expect(config.BytesScannedCutoffPerQuery).toBe(50_000_000_000);
    expect(config.EngineVersion).toEqual({ SelectedEngineVersion: 'Athena engine version 3' });
    expect(config.ResultConfiguration).toEqual({
      OutputLocation: { 'Fn::Sub': 's3://${ArchiveBucket}/athena/results/' },
      EncryptionConfiguration: { EncryptionOption: 'SSE_S3' },
      ExpectedBucketOwner: { Ref: 'AWS::AccountId' },
    });
  });

  it('expires the Athena output and the identity exports after exportAthenaScratchRetentionDays', () => {
    const rules = lifecycleRules(on);
    expect(rules.find((r) => r.Prefix === 'athena/')).toMatchObject({ Status: 'Enabled', ExpirationInDays: 5 });
    expect(rules.find((r) => r.Prefix === 'exports/identity/')).toMatchObject({ Status: 'Enabled', ExpirationInDays: 5 });
    // The archive's own rule is unchanged.
    expect(rules.find((r) => r.Prefix === 'archive/')).toMatchObject({ ExpirationInDays: 365 });
  });

  it('keeps point-in-time recovery on the identity table (ExportTableToPointInTime needs it)', () => {
    expect(props(resource(on, 'IdentityTable')).PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
  });

  it('moves the nightly schedule from the export function to the state machine', () => {
    expect(props(scheduleOf(on, 'ExportLambdaFunction')![1]).State).toBe('DISABLED');
    const rule = props(resource(on, 'ExportSchedule'));
    expect(rule).toMatchObject({ ScheduleExpression: 'cron(15 2 * * ? *)', State: 'ENABLED' });
    expect(rule.Targets).toEqual([{ Id: 'export-state-machine', Arn: { Ref: 'ExportStateMachine' }, RoleArn: { 'Fn::GetAtt': ['ExportScheduleRole', 'Arn'] } }]);
    expect(on.Outputs?.ExportStateMachineArn).toMatchObject({ Value: { Ref: 'ExportStateMachine' } });
  });

  it('alarms on failed, timed-out and aborted executions', () => {
    const p = props(resource(on, 'ExportStateMachineFailedAlarm'));
    const names = (p.Metrics as JsonObject[]).flatMap((m) => (isObject(m.MetricStat) ? [((m.MetricStat.Metric as JsonObject).MetricName as string)] : []));
    expect(names.sort()).toEqual(['ExecutionsAborted', 'ExecutionsFailed', 'ExecutionsTimedOut']);
    expect(p.AlarmActions).toEqual([{ Ref: 'AlarmTopic' }]);
  });

  describe('state machine', () => {
    type State = JsonObject & { Type: string; Next?: string; Resource?: string };
    const machine = () => props(resource(on, 'ExportStateMachine'));
    const definition = () => machine().Definition as JsonObject & { StartAt: string; States: Record<string, State> };
    const states = () => definition().States;
    /** One target's iteration of the Targets Map. */
    const targetStates = () => ((states().Targets!.ItemProcessor as JsonObject).States as Record<string, State>);
    /** One kind's iteration of a target's Queries Map. */
    const mapStates = () => ((targetStates().Queries!.ItemProcessor as JsonObject).States as Record<string, State>);
    /** Payload object of a Lambda task (keys without their `.$`). */
    const payloadKeys = (state: State | undefined) =>
      Object.keys((state?.Parameters as JsonObject).Payload as JsonObject).map((k) => k.replace(/\.\$$/, '')).sort();
    const schemaKeys = (schema: { shape: Record<string, unknown> }) => Object.keys(schema.shape).sort();

    it('runs as its own role, logs to its own log group, and fills in this stack\'s resources', () => {
      const p = machine();
      expect(p.RoleArn).toEqual({ 'Fn::GetAtt': ['ExportStateMachineRole', 'Arn'] });
      expect(p.LoggingConfiguration).toMatchObject({
        Level: 'ALL',
        IncludeExecutionData: false,
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': ['ExportStateMachineLogGroup', 'Arn'] } } }],
      });
      expect(props(resource(on, 'ExportStateMachineLogGroup')).LogGroupName).toMatch(/^\/aws\/vendedlogs\/states\//);
      expect(p.DefinitionSubstitutions).toEqual({
        ExportFunctionArn: { 'Fn::GetAtt': ['ExportLambdaFunction', 'Arn'] },
        IdentityTableArn: { 'Fn::GetAtt': ['IdentityTable', 'Arn'] },
        ArchiveBucket: { Ref: 'ArchiveBucket' },
        AccountId: { Ref: 'AWS::AccountId' },
        WorkGroup: { Ref: 'ExportAthenaWorkGroup' },
        Database: { Ref: 'ExportAthenaDatabase' },
        ArchiveTable: { Ref: 'ExportAthenaArchiveTable' },
        LinksTable: { Ref: 'ExportAthenaLinksTable' },
        ForwardedTable: { Ref: 'ExportAthenaForwardedTable' },
        TargetArchiveTable: { Ref: 'ExportAthenaTargetArchiveTable' },
        TargetForwardedTable: { Ref: 'ExportAthenaTargetForwardedTable' },
      });
      // Every ${Name} in the definition is one of the substitutions.
      const used = [...JSON.stringify(definition()).matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]);
      expect(new Set(used)).toEqual(new Set(Object.keys(p.DefinitionSubstitutions as JsonObject)));
    });

    it('is a closed graph: every Next names a state, every state is reachable, and every task failure goes to the Fail state', () => {
      const check = (all: Record<string, State>, start: string, nested: boolean) => {
        const targets = (s: State): string[] => [
          ...(s.Next ? [s.Next] : []),
          ...(typeof s.Default === 'string' ? [s.Default] : []),
          ...asArray(s.Choices as Json[]).flatMap((c) => (isObject(c) && typeof c.Next === 'string' ? [c.Next] : [])),
          ...asArray(s.Catch as Json[]).flatMap((c) => (isObject(c) && typeof c.Next === 'string' ? [c.Next] : [])),
        ];
        const seen = new Set<string>([start]);
        const queue = [start];
        while (queue.length > 0) {
          const name = queue.shift()!;
          const state = all[name];
          expect(state, `state ${name}`).toBeDefined();
          for (const next of targets(state!)) {
            if (seen.has(next)) continue;
            seen.add(next);
            queue.push(next);
          }
        }
        expect([...seen].sort()).toEqual(Object.keys(all).sort());
        for (const [name, state] of Object.entries(all)) {
          if (!nested && (state.Type === 'Task' || state.Type === 'Map')) expect(state.Catch, name).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'ExportFailed' }]);
          // Inside a Map a Catch could not reach ExportFailed: a failure ends the iteration, the outer Map catches it.
          if (nested) expect(state.Catch, name).toBeUndefined();
        }
      };
      check(states(), definition().StartAt, false);
      check(targetStates(), (states().Targets!.ItemProcessor as JsonObject).StartAt as string, true);
      check(mapStates(), (targetStates().Queries!.ItemProcessor as JsonObject).StartAt as string, true);
      expect(states().ExportFailed).toEqual({ Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' });
      expect(definition().TimeoutSeconds).toBeGreaterThan(0);
    });

    it('plans every target first, with the configured size, then runs each target, one at a time, in the export function or on Athena', () => {
      expect(definition().StartAt).toBe('Plan');
      const plan = states().Plan!;
      expect(plan.Resource).toBe('arn:aws:states:::lambda:invoke');
      expect((plan.Parameters as JsonObject).FunctionName).toBe('${ExportFunctionArn}');
      expect((plan.Parameters as JsonObject).Payload).toEqual({ athena: 'plan', 'input.$': '$', minArchiveBytes: 5_000_000_000 });
      expect(payloadKeys(plan)).toEqual(schemaKeys(athenaPlanEventSchema));
      // What the plan step returns (orchestrate.ts TargetsPlan) is what the state machine keeps.
      expect(plan.ResultSelector).toEqual({ 'date.$': '$.Payload.date', 'options.$': '$.Payload.options', 'athena.$': '$.Payload.athena', 'targets.$': '$.Payload.targets' });
      expect(plan.Next).toBe('NeedsIdentityExport');
      // One identity export for the run, only when some target runs on Athena.
      expect(states().NeedsIdentityExport).toEqual({
        Type: 'Choice',
        Choices: [{ Variable: '$.plan.athena', BooleanEquals: true, Next: 'StartIdentityExport' }],
        Default: 'NoIdentityExport',
      });
      expect(states().NoIdentityExport).toMatchObject({ Type: 'Pass', ResultPath: '$.identityExport', Next: 'Targets' });

      const targets = states().Targets!;
      expect(targets).toMatchObject({ Type: 'Map', ItemsPath: '$.plan.targets', MaxConcurrency: 1, ResultPath: '$.results', Next: 'ExportDone' });
      expect(targets.ItemSelector).toEqual({
        'target.$': '$$.Map.Item.Value.target',
        'engine.$': '$$.Map.Item.Value.engine',
        'date.$': '$.plan.date',
        'options.$': '$.plan.options',
        'identityExportArn.$': '$.identityExport.arn',
      });
      expect((targets.ItemProcessor as JsonObject).StartAt).toBe('TargetEngine');
      expect(targetStates().TargetEngine).toEqual({ Type: 'Choice', Choices: [{ Variable: '$.engine', StringEquals: 'athena', Next: 'Prepare' }], Default: 'ExportInLambda' });
      // A small day: the target's day on the embedded engine, in the export function.
      const inLambda = targetStates().ExportInLambda!;
      expect((inLambda.Parameters as JsonObject).Payload).toEqual({ athena: 'embedded', 'target.$': '$.target', 'date.$': '$.date', 'options.$': '$.options' });
      expect(payloadKeys(inLambda)).toEqual(schemaKeys(athenaEmbeddedEventSchema));
      // Each iteration ends with its summary only.
      for (const name of ['ExportInLambda', 'Finish']) expect(targetStates()[name], name).toMatchObject({ ResultPath: '$.result', OutputPath: '$.result', End: true });
    });

    it('exports the identity table to exports/identity/ and polls DescribeExport a bounded number of times', () => {
      const start = states().StartIdentityExport!;
      expect(start.Resource).toBe('arn:aws:states:::aws-sdk:dynamodb:exportTableToPointInTime');
      expect(start.Parameters).toMatchObject({ TableArn: '${IdentityTableArn}', S3Bucket: '${ArchiveBucket}', S3Prefix: 'exports/identity', ExportFormat: 'DYNAMODB_JSON', S3SseAlgorithm: 'AES256' });
      expect(start.Next).toBe('WaitForIdentityExport');
      expect(states().WaitForIdentityExport).toEqual({ Type: 'Wait', Seconds: athenaModule.IDENTITY_EXPORT_POLL_SECONDS, Next: 'DescribeIdentityExport' });
      expect(states().DescribeIdentityExport!.Resource).toBe('arn:aws:states:::aws-sdk:dynamodb:describeExport');
      expect((states().CountPoll!.Parameters as JsonObject)['polls.$']).toBe('States.MathAdd($.identityExport.polls, 1)');
      const done = states().IdentityExportDone!;
      expect(done.Choices).toEqual([
        { Variable: '$.identityExport.status', StringEquals: 'COMPLETED', Next: 'Targets' },
        { Variable: '$.identityExport.status', StringEquals: 'FAILED', Next: 'IdentityExportFailed' },
        { Variable: '$.identityExport.polls', NumericGreaterThanEquals: athenaModule.IDENTITY_EXPORT_MAX_POLLS, Next: 'IdentityExportTimedOut' },
      ]);
      expect(done.Default).toBe('WaitForIdentityExport');
      expect(athenaModule.IDENTITY_EXPORT_MAX_POLLS * athenaModule.IDENTITY_EXPORT_POLL_SECONDS).toBeLessThanOrEqual(definition().TimeoutSeconds as number);
      expect(states().IdentityExportTimedOut!.Type).toBe('Fail');
    });

    it('hands the Lambda prepare, query and finish events its schemas accept, each naming its target', () => {
      expect(payloadKeys(targetStates().Prepare)).toEqual(schemaKeys(athenaPrepareEventSchema));
      expect(payloadKeys(targetStates().Finish)).toEqual(schemaKeys(athenaFinishEventSchema));
      // Every path a target's states read is one the Targets Map's ItemSelector provides, or an earlier step's result.
      const item = [...Object.keys(states().Targets!.ItemSelector as JsonObject).map((k) => `$.${k.replace(/\.\$$/, '')}`), '$.queries'];
      for (const name of ['ExportInLambda', 'Prepare', 'Finish']) {
        const payload = (targetStates()[name]!.Parameters as JsonObject).Payload as JsonObject;
        expect(payload['target.$'], name).toBe('$.target');
        for (const [key, value] of Object.entries(payload)) {
          if (key.endsWith('.$') && typeof value === 'string' && !value.startsWith('$$.') && !value.startsWith('$.prepared.')) expect(item, `${name} ${key}`).toContain(value);
        }
      }
      expect((targetStates().Prepare!.Parameters as JsonObject).Payload).toMatchObject({ targetArchiveTable: '${TargetArchiveTable}', targetForwardedTable: '${TargetForwardedTable}' });
      for (const [name, statement] of [['RowsText', 'rows'], ['ReportText', 'report']] as const) {
        const state = mapStates()[name]!;
        expect(payloadKeys(state), name).toEqual(schemaKeys(athenaQueryEventSchema));
        const payload = (state.Parameters as JsonObject).Payload as JsonObject;
        expect(payload).toMatchObject({ athena: 'query', statement, bucket: '${ArchiveBucket}', database: '${Database}', 'target.$': '$.target', targetArchiveTable: '${TargetArchiveTable}' });
        // Every path the payload reads is one the Map's ItemSelector provides.
        const provided = Object.keys(targetStates().Queries!.ItemSelector as JsonObject).map((k) => `$.${k.replace(/\.\$$/, '')}`);
        for (const [key, value] of Object.entries(payload)) if (key.endsWith('.$')) expect(provided, `${name} ${key}`).toContain(value);
        // One query text in the state at a time: each replaces the previous one.
        expect(state.ResultPath).toBe('$.text');
      }
      // What the Map hands finish, per kind.
      const kindDone = Object.keys(mapStates().KindDone!.Parameters as JsonObject).map((k) => k.replace(/\.\$$/, '')).sort();
      const kindShape = (athenaFinishEventSchema.shape.kinds as unknown as { element: { shape: Record<string, unknown> } }).element.shape;
      expect(kindDone).toEqual(Object.keys(kindShape).sort());
    });

    it('runs the UNLOAD of each kind\'s rows and report with the Athena .sync integration in the export workgroup', () => {
      const queries = targetStates().Queries!;
      expect(queries).toMatchObject({ Type: 'Map', ItemsPath: '$.prepared.kinds', MaxConcurrency: 3, Next: 'Finish' });
      expect((queries.ItemProcessor as JsonObject).StartAt).toBe('RowsText');
      expect(mapStates().RowsText!.Next).toBe('UnloadRows');
      expect(mapStates().UnloadRows!.Next).toBe('ReportText');
      expect(mapStates().ReportText!.Next).toBe('UnloadReport');
      for (const name of ['UnloadRows', 'UnloadReport']) {
        const state = mapStates()[name]!;
        expect(state.Resource).toBe('arn:aws:states:::athena:startQueryExecution.sync');
        expect(state.Parameters).toEqual({
          'QueryString.$': '$.text.query',
          WorkGroup: '${WorkGroup}',
          QueryExecutionContext: { Catalog: 'AwsDataCatalog', Database: '${Database}' },
        });
        // A failed UNLOAD is not retried into its half-written folder.
        expect(asArray(state.Retry as Json[]).flatMap((r) => (isObject(r) ? asArray(r.ErrorEquals as Json[]) : []))).not.toContain('States.ALL');
      }
    });
  });

  describe('least privilege', () => {
    /** Resource "*" only where AWS offers no resource-level permission. */
    const STAR_ACTIONS = new Set([
      'personalize:PutEvents', 'personalize:PutItems', 'personalize:PutUsers', 'personalize:ListDatasetImportJobs', 'personalize:ListDataDeletionJobs',
      // Vended log delivery of Step Functions (its developer guide: these take Resource "*").
      'logs:CreateLogDelivery', 'logs:DeleteLogDelivery', 'logs:DescribeLogGroups', 'logs:DescribeResourcePolicies',
      'logs:GetLogDelivery', 'logs:ListLogDeliveries', 'logs:PutResourcePolicy', 'logs:UpdateLogDelivery',
    ]);

    it('keeps the stack\'s rules: no wildcard action, no NotAction/NotResource, Resource "*" only where AWS requires it, ARNs of this stack otherwise', () => {
      for (const { owner, statement } of policyStatements(on).identity) {
        expect(statement.Effect).toBe('Allow');
        expect(statement.NotAction, owner).toBeUndefined();
        expect(statement.NotResource, owner).toBeUndefined();
        for (const action of actionsOf(statement)) expect(action, `${owner} ${statement.Sid}`).not.toContain('*');
        for (const target of asArray(statement.Resource as Json | Json[])) {
          if (target === '*') {
            for (const action of actionsOf(statement)) expect(STAR_ACTIONS.has(action), `${owner} grants ${action} on "*"`).toBe(true);
          } else {
            expect(isIntrinsic(target), `${owner} ${statement.Sid}: ${JSON.stringify(target)}`).toBe(true);
          }
        }
      }
      // No s3, glue, athena or dynamodb action on "*".
      const starred = policyStatements(on).identity.filter((s) => asArray(s.statement.Resource as Json | Json[]).includes('*')).flatMap((s) => actionsOf(s.statement));
      expect(starred.filter((a) => /^(s3|glue|athena|dynamodb|lambda|states):/.test(a))).toEqual([]);
    });

    it('lets the state machine reach only this stack\'s function, table exports, workgroup, catalog and bucket prefixes', () => {
      const statements = statementsOf(on, 'ExportStateMachineRole');
      const targets = (action: string) => statements.filter((s) => actionsOf(s).includes(action)).flatMap((s) => asArray(s.Resource as Json | Json[]));
      expect(targets('lambda:InvokeFunction')).toEqual([{ 'Fn::GetAtt': ['ExportLambdaFunction', 'Arn'] }]);
      expect(targets('dynamodb:ExportTableToPointInTime')).toEqual([{ 'Fn::GetAtt': ['IdentityTable', 'Arn'] }]);
      expect(targets('dynamodb:DescribeExport').map(subString)).toEqual(['${IdentityTable.Arn}/export/*']);
      for (const action of ['athena:StartQueryExecution', 'athena:GetQueryExecution', 'athena:StopQueryExecution']) {
        expect(targets(action).map(subString), action).toEqual(['arn:${AWS::Partition}:athena:${AWS::Region}:${AWS::AccountId}:workgroup/${ExportAthenaWorkGroup}']);
      }
      expect(targets('athena:GetDataCatalog').map(subString)).toEqual(['arn:${AWS::Partition}:athena:${AWS::Region}:${AWS::AccountId}:datacatalog/AwsDataCatalog']);
      for (const action of ['glue:GetDatabase', 'glue:GetTable', 'glue:GetPartitions']) {
        expect(targets(action).map(subString).sort(), action).toEqual(
          [
            'arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:catalog',
            'arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:database/${ExportAthenaDatabase}',
            'arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:table/${ExportAthenaDatabase}/archive_lines',
            'arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:table/${ExportAthenaDatabase}/identity_links',
            'arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:table/${ExportAthenaDatabase}/forwarded_lines',
            'arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:table/${ExportAthenaDatabase}/target_archive_lines',
            'arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:table/${ExportAthenaDatabase}/target_forwarded_lines',
          ].sort(),
        );
      }
      const objects = (action: string) => targets(action).map((r) => subString(r)?.replace('${ArchiveBucket.Arn}/', '')).sort();
      // The targets' archives and forwarded records (targets/<name>/...), not the rest of targets/ (their imports).
      expect(objects('s3:GetObject')).toEqual(['archive/*', 'exports/identity/*', 'forwarded/*', 'targets/*/archive/*', 'targets/*/forwarded/*']);
      // Every target's UNLOAD output is under athena/exports/<date>/<run>/targets/<name>/: no write under targets/.
      expect(objects('s3:PutObject')).toEqual(['athena/*', 'exports/identity/*']);
      expect(objects('s3:AbortMultipartUpload')).toEqual(['athena/*', 'exports/identity/*']);
      expect(objects('s3:PutObjectAcl')).toEqual(['exports/identity/*']);
      const list = statements.find((s) => actionsOf(s).includes('s3:ListBucket'));
      expect(list?.Condition).toEqual({ StringLike: { 's3:prefix': ['archive/*', 'forwarded/*', 'targets/*/archive/*', 'targets/*/forwarded/*', 'exports/identity/*', 'athena/*'] } });
      // Nothing on targets/ as a whole, nor on a target's imports.
      expect(JSON.stringify(statements)).not.toMatch(/targets\/\*"|targets\/\*\/\*"|targets\/\*\/imports/);
      expect(targets('s3:GetBucketLocation')).toEqual([{ 'Fn::GetAtt': ['ArchiveBucket', 'Arn'] }]);
      // Nothing touches imports/, control/ (the deletion registry) or dlq-payloads/.
      expect(JSON.stringify(statements)).not.toMatch(/imports\/|control\/|dlq-payloads\//);
    });

    it('lets only Step Functions (and the schedule, EventBridge) of this account assume the new roles', () => {
      for (const [roleId, service] of [['ExportStateMachineRole', 'states.amazonaws.com'], ['ExportScheduleRole', 'events.amazonaws.com']] as const) {
        const trust = asArray((props(resource(on, roleId)).AssumeRolePolicyDocument as JsonObject).Statement as Json[]);
        expect(trust, roleId).toEqual([
          { Effect: 'Allow', Principal: { Service: service }, Action: 'sts:AssumeRole', Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } } },
        ]);
      }
      expect(statementsOf(on, 'ExportScheduleRole')).toEqual([{ Sid: 'StartExport', Effect: 'Allow', Action: 'states:StartExecution', Resource: { Ref: 'ExportStateMachine' } }]);
    });

    it('adds to the export function\'s role only the reading of the UNLOAD output', () => {
      expect(props(resource(on, 'ExportAthenaPolicy')).Roles).toEqual([{ Ref: 'ExportRole' }]);
      const added = statementsOf(on, 'ExportAthenaPolicy');
      expect(added.flatMap(actionsOf).sort()).toEqual(['s3:GetObject', 's3:ListBucket']);
      expect(subString(added.find((s) => actionsOf(s).includes('s3:GetObject'))?.Resource)).toBe('${ArchiveBucket.Arn}/athena/exports/*');
      expect(added.find((s) => actionsOf(s).includes('s3:ListBucket'))?.Condition).toEqual({ StringLike: { 's3:prefix': 'athena/exports/*' } });
      // The role itself is the one the default stack has (test/template/stack.test.ts checks it).
      expect(JSON.stringify(statementsOf(on, 'ExportRole'))).toBe(JSON.stringify(statementsOf(off, 'ExportRole')));
    });
  });
});

describe('parameter checks at package time (serverless/athena-export.cjs)', () => {
  const DEFAULTS: Record<string, unknown> = {
    'self:service': 'personalize-ingest',
    'sls:stage': 'prod',
    'param:exportAthena': true,
    'param:exportScheduleEnabled': true,
    'param:exportSchedule': 'cron(15 2 * * ? *)',
    'param:exportAthenaMinArchiveBytes': 1_000_000_000,
    'param:exportAthenaBytesScannedCutoff': 200_000_000_000,
    'param:exportAthenaScratchRetentionDays': 3,
    'param:logRetentionDays': 30,
  };
  const workGroup = (overrides: Record<string, unknown> = {}) => {
    const values = { ...DEFAULTS, ...overrides };
    return athenaModule.workGroup({
      resolveVariable: (variable) => (variable in values ? Promise.resolve(values[variable]) : Promise.reject(new Error(`unknown ${variable}`))),
    });
  };

  it('accepts the defaults, and refuses values Athena, S3 or CloudFormation would reject late', async () => {
    await expect(workGroup()).resolves.toMatchObject({ Type: 'AWS::Athena::WorkGroup' });
    await expect(workGroup({ 'param:exportAthenaBytesScannedCutoff': 1000 })).rejects.toThrow(/exportAthenaBytesScannedCutoff must be an integer from 10000000/);
    await expect(workGroup({ 'param:exportAthenaMinArchiveBytes': -1 })).rejects.toThrow(/exportAthenaMinArchiveBytes/);
    await expect(workGroup({ 'param:exportAthenaScratchRetentionDays': 0 })).rejects.toThrow(/exportAthenaScratchRetentionDays/);
    await expect(workGroup({ 'param:exportAthena': 'yes' })).rejects.toThrow(/exportAthena must be true or false/);
  });
});
