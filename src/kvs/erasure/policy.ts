// Policies (paper, Fig. 5): replicate:N, ec:K+M (Reed-Solomon), hybrid:R+K/N (R exact replicas plus N
// erasure-coded fragments of which K suffice). Fragment numbering of a stripe, 0-based:
//   replicate:N   → 0..N-1 are full copies
//   ec:K+M        → 0..K-1 data shards, K..K+M-1 parity shards
//   hybrid:R+K/N  → 0..R-1 full copies, then R..R+K-1 data shards, R+K..R+N-1 parity shards
// Limits (from @ronomon/reed-solomon): 1 ≤ K ≤ 24, 1 ≤ M ≤ 6 (for hybrid M = N-K); 1 ≤ N ≤ 16 for replicate.

export type Policy =
  | { kind: 'replicate'; n: number }
  | { kind: 'ec'; k: number; m: number }
  | { kind: 'hybrid'; r: number; k: number; n: number };

export class PolicyError extends Error {
  readonly code = 'InvalidPolicy';
}

const MAX_REPLICAS = 16;
const MAX_K = 24;
const MAX_M = 6;

const RE_REPLICATE = /^replicate:(\d{1,9})$/;
const RE_EC = /^ec:(\d{1,9})\+(\d{1,9})$/;
const RE_HYBRID = /^hybrid:(\d{1,9})\+(\d{1,9})\/(\d{1,9})$/;

const FORMS = "use 'replicate:N' (1 ≤ N ≤ 16), 'ec:K+M' (e.g. ec:6+2) or 'hybrid:R+K/N' (e.g. hybrid:1+6/8)";

/** 'replicate:3' | 'ec:6+2' | 'hybrid:1+6/8' (whitespace-free, case-insensitive). Throws PolicyError. */
export function parsePolicy(s: string): Policy {
  if (typeof s !== 'string') throw new PolicyError(`policy must be a string; ${FORMS}`);
  const text = s.toLowerCase();
  const shown = JSON.stringify(s.length > 64 ? `${s.slice(0, 64)}…` : s);
  let m: RegExpExecArray | null;
  if ((m = RE_REPLICATE.exec(text))) {
    const n = Number(m[1]);
    if (n < 1 || n > MAX_REPLICAS) {
      throw new PolicyError(`invalid policy ${shown}: replicate:N needs 1 ≤ N ≤ ${MAX_REPLICAS}`);
    }
    return { kind: 'replicate', n };
  }
  if ((m = RE_EC.exec(text))) {
    const k = Number(m[1]);
    const mm = Number(m[2]);
    if (k < 1 || k > MAX_K || mm < 1 || mm > MAX_M) {
      throw new PolicyError(`invalid policy ${shown}: ec:K+M needs 1 ≤ K ≤ ${MAX_K} and 1 ≤ M ≤ ${MAX_M}`);
    }
    return { kind: 'ec', k, m: mm };
  }
  if ((m = RE_HYBRID.exec(text))) {
    const r = Number(m[1]);
    const k = Number(m[2]);
    const n = Number(m[3]);
    if (r < 1 || k < 1 || k >= n || n - k > MAX_M || k > MAX_K) {
      throw new PolicyError(
        `invalid policy ${shown}: hybrid:R+K/N needs R ≥ 1 replicas and N erasure-coded fragments of which K suffice, ` +
          `with 1 ≤ K < N, N-K ≤ ${MAX_M} and K ≤ ${MAX_K}`,
      );
    }
    return { kind: 'hybrid', r, k, n };
  }
  throw new PolicyError(`invalid policy ${shown}: ${FORMS} (no spaces)`);
}

export function formatPolicy(p: Policy): string {
  switch (p.kind) {
    case 'replicate':
      return `replicate:${p.n}`;
    case 'ec':
      return `ec:${p.k}+${p.m}`;
    case 'hybrid':
      return `hybrid:${p.r}+${p.k}/${p.n}`;
  }
}

/** Number of fragments per stripe (= distinct nodes needed). */
export function policyWidth(p: Policy): number {
  switch (p.kind) {
    case 'replicate':
      return p.n;
    case 'ec':
      return p.k + p.m;
    case 'hybrid':
      return p.r + p.n;
  }
}

/** The ec rule: K shards, plus one when K == M (so two disjoint write quorums cannot both succeed). */
function ecWriteQuorum(k: number, m: number): number {
  return k === m ? k + 1 : k;
}

