// The billing report (FORMAT.md, "Report"): its JSON shape, the hash over its canonical serialization, the
// readable Markdown page, and writing both to a directory.
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppliedTariff } from './tariff.js';

export const REPORT_FORMAT = 'securegrid-bill/1';

export type FindingCode =
  | 'gap' // readings missing for these slots; their intervals are estimated
  | 'invalid-signature' // a stored reading whose proof or batch signature does not verify: not used
  | 'malformed' // a stored row that is not a reading (unencodable values): not used
  | 'duplicate' // a second reading for a slot, or a copy of a signed reading: not used
  | 'foreign-meter' // a signed reading of another meter stored under this one: not used
  | 'off-grid' // a reading whose ts is not on the period's 15-minute grid: not used
  | 'register-decrease' // the energy register went down: the interval is billed 0
  | 'register-inconsistent' // the register step disagrees with the interval's signed demand
  | 'no-readings'; // a meter with no usable reading in the period

export type Severity = 'error' | 'warning';

export interface Finding {
  code: FindingCode;
  severity: Severity;
  meter: number;
  /** Interval ends (epoch ms) of the first and last slot concerned, when there are slots. */
  fromMs?: number;
  toMs?: number;
  from?: string;
  to?: string;
  count: number;
  message: string;
}

export interface BillLine {
  window: string;
  energyWh: number;
  /** Part of energyWh that is estimated (FORMAT.md, rules E1–E3). */
  estimatedWh: number;
  energyKwh: number;
  pricePerKwh: number;
  priceMicro: number;
  amountCents: number;
  amount: string;
}

export type OpeningSource = 'reading' | 'demand' | 'none';

/** [meter, ts, batch index into `batches`, leaf index, leaf hash hex, register Wh]. */
export type ReadingEntry = [number, number, number, number, string, number];

export interface BillingReport {
  format: typeof REPORT_FORMAT;
  customer: { id: string; class: string; tariff: string };
  period: { label: string; from: string; to: string; fromMs: number; toMs: number; utcOffsetMinutes: number; slots: number };
  meters: number[];
  source: 'sql' | 'kv';
  metrologyKeyId: string;
  tariff: { name: string; digest: string; applied: AppliedTariff };
  currency: string;
  summary: { intervals: number; measured: number; estimated: number; readingsUsed: number; readingsRejected: number; findings: Partial<Record<FindingCode, number>> };
  energy: { totalWh: number; totalKwh: number; estimatedWh: number };
  lines: BillLine[];
  charges: Array<{ name: string; per: string; amountCents: number; amount: string }>;
  taxes: Array<{ name: string; rate: number; ratePpm: number; amountCents: number; amount: string }>;
  totalCents: number;
  total: string;
  openings: Array<{ meter: number; source: OpeningSource; registerWh: number | null }>;
  /** [meter, interval end ts, Wh] of every estimated interval. */
  estimates: Array<[number, number, number]>;
  findings: Finding[];
  batches: string[];
  readings: ReadingEntry[];
  hash: { algorithm: 'sha256'; serialization: typeof REPORT_FORMAT; value: string };
  /** Not covered by the hash. */
  generatedAt: string;
}

export const money = (cents: number): string => `${cents < 0 ? '-' : ''}${Math.floor(Math.abs(cents) / 100)}.${String(Math.abs(cents) % 100).padStart(2, '0')}`;

const opt = (v: number | undefined) => (v === undefined ? '-' : String(v));

/** A report without its readings, hash and generatedAt: what billing computes before writing it out. */
export type ReportBody = Omit<BillingReport, 'hash' | 'generatedAt' | 'readings'>;

/** The `reading` lines of the serialization, from report entries. */
export function readingLines(r: Pick<BillingReport, 'readings' | 'batches'>): string {
  let out = '';
  for (const [m, ts, bi, leaf, h, reg] of r.readings) out += `reading\t${m}\t${ts}\t${r.batches[bi]}\t${leaf}\t${h}\t${reg}\n`;
  return out;
}

/** The serialization around the reading lines: everything before them and everything after. */
function serializationAround(r: ReportBody): [string, string] {
  const head: string[] = [REPORT_FORMAT, `customer\t${r.customer.id}`, `period\t${r.period.fromMs}\t${r.period.toMs}`, `tariff\t${r.tariff.name}\t${r.tariff.digest}`, `metrology-key\t${r.metrologyKeyId}`];
  for (const m of r.meters) head.push(`meter\t${m}`);
  const tail: string[] = [];
  for (const [m, ts, wh] of r.estimates) tail.push(`estimate\t${m}\t${ts}\t${wh}`);
  for (const o of r.openings) tail.push(`opening\t${o.meter}\t${o.source}\t${o.registerWh ?? '-'}`);
  for (const f of r.findings) tail.push(`finding\t${f.code}\t${f.meter}\t${opt(f.fromMs)}\t${opt(f.toMs)}\t${f.count}`);
  for (const l of r.lines) tail.push(`line\t${l.window}\t${l.energyWh}\t${l.estimatedWh}\t${l.priceMicro}\t${l.amountCents}`);
  for (const c of r.charges) tail.push(`charge\t${c.name}\t${c.amountCents}`);
  for (const t of r.taxes) tail.push(`tax\t${t.name}\t${t.ratePpm}\t${t.amountCents}`);
  tail.push(`total\t${r.totalCents}`);
  return [`${head.join('\n')}\n`, `${tail.join('\n')}\n`];
}

