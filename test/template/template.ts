import { execFile } from 'node:child_process';
import { access, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';

/**
 * Packages the stack with osls exactly as `npm run package` does (offline, no AWS credentials) and
 * hands the CloudFormation template to the tests. Packaging runs in a scratch copy of the sources
 * so it never touches the repo's .serverless/.esbuild and two test files can package at once.
 */

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Top-level entries not copied: dependencies are linked, the rest is state or output. */
const SKIP = new Set(['node_modules', '.git', '.local', '.serverless', '.esbuild', 'coverage']);

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface Resource {
  Type: string;
  Properties?: JsonObject;
  Condition?: string;
  DependsOn?: string | string[];
  [key: string]: Json | undefined;
}

export interface Template {
  Resources: Record<string, Resource>;
  Conditions?: JsonObject;
  Outputs?: JsonObject;
}

export interface Packaged {
  /** The template as osls wrote it. */
  raw: Template;
  /** The same with every Condition decided and Fn::If resolved (parameters are literals after packaging). */
  effective: Template;
  /** Handlers that do not exist in the repo yet (stubbed in the scratch copy so the rest can be checked). */
  missingHandlers: string[];
  /** Bytes of each function's zip (`<function>.zip` in .serverless/). */
  artifacts: Record<string, number>;
  /** The entries (paths) of each function's zip. */
  zipEntries: Record<string, string[]>;
  /** Per zip, the contents of the entries `extract` matched (PackageOptions). */
  extracted: Record<string, Record<string, Buffer>>;
}

export interface PackageOptions {
  /** Files written into the scratch copy before packaging (path relative to the repo -> content). */
  files?: Record<string, string>;
  /** Zip entries whose contents the result keeps (`extracted`). */
  extract?: RegExp;
}

const run = promisify(execFile);

/** Handler file (`functions/x/handler.handler` -> `functions/x/handler.ts`) of every function in serverless.yml. */
async function handlerFiles(serviceFile: string): Promise<string[]> {
  const text = await readFile(serviceFile, 'utf8');
  return [...text.matchAll(/^\s+handler:\s*(\S+)\.[A-Za-z_$][\w$]*\s*$/gm)].map((m) => `${m[1]}.ts`);
}

/** The entries of a zip archive (from its central directory), each read on demand (stored or deflated). */
export function readZip(zip: Buffer): Map<string, () => Buffer> {
  const minimum = Math.max(0, zip.length - 22 - 0xffff);
  let end = zip.length - 22;
  while (end >= minimum && zip.readUInt32LE(end) !== 0x06054b50) end--;
  if (end < minimum) throw new Error('not a zip archive (no end of central directory)');
  const entries = new Map<string, () => Buffer>();
  let at = zip.readUInt32LE(end + 16);
  for (let n = zip.readUInt16LE(end + 10); n > 0; n--) {
    if (zip.readUInt32LE(at) !== 0x02014b50) throw new Error(`zip central directory entry expected at ${at}`);
    const method = zip.readUInt16LE(at + 10);
    const size = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const local = zip.readUInt32LE(at + 42);
    const name = zip.toString('utf8', at + 46, at + 46 + nameLength);
    entries.set(name, () => {
      const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
      const data = zip.subarray(start, start + size);
      if (method === 0) return Buffer.from(data);
      if (method === 8) return inflateRawSync(data);
      throw new Error(`${name}: zip compression method ${method} not supported`);
    });
    at += 46 + nameLength + zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32);
  }
  return entries;
}

