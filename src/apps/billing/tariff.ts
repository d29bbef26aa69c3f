// Tariff files (FORMAT.md, "Tariff file"): flat and time-of-use tariffs (Brazil's tarifa branca: peak,
// intermediate and off-peak hours on working days; weekends and holidays off-peak), fixed charges and taxes.
// Amounts are integer cents and prices integer micro-units per kWh, so bills are exact and re-derivable.
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { BillingError } from './errors.js';
import { DAY_MS, INTERVAL_MS, type Period } from './time.js';

export const TARIFFS_FORMAT = 'securegrid-tariffs/1';
export const APPLIED_TARIFF_FORMAT = 'securegrid-tariff/1';

export interface TariffWindowSpec {
  name: string;
  pricePerKwh: number;
  /** Local 'HH:MM-HH:MM' spans on working days (15-minute grid, end exclusive, '24:00' allowed); none = the default window. */
  weekdayHours?: string[];
}
export interface ChargeSpec {
  name: string;
  /** Currency units, ≤ 2 decimals. */
  amount: number;
  /** 'month': prorated by period days / 30; 'day': per day; 'bill': once. */
  per: 'month' | 'day' | 'bill';
}
export interface TaxSpec {
  name: string;
  /** Fraction of the subtotal (energy + charges), ≤ 6 decimals. */
  rate: number;
}
interface SpecCommon {
  description?: string;
  charges?: ChargeSpec[];
  taxes?: TaxSpec[];
}
export type TariffSpec = (SpecCommon & { kind: 'flat'; pricePerKwh: number }) | (SpecCommon & { kind: 'time-of-use'; windows: TariffWindowSpec[] });

export interface TariffBook {
  format: typeof TARIFFS_FORMAT;
  currency: string;
  /** Local time of the tariff windows and billing periods; −180 (America/Sao_Paulo) by default. */
  utcOffsetMinutes: number;
  /** Local dates YYYY-MM-DD billed off-peak all day. */
  holidays: string[];
  tariffs: Record<string, TariffSpec>;
}

/** The tariff as applied to one bill: what the report carries and its digest covers. */
export interface AppliedTariff {
  format: typeof APPLIED_TARIFF_FORMAT;
  name: string;
  currency: string;
  utcOffsetMinutes: number;
  /** The holidays inside the period only (so later additions to the file do not change old digests). */
  holidays: string[];
  spec: TariffSpec;
}

/** A tariff ready to price intervals fast. */
export interface CompiledTariff {
  applied: AppliedTariff;
  /** SHA-256 hex of canonicalJson(applied). */
  digest: string;
  windows: string[];
  priceMicro: number[];
  defaultWindow: number;
  /** Window of each local 15-minute slot (0…95) on a working day. */
  weekdaySlots: Uint8Array;
  holidayDays: Set<number>;
  offsetMs: number;
  charges: Array<{ name: string; cents: number; per: ChargeSpec['per'] }>;
  taxes: Array<{ name: string; ratePpm: number }>;
}

const fail = (where: string, what: string): never => {
  throw new BillingError('bad-tariffs', `${where}: ${what}`);
};

function decimals(v: unknown, where: string, places: number, min = 0): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min) fail(where, `must be a number ≥ ${min}`);
  const scaled = Math.round((v as number) * 10 ** places);
  if (Math.abs((v as number) * 10 ** places - scaled) > 1e-6) fail(where, `has more than ${places} decimals`);
  return scaled;
}

function str(v: unknown, where: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 200 || /[\t\n\r]/.test(v)) fail(where, 'must be a non-empty string without tabs or newlines');
  return v as string;
}

function minuteOf(hhmm: string, where: string): number {
  const m = /^(\d{2}):(\d{2})$/.exec(hhmm);
  const min = m ? Number(m[1]) * 60 + Number(m[2]) : Number.NaN;
  if (!m || Number(m[2]) >= 60 || min > 1440 || min % 15 !== 0) fail(where, `'${hhmm}' is not a local time HH:MM on the 15-minute grid`);
  return min;
}

