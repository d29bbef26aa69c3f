// Seeded, non-cryptographic randomness for the simulator: a model value must be a pure function of
// (fleet seed, serial, time), so values come from hashing those keys, and sequences from xoshiro128**.
// None of this is ever used for keys or nonces (those come from src/crypto).

/** 32-bit finaliser of MurmurHash3: a bijection on uint32 with full avalanche. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a over the UTF-16 code units of s, finalised; used once per fleet to turn a seed string into words. */
export function hashString(s: string, basis = 0x811c9dc5): number {
  let h = basis >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/** Hash of a seed word and up to four integer keys (each < 2^32 or a safe integer folded to 32 bits). */
export function hashKeys(seed: number, a: number, b = 0, c = 0, d = 0): number {
  let h = seed >>> 0;
  h = fmix32(h ^ Math.imul(fold(a), 0x9e3779b1));
  h = fmix32(h ^ Math.imul(fold(b) + 0x7f4a7c15, 0x85ebca77));
  h = fmix32(h ^ Math.imul(fold(c) + 0x165667b1, 0xc2b2ae3d));
  h = fmix32(h ^ Math.imul(fold(d) + 0x27d4eb2f, 0x27d4eb2f));
  return h;
}

function fold(x: number): number {
  // Keys above 2^32 (e.g. a ts in ms) keep their high bits instead of losing them to ToInt32.
  return x >= 0x100000000 || x < 0 ? ((x % 0x100000000) ^ Math.floor(x / 0x100000000)) >>> 0 : x >>> 0;
}

/** A uint32 hash as a uniform double in [0, 1). */
export function unit(h: number): number {
  return h / 0x100000000;
}

/** A standard normal from two hashes (Box–Muller). */
export function normalFrom(h1: number, h2: number): number {
  const u = (h1 + 1) / 0x100000001; // (0, 1): log never sees 0
  return Math.sqrt(-2 * Math.log(u)) * Math.cos((2 * Math.PI * h2) / 0x100000000);
}

/** xoshiro128** (Blackman & Vigna), seeded through splitmix-style mixing of one hash. */
export class Prng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => (s = fmix32((s + 0x9e3779b9) >>> 0));
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#d = next() | 1; // never the all-zero state
  }

  /** The next uint32. */
  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.#b, 5), 7), 9) >>> 0;
    const t = this.#b << 9;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return r;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 0x100000000;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  normal(): number {
    return normalFrom(this.u32(), this.u32());
  }

  /** Random bytes (simulated forgeries only: never key material). */
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Picks a key of `weights` with probability proportional to its weight, using u in [0, 1). */
export function pickWeighted<K extends string>(weights: ReadonlyArray<readonly [K, number]>, u: number): K {
  let total = 0;
  for (const [, w] of weights) total += w;
  let x = u * total;
  for (const [k, w] of weights) {
    if (x < w) return k;
    x -= w;
  }
  return weights[weights.length - 1]![0];
}
