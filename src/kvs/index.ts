// kvs/: the Secure KVS — a trusted gateway (S3 API, encryption, policies, placement, healing) in front of
// untrusted storage nodes that only ever hold ciphertext under opaque names.
export { startGateway, localNodeSpecs, openNode, DEFAULT_MAX_OBJECT_SIZE } from './kvs.js';
export type { Gateway, GatewayOptions, NodeSpec } from './kvs.js';
export type { HealReport, BatchOp, BatchResult } from './gateway/object-layer.js';
export { startNodeServer, LocalFragmentStore, RemoteFragmentStore } from './node/index.js';
export type { FragmentStore } from './node/index.js';
export { parsePolicy, formatPolicy, storageClassPolicy, STORAGE_CLASSES } from './erasure/index.js';
export type { Policy } from './erasure/index.js';
export { KvsClient, KvsError, RemoteKvStore } from './client/index.js';
export type { KvStore, KvWrite, KvEntry } from './client/index.js';
export { EmbeddedKvStore } from './embedded.js';
export type { AccessKey } from './gateway/accounts.js';
