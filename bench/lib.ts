// Shared pieces for the benchmarks under bench/: a closed-loop load generator, latency summaries, number
// formatting, a plain-text table, and the one-line JSON summary every benchmark prints as its last line; the
// CPU time of other processes (a server in a child process, PostgreSQL's backends) from /proc; and summaries
// of V8 CPU profiles (node --cpu-prof) cut to a time window.
// Benchmarks are measurements, never timed tests: nothing here asserts or fails on a figure.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';

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

// ------------------------------------------------------------------ other processes' CPU (Linux /proc)

let clockTicks: number | undefined;

/** Kernel clock ticks per second (USER_HZ) for /proc/<pid>/stat; `getconf CLK_TCK`, 100 when unknown. */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/**
 * CPU seconds (user + system, all threads) a process has used so far, from /proc/<pid>/stat; undefined when the
 * process is gone or /proc is not readable (not Linux). Resolution: one clock tick (10 ms).
 */
export function procCpuSeconds(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: fields are counted after its ')'.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state); utime and stime are fields 14 and 15.
  return (Number(f[11]) + Number(f[12])) / ticksPerSecond();
}

/** Process ids whose command name (/proc/<pid>/comm) is `comm`, e.g. every PostgreSQL process on the machine. */
export function pidsByComm(comm: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/comm`, 'utf8').trim() === comm) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * CPU seconds of a set of processes that may come and go (PostgreSQL backends): a snapshot per pid, and the
 * CPU used between two snapshots (a pid new in the second counts from zero; one gone in it is lost, so take
 * the second snapshot before closing connections).
 */
export function cpuSnapshot(pids: number[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const p of pids) {
    const s = procCpuSeconds(p);
    if (s !== undefined) m.set(p, s);
  }
  return m;
}

export function cpuBetween(a: Map<number, number>, b: Map<number, number>): number {
  let s = 0;
  for (const [p, v] of b) s += v - (a.get(p) ?? 0);
  return s;
}

// ------------------------------------------------------------------ V8 CPU profiles (node --cpu-prof)

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

/** A .cpuprofile as node --cpu-prof writes it. */
export interface CpuProfile {
  nodes: CpuProfileNode[];
  /** µs on the monotonic clock (process.hrtime.bigint() / 1000n in any process of the machine). */
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** One sample's frame and its callers, leaf first. */
export interface ProfileFrame {
  functionName: string;
  url: string;
  /** 1-based. */
  line: number;
}

export interface ProfileSlice {
  /** Sampled milliseconds in the window (idle included). */
  totalMs: number;
  idleMs: number;
  /** Self time per function (leaf frame), descending; our code as its .ts source and line where mapped. */
  functions: Array<{ name: string; file: string; line: number; ms: number }>;
  /** Self time per file, descending. */
  files: Array<{ file: string; ms: number }>;
  /** Time per label of `attribute` (each sample's stack → one label), descending. */
  attributed: Array<{ label: string; ms: number }>;
}

export function readCpuProfile(path: string): CpuProfile {
  return JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
}

const sourceMaps = new Map<string, SourceMap | null>();

/**
 * A compiled frame (file:// url, 0-based line and column, as profiles give them) → its TypeScript source, via
 * the .js.map next to it (tsconfig sourceMap): the file relative to the repository root and a 1-based line.
 * undefined when there is no map.
 */
export function originalPosition(url: string, line0: number, col0: number): { file: string; line: number } | undefined {
  if (!url.startsWith('file://')) return undefined;
  let sm = sourceMaps.get(url);
  if (sm === undefined) {
    try {
      sm = new SourceMap(JSON.parse(readFileSync(`${fileURLToPath(url)}.map`, 'utf8')));
    } catch {
      sm = null;
    }
    sourceMaps.set(url, sm);
  }
  if (!sm) return undefined;
  const e = sm.findEntry(line0, col0) as { originalSource?: string; originalLine?: number };
  if (!e.originalSource || e.originalLine === undefined) return undefined;
  const abs = e.originalSource.startsWith('file://') ? fileURLToPath(e.originalSource) : resolvePath(dirname(fileURLToPath(url)), e.originalSource);
  const m = /\/((?:src|bench|test)\/.*)$/.exec(abs);
  return { file: m ? m[1]! : abs, line: e.originalLine + 1 };
}

/** A url as a short file name: the part from `dist/`, `node_modules/` or `node:` on. */
export function profileFile(url: string): string {
  if (!url) return '(native)';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) return u.slice(nm);
  const d = u.indexOf('/dist/');
  if (d >= 0) return u.slice(d + 6);
  return u;
}

/**
 * Self time of the samples taken in [fromUs, toUs) (the profile's clock; whole profile by default), per function
 * and per file, and per label of `attribute`, which sees each sample's stack leaf first.
 */
export function sliceCpuProfile(
  p: CpuProfile,
  o: { fromUs?: number; toUs?: number; attribute?: (stack: ProfileFrame[]) => string } = {},
): ProfileSlice {
  const byId = new Map<number, CpuProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const self = new Map<number, number>();
  const attributed = new Map<string, number>();
  const stackCache = new Map<number, string>();
  const from = o.fromUs ?? -Infinity;
  const to = o.toUs ?? Infinity;
  let t = p.startTime;
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    // A sample stands for the time until the next one.
    const dur = p.timeDeltas[i + 1] ?? 0;
    if (t < from || t >= to || dur <= 0) continue;
    const id = p.samples[i]!;
    total += dur;
    self.set(id, (self.get(id) ?? 0) + dur);
    if (o.attribute) {
      let label = stackCache.get(id);
      if (label === undefined) {
        const stack: ProfileFrame[] = [];
        for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
          const cf = byId.get(n)!.callFrame;
          stack.push({ functionName: cf.functionName, url: cf.url, line: cf.lineNumber + 1 });
        }
        label = o.attribute(stack);
        stackCache.set(id, label);
      }
      attributed.set(label, (attributed.get(label) ?? 0) + dur);
    }
  }
  const fns = new Map<string, { name: string; file: string; line: number; ms: number }>();
  const files = new Map<string, number>();
  let idle = 0;
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    if (cf.functionName === '(idle)') idle += us;
    // Our compiled code is shown as its TypeScript source where a source map says where that is.
    const orig = originalPosition(cf.url, cf.lineNumber, cf.columnNumber);
    const file = orig?.file ?? profileFile(cf.url);
    const name = cf.functionName || '(anonymous)';
    const k = `${name}|${file}|${cf.lineNumber}`;
    const f = fns.get(k) ?? { name, file, line: orig?.line ?? cf.lineNumber + 1, ms: 0 };
    f.ms += us / 1000;
    fns.set(k, f);
    files.set(file, (files.get(file) ?? 0) + us / 1000);
  }
  return {
    totalMs: total / 1000,
    idleMs: idle / 1000,
    functions: [...fns.values()].sort((a, b) => b.ms - a.ms),
    files: [...files].map(([file, ms]) => ({ file, ms })).sort((a, b) => b.ms - a.ms),
    attributed: [...attributed].map(([label, us]) => ({ label, ms: us / 1000 })).sort((a, b) => b.ms - a.ms),
  };
}