function checkSpec(name: string, s: unknown): TariffSpec {
  const w = `tariffs.${name}`;
  if (typeof s !== 'object' || s === null) return fail(w, 'must be an object');
  const o = s as Record<string, unknown>;
  for (const [i, c] of ((o.charges ?? []) as unknown[]).entries()) {
    const cc = c as Record<string, unknown>;
    str(cc?.name, `${w}.charges[${i}].name`);
    decimals(cc.amount, `${w}.charges[${i}].amount`, 2);
    if (!['month', 'day', 'bill'].includes(cc.per as string)) fail(`${w}.charges[${i}].per`, "must be 'month', 'day' or 'bill'");
  }
  if (o.charges !== undefined && !Array.isArray(o.charges)) fail(`${w}.charges`, 'must be an array');
  if (o.taxes !== undefined && !Array.isArray(o.taxes)) fail(`${w}.taxes`, 'must be an array');
  for (const [i, t] of ((o.taxes ?? []) as unknown[]).entries()) {
    str((t as Record<string, unknown>)?.name, `${w}.taxes[${i}].name`);
    if (decimals((t as Record<string, unknown>).rate, `${w}.taxes[${i}].rate`, 6) > 1_000_000) fail(`${w}.taxes[${i}].rate`, 'must be at most 1');
  }
  if (o.kind === 'flat') {
    decimals(o.pricePerKwh, `${w}.pricePerKwh`, 6);
  } else if (o.kind === 'time-of-use') {
    if (!Array.isArray(o.windows) || o.windows.length === 0 || o.windows.length > 16) fail(`${w}.windows`, 'must be 1–16 windows');
    let defaults = 0;
    const names = new Set<string>();
    for (const [i, win] of (o.windows as unknown[]).entries()) {
      const ww = win as Record<string, unknown>;
      const n = str(ww?.name, `${w}.windows[${i}].name`);
      if (names.has(n)) fail(`${w}.windows[${i}].name`, `'${n}' appears twice`);
      names.add(n);
      decimals(ww.pricePerKwh, `${w}.windows[${i}].pricePerKwh`, 6);
      if (ww.weekdayHours === undefined) defaults++;
      else if (!Array.isArray(ww.weekdayHours)) fail(`${w}.windows[${i}].weekdayHours`, "must be an array of 'HH:MM-HH:MM'");
      else for (const [j, span] of (ww.weekdayHours as unknown[]).entries()) {
        const where = `${w}.windows[${i}].weekdayHours[${j}]`;
        const parts = typeof span === 'string' ? span.split('-') : [];
        if (parts.length !== 2) fail(where, "must be 'HH:MM-HH:MM'");
        if (minuteOf(parts[0]!, where) >= minuteOf(parts[1]!, where)) fail(where, 'ends before it starts');
      }
    }
    if (defaults !== 1) fail(`${w}.windows`, `exactly one window must have no weekdayHours (the off-peak default), found ${defaults}`);
  } else {
    fail(`${w}.kind`, "must be 'flat' or 'time-of-use'");
  }
  return s as TariffSpec;
}

/** Validates a parsed tariff file; BillingError('bad-tariffs') names the first bad field. */
export function parseTariffs(json: unknown): TariffBook {
  if (typeof json !== 'object' || json === null) return fail('tariff file', 'must be a JSON object');
  const o = json as Record<string, unknown>;
  if (o.format !== TARIFFS_FORMAT) fail('format', `must be '${TARIFFS_FORMAT}'`);
  str(o.currency, 'currency');
  const off = o.utcOffsetMinutes ?? -180;
  if (typeof off !== 'number' || !Number.isInteger(off) || off < -720 || off > 840 || off % 15 !== 0) fail('utcOffsetMinutes', 'must be an integer multiple of 15 in −720…840');
  const holidays = (o.holidays ?? []) as unknown[];
  if (!Array.isArray(holidays)) fail('holidays', 'must be an array of YYYY-MM-DD');
  for (const [i, h] of holidays.entries()) {
    if (typeof h !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(h) || Number.isNaN(Date.parse(`${h}T00:00:00Z`))) fail(`holidays[${i}]`, 'must be a date YYYY-MM-DD');
  }
  if (typeof o.tariffs !== 'object' || o.tariffs === null) fail('tariffs', 'must be an object of tariff name → tariff');
  const tariffs: Record<string, TariffSpec> = {};
  for (const [name, spec] of Object.entries(o.tariffs as Record<string, unknown>)) tariffs[str(name, 'tariff name')] = checkSpec(name, spec);
  return { format: TARIFFS_FORMAT, currency: o.currency as string, utcOffsetMinutes: off as number, holidays: holidays as string[], tariffs };
}

export async function loadTariffs(path: string): Promise<TariffBook> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new BillingError('bad-tariffs', `cannot read the tariff file ${path}: ${(err as Error).message}`);
  }
  try {
    return parseTariffs(JSON.parse(text));
  } catch (err) {
    if (err instanceof BillingError) throw new BillingError('bad-tariffs', `${path}: ${err.message}`);
    throw new BillingError('bad-tariffs', `${path} is not JSON: ${(err as Error).message}`);
  }
}

