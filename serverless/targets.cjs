// Several Personalize targets (docs/targets.md) for serverless.yml, from the file param targetsFile
// names (a path in the service directory; empty: one target, the PERSONALIZE_* params, and the
// template exactly as without this file):
//   lambdaPath             TARGETS_FILE's value (serverless/environment.json): where the file sits in the zip
//   packagePatterns.<fn>   each function's zip patterns: the functions that read TARGETS_FILE carry the
//                          file and the schemas and mappings it names, at their paths in the repo
//   processStarActions     what the processor's `Personalize` statement grants on "*" (iam.yml)
//   resources              per function, one IAM policy with the ARNs of the targets it serves
//   extensions             each function waits for its targets policy (no first call before it exists)
// Only what the template needs is validated here (names, ARNs, file paths), with errors naming the
// file, target and field; the functions validate the whole declaration at start (shared/targets.ts).
/* global __dirname */
const { existsSync, readFileSync, statSync } = require('node:fs');
const { dirname, isAbsolute, relative, resolve, sep } = require('node:path');
const { variables } = require('./environment.json');

const SERVICE_DIR = resolve(__dirname, '..');
/** Where Lambda unpacks a function's zip (LAMBDA_TASK_ROOT). */
const TASK_ROOT = '/var/task';
const DEFAULT_TARGET = 'default';

// The patterns of shared/targets.ts, schemas/canonical.ts, shared/config.ts and
// shared/personalize/import-limits.ts (test/template/targets.test.ts holds them equal).
const PATTERNS = {
  name: /^[a-z0-9][a-z0-9-]{0,31}$/,
  dataset: /^arn:([a-z\d-]+):personalize:[a-z\d-]*:\d*:dataset\/.+$/,
  datasetGroup: /^arn:([a-z\d-]+):personalize:[a-z\d-]*:\d*:dataset-group\/[a-zA-Z0-9][a-zA-Z0-9\-_]*$/,
  role: /^arn:([a-z\d-]+):iam::\d{12}:role\/?[a-zA-Z_0-9+=,.@\-_/]+$/,
};
const DATASET_KINDS = ['interactions', 'items', 'users'];
/** A packaged path goes into a glob pattern (serverless-esbuild): none of these may be in it. */
const GLOB_CHARACTERS = /[*?[\]{}()!\\]/;

/** The functions that read TARGETS_FILE: the ones environment.json gives it to. */
const READERS = variables.TARGETS_FILE.functions;
/** The export's DuckDB binaries sit beside its bundle in the shared build folder: no other zip takes them. */
const NOT_EXPORT_BINARIES = '!functions/export/**';
/** Every function of serverless.yml (its `package.patterns` come from here). */
const FUNCTIONS = ['collect', 'process', 'export', 'personalizeDeletions', 'redrive'];
/** Logical ids (serverless.yml function key -> CloudFormation). */
const pascal = (fn) => fn.charAt(0).toUpperCase() + fn.slice(1);

class ParameterError extends Error {
  constructor(message) {
    super(message);
    // osls prints the stack of a failed resolver: the message is all the operator needs.
    this.stack = message;
  }
}

const isObject = (value) => typeof value === 'object' && value !== null && !Array.isArray(value);
const posix = (path) => path.split(sep).join('/');

/** A path relative to `base`, as it is in the service directory (and so in the zip); must stay inside it. */
function servicePath(base, path, where) {
  if (typeof path !== 'string' || path.trim() === '') throw new ParameterError(`${where} must be a file path, not ${JSON.stringify(path)}`);
  const absolute = resolve(base, path);
  const inService = posix(relative(SERVICE_DIR, absolute));
  if (inService === '' || inService.startsWith('../') || isAbsolute(inService)) {
    throw new ParameterError(`${where} ${path} is outside the service directory (${SERVICE_DIR}): the functions' zips carry files of the repo only`);
  }
  if (GLOB_CHARACTERS.test(inService)) throw new ParameterError(`${where} ${inService}: the path may not contain any of * ? [ ] { } ( ) ! \\ (it becomes a package pattern)`);
  if (!existsSync(absolute) || !statSync(absolute).isFile()) throw new ParameterError(`${where} ${inService}: no such file`);
  return { absolute, inService };
}

function readJson(file, where) {
  try {
    return JSON.parse(readFileSync(file.absolute, 'utf8'));
  } catch (error) {
    throw new ParameterError(`${where} ${file.inService}: ${error.message}`);
  }
}

function arn(value, pattern, where, shape) {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !pattern.test(value)) throw new ParameterError(`${where} must be ${shape}, not ${JSON.stringify(value)}`);
  return value;
}

const DATASET_SHAPE = 'a Personalize dataset ARN (arn:<partition>:personalize:<region>:<account>:dataset/<group>/<KIND>)';