export async function packageStack(args: readonly string[], options: PackageOptions = {}): Promise<Packaged> {
  const dir = await mkdtemp(join(tmpdir(), 'personalize-ingest-template-'));
  try {
    await cp(REPO, dir, { recursive: true, filter: (source) => !SKIP.has(relative(REPO, source).split(sep)[0] ?? '') });
    await symlink(join(REPO, 'node_modules'), join(dir, 'node_modules'), 'dir');
    const missingHandlers: string[] = [];
    for (const file of await handlerFiles(join(dir, 'serverless.yml'))) {
      const exists = await access(join(REPO, file)).then(
        () => true,
        () => false,
      );
      if (exists) continue;
      missingHandlers.push(file);
      await mkdir(dirname(join(dir, file)), { recursive: true });
      await writeFile(join(dir, file), 'export const handler = async (): Promise<void> => {};\n');
    }
    for (const [file, content] of Object.entries(options.files ?? {})) {
      await mkdir(dirname(join(dir, file)), { recursive: true });
      await writeFile(join(dir, file), content);
    }
    const env: NodeJS.ProcessEnv = { ...process.env };
    // Packaging must not need (or find) an AWS identity.
    for (const name of Object.keys(env)) if (/^AWS_/.test(name)) delete env[name];
    try {
      await run(process.execPath, [join(REPO, 'node_modules/osls/bin/serverless.js'), 'package', ...args], {
        cwd: dir,
        env,
        timeout: 120_000,
        maxBuffer: 16 * 1024 * 1024,
      });
    } catch (error) {
      // osls prints its error on stdout: the message keeps both streams.
      const { stdout, stderr } = error as { stdout?: string; stderr?: string };
      throw new Error(`osls package ${args.join(' ')} failed:\n${stdout ?? ''}\n${stderr ?? ''}`, { cause: error });
    }
    const raw = JSON.parse(await readFile(join(dir, '.serverless/cloudformation-template-update-stack.json'), 'utf8')) as Template;
    const artifacts: Record<string, number> = {};
    const zipEntries: Record<string, string[]> = {};
    const extracted: Record<string, Record<string, Buffer>> = {};
    for (const file of await readdir(join(dir, '.serverless'))) {
      if (!file.endsWith('.zip')) continue;
      const name = file.slice(0, -'.zip'.length);
      artifacts[name] = (await stat(join(dir, '.serverless', file))).size;
      const entries = readZip(await readFile(join(dir, '.serverless', file)));
      zipEntries[name] = [...entries.keys()].sort();
      const { extract } = options;
      extracted[name] = Object.fromEntries([...entries].filter(([entry]) => extract?.test(entry) === true).map(([entry, read]) => [entry, read()]));
    }
    return { raw, effective: resolveConditions(raw), missingHandlers, artifacts, zipEntries, extracted };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ conditions

const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

function literal(value: Json | undefined): string {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new Error(`condition operand is not a literal: ${JSON.stringify(value)}`);
}

function evaluate(node: Json | undefined, conditions: JsonObject): boolean {
  if (!isObject(node)) throw new Error(`not a condition: ${JSON.stringify(node)}`);
  const [fn, args] = Object.entries(node)[0] ?? [];
  const list = Array.isArray(args) ? args : [];
  switch (fn) {
    case 'Fn::Equals':
      return literal(list[0]) === literal(list[1]);
    case 'Fn::Not':
      return !evaluate(list[0], conditions);
    case 'Fn::And':
      return list.every((c) => evaluate(c, conditions));
    case 'Fn::Or':
      return list.some((c) => evaluate(c, conditions));
    case 'Condition':
      return evaluate(conditions[literal(args)], conditions);
    default:
      throw new Error(`unsupported condition function ${fn}`);
  }
}

const NO_VALUE = Symbol('AWS::NoValue');

function resolveIfs(node: Json, decided: Record<string, boolean>): Json | typeof NO_VALUE {
  if (Array.isArray(node)) {
    return node.map((item) => resolveIfs(item, decided)).filter((item): item is Json => item !== NO_VALUE);
  }
  if (!isObject(node)) return node;
  if (node.Ref === 'AWS::NoValue' && Object.keys(node).length === 1) return NO_VALUE;
  const branch = node['Fn::If'];
  if (Array.isArray(branch) && Object.keys(node).length === 1) {
    const name = literal(branch[0]);
    if (!(name in decided)) throw new Error(`Fn::If names unknown condition ${name}`);
    return resolveIfs((decided[name] ? branch[1] : branch[2]) ?? null, decided);
  }
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    const resolved = resolveIfs(value, decided);
    if (resolved !== NO_VALUE) out[key] = resolved;
  }
  return out;
}

/** Decides every Condition (all operands are literals once osls has resolved the parameters). */
export function resolveConditions(template: Template): Template {
  const conditions = template.Conditions ?? {};
  const decided: Record<string, boolean> = {};
  for (const [name, node] of Object.entries(conditions)) decided[name] = evaluate(node, conditions);
  const resources: Record<string, Resource> = {};
  for (const [id, resource] of Object.entries(template.Resources)) {
    if (resource.Condition !== undefined && decided[resource.Condition] !== true) continue;
    resources[id] = resolveIfs(resource as unknown as Json, decided) as unknown as Resource;
  }
  const outputs: JsonObject = {};
  for (const [id, output] of Object.entries(template.Outputs ?? {})) {
    if (isObject(output) && typeof output.Condition === 'string' && decided[output.Condition] !== true) continue;
    const resolved = resolveIfs(output, decided);
    if (resolved !== NO_VALUE) outputs[id] = resolved;
  }
  return { ...template, Resources: resources, Outputs: outputs };
}

// ------------------------------------------------------------------ queries

export function resourcesOfType(template: Template, type: string): [string, Resource][] {
  return Object.entries(template.Resources).filter(([, resource]) => resource.Type === type);
}

export function props(resource: Resource | undefined): JsonObject {
  if (!resource?.Properties) throw new Error('resource has no Properties');
  return resource.Properties;
}

export function asArray<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

export interface Statement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: Json;
  NotResource?: Json;
  Principal?: Json;
  Condition?: JsonObject;
}