/** JSON with object keys sorted at every level and no whitespace (FORMAT.md, "Canonical JSON"). */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

export function compileTariff(book: TariffBook, name: string, period: Pick<Period, 'fromMs' | 'toMs'>): CompiledTariff {
  const spec = book.tariffs[name];
  if (!spec) throw new BillingError('unknown-tariff', `tariff '${name}' is not in the tariff file (it has ${Object.keys(book.tariffs).join(', ')}); add it`);
  const offsetMs = book.utcOffsetMinutes * 60_000;
  const firstDay = Math.floor((period.fromMs + offsetMs) / DAY_MS);
  const lastDay = Math.floor((period.toMs - 1 + offsetMs) / DAY_MS);
  const holidayDays = new Set<number>();
  const holidays: string[] = [];
  for (const h of [...new Set(book.holidays)].sort()) {
    const d = Date.parse(`${h}T00:00:00Z`) / DAY_MS;
    if (d >= firstDay && d <= lastDay) {
      holidayDays.add(d);
      holidays.push(h);
    }
  }
  const applied: AppliedTariff = { format: APPLIED_TARIFF_FORMAT, name, currency: book.currency, utcOffsetMinutes: book.utcOffsetMinutes, holidays, spec };
  const windows: string[] = [];
  const priceMicro: number[] = [];
  const weekdaySlots = new Uint8Array(96);
  let defaultWindow = 0;
  if (spec.kind === 'flat') {
    windows.push('all');
    priceMicro.push(Math.round(spec.pricePerKwh * 1e6));
  } else {
    spec.windows.forEach((w, i) => {
      windows.push(w.name);
      priceMicro.push(Math.round(w.pricePerKwh * 1e6));
      if (!w.weekdayHours) defaultWindow = i;
    });
    weekdaySlots.fill(defaultWindow);
    // First listed window wins where spans overlap, so fill from the last to the first.
    for (let i = spec.windows.length - 1; i >= 0; i--) {
      for (const span of spec.windows[i]!.weekdayHours ?? []) {
        const [a, b] = span.split('-').map((t) => Number(t.slice(0, 2)) * 60 + Number(t.slice(3, 5)));
        for (let m = a!; m < b!; m += 15) weekdaySlots[m / 15] = i;
      }
    }
  }
  return {
    applied,
    digest: createHash('sha256').update(canonicalJson(applied)).digest('hex'),
    windows,
    priceMicro,
    defaultWindow,
    weekdaySlots,
    holidayDays,
    offsetMs,
    charges: (spec.charges ?? []).map((c) => ({ name: c.name, cents: Math.round(c.amount * 100), per: c.per })),
    taxes: (spec.taxes ?? []).map((t) => ({ name: t.name, ratePpm: Math.round(t.rate * 1e6) })),
  };
}

/** The window of the interval ending at ts: classified by its start in local time (FORMAT.md, rule T). */
export function windowOf(t: CompiledTariff, ts: number): number {
  if (t.windows.length === 1) return 0;
  const local = ts - INTERVAL_MS + t.offsetMs;
  const day = Math.floor(local / DAY_MS);
  const wd = (((day + 4) % 7) + 7) % 7; // 1970-01-01 was a Thursday; 0 = Sunday
  if (wd === 0 || wd === 6 || t.holidayDays.has(day)) return t.defaultWindow;
  return t.weekdaySlots[Math.floor((local - day * DAY_MS) / INTERVAL_MS)]!;
}

/** round-half-up(wh × priceMicro / 10^7): cents for an energy line, exact in integers. */
export function energyCents(wh: number, priceMicro: number): number {
  return Number((BigInt(wh) * BigInt(priceMicro) + 5_000_000n) / 10_000_000n);
}

/** A charge over a period of `slots` intervals, in cents (month = 30 days, rounded half up). */
export function chargeCents(cents: number, per: ChargeSpec['per'], slots: number): number {
  if (per === 'bill') return cents;
  const num = BigInt(cents) * BigInt(slots);
  const den = per === 'day' ? 96n : 2880n;
  return Number((num * 2n + den) / (2n * den));
}

export function taxCents(base: number, ratePpm: number): number {
  return Number((BigInt(base) * BigInt(ratePpm) + 500_000n) / 1_000_000n);
}