/** The targets file's targets: names, ARNs and the files to package. Throws naming file, target and field. */
function readTargets(param) {
  const file = servicePath(SERVICE_DIR, param, 'targetsFile');
  const origin = `targetsFile ${file.inService}`;
  const document = readJson(file, 'targetsFile');
  if (!isObject(document) || !Array.isArray(document.targets) || document.targets.length === 0) {
    throw new ParameterError(`${origin}: must be {"targets": [...]} with at least one target (docs/targets.md)`);
  }
  const base = dirname(file.absolute);
  const files = [file.inService];
  const names = new Set();
  const targets = document.targets.map((t, index) => {
    if (!isObject(t)) throw new ParameterError(`${origin}: targets.${index} must be an object`);
    if (typeof t.name !== 'string' || !PATTERNS.name.test(t.name)) {
      throw new ParameterError(`${origin}: targets.${index}.name must be 1-32 of a-z, 0-9 and -, starting with a letter or digit, not ${JSON.stringify(t.name)}`);
    }
    if (names.has(t.name)) throw new ParameterError(`${origin}: target ${t.name} is declared twice (names must be unique)`);
    names.add(t.name);
    const where = (field) => `${origin}: target ${t.name} ${field}`;
    if (t.datasets !== undefined && !isObject(t.datasets)) throw new ParameterError(`${where('datasets')} must be an object`);
    const datasets = Object.fromEntries(
      DATASET_KINDS.map((kind) => [kind, arn(t.datasets?.[kind], PATTERNS.dataset, where(`datasets.${kind}`), DATASET_SHAPE)]),
    );
    const target = {
      name: t.name,
      datasets,
      datasetGroupArn: arn(t.datasetGroupArn, PATTERNS.datasetGroup, where('datasetGroupArn'), 'a Personalize dataset group ARN (arn:<partition>:personalize:<region>:<account>:dataset-group/<name>)'),
      importRoleArn: arn(t.importRoleArn, PATTERNS.role, where('importRoleArn'), 'an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)'),
    };
    const own = [t.schemas, t.mapping, target.datasetGroupArn, target.importRoleArn, ...Object.values(datasets)].some((v) => v !== undefined);
    if (t.name === DEFAULT_TARGET && own) {
      throw new ParameterError(`${origin}: the default target takes its tracker, datasets, schemas and mapping from the params (PERSONALIZE_* variables): give it routes only`);
    }
    if (t.schemas !== undefined) {
      if (!isObject(t.schemas)) throw new ParameterError(`${where('schemas')} must be {"interactions", "items", "users"} file paths`);
      for (const kind of DATASET_KINDS) {
        const schema = servicePath(base, t.schemas[kind], where(`schemas.${kind}`));
        readJson(schema, where(`schemas.${kind}`));
        files.push(schema.inService);
      }
    }
    if (t.mapping !== undefined) {
      const mapping = servicePath(base, t.mapping, where('mapping'));
      readJson(mapping, where('mapping'));
      files.push(mapping.inService);
    }
    return target;
  });
  return { file: file.inService, files: [...new Set(files)], targets };
}

const cache = new Map();

/** What the template needs of the targets; undefined without param targetsFile. */
async function settings(resolveVariable) {
  const param = String((await resolveVariable('param:targetsFile')) ?? '').trim();
  if (param === '') return undefined;
  const stage = String(await resolveVariable('sls:stage'));
  if (!cache.has(param)) cache.set(param, readTargets(param));
  const declared = cache.get(param);
  const defaultDataset = async (name) => {
    const value = String((await resolveVariable(`param:${name}`)) ?? '').trim();
    return value === '' ? undefined : arn(value, PATTERNS.dataset, name, DATASET_SHAPE);
  };
  return {
    ...declared,
    // `osls invoke local --stage local` runs the handler on this machine, from the build folder.
    lambdaPath: stage === 'local' ? resolve(SERVICE_DIR, declared.file) : `${TASK_ROOT}/${declared.file}`,
    // The default target's datasets: the processor's PutItems/PutUsers are scoped to them too.
    defaults: { items: await defaultDataset('itemsDatasetArn'), users: await defaultDataset('usersDatasetArn') },
  };
}

const unique = (values) => [...new Set(values.filter((v) => v !== undefined))];
const allow = (sid, action, resource, condition) => ({ Sid: sid, Effect: 'Allow', Action: action, Resource: resource, ...(condition && { Condition: condition }) });

