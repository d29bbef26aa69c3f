// The analyst's outputs: ranking.csv, ranking.json and a self-contained report.html (inline SVG: the top
// customers' daily curves against their regular behaviour, daily energy and correlation, the SOM map, the score
// distribution). No script, no external resource: the file opens offline.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isoDate } from '../../meter/index.js';
import { evaluationTable, type Evaluation } from './evaluate.js';
import type { FleetModel } from './model.js';
import { FEATURES } from './score.js';
import type { CustomerResult } from './score.js';
import { CH, dayView, type CustomerSeries } from './series.js';
import { prototype, uMatrix } from './som.js';
import { METHODS, type Ranking } from './rank.js';

export interface ReportInput {
  ranking: Ranking;
  model: FleetModel;
  results: Map<number, CustomerResult>;
  examples: CustomerSeries[];
  evaluation?: Evaluation;
  /** Meter ids known to steal (labels), to colour the score distribution. */
  thieves?: ReadonlySet<number>;
  /** Rows in the HTML table (the CSV and JSON hold everyone). Default 100. */
  top?: number;
  /** Where the readings came from, and how many (shown in the header). */
  source?: 'sql' | 'kv' | 'simulator';
  readings?: number;
}

const SOURCE_NAMES = { sql: 'CascaDB (SQL)', kv: 'the KVS day blobs', simulator: 'the simulator (no store)' } as const;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const csvCell = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

