import type { ServerResponse } from 'node:http';
import { s3Client } from '../shared/aws/clients.js';
import { READINESS_LATEST_KEY, type ReadinessReport } from '../shared/export/readiness.js';
import { S3Bucket } from '../shared/aws/s3-bucket.js';
import type { UserSource } from '../shared/export/sql/readiness.js';
import { TARGETS_PREFIX } from '../shared/archive.js';
import { DEFAULT_TARGET } from '../shared/targets.js';

/**
 * `GET /readiness` on the local stack: the latest readiness report (imports/readiness/latest.json,
 * written by every export) as one self-contained HTML page with inline SVG charts: no scripts, no
 * external assets, works offline. `GET /readiness.json` returns the report itself.
 * `?target=<name>`: that target's report (targets/<name>/imports/readiness/latest.json, docs/targets.md).
 */

export interface ReadinessTargets {
  /** The targets the stack's TARGETS_FILE declares, `default` first; empty without the file. */
  names: readonly string[];
  /** The one asked for (`?target=`); undefined: the default. */
  requested: string | undefined;
}

export async function serveReadiness(res: ServerResponse, bucket: string, format: 'html' | 'json', targets: ReadinessTargets = { names: [], requested: undefined }): Promise<void> {
  const target = targets.requested ?? DEFAULT_TARGET;
  if (target !== DEFAULT_TARGET && !targets.names.includes(target)) {
    const declared = targets.names.length > 0 ? `declared: ${targets.names.join(', ')}` : 'no TARGETS_FILE';
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ message: `target ${target} is not declared (${declared})` }));
    return;
  }
  const root = target === DEFAULT_TARGET ? '' : `${TARGETS_PREFIX}${target}/`;
  const report = (await new S3Bucket(s3Client(), bucket, root).getJson(READINESS_LATEST_KEY)) as ReadinessReport | undefined;
  if (format === 'json') {
    const missing = { message: `no readiness report yet for target ${target}: run npm run export` };
    res.writeHead(report ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(report ?? missing));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(renderReadinessPage(report, { names: targets.names, shown: target }));
}

/** Links to every target's page, the shown one marked; nothing with one target. */
function targetNav(targets: { names: readonly string[]; shown: string }): string {
  if (targets.names.length < 2) return '';
  const links = targets.names.map((name) =>
    name === targets.shown ? `<strong>${esc(name)}</strong>` : `<a href="/readiness${name === DEFAULT_TARGET ? '' : `?target=${encodeURIComponent(name)}`}">${esc(name)}</a>`,
  );
  return `<p id="targets">Targets: ${links.join(' · ')}</p>`;
}

const esc = (text: string | number) =>
  String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const fmt = (n: number) => n.toLocaleString('en-US');
const pct = (share: number) => `${Number((share * 100).toFixed(1))}%`;

/** Colours for event types (cycled) and for the user-id sources. */
const PALETTE = ['#2563eb', '#f59e0b', '#10b981', '#ef4444', '#8b5cf6', '#06b6d4', '#ec4899', '#84cc16'];
const SOURCES: { key: UserSource; label: string; colour: string }[] = [
  { key: 'own', label: 'own user id', colour: '#2563eb' },
  { key: 'stitched', label: 'stitched (processor)', colour: '#10b981' },
  { key: 'backfilled', label: 'backfilled (export)', colour: '#f59e0b' },
  { key: 'session-as-user', label: 'session as user', colour: '#8b5cf6' },
  { key: 'anonymous', label: 'anonymous, no link', colour: '#9ca3af' },
];

export function renderReadinessPage(report: ReadinessReport | undefined, targets: { names: readonly string[]; shown: string } = { names: [], shown: DEFAULT_TARGET }): string {
  const body = report ? reportBody(report) : `<p class="empty">No readiness report yet. Export a day (<code>npm run export -- --date YYYY-MM-DD</code>) and reload.</p>`;
  const title = targets.shown === DEFAULT_TARGET ? 'Personalize readiness' : `Personalize readiness: target ${esc(targets.shown)}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#111827}
h1{font-size:1.5rem;margin-bottom:.25rem} h2{font-size:1.15rem;margin-top:2rem}
.verdict{display:inline-block;padding:.3rem .8rem;border-radius:.4rem;font-weight:700;color:#fff}
.verdict.ready{background:#059669} .verdict.not-ready{background:#dc2626}
table{border-collapse:collapse;margin:.5rem 0} td,th{padding:.25rem .75rem;border-bottom:1px solid #e5e7eb;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums} .pass{color:#059669;font-weight:600} .fail{color:#dc2626;font-weight:600}
.muted{color:#6b7280} .legend span{display:inline-block;margin-right:1rem} .swatch{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-1px}
svg text{font:11px system-ui,sans-serif;fill:#374151} code{background:#f3f4f6;padding:0 .2rem}
</style></head>
<body>
<h1>${title}</h1>
${targetNav(targets)}${body}
</body></html>
`;
}

