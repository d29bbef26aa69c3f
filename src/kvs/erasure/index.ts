// erasure/: redundancy policies as pure functions over buffers (no I/O).
export { parsePolicy, formatPolicy, policyWidth, writeQuorum, readQuorumMet, faultTolerance, storageClassPolicy, STORAGE_CLASSES, PolicyError } from './policy.js';
export type { Policy } from './policy.js';
export { encodeStripe, decodeStripe, rebuildFragments, dataShardSpans, shardLength, ErasureError } from './codec.js';
export type { ShardSpan, ErasureErrorCode } from './codec.js';