/** Per function, the statements that grant the targets' ARNs (the file's targets, the default's params where noted). */
function statements(s) {
  const declared = s.targets.filter((t) => t.name !== DEFAULT_TARGET);
  const ofKind = (kind) => declared.map((t) => t.datasets[kind]);
  const importDatasets = unique(DATASET_KINDS.flatMap(ofKind));
  const roles = unique(declared.map((t) => t.importRoleArn));
  const groups = unique(declared.map((t) => t.datasetGroupArn));
  const items = unique([s.defaults.items, ...ofKind('items')]);
  const users = unique([s.defaults.users, ...ofKind('users')]);
  // Each target's folder of the archive bucket (docs/targets.md): targets/<name>/archive, forwarded, imports.
  const inFolders = (...folders) => inFoldersOf(declared, folders);
  const inFoldersOf = (targets, folders) => targets.flatMap((t) => folders.map((f) => ({ 'Fn::Sub': `\${ArchiveBucket.Arn}/targets/${t.name}/${f}/*` })));
  const prefixes = (targets, folders) => targets.flatMap((t) => folders.map((f) => `targets/${t.name}/${f}/*`));
  const listOf = (targets, folders) => allow('ListTargetFolders', 's3:ListBucket', { 'Fn::GetAtt': ['ArchiveBucket', 'Arn'] }, { StringLike: { 's3:prefix': prefixes(targets, folders) } });
  const listPrefixes = (...folders) => listOf(declared, folders);
  // Targets with their own importRoleArn grant their role themselves.
  const onStackRole = declared.filter((t) => t.importRoleArn === undefined);
  const s3 = declared.length > 0;
  return {
    // PutItems/PutUsers authorize the dataset (Service Authorization Reference): the default's and
    // every target's, instead of "*". PutEvents stays on "*" in iam.yml (it authorizes no resource).
    process: [
      // The processor archives each target's lines and its record of what PutEvents accepted.
      ...(s3 ? [allow('TargetArchives', 's3:PutObject', inFolders('archive', 'forwarded'))] : []),
      ...(items.length > 0 ? [allow('PutItems', 'personalize:PutItems', items)] : []),
      ...(users.length > 0 ? [allow('PutUsers', 'personalize:PutUsers', users)] : []),
    ],
    // The default's datasets and jobs are in iam.yml (dataset/*, dataset-import-job/* of this account and region).
    export: [
      // The export reads a target's archive and forwarded record and writes its imports, as the default's.
      ...(s3
        ? [
            listPrefixes('archive', 'forwarded', 'imports'),
            allow('ReadTargetArchives', 's3:GetObject', inFolders('archive', 'forwarded', 'imports')),
            allow('WriteTargetImports', ['s3:PutObject', 's3:DeleteObject'], inFolders('imports')),
          ]
        : []),
      ...(importDatasets.length > 0 ? [allow('TargetImportJobs', 'personalize:CreateDatasetImportJob', importDatasets)] : []),
      ...(roles.length > 0 ? [allow('PassTargetImportRoles', 'iam:PassRole', roles, { StringEquals: { 'iam:PassedToService': 'personalize.amazonaws.com' } })] : []),
    ],
    // Deletion jobs pass the stack's import role for every group (shared/personalize-deletion): no other role.
    personalizeDeletions: groups.length > 0 ? [allow('TargetDeletionJobs', 'personalize:CreateDataDeletionJob', groups)] : [],
    // The stack's import role, which targets without their own importRoleArn pass: it reads their import files.
    personalizeImport: onStackRole.length > 0 ? [listOf(onStackRole, ['imports']), allow('ReadTargetImports', 's3:GetObject', inFoldersOf(onStackRole, ['imports']))] : [],
  };
}

/** Logical id of a function's targets policy. */
const policyId = (fn) => `${pascal(fn)}TargetsPolicy`;

async function policies(resolveVariable) {
  const s = await settings(resolveVariable);
  if (s === undefined) return {};
  return Object.fromEntries(
    Object.entries(statements(s))
      .filter(([, list]) => list.length > 0)
      .map(([fn, list]) => [
        policyId(fn),
        {
          Type: 'AWS::IAM::Policy',
          Properties: {
            PolicyName: `${fn}-targets`,
            Roles: [{ Ref: `${pascal(fn)}Role` }],
            PolicyDocument: { Version: '2012-10-17', Statement: list },
          },
        },
      ]),
  );
}

/** TARGETS_FILE: the file's path in the function's zip; '' without param targetsFile (left out then). */
async function lambdaPath({ resolveVariable }) {
  const s = await settings(resolveVariable);
  return s === undefined ? '' : s.lambdaPath;
}

/** `package.patterns` of one function: the targets' files for the functions that read TARGETS_FILE. */
function packagePatternsOf(fn) {
  return async ({ resolveVariable }) => {
    const s = await settings(resolveVariable);
    const files = s !== undefined && READERS.includes(fn) ? s.files : [];
    return [...(fn === 'export' ? [] : [NOT_EXPORT_BINARIES]), ...files];
  };
}

/** The actions the processor's `Personalize` statement grants on "*": with targets, PutItems/PutUsers move to ProcessTargetsPolicy. */
async function processStarActions({ resolveVariable }) {
  const s = await settings(resolveVariable);
  return s === undefined ? ['personalize:PutEvents', 'personalize:PutItems', 'personalize:PutUsers'] : ['personalize:PutEvents'];
}

async function resources({ resolveVariable }) {
  return policies(resolveVariable);
}

/** Each function depends on its targets policy, as it does on its role: its first call has the grants. */
async function extensions({ resolveVariable }) {
  const ids = Object.keys(await policies(resolveVariable)).filter((id) => FUNCTIONS.some((fn) => policyId(fn) === id));
  return Object.fromEntries(ids.map((id) => [id.replace(/TargetsPolicy$/, 'LambdaFunction'), { DependsOn: [id] }]));
}

module.exports = {
  lambdaPath,
  packagePatterns: Object.fromEntries(FUNCTIONS.map((fn) => [fn, packagePatternsOf(fn)])),
  processStarActions,
  resources,
  extensions,
  readTargets,
  PATTERNS,
  READERS,
  TASK_ROOT,
};
