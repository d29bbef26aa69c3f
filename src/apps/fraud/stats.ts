// Small numeric helpers over typed arrays: robust location/scale, correlation, hourly profiles.

export function mean(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]!;
  return x.length ? s / x.length : Number.NaN;
}

/** Median of the finite values (NaN when none). */
export function median(x: ArrayLike<number>): number {
  return quantile(x, 0.5);
}

/** q-quantile of the finite values, linear interpolation (NaN when none). */
export function quantile(x: ArrayLike<number>, q: number): number {
  const v: number[] = [];
  for (let i = 0; i < x.length; i++) if (Number.isFinite(x[i]!)) v.push(x[i]!);
  if (v.length === 0) return Number.NaN;
  v.sort((a, b) => a - b);
  const p = q * (v.length - 1);
  const lo = Math.floor(p);
  const hi = Math.min(v.length - 1, lo + 1);
  return v[lo]! + (v[hi]! - v[lo]!) * (p - lo);
}

/** Median absolute deviation, scaled to σ for a normal distribution. */
export function mad(x: ArrayLike<number>, center = median(x)): number {
  const d: number[] = [];
  for (let i = 0; i < x.length; i++) if (Number.isFinite(x[i]!)) d.push(Math.abs(x[i]! - center));
  return 1.4826 * median(d);
}

/** Pearson correlation; 0 when either side is constant (a flat day has no shape to agree with). */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < n; i++) {
    sa += a[i]!;
    sb += b[i]!;
  }
  const ma = sa / n;
  const mb = sb / n;
  let cov = 0;
  let va = 0;
  let vb = 0;
  for (let i = 0; i < n; i++) {
    const x = a[i]! - ma;
    const y = b[i]! - mb;
    cov += x * y;
    va += x * x;
    vb += y * y;
  }
  // Relative threshold: float32 rounding of a constant day leaves tiny variance.
  if (va <= 1e-12 * (ma * ma * n + 1e-30) || vb <= 1e-12 * (mb * mb * n + 1e-30)) return 0;
  return cov / Math.sqrt(va * vb);
}

/** 96 quarter-hours → 24 hourly sums; NaN propagates. */
export function hourly(day: ArrayLike<number>, out = new Float64Array(24)): Float64Array {
  for (let h = 0; h < 24; h++) out[h] = day[4 * h]! + day[4 * h + 1]! + day[4 * h + 2]! + day[4 * h + 3]!;
  return out;
}

/** A profile scaled to mean 1 (shape only); a zero day stays zero. */
export function shape(x: Float64Array, out = new Float64Array(x.length)): Float64Array {
  const m = mean(x);
  for (let i = 0; i < x.length; i++) out[i] = m > 0 ? x[i]! / m : 0;
  return out;
}

/** Coefficient of variation (σ / μ); 0 for an empty or zero day. */
export function cv(x: ArrayLike<number>): number {
  const m = mean(x);
  if (!(m > 0)) return 0;
  let v = 0;
  for (let i = 0; i < x.length; i++) v += (x[i]! - m) ** 2;
  return Math.sqrt(v / x.length) / m;
}

/** Lag-1 autocorrelation (smooth load curves are high, multiplicative white noise lowers it). */
export function lag1(x: ArrayLike<number>): number {
  const n = x.length;
  const m = mean(x);
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    const d = x[i]! - m;
    den += d * d;
    if (i > 0) num += d * (x[i - 1]! - m);
  }
  return den > 1e-12 * (m * m * n + 1e-30) ? num / den : 0;
}

/** A seeded 32-bit PRNG (mulberry32) for sampling and SOM initialisation: runs are reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