function reportBody(r: ReadinessReport): string {
  const ready = r.verdict === 'READY';
  const checks = r.checks
    .map(
      (c) =>
        `<tr data-check="${esc(c.id)}"${c.required ? '' : ' class="muted"'}><td>${esc(c.label)}</td>` +
        `<td class="n">${c.id === 'users-with-two-share' ? pct(c.value) : fmt(c.value)}</td>` +
        `<td class="n">${c.id === 'users-with-two-share' ? pct(c.threshold) : fmt(c.threshold)}</td>` +
        `<td class="${c.pass ? 'pass' : 'fail'}">${c.pass ? 'pass' : 'fail'}</td></tr>`,
    )
    .join('\n');
  const types = Object.entries(r.interactions.byType).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const typeRows = types.map(([type, n]) => `<tr data-type="${esc(type)}"><td>${esc(type)}</td><td class="n">${fmt(n)}</td></tr>`).join('\n');
  const list = (ids: readonly string[]) => (ids.length === 0 ? '' : `<p class="muted">Most used first: ${ids.map((id) => `<code>${esc(id)}</code>`).join(', ')}</p>`);
  return `<p><span id="verdict" class="verdict ${ready ? 'ready' : 'not-ready'}">${esc(r.verdict)}</span>
${ready && !r.recommended ? ' <span class="muted">above the minimums, below the recommended amounts</span>' : ''}</p>
<p id="line"><code>${esc(r.line)}</code></p>
<p class="muted">Written by the export of ${esc(r.date)} at ${esc(r.generatedAt)}; covers ${r.days.length} day(s)${r.days.length > 0 ? `, ${esc(r.days[0]!)} to ${esc(r.days.at(-1)!)}` : ''}.
Counts are what Personalize will hold for training, bulk imports and streamed events together: each valid interaction once, with a user id, deleted users left out.</p>
${r.unreadableDays.length > 0 ? `<p class="fail">Day files that could not be read (left out): ${r.unreadableDays.map(esc).join(', ')}</p>` : ''}

<h2>Personalize's minimums</h2>
<table id="checks"><thead><tr><th>check</th><th>now</th><th>needed</th><th></th></tr></thead><tbody>
${checks}
</tbody></table>
<p class="muted">${fmt(r.interactions.total)} interactions from ${fmt(r.interactions.users)} users, ${fmt(r.interactions.usersWithTwo)} of them with two or more.
${r.interactions.events > r.interactions.total ? `${fmt(r.interactions.events - r.interactions.total)} events repeat another's user, item, second, type and value: Personalize keeps such records once.` : ''}</p>

<h2>Interactions per day and event type</h2>
${dayChart(r, types.map(([t]) => t))}

<h2>Interactions per event type</h2>
<table id="types"><tbody>
${typeRows}
<tr><td class="muted">anonymous, not counted</td><td class="n">${fmt(r.interactions.anonymous)}</td></tr>
</tbody></table>

<h2>Where the user id comes from</h2>
${shareChart(r)}

<h2>Catalog and profiles</h2>
<table id="gaps"><tbody>
<tr data-gap="items"><td>items named by interactions</td><td class="n">${fmt(r.items.referenced)}</td></tr>
<tr data-gap="items-without-metadata"><td>… without an item record (no catalog metadata)</td><td class="n">${fmt(r.items.withoutMetadata)}</td></tr>
<tr data-gap="users"><td>users with interactions</td><td class="n">${fmt(r.users.withInteractions)}</td></tr>
<tr data-gap="users-without-profile"><td>… without a user record (no profile)</td><td class="n">${fmt(r.users.withoutProfile)}</td></tr>
</tbody></table>
${r.items.withoutMetadata > 0 ? `<p>Items without metadata.</p>${list(r.items.sample)}` : ''}
${r.users.withoutProfile > 0 ? `<p>Users without a profile.</p>${list(r.users.sample)}` : ''}`;
}

/** Stacked columns: a day per column, an event type per segment, anonymous events as a grey cap. */
function dayChart(r: ReadinessReport, types: readonly string[]): string {
  if (r.byDay.length === 0) return '<p class="muted">No interactions yet.</p>';
  const width = 720;
  const height = 240;
  const left = 48;
  const bottom = 40;
  const top = 10;
  const plot = height - bottom - top;
  const max = Math.max(1, ...r.byDay.map((d) => d.total + d.anonymous));
  const band = (width - left) / r.byDay.length;
  const bar = Math.max(2, Math.min(48, band * 0.7));
  const colour = (type: string) => PALETTE[types.indexOf(type) % PALETTE.length] ?? '#6b7280';
  const every = Math.ceil(r.byDay.length / 12);
  const columns = r.byDay
    .map((d, i) => {
      const x = left + i * band + (band - bar) / 2;
      let y = top + plot;
      const segments = [...types.filter((t) => (d.byType[t] ?? 0) > 0).map((t) => [t, d.byType[t]!, colour(t)] as const), ...(d.anonymous > 0 ? [['anonymous', d.anonymous, '#d1d5db'] as const] : [])]
        .map(([type, n, fill]) => {
          const h = (n / max) * plot;
          y -= h;
          return `<rect class="seg" x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${bar.toFixed(1)}" height="${h.toFixed(1)}" fill="${fill}" data-day="${esc(d.day)}" data-type="${esc(type)}" data-value="${n}"><title>${esc(d.day)} ${esc(type)}: ${fmt(n)}</title></rect>`;
        })
        .join('');
      const label = i % every === 0 ? `<text x="${(x + bar / 2).toFixed(1)}" y="${height - bottom + 14}" text-anchor="middle">${esc(d.day.slice(5))}</text>` : '';
      return segments + label;
    })
    .join('\n');
  const legend = [...types.map((t) => [t, colour(t)] as const), ['anonymous (not counted)', '#d1d5db'] as const]
    .map(([t, c]) => `<span><i class="swatch" style="background:${c}"></i>${esc(t)}</span>`)
    .join('');
  return `<svg id="chart-days" role="img" aria-label="Interactions per day and event type" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">
<line x1="${left}" y1="${top + plot}" x2="${width}" y2="${top + plot}" stroke="#9ca3af"/>
<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plot}" stroke="#9ca3af"/>
<text x="${left - 6}" y="${top + 4}" text-anchor="end">${fmt(max)}</text><text x="${left - 6}" y="${top + plot}" text-anchor="end">0</text>
${columns}
</svg>
<p class="legend">${legend}</p>`;
}

