import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import variableList from '../../serverless/environment.json' with { type: 'json' };
import { TARGET_NAME_PATTERN } from '../../schemas/canonical.js';
import { DATASET_GROUP_ARN_PATTERN } from '../../shared/config.js';
import { loadEventMapping } from '../../shared/event-mapping.js';
import { loadDatasetSchemas, parseDatasetSchema } from '../../shared/personalize/dataset-schema.js';
import { ROLE_ARN_PATTERN } from '../../shared/personalize/import-limits.js';
import { loadTargetsFile, targetsFileSchema } from '../../shared/targets.js';
import {
  actionsOf,
  asArray,
  environmentOf,
  functions,
  isObject,
  packageStack,
  props,
  REPO,
  referencedId,
  scalar,
  type Json,
  type JsonObject,
  type Packaged,
  type Statement,
  type Template,
} from './template.js';

/**
 * Several targets in the template (issue 18, docs/targets.md "Deployment (serverless.yml)"): the stack
 * packaged with param targetsFile against the same stack without it. Only what the targets need may
 * differ: TARGETS_FILE on the functions that read it, the file and its schemas in their zips, and IAM
 * statements with the targets' ARNs, never a wider grant.
 */

const targetsCjs = createRequire(import.meta.url)('../../serverless/targets.cjs') as {
  PATTERNS: Record<'name' | 'dataset' | 'datasetGroup' | 'role', RegExp>;
  READERS: string[];
  TASK_ROOT: string;
};

const EXAMPLE = 'schemas/targets/example.json';
const SHOP = 'arn:aws:personalize:us-east-1:123456789012:dataset/shop';
/** Both packages: the default target's params, so that the only difference is param targetsFile. */
const COMMON = [
  '--stage', 'ci',
  `--param=interactionsDatasetArn=${SHOP}/INTERACTIONS`,
  `--param=itemsDatasetArn=${SHOP}/ITEMS`,
  `--param=usersDatasetArn=${SHOP}/USERS`,
  '--param=datasetGroupArn=arn:aws:personalize:us-east-1:123456789012:dataset-group/shop',
];

const video = targetsFileSchema.parse(JSON.parse(await readFile(join(REPO, EXAMPLE), 'utf8'))).targets.find((t) => t.name === 'video');
if (!video?.datasets.interactions || !video.datasets.items || !video.datasets.users || !video.datasetGroupArn || !video.schemas || !video.mapping) {
  throw new Error(`${EXAMPLE} no longer declares the video target this test reads`);
}
const VIDEO = { interactions: video.datasets.interactions, items: video.datasets.items, users: video.datasets.users, datasetGroupArn: video.datasetGroupArn };
const VIDEO_SCHEMAS = video.schemas;
const EXAMPLE_FILES = [EXAMPLE, ...[...Object.values(VIDEO_SCHEMAS), video.mapping].map((file) => join(dirname(EXAMPLE), file))].sort();

/** A second declaration, in another folder, naming the example's files relatively: a target with its own import role. */
const BRAND_ROLE = 'arn:aws:iam::123456789012:role/brand-b-personalize-import';
const BRAND_ITEMS = 'arn:aws:personalize:us-east-1:123456789012:dataset/brand-b/ITEMS';
const BRAND_GROUP = 'arn:aws:personalize:us-east-1:123456789012:dataset-group/brand-b';
const VARIANT = 'config/targets.json';
const variantDocument = {
  targets: [
    { name: 'default', routes: [{ all: true }] },
    {
      name: 'brand-b',
      importRoleArn: BRAND_ROLE,
      datasetGroupArn: BRAND_GROUP,
      datasets: { items: BRAND_ITEMS },
      schemas: { interactions: '../schemas/targets/video/interactions.json', items: '../schemas/targets/video/items.json', users: '../schemas/targets/video/users.json' },
      mapping: '../schemas/targets/video/event-mapping.json',
      routes: [{ all: true }],
    },
  ],
};

