import type { DoorName, Expectation, LedgerEntry } from './inputs.js';

/**
 * The ledger: every input id against what the pipeline's stores say became of it. Pure; the run
 * gathers the observations (door answers, archive, Personalize endpoint, DLQ) and this decides.
 */

export interface DeadLetterSeen {
  eventId?: string;
  stage: string;
  reason: string;
  payload: string;
}

export interface Observations {
  /** Reasons the doors gave, per id (one per answered send that refused it). */
  doorReasons: Map<string, string[]>;
  /** Answered sends per id (duplicates and resends included). */
  sends: Map<string, number>;
  /** Archive copies per eventId (every line of every object). */
  archive: Map<string, number>;
  /** Personalize endpoint: accepted events per eventId, items per itemId, users per userId. */
  receivedEvents: Map<string, number>;
  receivedItems: Map<string, number>;
  receivedUsers: Map<string, number>;
  deadLetters: DeadLetterSeen[];
  /** Records the event source mapping gave up on (on-failure destination). */
  discardedRecords: number;
}

export interface OutcomeRow {
  expected: number;
  ok: number;
  /** Accounted for, but not where expected (e.g. a valid event refused, an invalid one delivered). */
  mismatched: number;
  /** Nowhere: not delivered, not in the DLQ, not refused at a door. */
  lost: number;
}

export interface LedgerResult {
  ids: number;
  byExpectation: Record<Expectation, OutcomeRow>;
  byDoor: Record<DoorName, number>;
  lost: number;
  mismatched: number;
  /** A few examples, for the report. */
  lostExamples: string[];
  mismatchExamples: string[];
  /** Valid ids seen at the Personalize endpoint, and deliveries beyond the first. */
  delivered: number;
  duplicatesDelivered: number;
  /** Valid ids found in the archive, and lines beyond the first per id. */
  archivedUnique: number;
  archiveCopies: number;
  archiveExtraCopies: number;
  dlqByReason: Map<string, number>;
  dlqRecords: number;
  rejectedByReason: Map<string, number>;
  rejectedAtDoor: number;
  /** Downstream records no input accounts for. */
  unattributed: { archive: number; received: number; deadLetters: number };
  rejectionsWithoutReason: number;
}

/** Groups reasons that differ only in values: quoted text, numbers, ids. */
export function reasonGroup(reason: string): string {
  return reason
    .replace(/"[^"]*"/g, '"…"')
    .replace(/\d+(\.\d+)?/g, '#')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 110);
}

const EXPECTATIONS: Expectation[] = ['deliver', 'held', 'link', 'personalize-reject', 'preflight', 'door', 'decode'];
const DOORS: DoorName[] = ['tracker-batch', 'track', 'segment-webhook', 'mparticle', 'items-feed', 'users-feed', 'raw-producer'];

