// Frame-level attacks on the path between meters and ingest, injected by the simulator and labelled so a test
// can check the ingest rejected exactly these and stored exactly the rest. Which (meter, interval) is hit is a
// pure function of the fleet seed; what was actually injected goes to the labels.
import type { RejectReason } from '../protocol/index.js';
import type { ForgeryKind, TamperKind } from './labels.js';
import { STREAM } from './fleet.js';
import { Prng, hashKeys, pickWeighted, unit } from './rng.js';
import { INTERVAL_MS } from './time.js';

export interface TamperOptions {
  /** Probability that a (meter, interval) is hit, 0..1. */
  rate: number;
  /** Relative weights of the event kinds (default equal). */
  kinds?: Partial<Record<TamperKind, number>>;
  /** Relative weights of the forgery kinds (default equal). */
  forgeries?: Partial<Record<ForgeryKind, number>>;
}

/** A replayed record is the meter's own record from this many intervals earlier. */
export const REPLAY_DELAY_INTERVALS = 4;

export interface TamperEvent {
  event: TamperKind;
  forgery?: ForgeryKind;
}

/**
 * What a correct ingest answers to the injected envelope, and whether the genuine reading is stored:
 *   dropped → never arrives, lost;  altered (replaces the genuine record) → auth, lost;
 *   duplicated, replayed → replay;  forged random / cross-meter → auth (a cross-meter record names another meter's
 *   session: the owner check comes before the window);  forged unknown-serial (a record under a random session id
 *   for a serial not in the fleet) → no-session.
 */
export function expectation(e: TamperEvent): { expect: RejectReason | null; stored: boolean } {
  switch (e.event) {
    case 'dropped':
      return { expect: null, stored: false };
    case 'altered':
      return { expect: 'auth', stored: false };
    case 'duplicated':
    case 'replayed':
      return { expect: 'replay', stored: true };
    case 'forged':
      return { expect: e.forgery === 'unknown-serial' ? 'no-session' : 'auth', stored: true };
  }
}

const ALL_KINDS: readonly TamperKind[] = ['dropped', 'duplicated', 'altered', 'replayed', 'forged'];
const ALL_FORGERIES: readonly ForgeryKind[] = ['random', 'unknown-serial', 'cross-meter'];

export class TamperPlan {
  readonly rate: number;
  readonly #seed: number;
  readonly #kinds: ReadonlyArray<readonly [TamperKind, number]>;
  readonly #forgeries: ReadonlyArray<readonly [ForgeryKind, number]>;

  constructor(seedWord: number, opts: TamperOptions) {
    if (!(opts.rate >= 0 && opts.rate <= 1)) throw new RangeError(`tamper rate must be in [0, 1], got ${opts.rate}`);
    this.rate = opts.rate;
    this.#seed = seedWord;
    this.#kinds = ALL_KINDS.map((k) => [k, opts.kinds?.[k] ?? (opts.kinds ? 0 : 1)] as const).filter(([, w]) => w > 0);
    this.#forgeries = ALL_FORGERIES.map((k) => [k, opts.forgeries?.[k] ?? (opts.forgeries ? 0 : 1)] as const).filter(([, w]) => w > 0);
    if (this.rate > 0 && this.#kinds.length === 0) throw new RangeError('tamper kinds has no kind with a positive weight');
  }

  /** The event planned for the meter's interval ending at ts, if any. */
  at(serial: number, ts: number): TamperEvent | undefined {
    if (this.rate === 0) return undefined;
    const k = ts / INTERVAL_MS;
    if (unit(hashKeys(this.#seed, STREAM.tamper, serial, k)) >= this.rate) return undefined;
    const event = pickWeighted(this.#kinds, unit(hashKeys(this.#seed, STREAM.tamper, serial, k, 1)));
    if (event !== 'forged') return { event };
    const forgery = this.#forgeries.length > 0 ? pickWeighted(this.#forgeries, unit(hashKeys(this.#seed, STREAM.tamper, serial, k, 2))) : 'random';
    return { event, forgery };
  }

  /** Whether the record of (serial, ts) must be kept for a replay REPLAY_DELAY_INTERVALS later. */
  keepForReplay(serial: number, ts: number): boolean {
    return this.at(serial, ts + REPLAY_DELAY_INTERVALS * INTERVAL_MS)?.event === 'replayed';
  }

  /** Seeded bytes for forgeries and bit positions of (serial, ts). */
  prng(serial: number, ts: number): Prng {
    return new Prng(hashKeys(this.#seed, STREAM.tamper, serial, ts / INTERVAL_MS, 3));
  }
}

// Record layout (docs/meter-pipeline.md): SC (1) ‖ IC (4) ‖ ciphertext ‖ tag (12).
const RECORD_HEADER = 5;
const RECORD_TAG = 12;

/** A copy of the record with one bit of its ciphertext flipped. */
export function flipCiphertextBit(record: Buffer, r: Prng): Buffer {
  const out = Buffer.from(record);
  const span = out.length - RECORD_HEADER - RECORD_TAG;
  if (span <= 0) throw new RangeError('record has no ciphertext');
  out[RECORD_HEADER + r.int(span)]! ^= 1 << r.int(8);
  return out;
}

/** A record-shaped forgery: the right header and length, counter `ic`, random ciphertext and tag. */
export function randomRecord(length: number, ic: number, r: Prng): Buffer {
  const out = r.bytes(length);
  out[0] = 0x30;
  out.writeUInt32BE(ic >>> 0, 1);
  return out;
}
