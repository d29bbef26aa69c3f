// Simulated time: from the window start in 15-minute steps, either as fast as the pipeline takes the reports
// (backpressure comes from the FieldLinks, see simulator.ts) or at a fixed speed against the wall clock.
import { setTimeout as sleep } from 'node:timers/promises';
import { INTERVAL_MS } from './time.js';

export interface ClockOptions {
  /** ts of the first tick (end of the first interval). */
  first: number;
  /** ts of the last tick, inclusive. */
  last: number;
  /** Simulated ms per real ms (e.g. 96 → one day in 15 min); 0 or absent: as fast as possible. */
  speed?: number;
  /** Injected for tests. */
  now?: () => number;
  wait?: (ms: number) => Promise<unknown>;
}

/** Speed for "one simulated day every `seconds` real seconds". */
export function speedForDaySeconds(seconds: number): number {
  if (!(seconds > 0)) throw new RangeError(`seconds per simulated day must be positive, got ${seconds}`);
  return 86_400 / seconds;
}

export class VirtualClock {
  readonly first: number;
  readonly last: number;
  readonly speed: number;
  readonly #now: () => number;
  readonly #wait: (ms: number) => Promise<unknown>;
  #realStart: number | undefined;
  /** The last tick handed out (simulated ts), or first − 15 min before the first. */
  current: number;

  constructor(opts: ClockOptions) {
    if (opts.first % INTERVAL_MS !== 0 || opts.last % INTERVAL_MS !== 0) throw new RangeError('clock ticks must be on the 15-minute grid');
    if (opts.speed !== undefined && !(opts.speed >= 0)) throw new RangeError(`speed must be ≥ 0, got ${opts.speed}`);
    this.first = opts.first;
    this.last = opts.last;
    this.speed = opts.speed ?? 0;
    this.#now = opts.now ?? Date.now;
    this.#wait = opts.wait ?? sleep;
    this.current = opts.first - INTERVAL_MS;
  }

  /** Number of ticks in the window. */
  get ticks(): number {
    return Math.max(0, (this.last - this.first) / INTERVAL_MS + 1);
  }

  /** The next tick, after waiting for the wall clock at a fixed speed; undefined past the last. */
  async next(): Promise<number | undefined> {
    const ts = this.current + INTERVAL_MS;
    if (ts > this.last) return undefined;
    if (this.speed > 0) {
      this.#realStart ??= this.#now() - INTERVAL_MS / this.speed; // the first tick fires at once
      const due = this.#realStart + (ts - this.first + INTERVAL_MS) / this.speed;
      const wait = due - this.#now();
      if (wait > 0) await this.#wait(wait);
    }
    this.current = ts;
    return ts;
  }
}