export interface PolicySource {
  /** Logical id of the role, policy or bucket policy. */
  owner: string;
  statement: Statement;
}

/** Every statement of every identity policy and bucket policy in the template. */
export function policyStatements(template: Template): { identity: PolicySource[]; bucket: PolicySource[] } {
  const identity: PolicySource[] = [];
  const bucket: PolicySource[] = [];
  const collect = (owner: string, document: Json | undefined, into: PolicySource[]) => {
    if (!isObject(document)) return;
    for (const statement of asArray(document.Statement)) {
      into.push({ owner, statement: statement as unknown as Statement });
    }
  };
  for (const [id, resource] of Object.entries(template.Resources)) {
    const p = resource.Properties ?? {};
    if (resource.Type === 'AWS::IAM::Role') {
      for (const policy of asArray(p.Policies as Json[] | undefined)) if (isObject(policy)) collect(id, policy.PolicyDocument, identity);
    } else if (resource.Type === 'AWS::IAM::Policy' || resource.Type === 'AWS::IAM::ManagedPolicy') {
      collect(id, p.PolicyDocument, identity);
    } else if (resource.Type === 'AWS::S3::BucketPolicy') {
      collect(id, p.PolicyDocument, bucket);
    }
  }
  return { identity, bucket };
}

export function actionsOf(statement: Statement): string[] {
  return asArray(statement.Action);
}

/** The logical id a `{Ref}` or `{Fn::GetAtt}` points at, if the value is one. */
export function referencedId(value: Json | undefined): string | undefined {
  if (!isObject(value)) return undefined;
  if (typeof value.Ref === 'string') return value.Ref;
  const getAtt = value['Fn::GetAtt'];
  if (Array.isArray(getAtt) && typeof getAtt[0] === 'string') return getAtt[0];
  if (typeof getAtt === 'string') return getAtt.split('.')[0];
  return undefined;
}

export function isIntrinsic(value: Json | undefined): boolean {
  return isObject(value) && Object.keys(value).length === 1 && /^(Ref|Fn::\w+)$/.test(Object.keys(value)[0] ?? '');
}

/** Functions by their key in serverless.yml (`ProcessLambdaFunction` -> `Process`). */
export function functions(template: Template): { id: string; base: string; resource: Resource }[] {
  return resourcesOfType(template, 'AWS::Lambda::Function').map(([id, resource]) => ({
    id,
    base: id.replace(/LambdaFunction$/, ''),
    resource,
  }));
}

export function environmentOf(resource: Resource): Record<string, Json> {
  const environment = props(resource).Environment;
  if (!isObject(environment) || !isObject(environment.Variables)) return {};
  return environment.Variables;
}

/** A scalar property as a string (numbers and booleans as CloudFormation reads them). */
export function scalar(value: Json | undefined): string {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new Error(`not a scalar: ${JSON.stringify(value)}`);
}

export { isObject };
