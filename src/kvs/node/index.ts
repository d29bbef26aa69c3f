// node/: untrusted storage nodes behind one FragmentStore interface (as MinIO's StorageAPI):
// a local implementation on LMDB and a remote one over HTTP to `securegrid kvs node`.
export type { FragmentStore, FragmentEntry, NodeStatus, ListResult } from './fragment-store.js';
export { NodeUnavailableError, NodeRequestError } from './fragment-store.js';
export { LocalFragmentStore } from './local-store.js';
export { RemoteFragmentStore } from './remote-store.js';
export { startNodeServer } from './server.js';
export type { NodeServer, NodeServerOptions } from './server.js';
export { MAX_KEY_BYTES, MAX_VALUE_BYTES, keyProblem } from './wire.js';
