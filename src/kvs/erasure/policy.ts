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

/** 'replicate:3' | 'ec:6+2' | 'hybrid:1+6/8' (whitespace-free, case-insensitive). Throws PolicyError. */
export declare function parsePolicy(s: string): Policy;
export declare function formatPolicy(p: Policy): string;
/** Number of fragments per stripe (= distinct nodes needed). */
export declare function policyWidth(p: Policy): number;
/**
 * Fragments that must be durable before a write is acknowledged.
 * replicate:N → floor(N/2)+1; ec:K+M → K, plus 1 when K == M; hybrid:R+K/N → the ec rule on its N shards
 * (K, plus 1 when K == N-K) counting shards only (replicas speed reads up, they do not count).
 */
export declare function writeQuorum(p: Policy): number;
/** Whether the fragments marked present suffice to recover the stripe. */
export declare function readQuorumMet(p: Policy, present: boolean[]): boolean;
/** How many fragments (nodes) may be lost with both reads and writes still succeeding. */
export declare function faultTolerance(p: Policy): number;

/**
 * Storage classes: the standard S3 names map to hot / warm / cold, and securegrid's own names select any policy:
 *   STANDARD, REDUCED_REDUNDANCY, EXPRESS_ONEZONE          → hot  = replicate:3
 *   STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING           → warm = hybrid:1+6/8
 *   GLACIER, GLACIER_IR, DEEP_ARCHIVE, OUTPOSTS, SNOW      → cold = ec:6+2
 *   HOT, WARM, COLD                                        → the same three
 *   SG-<policy> e.g. SG-EC:4+2, SG-REPLICATE:2, SG-HYBRID:1+6/8 → that policy
 * Returns undefined for an unknown class.
 */
export declare function storageClassPolicy(cls: string): Policy | undefined;
export declare const STORAGE_CLASSES: Readonly<Record<string, string>>;
