// Where a meter's uplink invocation counters come from. Counters are per meter, start at 1, and only go up,
// across sessions and restarts. A store reserves counters in blocks before handing them out, so a crash
// skips the rest of a block but never repeats a counter (a repeated counter under one key repeats a GCM IV).

import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { MeterSerial } from '../types.js';

/** The largest counter a meter may send: it never sends 2^32−1 (docs/meter-pipeline.md, "Record layer"). */
export const MAX_UPLINK_COUNTER = 0xfffffffe;
export const DEFAULT_COUNTER_BLOCK = 1024;

export type CounterStoreErrorCode = 'exhausted' | 'corrupt' | 'closed' | 'bad-input';

export class CounterStoreError extends Error {
  readonly code: CounterStoreErrorCode;
  constructor(code: CounterStoreErrorCode, message: string) {
    super(message);
    this.name = 'CounterStoreError';
    this.code = code;
  }
}

export interface CounterStore {
  /** The next uplink counter for `serial`: ≥ 1, ≤ MAX_UPLINK_COUNTER, larger than every one handed out before. */
  next(serial: MeterSerial): number;
  close(): void;
}

function exhausted(serial: MeterSerial): CounterStoreError {
  return new CounterStoreError('exhausted', `meter ${serial} has used every invocation counter; it needs a new identity (re-provisioning)`);
}

/** Counters in memory only: for tests and for simulators that never restart. */
export class MemoryCounterStore implements CounterStore {
  readonly #next = new Map<MeterSerial, number>();
  readonly #start: number;

  /** `start`: the first counter of every meter (lets a test begin near the end of the counter space). */
  constructor(start = 1) {
    if (!Number.isInteger(start) || start < 1 || start > MAX_UPLINK_COUNTER) throw new CounterStoreError('bad-input', `start must be in 1..${MAX_UPLINK_COUNTER}`);
    this.#start = start;
  }

  next(serial: MeterSerial): number {
    const c = this.#next.get(serial) ?? this.#start;
    if (c > MAX_UPLINK_COUNTER) throw exhausted(serial);
    this.#next.set(serial, c + 1);
    return c;
  }

  close(): void {}
}

const FORMAT = 'securegrid-counters/1';

/**
 * Counters of a whole fleet in one small file, {"format":"securegrid-counters/1","reserved":W}: every counter
 * ≤ W may have been used by any meter of the fleet. After a restart every meter continues at W + 1. When any
 * meter needs a counter above W, W grows by one block (fsynced temp file, renamed into place) before the
 * counter is handed out. One write serves the whole fleet for a block, so a million meters cost one write per
 * `block` counters of the busiest meter, at the price of meters skipping up to a block per restart.
 */
export class FileCounterStore implements CounterStore {
  readonly #file: string;
  readonly #block: number;
  readonly #start: number;
  readonly #next = new Map<MeterSerial, number>();
  #reserved: number;
  #closed = false;

  private constructor(file: string, block: number, reserved: number) {
    this.#file = file;
    this.#block = block;
    this.#start = reserved + 1;
    this.#reserved = reserved;
  }

  /** Opens (or, when absent, starts) the fleet's counter file. Throws CounterStoreError('corrupt') for a damaged file. */
  static open(file: string, opts: { block?: number } = {}): FileCounterStore {
    const block = opts.block ?? DEFAULT_COUNTER_BLOCK;
    if (!Number.isInteger(block) || block < 1 || block > 1 << 24) throw new CounterStoreError('bad-input', `block must be in 1..${1 << 24}, got ${block}`);
    const abs = path.resolve(file);
    let text: string | undefined;
    try {
      text = readFileSync(abs, 'utf8');
    } catch (e) {
      if ((e as { code?: unknown }).code !== 'ENOENT') throw e;
    }
    let reserved = 0;
    if (text !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      const f = parsed as { format?: unknown; reserved?: unknown } | undefined;
      if (typeof f !== 'object' || f === null || f.format !== FORMAT || !Number.isInteger(f.reserved) || (f.reserved as number) < 0 || (f.reserved as number) > 0xffffffff) {
        throw new CounterStoreError(
          'corrupt',
          `${abs} is not a ${FORMAT} file; do not delete it (counters would repeat): restore it, or write a "reserved" above every counter ever sent`,
        );
      }
      reserved = f.reserved as number;
    }
    return new FileCounterStore(abs, block, reserved);
  }

  /** The fleet-wide watermark: every counter at or below it may have been handed out. */
  get reserved(): number {
    return this.#reserved;
  }

  next(serial: MeterSerial): number {
    if (this.#closed) throw new CounterStoreError('closed', `the counter store ${this.#file} is closed`);
    const c = this.#next.get(serial) ?? this.#start;
    if (c > MAX_UPLINK_COUNTER) throw exhausted(serial);
    if (c > this.#reserved) this.#reserve(Math.min(c - 1 + this.#block, MAX_UPLINK_COUNTER));
    this.#next.set(serial, c + 1);
    return c;
  }

  close(): void {
    this.#closed = true;
  }

  #reserve(upTo: number): void {
    const tmp = `${this.#file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeFileSync(fd, `${JSON.stringify({ format: FORMAT, reserved: upTo })}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      renameSync(tmp, this.#file);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
    syncDir(path.dirname(this.#file));
    this.#reserved = upTo; // only after the reservation is durable
  }
}

/** Best-effort fsync of a directory so the rename survives a crash. */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // not supported on every filesystem; the rename itself is still atomic
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