let plain: Packaged;
let targets: Packaged;
let variant: Packaged;

beforeAll(async () => {
  [plain, targets, variant] = await Promise.all([
    packageStack(COMMON),
    packageStack([...COMMON, `--param=targetsFile=${EXAMPLE}`], { extract: /\.json$/ }),
    packageStack([...COMMON, `--param=targetsFile=${VARIANT}`], { files: { [VARIANT]: JSON.stringify(variantDocument) }, extract: /\.json$/ }),
  ]);
}, 180_000);

/** serverless.yml function keys (environment.json) -> logical id base (`personalizeDeletions` -> `PersonalizeDeletions`). */
const base = (fn: string) => fn.charAt(0).toUpperCase() + fn.slice(1);
const READERS: string[] = variableList.variables.TARGETS_FILE.functions;

/** What one role may do: its inline statements and those of every AWS::IAM::Policy attached to it. */
function roleStatements(t: Template, roleId: string): Statement[] {
  const out: Statement[] = [];
  const add = (document: Json | undefined) => {
    if (isObject(document)) for (const s of asArray(document.Statement)) out.push(s as unknown as Statement);
  };
  for (const policy of asArray(props(t.Resources[roleId]).Policies as Json[] | undefined)) if (isObject(policy)) add(policy.PolicyDocument);
  for (const resource of Object.values(t.Resources)) {
    if (resource.Type !== 'AWS::IAM::Policy') continue;
    if (asArray(props(resource).Roles as Json[] | undefined).some((r) => referencedId(r) === roleId)) add(props(resource).PolicyDocument);
  }
  return out;
}

/** Per action, the resources a role is granted it on (JSON text, so intrinsics compare too). */
function grants(t: Template, roleId: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const s of roleStatements(t, roleId)) {
    for (const action of actionsOf(s)) {
      const set = out.get(action) ?? new Set<string>();
      for (const r of asArray(s.Resource as Json | Json[])) set.add(typeof r === 'string' ? r : JSON.stringify(r));
      out.set(action, set);
    }
  }
  return out;
}

const videoFolder = (folder: string) => JSON.stringify({ 'Fn::Sub': `\${ArchiveBucket.Arn}/targets/video/${folder}/*` });
const ROLES = ['CollectRole', 'ProcessRole', 'ExportRole', 'PersonalizeDeletionsRole', 'RedriveRole', 'PersonalizeImportRole'];
const granted = (t: Template, roleId: string, action: string) => [...(grants(t, roleId).get(action) ?? [])].sort();
const rolesMentioning = (t: Template, value: string) => ROLES.filter((roleId) => JSON.stringify(roleStatements(t, roleId)).includes(JSON.stringify(value))).sort();

describe('without param targetsFile', () => {
  it('sets no TARGETS_FILE, packages no targets file and adds no targets policy', () => {
    for (const fn of functions(plain.raw)) expect(environmentOf(fn.resource), fn.id).not.toHaveProperty('TARGETS_FILE');
    for (const [zip, entries] of Object.entries(plain.zipEntries)) expect(entries.filter((e) => e.startsWith('schemas/')), zip).toEqual([]);
    expect(Object.keys(plain.raw.Resources).filter((id) => id.endsWith('TargetsPolicy'))).toEqual([]);
    // Today's grant: the three Put* on "*" in one statement (stack.test.ts pins the rest of the roles).
    expect(roleStatements(plain.raw, 'ProcessRole').find((s) => s.Sid === 'Personalize')).toEqual({
      Sid: 'Personalize',
      Effect: 'Allow',
      Action: ['personalize:PutEvents', 'personalize:PutItems', 'personalize:PutUsers'],
      Resource: '*',
    });
  });
});