export function rankingCsv(r: Ranking): string {
  const head = ['rank', 'meter_id', 'customer_id', 'class', 'method', 'score', ...METHODS.map((m) => `score_${m}`), ...FEATURES.map((f) => `z_${f}`), 'usable_days', 'reasons'];
  const lines = [head.join(',')];
  for (const c of r.customers) {
    lines.push(
      [String(c.rank), String(c.meterId), csvCell(c.customerId), csvCell(c.customerClass), c.method, String(c.score), ...METHODS.map((m) => String(c.scores[m])), ...FEATURES.map((f) => String(c.z[f])), String(c.usableDays), csvCell(c.reasons.join('; '))].join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}

function polyline(xs: ArrayLike<number>, x0: number, y0: number, w: number, h: number, max: number, style: string): string {
  const n = xs.length;
  const pts: string[] = [];
  for (let i = 0; i < n; i++) {
    const v = xs[i]!;
    if (!Number.isFinite(v)) continue;
    pts.push(`${(x0 + (i / Math.max(1, n - 1)) * w).toFixed(1)},${(y0 + h - (Math.max(0, v) / (max || 1)) * h).toFixed(1)}`);
  }
  return pts.length ? `<polyline fill="none" ${style} points="${pts.join(' ')}"/>` : '';
}

/** A customer's recent daily curves (kW, hourly) over its regular behaviour (mean of its reference days). */
function curvesSvg(s: CustomerSeries, r: CustomerResult): string {
  const W = 560;
  const H = 200;
  const hourlyKw = (d: number) => {
    const v = dayView(s, CH.p, d);
    const out = new Float64Array(24).fill(Number.NaN);
    for (let h = 0; h < 24; h++) {
      let t = 0;
      let n = 0;
      for (let k = 0; k < 4; k++) if (!Number.isNaN(v[4 * h + k]!)) {
          t += v[4 * h + k]!;
          n++;
        }
      if (n) out[h] = t / n / 1000;
    }
    return out;
  };
  const usable: number[] = [];
  for (let d = 0; d < s.days; d++) if (r.daily.usable[d]) usable.push(d);
  const ref = usable.slice(0, r.referenceDays);
  const recent = usable.slice(usable.length - r.recentDays).slice(-10);
  const regular = new Float64Array(24);
  for (const d of ref) {
    const c = hourlyKw(d);
    for (let h = 0; h < 24; h++) regular[h]! += c[h]! / ref.length;
  }
  let max = 0;
  const curves = recent.map(hourlyKw);
  for (const c of [...curves, regular]) for (const v of c) if (v > max) max = v;
  const L = 60; // left margin: room for the kW label
  const PW = W - L - 10;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H + 44}" viewBox="0 0 ${W} ${H + 44}">`, `<rect x="${L}" y="5" width="${PW}" height="${H}" fill="#fafafa" stroke="#ccc"/>`];
  for (const c of curves) parts.push(polyline(c, L, 5, PW, H, max, 'stroke="#d62728" stroke-opacity="0.45" stroke-width="1"'));
  parts.push(polyline(regular, L, 5, PW, H, max, 'stroke="#1f77b4" stroke-width="3"'));
  // Point h is the mean of hour h…h+1 (local time).
  for (let h = 0; h < 24; h += 3) parts.push(`<text x="${L + (h / 23) * PW}" y="${H + 20}" font-size="10" text-anchor="middle">${String(h).padStart(2, '0')}:00</text>`);
  parts.push(`<text x="${L - 4}" y="14" font-size="10" text-anchor="end">${max.toFixed(max < 10 ? 2 : 0)} kW</text><text x="${L - 4}" y="${H + 5}" font-size="10" text-anchor="end">0 kW</text>`);
  // Legend under the plot: inside it would hide the evening peak.
  parts.push(`<text x="${L}" y="${H + 38}" font-size="11"><tspan fill="#1f77b4">━ regular: mean of ${ref.length} reference days (kW by hour)</tspan>   <tspan fill="#d62728">— ${curves.length} most recent days</tspan></text>`);
  parts.push('</svg>');
  return parts.join('');
}

/** Daily energy bars and the daily correlation with regular behaviour, over the window. */
function dailySvg(r: CustomerResult): string {
  const W = 560;
  const H = 120;
  const n = r.days;
  let max = 0;
  for (let d = 0; d < n; d++) if (r.daily.energyKwh[d]! > max) max = r.daily.energyKwh[d]!;
  const L = 60;
  const PW = W - L - 36; // right margin: room for the correlation scale
  const bw = PW / n;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H + 54}" viewBox="0 0 ${W} ${H + 54}">`, `<rect x="${L}" y="5" width="${PW}" height="${H}" fill="#fafafa" stroke="#ccc"/>`];
  for (let d = 0; d < n; d++) {
    const e = r.daily.energyKwh[d]!;
    if (!Number.isFinite(e)) continue;
    const h = (e / (max || 1)) * (H / 2);
    const bad = r.daily.zeros[d]! > 0 || r.daily.flat[d]! > 0 || r.daily.phaseZero[d]! > 0;
    parts.push(`<rect x="${(L + d * bw).toFixed(1)}" y="${(5 + H - h).toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${h.toFixed(1)}" fill="${bad ? '#ff7f0e' : '#9ecae1'}"><title>${isoDate(r.firstDay + d)}: ${e.toFixed(1)} kWh</title></rect>`);
  }
  const corr = Array.from(r.daily.corr, (c) => (Number.isFinite(c) ? (c + 1) / 2 : Number.NaN));
  parts.push(polyline(corr, L + bw / 2, 5, PW - bw, H, 1, 'stroke="#2ca02c" stroke-width="2"'));
  if (r.onset !== null) {
    const x = L + r.onset * bw;
    parts.push(`<line x1="${x}" x2="${x}" y1="5" y2="${H + 5}" stroke="#000" stroke-dasharray="4 3"/><text x="${x + 3}" y="${5 + H / 2 - 4}" font-size="10">change ${isoDate(r.firstDay + r.onset)}</text>`);
  }
  // Bars fill the lower half (left scale, kWh); the correlation line spans the height (right scale, −1…1).
  parts.push(`<text x="${L - 4}" y="${5 + H / 2 + 4}" font-size="10" text-anchor="end">${max.toFixed(max < 10 ? 1 : 0)} kWh</text><text x="${L - 4}" y="${H + 5}" font-size="10" text-anchor="end">0 kWh</text>`);
  parts.push(`<g font-size="10" fill="#2ca02c"><text x="${L + PW + 4}" y="14">+1</text><text x="${L + PW + 4}" y="${5 + H / 2 + 4}">0</text><text x="${L + PW + 4}" y="${H + 5}">−1</text></g>`);
  parts.push(`<text x="${L}" y="${H + 18}" font-size="10">${isoDate(r.firstDay)}</text><text x="${L + PW}" y="${H + 18}" font-size="10" text-anchor="end">${isoDate(r.firstDay + n - 1)}</text>`);
  parts.push(`<text x="${L}" y="${H + 32}" font-size="11"><tspan fill="#2ca02c">— daily correlation with regular behaviour (right scale)</tspan></text>`);
  parts.push(`<text x="${L}" y="${H + 47}" font-size="11">bars: daily kWh (left scale); <tspan fill="#ff7f0e">orange</tspan>: zeros, flat profile or a dead phase that day</text>`);
  parts.push('</svg>');
  return parts.join('');
}

