// IPsec-style anti-replay (RFC 4303 §3.4.3, bitmap as in RFC 6479): a floor, and a 1024-wide window of seen
// counters above it. A counter at or below the floor, or already seen, is a replay; a counter beyond the window
// slides it. The bitmap is a ring indexed by counter mod 1024, so sliding clears bits and never shifts words.

import { SecureError } from './errors.js';

export const REPLAY_WINDOW_SIZE = 1024;
const WORDS = REPLAY_WINDOW_SIZE / 32;
const FORMAT = 1;
/** version ‖ floor (u32) ‖ highest (u32) ‖ ring bitmap (128 bytes, 32 u32 BE words). */
export const REPLAY_WINDOW_BYTES = 1 + 4 + 4 + WORDS * 4;

function isCounter(ic: number): boolean {
  return Number.isInteger(ic) && ic >= 0 && ic <= 0xffffffff;
}

export class ReplayWindow {
  #floor: number;
  #highest: number;
  readonly #bits = new Uint32Array(WORDS);

  /** A window accepting every counter above `floor` (0: everything but 0, which senders never use). */
  constructor(floor = 0) {
    if (!isCounter(floor)) throw new SecureError('malformed', `a replay floor is a u32, got ${floor}`);
    this.#floor = floor;
    this.#highest = floor;
  }

  /** Every counter at or below the floor is rejected. */
  get floor(): number {
    return this.#floor;
  }

  /** The highest counter accepted (equals floor when none is in the window). */
  get highest(): number {
    return this.#highest;
  }

  #seen(ic: number): boolean {
    const p = ic & (REPLAY_WINDOW_SIZE - 1);
    return (this.#bits[p >>> 5] & (1 << (p & 31))) !== 0;
  }

  /** Whether `ic` would be accepted now. Does not change the window (call accept after authentication). */
  check(ic: number): boolean {
    if (!isCounter(ic) || ic <= this.#floor) return false;
    if (ic > this.#floor + REPLAY_WINDOW_SIZE) return true;
    return !this.#seen(ic);
  }

  /** Marks `ic` seen; call only after the record authenticated. SecureError('replay') if check(ic) is false. */
  accept(ic: number): void {
    if (!this.check(ic)) {
      throw new SecureError('replay', `invocation counter ${ic} is at or below the floor ${this.#floor} or was already seen`);
    }
    if (ic > this.#floor + REPLAY_WINDOW_SIZE) {
      const newFloor = ic - REPLAY_WINDOW_SIZE;
      // Counters leaving the window share ring positions with those entering it: clear them.
      if (newFloor - this.#floor >= REPLAY_WINDOW_SIZE) this.#bits.fill(0);
      else for (let v = this.#floor + 1; v <= newFloor; v++) this.#clear(v);
      this.#floor = newFloor;
    }
    const p = ic & (REPLAY_WINDOW_SIZE - 1);
    this.#bits[p >>> 5] |= 1 << (p & 31);
    if (ic > this.#highest) this.#highest = ic;
  }

  #clear(v: number): void {
    const p = v & (REPLAY_WINDOW_SIZE - 1);
    this.#bits[p >>> 5] &= ~(1 << (p & 31));
  }

  serialize(): Buffer {
    const out = Buffer.allocUnsafe(REPLAY_WINDOW_BYTES);
    out[0] = FORMAT;
    out.writeUInt32BE(this.#floor, 1);
    out.writeUInt32BE(this.#highest, 5);
    for (let w = 0; w < WORDS; w++) out.writeUInt32BE(this.#bits[w], 9 + w * 4);
    return out;
  }

  /** Inverse of serialize; SecureError('malformed') for bytes serialize cannot have produced. */
  static deserialize(bytes: Buffer): ReplayWindow {
    if (!Buffer.isBuffer(bytes) || bytes.length !== REPLAY_WINDOW_BYTES || bytes[0] !== FORMAT) {
      throw new SecureError('malformed', `a serialized replay window is ${REPLAY_WINDOW_BYTES} bytes starting with format ${FORMAT}`);
    }
    const floor = bytes.readUInt32BE(1);
    const highest = bytes.readUInt32BE(5);
    if (highest < floor || highest - floor > REPLAY_WINDOW_SIZE) {
      throw new SecureError('malformed', `replay window highest ${highest} is not within ${REPLAY_WINDOW_SIZE} above floor ${floor}`);
    }
    const window = new ReplayWindow(floor);
    window.#highest = highest;
    for (let w = 0; w < WORDS; w++) window.#bits[w] = bytes.readUInt32BE(9 + w * 4);
    // Every set bit stands for the one counter in (floor, floor + 1024] at its ring position; none may exceed highest.
    for (let p = 0; p < REPLAY_WINDOW_SIZE; p++) {
      if ((window.#bits[p >>> 5] & (1 << (p & 31))) === 0) continue;
      const v = floor + 1 + ((p - ((floor + 1) & (REPLAY_WINDOW_SIZE - 1)) + REPLAY_WINDOW_SIZE) & (REPLAY_WINDOW_SIZE - 1));
      if (v > highest) throw new SecureError('malformed', 'replay window marks a counter above its highest');
    }
    if (highest > floor && !window.#seen(highest)) throw new SecureError('malformed', 'replay window does not mark its highest counter');
    return window;
  }
}
