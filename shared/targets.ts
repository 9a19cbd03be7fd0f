import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { sourceSchema, TARGET_NAME_PATTERN, type CanonicalMessage } from '../schemas/canonical.js';
import { parseEventMapping, checkPropertyRenames, type EventMapping } from './event-mapping.js';
import { CREDENTIAL_ID_PATTERN, DATASET_GROUP_ARN_PATTERN } from './config.js';
import { ROLE_ARN_PATTERN } from './personalize/import-limits.js';
import { parseDatasetSchema, type DatasetSchemas } from './personalize/dataset-schema.js';
import { BULK_MODES, type BulkMode } from './bulk-mode.js';

/**
 * Targets (docs/targets.md): the Personalize destinations one pipeline feeds, each with its tracker,
 * datasets, schemas, event mapping and the routes that say which messages go to it. Declared in one
 * file (TARGETS_FILE); without it, today's variables describe the one target `default`.
 */

export const DEFAULT_TARGET = 'default';
const TARGET_NAME = TARGET_NAME_PATTERN;
const DATASET_ARN = /^arn:([a-z\d-]+):personalize:[a-z\d-]*:\d*:dataset\/.+$/;

/** A credential's id (the secret's `keyIds` maps each key to one): the file names ids, never keys. */
const credentialId = z.string().regex(CREDENTIAL_ID_PATTERN, 'must be 1-64 of A-Z, a-z, 0-9, ".", "_" and "-"');

const routeSchema = z.union([
  z.strictObject({ all: z.literal(true) }),
  z.strictObject({ sources: z.array(sourceSchema).min(1) }),
  /** By the write key or API key the request carried, named by its id in the collector's secret (`keyIds`). */
  z.strictObject({ credentials: z.array(credentialId).min(1) }),
  z.strictObject({
    /**
     * A dot path, matched as a string: into the canonical message (`in: "message"`, the default;
     * e.g. `properties.brand`), or into the message as the source sent it (`in: "sent"`; e.g.
     * Segment's `context.app.name`, an mParticle batch's `application_info.package`), which keeps
     * fields the canonical message does not.
     */
    match: z.strictObject({ in: z.enum(['message', 'sent']).default('message'), path: z.string().min(1), equals: z.array(z.string()).min(1) }),
  }),
]);
/** As declared: `match.in` may be left out (the canonical message). */
export type Route = z.input<typeof routeSchema>;

const datasetArn = z.string().regex(DATASET_ARN, 'must be a Personalize dataset ARN');

const targetSchema = z.strictObject({
  name: z.string().regex(TARGET_NAME, 'must be 1-32 of a-z, 0-9 and -, starting with a letter or digit'),
  trackingId: z.string().min(1).max(256).optional(),
  /** The role Personalize assumes to read this target's import files; unset: PERSONALIZE_IMPORT_ROLE_ARN. */
  importRoleArn: z.string().regex(ROLE_ARN_PATTERN, 'must be an IAM role ARN').optional(),
  /** Where the daily deletion step deletes users too (CreateDataDeletionJob). */
  datasetGroupArn: z.string().regex(DATASET_GROUP_ARN_PATTERN, 'must be a Personalize dataset group ARN').optional(),
  datasets: z.strictObject({ interactions: datasetArn.optional(), items: datasetArn.optional(), users: datasetArn.optional() }).default({}),
  /** Avro schema files, relative to the targets file; unset: the bundled ones (schemas/personalize). */
  schemas: z.strictObject({ interactions: z.string().min(1), items: z.string().min(1), users: z.string().min(1) }).optional(),
  /** Event-mapping file, relative to the targets file; unset: the deployment's mapping. */
  mapping: z.string().min(1).optional(),
  /** What this target's bulk import is for (docs/bulk-modes.md); unset: BULK_MODE. A new group can bootstrap while another streams. */
  bulkMode: z.enum(BULK_MODES).optional(),
  routes: z.array(routeSchema).min(1),
});

export const targetsFileSchema = z
  .strictObject({ $comment: z.string().optional(), targets: z.array(targetSchema).min(1) })
  .refine((f) => new Set(f.targets.map((t) => t.name)).size === f.targets.length, { message: 'target names must be unique', path: ['targets'] })
  // The default target is the deployment's variables (PERSONALIZE_*, EVENT_MAPPING): the file gives it routes only.
  .refine((f) => f.targets.every((t) => t.name !== DEFAULT_TARGET || (t.trackingId === undefined && t.importRoleArn === undefined && t.datasetGroupArn === undefined && t.schemas === undefined && t.mapping === undefined && t.bulkMode === undefined && Object.keys(t.datasets).length === 0)), {
    message: 'the default target takes its tracker, datasets, schemas, mapping and bulk mode from the variables: give it routes only',
    path: ['targets'],
  });

export interface Target {
  name: string;
  trackingId?: string | undefined;
  datasetGroupArn?: string | undefined;
  importRoleArn?: string | undefined;
  itemsDatasetArn?: string | undefined;
  usersDatasetArn?: string | undefined;
  interactionsDatasetArn?: string | undefined;
  schemas: DatasetSchemas;
  mapping: EventMapping;
  /** Unset: the deployment's BULK_MODE. */
  bulkMode?: BulkMode | undefined;
  routes: readonly Route[];
}

export class TargetsError extends Error {
  override name = 'TargetsError';
}

/** What a target falls back to: the deployment's own schemas, mapping and (for `default`) variables. */
export interface TargetDefaults {
  schemas: DatasetSchemas;
  mapping: EventMapping;
}