export function reconcile(ledger: ReadonlyMap<string, LedgerEntry>, seen: Observations): LedgerResult {
  const byExpectation = Object.fromEntries(EXPECTATIONS.map((e) => [e, { expected: 0, ok: 0, mismatched: 0, lost: 0 }])) as Record<Expectation, OutcomeRow>;
  const byDoor = Object.fromEntries(DOORS.map((d) => [d, 0])) as Record<DoorName, number>;
  const dlqById = new Map<string, DeadLetterSeen[]>();
  const dlqByPayload = new Map<string, DeadLetterSeen[]>();
  for (const d of seen.deadLetters) {
    if (d.eventId !== undefined) push(dlqById, d.eventId, d);
    push(dlqByPayload, d.payload, d);
  }
  const result: LedgerResult = {
    ids: ledger.size,
    byExpectation,
    byDoor,
    lost: 0,
    mismatched: 0,
    lostExamples: [],
    mismatchExamples: [],
    delivered: 0,
    duplicatesDelivered: 0,
    archivedUnique: 0,
    archiveCopies: 0,
    archiveExtraCopies: 0,
    dlqByReason: new Map(),
    dlqRecords: seen.deadLetters.length,
    rejectedByReason: new Map(),
    rejectedAtDoor: 0,
    unattributed: { archive: 0, received: 0, deadLetters: 0 },
    rejectionsWithoutReason: 0,
  };
  const matchedDeadLetters = new Set<DeadLetterSeen>();

  for (const entry of ledger.values()) {
    byDoor[entry.door]++;
    const row = byExpectation[entry.expect];
    row.expected++;
    const reasons = seen.doorReasons.get(entry.id) ?? [];
    const sends = seen.sends.get(entry.id) ?? 0;
    const archived = seen.archive.get(entry.id) ?? 0;
    const received =
      entry.kind === 'item'
        ? (seen.receivedItems.get(entry.personalizeKey ?? '') ?? 0)
        : entry.kind === 'user'
          ? (seen.receivedUsers.get(entry.personalizeKey ?? '') ?? 0)
          : (seen.receivedEvents.get(entry.id) ?? 0);
    const letters = entry.expect === 'decode' ? (entry.payloadKeys ?? []).flatMap((k) => dlqByPayload.get(k) ?? []) : (dlqById.get(entry.id) ?? []);
    for (const d of letters) matchedDeadLetters.add(d);
    const stages = new Set(letters.map((d) => d.stage));
    result.rejectionsWithoutReason += reasons.filter((r) => r.trim() === '').length + letters.filter((d) => d.reason.trim() === '').length;
    if (reasons.length > 0) {
      result.rejectedAtDoor++;
      for (const r of reasons.slice(0, 1)) bump(result.rejectedByReason, `${entry.door}: ${reasonGroup(r)}`);
    }
    if (entry.kind !== 'raw' && entry.expect !== 'door') {
      if (archived > 0) {
        result.archivedUnique++;
        result.archiveCopies += archived;
        result.archiveExtraCopies += archived - 1;
      }
      if (received > 0) {
        result.delivered++;
        result.duplicatesDelivered += received - 1;
      }
    }

    const anywhere = reasons.length > 0 || archived > 0 || received > 0 || letters.length > 0;
    let ok: boolean;
    switch (entry.expect) {
      case 'deliver':
        ok = reasons.length === 0 && archived > 0 && received > 0 && letters.length === 0;
        break;
      case 'link':
      case 'held':
        ok = reasons.length === 0 && archived > 0 && received === 0 && letters.length === 0;
        break;
      case 'personalize-reject':
        ok = reasons.length === 0 && archived > 0 && received === 0 && stages.size === 1 && stages.has('personalize');
        break;
      case 'preflight':
        ok = reasons.length === 0 && archived === 0 && received === 0 && stages.size === 1 && stages.has('preflight');
        break;
      case 'door':
        // Refused on every send, and nothing of it downstream.
        ok = reasons.length >= sends && sends > 0 && archived === 0 && received === 0 && letters.length === 0;
        break;
      case 'decode':
        ok = letters.length > 0 && [...stages].every((s) => s === 'decode' || s === 'validate');
        break;
    }
    // A deliverable id archived but never sent, and not dead-lettered, is as lost as one never seen.
    const lost = !anywhere || (entry.expect === 'deliver' && reasons.length === 0 && letters.length === 0 && !(archived > 0 && received > 0));
    if (ok) row.ok++;
    else if (lost) {
      row.lost++;
      result.lost++;
      if (result.lostExamples.length < 10) result.lostExamples.push(`${entry.id} (${entry.expect}; archived ${archived}, received ${received})`);
    } else {
      row.mismatched++;
      result.mismatched++;
      if (result.mismatchExamples.length < 10) {
        result.mismatchExamples.push(
          `${entry.id} expected ${entry.expect}: door ${reasons.length}/${sends}, archived ${archived}, received ${received}, dlq [${[...stages].join(',')}]`,
        );
      }
    }
  }

  for (const d of seen.deadLetters) {
    bump(result.dlqByReason, `${d.stage}: ${reasonGroup(d.reason)}`);
    if (!matchedDeadLetters.has(d)) result.unattributed.deadLetters++;
  }
  for (const id of seen.archive.keys()) if (!ledger.has(id)) result.unattributed.archive++;
  for (const id of seen.receivedEvents.keys()) if (!ledger.has(id)) result.unattributed.received++;
  return result;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function bump(map: Map<string, number>, key: string, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}

const n = (value: number) => value.toLocaleString('en-US');

/** Markdown-friendly table of a run (also what `npm run chaos` prints). */
export function formatLedger(result: LedgerResult, extra: { title: string; inputs: [string, number | string][]; faults: [string, number | string][]; checks: [string, number | string][] }): string {
  const lines: string[] = [];
  const table = (header: string[], rows: (string | number)[][]) => {
    const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? n(c) : c)))];
    const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
    const line = (r: (string | number)[]) => `| ${r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]!) : String(c).padStart(widths[i]!))).join(' | ')} |`;
    lines.push(line(header), `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...cells.slice(1).map(line), '');
  };
  lines.push(`## ${extra.title}`, '');
  table(['inputs', 'count'], extra.inputs.map(([k, v]) => [k, v]));
  table(
    ['expected outcome (per eventId)', 'ids', 'as expected', 'mismatched', 'lost'],
    EXPECTATIONS.map((e) => [LABELS[e], result.byExpectation[e].expected, result.byExpectation[e].ok, result.byExpectation[e].mismatched, result.byExpectation[e].lost]),
  );
  table(
    ['delivery', 'count'],
    [
      ['valid ids received by Personalize (events by eventId, items/users by id)', result.delivered],
      ['duplicates delivered (receptions beyond the first)', result.duplicatesDelivered],
      ['valid ids in the archive (after dedupe by eventId)', result.archivedUnique],
      ['archive lines (copies before dedupe)', result.archiveCopies],
      ['archive copies beyond the first', result.archiveExtraCopies],
    ],
  );
  table(['DLQ records by stage: reason', 'records'], [...result.dlqByReason.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v]));
  table(['rejected at the door by door: reason (ids)', 'ids'], [...result.rejectedByReason.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v]));
  table(['faults injected and recoveries', 'count'], extra.faults);
  table(
    ['checks', 'value'],
    [
      ...extra.checks,
      ['rejections without a reason', result.rejectionsWithoutReason],
      ['downstream records no input accounts for (archive / received / DLQ)', `${result.unattributed.archive} / ${result.unattributed.received} / ${result.unattributed.deadLetters}`],
      ['mismatched', result.mismatched],
      ['**lost**', `**${result.lost}**`],
    ],
  );
  if (result.lostExamples.length > 0) lines.push('lost, for example:', ...result.lostExamples.map((e) => `- ${e}`), '');
  if (result.mismatchExamples.length > 0) lines.push('mismatched, for example:', ...result.mismatchExamples.map((e) => `- ${e}`), '');
  return lines.join('\n');
}

const LABELS: Record<Expectation, string> = {
  deliver: 'valid: archived and received by Personalize',
  held: 'partial item/user update, incomplete record: archived and held (stored, not sent)',
  link: 'identity link: archived (identity table)',
  'personalize-reject': 'refused by Personalize: archived + DLQ (personalize)',
  preflight: 'refused in pre-flight: DLQ (preflight)',
  door: 'invalid: refused at the door with a reason',
  decode: 'raw stream record: DLQ (decode/validate)',
};