/**
 * Fragments that must be durable before a write is acknowledged.
 * replicate:N → floor(N/2)+1; ec:K+M → K, plus 1 when K == M; hybrid:R+K/N → the ec rule on its N shards
 * (K, plus 1 when K == N-K) counting shards only (replicas speed reads up, they do not count).
 */
export function writeQuorum(p: Policy): number {
  switch (p.kind) {
    case 'replicate':
      return Math.floor(p.n / 2) + 1;
    case 'ec':
      return ecWriteQuorum(p.k, p.m);
    case 'hybrid':
      return ecWriteQuorum(p.k, p.n - p.k);
  }
}

function countPresent(present: boolean[], from: number, to: number): number {
  let c = 0;
  for (let i = from; i < to; i++) if (present[i] === true) c++;
  return c;
}

/** Whether the fragments marked present suffice to recover the stripe. */
export function readQuorumMet(p: Policy, present: boolean[]): boolean {
  switch (p.kind) {
    case 'replicate':
      return countPresent(present, 0, p.n) >= 1;
    case 'ec':
      return countPresent(present, 0, p.k + p.m) >= p.k;
    case 'hybrid':
      return countPresent(present, 0, p.r) >= 1 || countPresent(present, p.r, p.r + p.n) >= p.k;
  }
}

/**
 * How many fragments (nodes) may be lost with both reads and writes still succeeding.
 *
 * Losses are adversarial (any f of the stripe's nodes), so the answer is min(read tolerance, write tolerance):
 *   replicate:N   reads need 1 copy → N-1;   writes need floor(N/2)+1 copies → N - writeQuorum
 *                 ⇒ N - writeQuorum (= ceil(N/2) - 1).
 *   ec:K+M        reads need K shards → M;   writes need writeQuorum of K+M → K+M - writeQuorum (≤ M)
 *                 ⇒ K+M - writeQuorum.
 *   hybrid:R+K/N  reads fail only once all R replicas and N-K+1 shards are gone → R + N-K;
 *                 writes count shards only, and the worst case puts every loss on a shard → N - writeQuorum
 *                 (≤ N-K < R+N-K) ⇒ N - writeQuorum = (R+N) - R - writeQuorum.
 */
export function faultTolerance(p: Policy): number {
  let read: number;
  let write: number;
  switch (p.kind) {
    case 'replicate':
      read = p.n - 1;
      write = p.n - writeQuorum(p);
      break;
    case 'ec':
      read = p.m;
      write = p.k + p.m - writeQuorum(p);
      break;
    case 'hybrid':
      read = p.r + p.n - p.k;
      write = p.n - writeQuorum(p);
      break;
  }
  return Math.max(0, Math.min(read, write));
}

const HOT = 'replicate:3';
const WARM = 'hybrid:1+6/8';
const COLD = 'ec:6+2';

/**
 * Storage classes: the standard S3 names map to hot / warm / cold, and securegrid's own names select any policy:
 *   STANDARD, REDUCED_REDUNDANCY, EXPRESS_ONEZONE          → hot  = replicate:3
 *   STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING           → warm = hybrid:1+6/8
 *   GLACIER, GLACIER_IR, DEEP_ARCHIVE, OUTPOSTS, SNOW      → cold = ec:6+2
 *   HOT, WARM, COLD                                        → the same three
 *   SG-<policy> e.g. SG-EC:4+2, SG-REPLICATE:2, SG-HYBRID:1+6/8 → that policy
 * Returns undefined for an unknown class.
 */
export function storageClassPolicy(cls: string): Policy | undefined {
  if (typeof cls !== 'string') return undefined;
  const upper = cls.toUpperCase();
  if (Object.prototype.hasOwnProperty.call(STORAGE_CLASSES, upper)) return parsePolicy(STORAGE_CLASSES[upper]!);
  if (upper.startsWith('SG-')) {
    try {
      return parsePolicy(upper.slice(3));
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** Named storage classes → policy strings (the SG-<policy> form is handled by storageClassPolicy). */
export const STORAGE_CLASSES: Readonly<Record<string, string>> = Object.freeze({
  STANDARD: HOT,
  REDUCED_REDUNDANCY: HOT,
  EXPRESS_ONEZONE: HOT,
  STANDARD_IA: WARM,
  ONEZONE_IA: WARM,
  INTELLIGENT_TIERING: WARM,
  GLACIER: COLD,
  GLACIER_IR: COLD,
  DEEP_ARCHIVE: COLD,
  OUTPOSTS: COLD,
  SNOW: COLD,
  HOT,
  WARM,
  COLD,
});