/** Parses a targets document; paths resolve against `baseDir`. Errors name the target and field. */
export function parseTargets(document: unknown, baseDir: string, defaults: TargetDefaults, origin = 'targets file'): Target[] {
  return declaredTargets(document, origin).map((t) => {
    const read = (file: string, what: string): unknown => {
      try {
        return JSON.parse(readFileSync(resolve(baseDir, file), 'utf8'));
      } catch (error) {
        throw new TargetsError(`${origin}: target ${t.name} ${what} ${file}: ${(error as Error).message}`);
      }
    };
    const schemas: DatasetSchemas = t.schemas
      ? {
          interactions: parseDatasetSchema(read(t.schemas.interactions, 'schemas.interactions'), 'Interactions'),
          items: parseDatasetSchema(read(t.schemas.items, 'schemas.items'), 'Items'),
          users: parseDatasetSchema(read(t.schemas.users, 'schemas.users'), 'Users'),
        }
      : defaults.schemas;
    const mapping = t.mapping ? parseEventMapping(read(t.mapping, 'mapping'), `target ${t.name} mapping ${t.mapping}`) : defaults.mapping;
    checkPropertyRenames(mapping, schemas, `target ${t.name} mapping`);
    return {
      name: t.name,
      trackingId: t.trackingId,
      datasetGroupArn: t.datasetGroupArn,
      importRoleArn: t.importRoleArn,
      interactionsDatasetArn: t.datasets.interactions,
      itemsDatasetArn: t.datasets.items,
      usersDatasetArn: t.datasets.users,
      schemas,
      mapping,
      bulkMode: t.bulkMode,
      routes: t.routes,
    };
  });
}

/** Reads TARGETS_FILE; undefined when it is not set (one target from the variables). */
export function loadTargetsFile(path: string | undefined, defaults: TargetDefaults): Target[] | undefined {
  if (path === undefined || path.trim() === '') return undefined;
  return parseTargets(readTargetsFile(path), dirname(path), defaults, `TARGETS_FILE ${path}`);
}

/** The declaration, validated; its files not read yet. */
function declaredTargets(document: unknown, origin: string): z.infer<typeof targetsFileSchema>['targets'] {
  const parsed = targetsFileSchema.safeParse(document);
  if (!parsed.success) {
    throw new TargetsError(`${origin} is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  return parsed.data.targets;
}

function readTargetsFile(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new TargetsError(`TARGETS_FILE ${path}: ${(error as Error).message}`);
  }
}

/**
 * The mapping the doors consult (docs/targets.md). The adapters read it only for what the source's
 * shape alone can answer: one interaction per product (`perProduct`, with the product's value path)
 * and refusing names no mapping takes. Each target maps event types itself, in the processor. With
 * several targets the doors take every target's entries, which must agree on `perProduct` and its
 * value path (a product list is split once, for every target), and refuse unmapped names only when
 * every target does.
 */
export function doorMapping(deployment: EventMapping, targets: readonly Pick<Target, 'name' | 'mapping'>[] | undefined): EventMapping {
  if (targets === undefined) return deployment;
  const events: EventMapping['events'] = {};
  const owner = new Map<string, string>();
  for (const { name, mapping } of targets) {
    for (const [event, entry] of Object.entries(mapping.events)) {
      const seen = Object.hasOwn(events, event) ? events[event] : undefined;
      if (seen === undefined) {
        events[event] = entry;
        owner.set(event, name);
        continue;
      }
      const split = (e: typeof entry) => (e.perProduct ? `perProduct with value ${e.eventValue ?? '(none)'}` : 'one interaction');
      if (split(seen) !== split(entry)) {
        throw new TargetsError(
          `target ${name} mapping entry "${event}": ${split(entry)}, but target ${owner.get(event)!}'s says ${split(seen)}; a product list is split once, at the door, for every target`,
        );
      }
    }
  }
  return { ...deployment, unmapped: targets.every((t) => t.mapping.unmapped === 'reject') ? 'reject' : 'passthrough', events };
}

/** The names TARGETS_FILE declares, `default` first (it exists without the file too); for pages and CLIs that only name targets. */
export function declaredTargetNames(path: string | undefined): string[] {
  if (path === undefined || path.trim() === '') return [];
  const names = declaredTargets(readTargetsFile(path), `TARGETS_FILE ${path}`).map((t) => t.name);
  return [DEFAULT_TARGET, ...names.filter((name) => name !== DEFAULT_TARGET)];
}

function valueAt(message: unknown, path: string): unknown {
  let value: unknown = message;
  for (const part of path.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** What the door knew of a message: the id of the key its request carried, and the message as sent. */
export interface RequestOrigin {
  credentialId?: string | undefined;
  /** The source message the canonical one came from (a Segment message, an mParticle batch, a feed entry). */
  sent?: unknown;
}

function routeTakes(route: Route, message: CanonicalMessage, origin: RequestOrigin): boolean {
  if ('all' in route) return true;
  if ('sources' in route) return route.sources.includes(message.source);
  if ('credentials' in route) return origin.credentialId !== undefined && route.credentials.includes(origin.credentialId);
  const value = valueAt(route.match.in === 'sent' ? origin.sent : message, route.match.path);
  return (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') && route.match.equals.includes(String(value));
}

/** The names of the targets a message goes to, in declaration order (pure). */
export function routeMessage(targets: readonly Pick<Target, 'name' | 'routes'>[], message: CanonicalMessage, origin: RequestOrigin = {}): string[] {
  return targets.filter((t) => t.routes.some((r) => routeTakes(r, message, origin))).map((t) => t.name);
}
