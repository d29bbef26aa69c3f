// Simulated-time arithmetic. Meters are in Brazil: local time is UTC−3 all year (no daylight saving since 2019),
// and a report's ts is the end of its 15-minute interval.

export const INTERVAL_MS = 900_000;
export const DAY_MS = 86_400_000;
export const INTERVALS_PER_DAY = 96;
/** America/Sao_Paulo offset from UTC, ms. */
export const LOCAL_OFFSET_MS = -3 * 3_600_000;

/** The local day (days since 1970-01-01 local) that the interval ending at ts belongs to. */
export function localDay(ts: number): number {
  return Math.floor((ts - INTERVAL_MS + LOCAL_OFFSET_MS) / DAY_MS);
}

/** The slot 0..95 of the interval ending at ts within its local day. */
export function slotOf(ts: number): number {
  const local = ts - INTERVAL_MS + LOCAL_OFFSET_MS;
  return Math.floor((local - Math.floor(local / DAY_MS) * DAY_MS) / INTERVAL_MS);
}

/** The ts (end of interval) of slot `slot` of local day `day`. */
export function tsOf(day: number, slot: number): number {
  return day * DAY_MS - LOCAL_OFFSET_MS + (slot + 1) * INTERVAL_MS;
}

/** 0 = Sunday … 6 = Saturday, of a local day. */
export function weekday(day: number): number {
  return (((day + 4) % 7) + 7) % 7; // 1970-01-01 was a Thursday
}

/** Local date yyyy-mm-dd of a local day. */
export function isoDate(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

/** Local day of a yyyy-mm-dd date. */
export function dayOfIso(date: string): number {
  const ms = Date.parse(`${date}T00:00:00Z`);
  if (!Number.isFinite(ms)) throw new RangeError(`not a date: ${date}`);
  return Math.floor(ms / DAY_MS);
}

/**
 * Southern-hemisphere season of a local day: +1 at mid-summer (mid-January), −1 at mid-winter (mid-July),
 * smooth in between.
 */
export function season(day: number): number {
  const d = new Date(day * DAY_MS);
  const start = Date.UTC(d.getUTCFullYear(), 0, 1);
  const doy = (day * DAY_MS - start) / DAY_MS;
  return Math.cos((2 * Math.PI * (doy - 15)) / 365.25);
}

/** Rounds ms up to the next interval boundary (a ts already on the grid stays). */
export function ceilInterval(ms: number): number {
  return Math.ceil(ms / INTERVAL_MS) * INTERVAL_MS;
}