/** The SOM: each cell's prototype curve on its U-matrix shade (dark = far from neighbours), with its hit count. */
function somSvg(model: FleetModel, hits: Uint32Array): string {
  const { width, height } = model.som;
  const C = 64;
  const u = uMatrix(model.som);
  const umax = Math.max(...u, 1e-9);
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width * C}" height="${height * C}" viewBox="0 0 ${width * C} ${height * C}">`];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const c = y * width + x;
      const g = Math.round(255 - (u[c]! / umax) * 140);
      parts.push(`<rect x="${x * C}" y="${y * C}" width="${C}" height="${C}" fill="rgb(${g},${g},${g})" stroke="#fff"/>`);
      const p = prototype(model.som, c);
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of p) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      const shifted = Array.from(p, (v) => v - lo);
      parts.push(polyline(shifted, x * C + 4, y * C + 6, C - 8, C - 20, hi - lo || 1, 'stroke="#08306b" stroke-width="1.5"'));
      parts.push(`<text x="${x * C + C - 4}" y="${y * C + C - 4}" font-size="9" text-anchor="end">${hits[c]}</text>`);
    }
  }
  parts.push('</svg>');
  return parts.join('');
}

function histogramSvg(values: number[], thief: boolean[]): string {
  const W = 560;
  const H = 160;
  const bins = 40;
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  if (!(hi > lo)) hi = lo + 1;
  const a = new Array<number>(bins).fill(0);
  const b = new Array<number>(bins).fill(0);
  values.forEach((v, i) => {
    const k = Math.min(bins - 1, Math.floor(((v - lo) / (hi - lo)) * bins));
    (thief[i] ? b : a)[k]!++;
  });
  const max = Math.max(...a.map((x, i) => x + b[i]!), 1);
  const bw = (W - 50) / bins;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H + 25}" viewBox="0 0 ${W} ${H + 25}">`];
  for (let k = 0; k < bins; k++) {
    // sqrt scale: a few suspects stay visible beside thousands of ordinary customers.
    const ha = (Math.sqrt(a[k]!) / Math.sqrt(max)) * H;
    const hb = (Math.sqrt(a[k]! + b[k]!) / Math.sqrt(max)) * H - ha;
    const x = (40 + k * bw).toFixed(1);
    parts.push(`<rect x="${x}" y="${(5 + H - ha).toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${ha.toFixed(1)}" fill="#9ecae1"><title>${a[k]} customers</title></rect>`);
    if (b[k]) parts.push(`<rect x="${x}" y="${(5 + H - ha - hb).toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${hb.toFixed(1)}" fill="#d62728"><title>${b[k]} labelled thieves</title></rect>`);
  }
  parts.push(`<line x1="40" x2="${W - 10}" y1="${H + 5}" y2="${H + 5}" stroke="#999"/>`);
  for (let q = 0; q <= 4; q++) parts.push(`<text x="${40 + (q / 4) * (W - 50)}" y="${H + 20}" font-size="10" text-anchor="${q === 0 ? 'start' : q === 4 ? 'end' : 'middle'}">${(lo + (q / 4) * (hi - lo)).toFixed(hi - lo < 10 ? 2 : 1)}</text>`);
  parts.push(`<text x="36" y="14" font-size="10" text-anchor="end">${max}</text><text x="36" y="${H + 5}" font-size="10" text-anchor="end">0</text>`);
  parts.push('</svg>');
  return parts.join('');
}

