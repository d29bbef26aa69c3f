// Shared pieces for the benchmarks under bench/: a closed-loop load generator, latency summaries, number
// formatting, a plain-text table, and the one-line JSON summary every benchmark prints as its last line.
// Benchmarks are measurements, never timed tests: nothing here asserts or fails on a figure.

/** What one closed-loop run measured. Throughput counts every operation completed after the warm-up. */
export interface LoadStats {
  ops: number;
  errors: number;
  /** Payload bytes moved by the measured operations (request bodies for writes, response bodies for reads). */
  bytes: number;
  /** From the first measured request to the last measured response. */
  seconds: number;
  opsPerSec: number;
  /** Decimal megabytes (10^6 bytes) per second. */
  mbPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The first error seen, for the report (the run goes on). */
  firstError?: string;
}

export interface LoadOptions {
  /** Requests in flight at once (one loop per slot). */
  concurrency: number;
  /** Measured duration; each loop stops issuing at the deadline and its last request is still counted. */
  seconds: number;
  /** Untimed duration before the measurement (same operation, same loops). */
  warmupSeconds: number;
  /** Upper bound on measured operations (all loops together); Infinity = time-bounded only. */
  maxOps?: number;
  /**
   * One operation: `worker` is the loop's index, `seq` its own counter (continuing across warm-up and
   * measurement). Resolves to the payload bytes it moved.
   */
  op: (worker: number, seq: number) => Promise<number>;
}

/** p in [0, 1] of an ascending array (nearest rank). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[i]!;
}

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/**
 * Runs `concurrency` loops, each awaiting one operation at a time (a closed loop, as a pool of clients
 * does), first for the warm-up, then for the measurement. Failed operations are counted, not retried.
 * Returns the per-loop sequence numbers reached, so a later run can address what this one wrote.
 */
export async function closedLoop(o: LoadOptions): Promise<LoadStats & { seqs: number[] }> {
  const seqs = new Array<number>(o.concurrency).fill(0);
  let firstError: string | undefined;
  const phase = async (seconds: number, record: boolean, maxOps: number) => {
    const lat: number[] = [];
    let bytes = 0;
    let errors = 0;
    let issued = 0;
    const start = nowMs();
    const deadline = start + seconds * 1000;
    let last = start;
    await Promise.all(
      Array.from({ length: o.concurrency }, async (_, w) => {
        while (nowMs() < deadline && issued < maxOps) {
          issued++;
          const seq = seqs[w]!++;
          const t0 = nowMs();
          try {
            const n = await o.op(w, seq);
            const t1 = nowMs();
            if (record) {
              lat.push(t1 - t0);
              bytes += n;
            }
            last = t1;
          } catch (err) {
            errors++;
            firstError ??= err instanceof Error ? `${err.name}: ${err.message}` : String(err);
            last = nowMs();
          }
        }
      }),
    );
    return { lat, bytes, errors, seconds: (last - start) / 1000 };
  };
  if (o.warmupSeconds > 0) await phase(o.warmupSeconds, false, Infinity);
  const m = await phase(o.seconds, true, o.maxOps ?? Infinity);
  const sorted = Float64Array.from(m.lat).sort();
  const secs = Math.max(m.seconds, 1e-9);
  return {
    ops: sorted.length,
    errors: m.errors,
    bytes: m.bytes,
    seconds: m.seconds,
    opsPerSec: sorted.length / secs,
    mbPerSec: m.bytes / 1e6 / secs,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
    ...(firstError !== undefined ? { firstError } : {}),
    seqs,
  };
}

/** 1024 → '1KiB', 1048576 → '1MiB'. */
export function sizeLabel(n: number): string {
  if (n >= 1024 ** 3 && n % 1024 ** 3 === 0) return `${n / 1024 ** 3}GiB`;
  if (n >= 1024 ** 2 && n % 1024 ** 2 === 0) return `${n / 1024 ** 2}MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024}KiB`;
  return `${n}B`;
}

/** '1KiB', '64k', '1M', '4096' → bytes. */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i.exec(s.trim());
  if (!m) throw new Error(`not a size: '${s}'`);
  const unit = (m[2] ?? 'b').toLowerCase()[0]!;
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Math.round(Number(m[1]) * mult);
}

/** Rounds for the JSON summary: 3 significant decimals is plenty for a benchmark. */
export function round(n: number, digits = 3): number {
  if (!Number.isFinite(n)) return n;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** A number for a table cell: thousands separated, `digits` decimals. */
export function num(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function ratio(n: number, digits = 2): string {
  return Number.isFinite(n) ? `${n.toFixed(digits)}×` : '-';
}

export function bytesHuman(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/** A plain-text table: the first column left-aligned, the others right-aligned (numbers). */
export function table(headers: string[], rows: string[][], opts: { leftColumns?: number } = {}): string {
  const left = opts.leftColumns ?? 1;
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i < left ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The machine-readable result: one JSON object on one line, which must be the last line of stdout. */
export function printJsonLast(summary: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

/** CPU time (user + system, all threads) this process spent between two process.cpuUsage() readings, in cores. */
export function coresUsed(before: NodeJS.CpuUsage, after: NodeJS.CpuUsage, seconds: number): number {
  const us = after.user - before.user + (after.system - before.system);
  return seconds > 0 ? us / 1e6 / seconds : NaN;
}