/** One 100% bar of interactions by where their user id comes from. */
function shareChart(r: ReadinessReport): string {
  const total = SOURCES.reduce((n, s) => n + (r.userIds[s.key] ?? 0), 0);
  if (total === 0) return '<p class="muted">No interactions yet.</p>';
  const width = 720;
  let x = 0;
  const segments = SOURCES.filter((s) => (r.userIds[s.key] ?? 0) > 0)
    .map((s) => {
      const n = r.userIds[s.key];
      const w = (n / total) * width;
      const rect = `<rect class="seg" x="${x.toFixed(1)}" y="0" width="${w.toFixed(1)}" height="28" fill="${s.colour}" data-source="${s.key}" data-value="${n}"><title>${esc(s.label)}: ${fmt(n)} (${pct(n / total)})</title></rect>`;
      x += w;
      return rect;
    })
    .join('');
  const rows = SOURCES.map(
    (s) =>
      `<tr data-source="${s.key}"><td><i class="swatch" style="background:${s.colour}"></i>${esc(s.label)}</td><td class="n">${fmt(r.userIds[s.key] ?? 0)}</td><td class="n">${pct((r.userIds[s.key] ?? 0) / total)}</td></tr>`,
  ).join('\n');
  return `<svg id="chart-sources" role="img" aria-label="Share of interactions by user id source" width="${width}" height="28" viewBox="0 0 ${width} 28">${segments}</svg>
<table id="sources"><tbody>
${rows}
</tbody></table>`;
}
