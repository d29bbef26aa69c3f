// A self-organizing map (Kohonen) on Float64Array: a rectangular grid of prototype daily profiles trained online
// with a shrinking Gaussian neighbourhood. Inputs are z-normalized, so the nearest prototype (Euclidean) is also
// the best-correlated one: the map's cells are the paper's behaviour classes.
import { rng } from './stats.js';

export interface SomModel {
  width: number;
  height: number;
  dim: number;
  /** width × height × dim, row-major by cell (cell = y · width + x). */
  prototypes: Float64Array;
}

export interface SomOptions {
  width?: number;
  height?: number;
  epochs?: number;
  seed?: number;
}

/** z-normalizes a profile in place (mean 0, norm √dim); a constant profile becomes all zeros. */
export function znorm(x: Float64Array): Float64Array {
  const n = x.length;
  let m = 0;
  for (let i = 0; i < n; i++) m += x[i]!;
  m /= n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (x[i]! - m) ** 2;
  const sd = Math.sqrt(v / n);
  const scale = sd > 1e-9 * (Math.abs(m) + 1e-30) ? 1 / sd : 0;
  for (let i = 0; i < n; i++) x[i] = (x[i]! - m) * scale;
  return x;
}

/** Trains a map on `samples` (each of length dim, already z-normalized). */
export function trainSom(samples: readonly Float64Array[], dim: number, o: SomOptions = {}): SomModel {
  const width = o.width ?? 8;
  const height = o.height ?? 8;
  const cells = width * height;
  const next = rng(o.seed ?? 1);
  const proto = new Float64Array(cells * dim);
  if (samples.length === 0) return { width, height, dim, prototypes: proto };
  for (let c = 0; c < cells; c++) proto.set(samples[Math.floor(next() * samples.length)]!, c * dim);
  const epochs = o.epochs ?? 4;
  const steps = Math.max(1, epochs * samples.length);
  const sigma0 = Math.max(width, height) / 2;
  const sigma1 = 0.6;
  const model = { width, height, dim, prototypes: proto };
  for (let t = 0; t < steps; t++) {
    const x = samples[Math.floor(next() * samples.length)]!;
    const frac = t / steps;
    const lr = 0.5 * (1 - frac) + 0.01;
    const sigma = sigma0 * (sigma1 / sigma0) ** frac;
    const b = bmu(model, x);
    const bx = b % width;
    const by = (b - bx) / width;
    const reach = Math.ceil(3 * sigma);
    const denom = 2 * sigma * sigma;
    for (let y = Math.max(0, by - reach); y <= Math.min(height - 1, by + reach); y++) {
      for (let xx = Math.max(0, bx - reach); xx <= Math.min(width - 1, bx + reach); xx++) {
        const h = lr * Math.exp(-((xx - bx) ** 2 + (y - by) ** 2) / denom);
        if (h < 1e-4) continue;
        const o2 = (y * width + xx) * dim;
        for (let i = 0; i < dim; i++) proto[o2 + i]! += h * (x[i]! - proto[o2 + i]!);
      }
    }
  }
  return model;
}

/** Best-matching unit: the cell whose prototype is nearest to x. */
export function bmu(m: SomModel, x: ArrayLike<number>): number {
  let best = 0;
  let bestD = Infinity;
  const { dim, prototypes: p } = m;
  const cells = m.width * m.height;
  for (let c = 0; c < cells; c++) {
    let d = 0;
    const o = c * dim;
    for (let i = 0; i < dim && d < bestD; i++) d += (x[i]! - p[o + i]!) ** 2;
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

export function prototype(m: SomModel, cell: number): Float64Array {
  return m.prototypes.subarray(cell * m.dim, (cell + 1) * m.dim);
}

/** U-matrix: per cell, the mean distance of its prototype to its 4-neighbours' (class boundaries are high). */
export function uMatrix(m: SomModel): Float64Array {
  const out = new Float64Array(m.width * m.height);
  for (let y = 0; y < m.height; y++) {
    for (let x = 0; x < m.width; x++) {
      let s = 0;
      let n = 0;
      for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]] as const) {
        const nx = x + dx;
        const ny = y + dy;
        if (nx < 0 || ny < 0 || nx >= m.width || ny >= m.height) continue;
        const a = prototype(m, y * m.width + x);
        const b = prototype(m, ny * m.width + nx);
        let d = 0;
        for (let i = 0; i < m.dim; i++) d += (a[i]! - b[i]!) ** 2;
        s += Math.sqrt(d);
        n++;
      }
      out[y * m.width + x] = n ? s / n : 0;
    }
  }
  return out;
}