describe('with param targetsFile', () => {
  it('sets TARGETS_FILE, where the zip puts the file under /var/task, on exactly the functions environment.json lists', () => {
    expect([...READERS].sort()).toEqual(['collect', 'export', 'personalizeDeletions', 'process', 'redrive']);
    expect(targetsCjs.READERS).toEqual(variableList.variables.TARGETS_FILE.functions);
    for (const fn of functions(targets.raw)) {
      const key = fn.base.charAt(0).toLowerCase() + fn.base.slice(1);
      const value = environmentOf(fn.resource).TARGETS_FILE;
      if (READERS.includes(key)) expect(value, fn.id).toBe(`/var/task/${EXAMPLE}`);
      else expect(value, fn.id).toBeUndefined();
    }
  });

  it('packages the targets file and the schemas and mapping it names into the zips of those functions only, byte for byte', async () => {
    expect(Object.keys(targets.zipEntries).sort()).toEqual(['collect', 'export', 'personalizeDeletions', 'process', 'redrive']);
    for (const [zip, entries] of Object.entries(targets.zipEntries)) {
      const packaged = entries.filter((e) => e.startsWith('schemas/'));
      expect(packaged, zip).toEqual(READERS.includes(zip) ? EXAMPLE_FILES : []);
      // Nothing else moved: the same bundles (and the export's DuckDB binaries, in its zip only) as without.
      expect(entries.filter((e) => !e.startsWith('schemas/')), zip).toEqual(plain.zipEntries[zip]);
    }
    for (const zip of READERS) {
      for (const file of EXAMPLE_FILES) expect(targets.extracted[zip]?.[file], `${zip} ${file}`).toEqual(await readFile(join(REPO, file)));
    }
  });

  it('gives the functions a file their own parser reads from the zip as unpacked in /var/task', async () => {
    const defaults = { schemas: loadDatasetSchemas(), mapping: loadEventMapping({}) };
    const videoItems = parseDatasetSchema(JSON.parse(await readFile(join(REPO, dirname(EXAMPLE), VIDEO_SCHEMAS.items), 'utf8')), 'Items');
    for (const zip of READERS) {
      const taskRoot = await mkdtemp(join(tmpdir(), `targets-${zip}-`));
      try {
        // Only the JSON entries are unpacked: the bundle is not what is under test here.
        for (const [entry, bytes] of Object.entries(targets.extracted[zip] ?? {})) {
          await mkdir(dirname(join(taskRoot, entry)), { recursive: true });
          await writeFile(join(taskRoot, entry), bytes);
        }
        const path = scalar(environmentOf(targets.raw.Resources[`${base(zip)}LambdaFunction`]!).TARGETS_FILE);
        expect(path.startsWith(`${targetsCjs.TASK_ROOT}/`), zip).toBe(true);
        const loaded = loadTargetsFile(join(taskRoot, path.slice(targetsCjs.TASK_ROOT.length + 1)), defaults);
        expect(loaded?.map((t) => t.name), zip).toEqual(['default', 'video']);
        expect(loaded?.[1]?.schemas.items, zip).toEqual(videoItems);
        expect(loaded?.[1]?.itemsDatasetArn, zip).toBe(VIDEO.items);
      } finally {
        await rm(taskRoot, { recursive: true, force: true });
      }
    }
  });

  it('grants the video target\'s ARNs to the functions that use them, and to no other role', () => {
    expect(rolesMentioning(targets.raw, VIDEO.interactions)).toEqual(['ExportRole']);
    expect(rolesMentioning(targets.raw, VIDEO.items)).toEqual(['ExportRole', 'ProcessRole']);
    expect(rolesMentioning(targets.raw, VIDEO.users)).toEqual(['ExportRole', 'ProcessRole']);
    expect(rolesMentioning(targets.raw, VIDEO.datasetGroupArn)).toEqual(['PersonalizeDeletionsRole']);
    for (const value of Object.values(VIDEO)) expect(rolesMentioning(plain.raw, value)).toEqual([]);
  });

  it('scopes the processor\'s PutItems and PutUsers to the default\'s and the targets\' datasets; PutEvents stays on "*"', () => {
    expect(granted(plain.raw, 'ProcessRole', 'personalize:PutItems')).toEqual(['*']);
    expect(granted(targets.raw, 'ProcessRole', 'personalize:PutItems')).toEqual([`${SHOP}/ITEMS`, VIDEO.items].sort());
    expect(granted(targets.raw, 'ProcessRole', 'personalize:PutUsers')).toEqual([`${SHOP}/USERS`, VIDEO.users].sort());
    // PutEvents authorizes no resource (FACTS §1d, the Service Authorization Reference).
    expect(granted(targets.raw, 'ProcessRole', 'personalize:PutEvents')).toEqual(['*']);
  });

  it('adds the targets\' datasets to the export\'s import jobs and their dataset groups to the deletion jobs, keeping the default\'s grants', () => {
    const plainImports = granted(plain.raw, 'ExportRole', 'personalize:CreateDatasetImportJob');
    expect(granted(targets.raw, 'ExportRole', 'personalize:CreateDatasetImportJob')).toEqual([...plainImports, VIDEO.interactions, VIDEO.items, VIDEO.users].sort());
    const plainDeletions = granted(plain.raw, 'PersonalizeDeletionsRole', 'personalize:CreateDataDeletionJob');
    expect(granted(targets.raw, 'PersonalizeDeletionsRole', 'personalize:CreateDataDeletionJob')).toEqual([...plainDeletions, VIDEO.datasetGroupArn].sort());
    expect(granted(targets.raw, 'PersonalizeDeletionsRole', 'personalize:DescribeDataDeletionJob')).toEqual(granted(plain.raw, 'PersonalizeDeletionsRole', 'personalize:DescribeDataDeletionJob'));
    // The video target has no import role of its own: the export passes the stack's, as without.
    for (const roleId of ['ExportRole', 'PersonalizeDeletionsRole']) expect(granted(targets.raw, roleId, 'iam:PassRole'), roleId).toEqual(granted(plain.raw, roleId, 'iam:PassRole'));
  });

  it('widens nothing: no new action, and every resource added to a grant is one the targets file or the default\'s params declare', () => {
    const declared = new Set<string>([...Object.values(VIDEO), `${SHOP}/ITEMS`, `${SHOP}/USERS`, ...['archive', 'forwarded', 'imports'].map(videoFolder)]);
    for (const roleId of ROLES) {
      const before = grants(plain.raw, roleId);
      const after = grants(targets.raw, roleId);
      expect([...after.keys()].sort(), roleId).toEqual([...before.keys()].sort());
      for (const [action, resources] of after) {
        for (const r of resources) expect(before.get(action)?.has(r) === true || declared.has(r), `${roleId} ${action} ${r}`).toBe(true);
      }
    }
  });

  it("grants each function the target's folders of the archive bucket it reads or writes, and no other", () => {
    const [archive, forwarded, imports] = ['archive', 'forwarded', 'imports'].map(videoFolder);
    expect(granted(targets.raw, 'ProcessRole', 's3:PutObject').filter((r) => r.includes('targets/'))).toEqual([archive, forwarded].sort());
    expect(granted(targets.raw, 'ExportRole', 's3:GetObject').filter((r) => r.includes('targets/'))).toEqual([archive, forwarded, imports].sort());
    expect(granted(targets.raw, 'ExportRole', 's3:PutObject').filter((r) => r.includes('targets/'))).toEqual([imports]);
    expect(granted(targets.raw, 'ExportRole', 's3:DeleteObject').filter((r) => r.includes('targets/'))).toEqual([imports]);
    // The video target has no import role of its own: the stack's role reads its import files.
    expect(granted(targets.raw, 'PersonalizeImportRole', 's3:GetObject').filter((r) => r.includes('targets/'))).toEqual([imports]);
    const listed = (roleId: string) =>
      roleStatements(targets.raw, roleId)
        .filter((st) => st.Sid === 'ListTargetFolders')
        .flatMap((st) => (st.Condition as { StringLike: { 's3:prefix': string[] } }).StringLike['s3:prefix']);
    expect(listed('ExportRole')).toEqual(['targets/video/archive/*', 'targets/video/forwarded/*', 'targets/video/imports/*']);
    expect(listed('PersonalizeImportRole')).toEqual(['targets/video/imports/*']);
    for (const roleId of ['CollectRole', 'RedriveRole', 'PersonalizeDeletionsRole']) expect(JSON.stringify(roleStatements(targets.raw, roleId)), roleId).not.toContain('targets/');
  });

  it('makes each function wait for its targets policy, as for its role', () => {
    for (const fn of ['Process', 'Export', 'PersonalizeDeletions']) {
      expect(targets.raw.Resources[`${fn}TargetsPolicy`]?.Type, fn).toBe('AWS::IAM::Policy');
      expect(asArray(targets.raw.Resources[`${fn}LambdaFunction`]?.DependsOn), fn).toContain(`${fn}TargetsPolicy`);
    }
    // The collector routes by the file but calls no Personalize API: no policy of its own.
    expect(targets.raw.Resources.CollectTargetsPolicy).toBeUndefined();
  });

  it('changes nothing else in the template', () => {
    const normalized = (t: Template): Template => {
      const copy = JSON.parse(JSON.stringify(t).replace(/serverless\/personalize-ingest\/ci\/[^/"]+\//g, 'serverless/personalize-ingest/ci/<build>/')) as Template;
      for (const id of Object.keys(copy.Resources)) if (id.endsWith('TargetsPolicy')) delete copy.Resources[id];
      for (const fn of functions(copy)) {
        delete (props(fn.resource).Environment as { Variables: JsonObject }).Variables.TARGETS_FILE;
        fn.resource.DependsOn = asArray(fn.resource.DependsOn).filter((id) => !id.endsWith('TargetsPolicy'));
      }
      const personalize = roleStatements(copy, 'ProcessRole').find((s) => s.Sid === 'Personalize');
      if (personalize) personalize.Action = ['personalize:PutEvents', 'personalize:PutItems', 'personalize:PutUsers'];
      return copy;
    };
    expect(normalized(targets.raw)).toEqual(normalized(plain.raw));
  });
});

describe('a targets file with its own import role, in another folder', () => {
  it('packages the file at its path and the files it names at theirs', () => {
    const files = [VARIANT, ...EXAMPLE_FILES.filter((f) => f !== EXAMPLE)].sort();
    for (const zip of READERS) expect(Object.keys(variant.extracted[zip] ?? {}).filter((e) => !e.startsWith('functions/')).sort(), zip).toEqual(files);
    expect(environmentOf(variant.raw.Resources.ExportLambdaFunction!).TARGETS_FILE).toBe(`/var/task/${VARIANT}`);
  });

  it('lets the export pass that role, only to Personalize; the deletion step passes the stack\'s role only', () => {
    const pass = roleStatements(variant.raw, 'ExportRole').filter((s) => actionsOf(s).includes('iam:PassRole'));
    expect(pass.map((s) => s.Condition)).toEqual([
      { StringEquals: { 'iam:PassedToService': 'personalize.amazonaws.com' } },
      { StringEquals: { 'iam:PassedToService': 'personalize.amazonaws.com' } },
    ]);
    expect(granted(variant.raw, 'ExportRole', 'iam:PassRole')).toEqual([JSON.stringify({ 'Fn::GetAtt': ['PersonalizeImportRole', 'Arn'] }), BRAND_ROLE].sort());
    expect(rolesMentioning(variant.raw, BRAND_ROLE)).toEqual(['ExportRole']);
    expect(rolesMentioning(variant.raw, BRAND_GROUP)).toEqual(['PersonalizeDeletionsRole']);
    // brand-b has no users dataset: PutUsers keeps the default's only.
    expect(granted(variant.raw, 'ProcessRole', 'personalize:PutUsers')).toEqual([`${SHOP}/USERS`]);
    expect(granted(variant.raw, 'ProcessRole', 'personalize:PutItems')).toEqual([`${SHOP}/ITEMS`, BRAND_ITEMS].sort());
  });
});

describe('a targets file packaging cannot use', () => {
  const bad = (document: unknown) => ({ [VARIANT]: JSON.stringify(document) });
  const withVideo = (patch: Record<string, unknown>) => ({ targets: [{ name: 'default', routes: [{ all: true }] }, { ...video, schemas: { interactions: '../schemas/targets/video/interactions.json', items: '../schemas/targets/video/items.json', users: '../schemas/targets/video/users.json' }, mapping: '../schemas/targets/video/event-mapping.json', ...patch }] });
  const cases: [string, string, Record<string, string>, RegExp][] = [
    ['a missing file', 'config/nope.json', {}, /targetsFile config\/nope\.json: no such file/],
    ['a file outside the repo', '../targets.json', {}, /targetsFile \.\.\/targets\.json is outside the service directory/],
    ['a file that is not JSON', VARIANT, { [VARIANT]: '{"targets": [' }, /targetsFile config\/targets\.json: .*JSON/],
    ['a dataset ARN that is not one', VARIANT, bad(withVideo({ datasets: { items: 'arn:aws:personalize:us-east-1:1:dataset-group/x' } })), /targetsFile config\/targets\.json: target video datasets\.items must be a Personalize dataset ARN/],
    ['an import role that is not a role', VARIANT, bad(withVideo({ importRoleArn: 'brand-b-import' })), /target video importRoleArn must be an IAM role ARN/],
    ['a schema file that is not there', VARIANT, bad(withVideo({ schemas: { interactions: '../schemas/targets/video/interactions.json', items: 'video/items.json', users: '../schemas/targets/video/users.json' } })), /target video schemas\.items config\/video\/items\.json: no such file/],
    ['two targets of one name', VARIANT, bad({ targets: [{ name: 'video', routes: [{ all: true }] }, { name: 'video', routes: [{ all: true }] }] }), /target video is declared twice/],
    ['a default target with datasets', VARIANT, bad({ targets: [{ name: 'default', datasets: { items: VIDEO.items }, routes: [{ all: true }] }] }), /the default target takes its tracker, datasets, schemas and mapping from the params/],
  ];

  it.each(cases)('fails packaging on %s, with a message naming it', async (_case, file, files, message) => {
    await expect(packageStack([...COMMON, `--param=targetsFile=${file}`], { files })).rejects.toThrow(message);
  }, 120_000);
});

describe('serverless/targets.cjs', () => {
  it('validates with the patterns the functions use', () => {
    expect(targetsCjs.PATTERNS.name.source).toBe(TARGET_NAME_PATTERN.source);
    expect(targetsCjs.PATTERNS.datasetGroup.source).toBe(DATASET_GROUP_ARN_PATTERN.source);
    expect(targetsCjs.PATTERNS.role.source).toBe(ROLE_ARN_PATTERN.source);
    // shared/targets.ts keeps its dataset ARN pattern private: compare verdicts.
    for (const candidate of [VIDEO.items, `${SHOP}/USERS`, 'arn:aws-cn:personalize:cn-north-1:123456789012:dataset/g/ITEMS', VIDEO.datasetGroupArn, 'arn:aws:personalize:us-east-1:1:dataset/', 'dataset/x']) {
      const runtime = targetsFileSchema.safeParse({ targets: [{ name: 'x', datasets: { items: candidate }, routes: [{ all: true }] }] }).success;
      expect(targetsCjs.PATTERNS.dataset.test(candidate), candidate).toBe(runtime);
    }
  });
});