/** FORMAT.md, "Hash": the canonical serialization of a report (every field but hash and generatedAt). */
export function reportSerialization(r: Omit<BillingReport, 'hash' | 'generatedAt'>): string {
  const [head, tail] = serializationAround(r);
  return head + readingLines(r) + tail;
}

export function reportHash(r: Omit<BillingReport, 'hash' | 'generatedAt'>): string {
  return reportHashOf(r, readingLines(r));
}

/** The hash of a report body whose `reading` lines are already written (billing builds them with the JSON). */
export function reportHashOf(r: ReportBody, readingText: string | Uint8Array): string {
  const [head, tail] = serializationAround(r);
  const h = createHash('sha256').update(head, 'utf8');
  (typeof readingText === 'string' ? h.update(readingText, 'utf8') : h.update(readingText)).update(tail, 'utf8');
  return h.digest('hex');
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The readable page: the bill, energy per window, data quality with times, and the hash. */
export function reportMarkdown(r: BillingReport): string {
  const L: string[] = [];
  L.push(`# Bill ${r.customer.id} — ${r.period.label}`, '');
  L.push(`- Period: ${iso(r.period.fromMs)} … ${iso(r.period.toMs)} (local UTC${r.period.utcOffsetMinutes >= 0 ? '+' : '−'}${Math.abs(r.period.utcOffsetMinutes / 60)}), ${r.period.slots} intervals per meter`);
  L.push(`- Customer class ${r.customer.class}, tariff **${r.tariff.name}** (${r.tariff.applied.spec.kind}; digest \`${r.tariff.digest.slice(0, 16)}…\`)`);
  L.push(`- Meters: ${r.meters.join(', ')}; readings from ${r.source === 'kv' ? 'KVS day blobs' : 'CascaDB'}; metrology key ${r.metrologyKeyId}`, '');
  L.push('| window | energy (kWh) | of which estimated (kWh) | price per kWh | amount |', '|---|---:|---:|---:|---:|');
  for (const l of r.lines) L.push(`| ${l.window} | ${l.energyKwh.toFixed(3)} | ${(l.estimatedWh / 1000).toFixed(3)} | ${l.pricePerKwh} | ${l.amount} |`);
  for (const c of r.charges) L.push(`| ${c.name} (per ${c.per}) | | | | ${c.amount} |`);
  for (const t of r.taxes) L.push(`| ${t.name} (${(t.rate * 100).toFixed(2)} %) | | | | ${t.amount} |`);
  L.push(`| **total** | **${r.energy.totalKwh.toFixed(3)}** | ${(r.energy.estimatedWh / 1000).toFixed(3)} | | **${r.currency} ${r.total}** |`, '');
  L.push('## Data quality', '');
  const s = r.summary;
  L.push(`${s.measured} of ${s.intervals} intervals measured, ${s.estimated} estimated; ${s.readingsUsed} signed readings used, ${s.readingsRejected} stored readings rejected.`, '');
  if (r.findings.length === 0) L.push('No findings: every interval has a signed reading, nothing duplicated, the register is monotonic and consistent.');
  else {
    L.push('| finding | severity | meter | from | to | count | detail |', '|---|---|---|---|---|---:|---|');
    for (const f of r.findings) L.push(`| ${f.code} | ${f.severity} | ${f.meter} | ${f.from ?? ''} | ${f.to ?? ''} | ${f.count} | ${f.message.replace(/\|/g, '\\|')} |`);
  }
  L.push('', '## Integrity', '');
  L.push(`SHA-256 over the ${r.hash.serialization} serialization of customer, period, tariff, the ${r.readings.length} readings used (leaf hashes and batch ids), estimates, findings and bill lines:`, '', `    ${r.hash.value}`, '');
  L.push(`Check it: \`securegrid audit --report ${r.customer.id}.json\` re-reads the signed readings and prints PASS or each discrepancy.`, '');
  return L.join('\n');
}

/** Writes <customer>.json and <customer>.md under dir; returns the JSON path. */
export async function writeReport(dir: string, r: BillingReport): Promise<string> {
  await mkdir(dir, { recursive: true });
  const safe = r.customer.id.replace(/[^A-Za-z0-9._-]/g, '_');
  const path = join(dir, `${safe}.json`);
  await writeFile(path, `${JSON.stringify(r)}\n`);
  await writeFile(join(dir, `${safe}.md`), reportMarkdown(r));
  return path;
}

/** Writes every report and an index.md listing them; returns the JSON paths. */
export async function writeReports(dir: string, reports: readonly BillingReport[]): Promise<string[]> {
  const paths: string[] = [];
  for (const r of reports) paths.push(await writeReport(dir, r));
  await writeIndex(dir, reports);
  return paths;
}

export async function writeIndex(dir: string, reports: readonly Pick<BillingReport, 'customer' | 'period' | 'total' | 'currency' | 'energy' | 'summary' | 'hash'>[]): Promise<void> {
  const L = ['# Billing reports', '', '| customer | tariff | period | kWh | estimated kWh | findings | total | hash |', '|---|---|---|---:|---:|---:|---:|---|'];
  for (const r of reports) {
    const nf = Object.values(r.summary.findings).reduce((a, b) => a + (b ?? 0), 0);
    L.push(`| [${r.customer.id}](${r.customer.id.replace(/[^A-Za-z0-9._-]/g, '_')}.md) | ${r.customer.tariff} | ${r.period.label} | ${r.energy.totalKwh.toFixed(3)} | ${(r.energy.estimatedWh / 1000).toFixed(3)} | ${nf} | ${r.currency} ${r.total} | \`${r.hash.value.slice(0, 16)}…\` |`);
  }
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'index.md'), `${L.join('\n')}\n`);
}
