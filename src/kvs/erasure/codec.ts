// Encoding of one stripe (a run of ciphertext bytes) into a policy's fragments, and back.
// Reed-Solomon via @ronomon/reed-solomon: equal shards whose size is a multiple of 8, so data is zero-padded
// and the caller records the true length.

import type { Policy } from './policy.js';

export interface ShardSpan {
  fragment: number; // fragment index within the stripe
  offset: number; // byte offset inside that fragment
  length: number;
}

/** Shard length for `dataLen` bytes under policy (ec / hybrid): ceil(dataLen / K) rounded up to a multiple of 8 (min 8). For replicate: dataLen. */
export declare function shardLength(p: Policy, dataLen: number): number;
/** All fragments of the stripe, index = fragment number (see policy.ts). Replicas may share one Buffer. */
export declare function encodeStripe(p: Policy, data: Buffer): { shardLen: number; fragments: Buffer[] };
/** Recovers the stripe's dataLen bytes from whichever fragments are given (undefined = missing). Throws if too few. */
export declare function decodeStripe(p: Policy, fragments: (Buffer | undefined)[], shardLen: number, dataLen: number): Buffer;
/** Re-creates the fragments numbered in `which` from the given ones. Throws if too few. */
export declare function rebuildFragments(p: Policy, fragments: (Buffer | undefined)[], shardLen: number, dataLen: number, which: number[]): Buffer[];
/**
 * Where stripe bytes [start, end) sit inside the data shards (ec/hybrid; for replicate: fragment 0, same offsets),
 * so a Range read can fetch only those bytes when the data shards are healthy. For hybrid these are the data
 * shards R..R+K-1 (a caller reading an exact replica uses the stripe offsets directly).
 */
export declare function dataShardSpans(p: Policy, shardLen: number, start: number, end: number): ShardSpan[];
