// Billing periods: local calendar dates (the tariff file's UTC offset, Brazil's −03:00 by default) turned into
// the span of 15-minute intervals they hold. An interval is named by its end ts; the period (from, to] holds
// the intervals ending at from + 15 min … to, and the reading at `from` is the opening register.
import { BillingError } from './errors.js';

export const INTERVAL_MS = 900_000;
export const DAY_MS = 86_400_000;

export interface Period {
  /** 'YYYY-MM' for a month, 'YYYY-MM-DD..YYYY-MM-DD' for dates. */
  label: string;
  /** Local midnight starting the period (epoch ms UTC): the opening register's ts. */
  fromMs: number;
  /** Local midnight ending it: the last interval's end. */
  toMs: number;
  utcOffsetMinutes: number;
  /** Intervals in the period (96 a day). */
  slots: number;
}

export type PeriodSpec = { period: string } | { from: string; to: string };

function localMidnight(date: string, offsetMin: number, what: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  const t = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : Number.NaN;
  if (!m || Number.isNaN(t) || new Date(t).toISOString().slice(0, 10) !== date) throw new BillingError('bad-period', `${what} must be a date YYYY-MM-DD, got ${JSON.stringify(date)}`);
  return t - offsetMin * 60_000;
}

/** { period: 'YYYY-MM' } or { from, to } (inclusive local dates) → the period's span. */
export function parsePeriod(spec: PeriodSpec, utcOffsetMinutes: number): Period {
  let fromMs: number;
  let toMs: number;
  let label: string;
  if ('period' in spec) {
    const m = /^(\d{4})-(\d{2})$/.exec(spec.period ?? '');
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 12) throw new BillingError('bad-period', `--period must be YYYY-MM, got ${JSON.stringify(spec.period)}`);
    const y = Number(m[1]);
    const mo = Number(m[2]);
    fromMs = Date.UTC(y, mo - 1, 1) - utcOffsetMinutes * 60_000;
    toMs = Date.UTC(y, mo, 1) - utcOffsetMinutes * 60_000;
    label = spec.period;
  } else {
    fromMs = localMidnight(spec.from, utcOffsetMinutes, '--from');
    toMs = localMidnight(spec.to, utcOffsetMinutes, '--to') + DAY_MS;
    if (toMs <= fromMs) throw new BillingError('bad-period', `--to ${spec.to} is before --from ${spec.from}`);
    if (toMs - fromMs > 62 * DAY_MS) throw new BillingError('bad-period', `a billing period is at most 62 days; ${spec.from}..${spec.to} is ${(toMs - fromMs) / DAY_MS}`);
    label = `${spec.from}..${spec.to}`;
  }
  return { label, fromMs, toMs, utcOffsetMinutes, slots: (toMs - fromMs) / INTERVAL_MS };
}

/** The UTC dates (day-blob keys) whose blobs can hold readings with from ≤ ts ≤ to. */
export function utcDates(fromMs: number, toMs: number): string[] {
  const out: string[] = [];
  for (let d = Math.floor(fromMs / DAY_MS); d <= Math.floor(toMs / DAY_MS); d++) out.push(new Date(d * DAY_MS).toISOString().slice(0, 10));
  return out;
}