export function reportHtml(i: ReportInput): string {
  const r = i.ranking;
  const top = r.customers.slice(0, i.top ?? 100);
  const hits = new Uint32Array(i.model.som.width * i.model.som.height);
  for (const res of i.results.values()) for (const c of res.daily.cell) if (c >= 0) hits[c]!++;
  const thief = r.customers.map((c) => i.thieves?.has(c.meterId) ?? false);
  const out: string[] = [];
  out.push(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>securegrid fraud ranking ${esc(r.from)} – ${esc(r.to)}</title>`);
  out.push('<style>body{font:14px/1.4 system-ui,sans-serif;margin:24px;max-width:1100px}table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}pre{background:#f4f4f4;padding:8px;overflow-x:auto}.n{text-align:right}section{margin:28px 0}</style></head><body>');
  out.push(`<h1>Fraud ranking, ${esc(r.from)} – ${esc(r.to)}</h1>`);
  const from = i.source ? ` from ${i.readings !== undefined ? `${i.readings.toLocaleString('en-US')} readings in ` : ''}${SOURCE_NAMES[i.source]}` : '';
  out.push(`<p>${r.customers.length} customers ranked by <b>${esc(r.method)}</b>${from}. Methods: ${Object.values(r.methods).map(esc).join('; ')}. The SOM (${r.model.somWidth}×${r.model.somHeight}) was trained on ${r.model.sampleProfiles} daily profiles of ${r.model.sampleCustomers} customers.</p>`);
  for (const n of r.notes) out.push(`<p><b>Note:</b> ${esc(n)}</p>`);
  if (i.evaluation) out.push(`<section><h2>Evaluation against labels</h2><pre>${esc(evaluationTable(i.evaluation))}</pre></section>`);
  out.push(`<section><h2>Top ${top.length}</h2><table><tr><th>#</th><th>meter</th><th>customer</th><th>class</th>${METHODS.map((m) => `<th>${m}</th>`).join('')}<th>why</th></tr>`);
  for (const c of top) {
    out.push(`<tr><td class="n">${c.rank}</td><td>${c.meterId}</td><td>${esc(c.customerId)}</td><td>${esc(c.customerClass)}</td>${METHODS.map((m) => `<td class="n">${c.scores[m].toFixed(3)}</td>`).join('')}<td>${c.reasons.map(esc).join('<br>') || '—'}${c.notes.length ? `<br><i>${c.notes.map(esc).join('; ')}</i>` : ''}</td></tr>`);
  }
  out.push('</table></section>');
  out.push('<section><h2>Top customers: daily curves against regular behaviour</h2>');
  for (const s of i.examples) {
    const res = i.results.get(s.info.meterId);
    const c = r.customers.find((x) => x.meterId === s.info.meterId);
    if (!res || !c) continue;
    out.push(`<h3>#${c.rank} meter ${s.info.meterId} (${esc(s.info.customerId)}, ${esc(s.info.customerClass)})</h3><p>${c.reasons.map(esc).join('<br>')}</p>`);
    out.push(curvesSvg(s, res), '<br>', dailySvg(res));
    if (c.days.length) out.push(`<table><tr><th>day</th><th>what deviates</th></tr>${c.days.map((d) => `<tr><td>${d.date}</td><td>${d.what.map(esc).join('; ')}</td></tr>`).join('')}</table>`);
  }
  out.push('</section>');
  out.push(`<section><h2>Self-organizing map</h2><p>Each cell: its prototype daily shape (hourly, z-normalized), shaded by the U-matrix (darker = farther from its neighbours: a class boundary), with the number of customer-days it classifies.</p>${somSvg(i.model, hits)}</section>`);
  out.push(`<section><h2>Score distribution (${esc(r.method)})</h2>${histogramSvg(r.customers.map((c) => c.score), thief)}<p>Customers per score bin (bar height on a square-root scale, so a few suspects stay visible beside thousands of ordinary customers)${i.thieves ? '; red: labelled thieves' : ''}.</p></section>`);
  out.push('</body></html>');
  return out.join('\n');
}

/** Writes ranking.csv, ranking.json and report.html into dir; returns their paths. */
export function writeFraudReport(dir: string, i: ReportInput): { csv: string; json: string; html: string } {
  mkdirSync(dir, { recursive: true });
  const csv = join(dir, 'ranking.csv');
  const json = join(dir, 'ranking.json');
  const html = join(dir, 'report.html');
  writeFileSync(csv, rankingCsv(i.ranking), { mode: 0o600 });
  writeFileSync(json, JSON.stringify({ ...i.ranking, ...(i.evaluation ? { evaluation: i.evaluation } : {}) }, null, 1), { mode: 0o600 });
  writeFileSync(html, reportHtml(i), { mode: 0o600 });
  return { csv, json, html };
}
