import { interactionSchema, itemSchema, userSchema, type InteractionMessage, type ItemMessage, type UserMessage } from '../../schemas/canonical.js';
import { CATEGORICAL_MAX_LENGTH, csvValue, shapeProperties, toEpochSeconds, type CsvInput, type DatasetSchema } from '../personalize/dataset-schema.js';

/**
 * Pure conversions from archived lines to CSV cells. Nothing here does I/O, so the rules (which
 * line is rejected and why, what each column holds) are unit-tested on their own.
 */

export type ExportKind = 'interactions' | 'items' | 'users';
export const EXPORT_KINDS: readonly ExportKind[] = ['interactions', 'items', 'users'];

export type ExportMessage = InteractionMessage | ItemMessage | UserMessage;
export type MessageOf<K extends ExportKind> = K extends 'interactions' ? InteractionMessage : K extends 'items' ? ItemMessage : UserMessage;

const SCHEMA_OF = { interactions: interactionSchema, items: itemSchema, users: userSchema } as const;
const KIND_OF: Record<ExportKind, string> = { interactions: 'interaction', items: 'item', users: 'user' };

export type ParsedLine<K extends ExportKind> = { ok: true; message: MessageOf<K> } | { ok: false; reason: string };

const REASON_MAX = 160;
const clip = (text: string) => (text.length > REASON_MAX ? `${text.slice(0, REASON_MAX - 1)}…` : text);

/**
 * One archive line -> the canonical message of the folder's kind. The archive's own fields
 * (`stitched`, `stream`) are dropped by the schema; the stitched userId is part of the message.
 * Reasons are short and value-free (they are counted by reason, and must not carry ids).
 */
export function parseArchiveLine<K extends ExportKind>(kind: K, line: string): ParsedLine<K> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { ok: false, reason: 'invalid JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'not a JSON object' };
  const found = (value as { kind?: unknown }).kind;
  if (found !== KIND_OF[kind]) {
    return { ok: false, reason: `kind ${typeof found === 'string' ? `"${clip(found).slice(0, 20)}"` : 'missing'} in the ${kind} archive` };
  }
  const parsed = SCHEMA_OF[kind].safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, reason: clip(`schema: ${issue ? `${issue.path.join('.') || '(message)'}: ${issue.message}` : 'invalid'}`) };
  }
  return { ok: true, message: parsed.data as MessageOf<K> };
}

/** The key a line is partitioned by: the session for interactions (duplicates and backfill stay together), the id for upserts. */
export function partitionKeyOf(message: ExportMessage): string {
  switch (message.kind) {
    case 'interaction':
      return message.sessionId;
    case 'item':
      return message.itemId;
    case 'user':
      return message.userId;
  }
}

/** Latest version per id: later event time wins; on a tie the larger eventId, so re-runs agree. */
export function isNewerVersion(candidate: { timestamp: number; eventId: string }, current: { timestamp: number; eventId: string }): boolean {
  if (candidate.timestamp !== current.timestamp) return candidate.timestamp > current.timestamp;
  return candidate.eventId > current.eventId;
}

export type RowResult = { ok: true; cells: string[]; dropped: string[] } | { ok: false; reason: string };

/** A value-free form of a shapeProperties reason, for counting: "price: expected a number ..." keeps only the rule. */
function droppedReason(reason: string): string {
  return clip(reason.replace(/"[^"]*"/g, '""'));
}

function cells(schema: DatasetSchema, top: Readonly<Record<string, CsvInput>>, properties: Record<string, unknown> | undefined): RowResult {
  // No JSON length cap: that limit belongs to the API's `properties` string, not to bulk CSV.
  const shaped = shapeProperties(schema, properties, { maxJsonLength: Number.POSITIVE_INFINITY });
  const dropped = shaped.dropped.map((d) => droppedReason(d.reason));
  const out: string[] = [];
  for (const field of schema.fields) {
    const raw: CsvInput = Object.hasOwn(top, field.name) ? top[field.name] : shaped.properties[field.propertyKey];
    let text = csvValue(field, raw);
    if (field.name === 'IMPRESSION' && text.length > CATEGORICAL_MAX_LENGTH) {
      // FACTS §4a: the pipes count toward the 1000-character limit; the list is optional, the row is not.
      dropped.push(`IMPRESSION: over ${CATEGORICAL_MAX_LENGTH} characters with its pipes (FACTS §4a)`);
      text = '';
    }
    if (text === '' && !field.nullable) return { ok: false, reason: `${field.name} is empty but required by the ${schema.type} schema` };
    out.push(text);
  }
  return { ok: true, cells: out, dropped };
}

/** Interactions row in schema order (FACTS §4a–4b); `userId` is the resolved one (own, stitched, backfilled or session). */
export function interactionRow(schema: DatasetSchema, message: InteractionMessage, userId: string): RowResult {
  return cells(
    schema,
    {
      USER_ID: userId,
      ITEM_ID: message.itemId,
      EVENT_TYPE: message.eventType,
      EVENT_VALUE: message.eventValue,
      TIMESTAMP: toEpochSeconds(message.timestamp),
      IMPRESSION: message.impression,
      RECOMMENDATION_ID: message.recommendationId,
      EVENT_ATTRIBUTION_SOURCE: message.eventAttributionSource,
    },
    message.properties,
  );
}

export function itemRow(schema: DatasetSchema, message: ItemMessage): RowResult {
  return cells(schema, { ITEM_ID: message.itemId }, message.properties);
}

export function userRow(schema: DatasetSchema, message: UserMessage): RowResult {
  return cells(schema, { USER_ID: message.userId }, message.properties);
}
