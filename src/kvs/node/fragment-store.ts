// A storage node holds opaque fragments under opaque keys. It never sees plaintext, a key, or an object name:
// the gateway encrypts before it encodes, and names fragments by random object ids.
// Keys are printable ASCII (no spaces), at most 200 bytes. Values are at most 64 MiB.

export interface FragmentEntry {
  key: string;
  value: Buffer;
}

export interface NodeStatus {
  id: string;
  ok: boolean;
  entries: number;
  bytes: number; // approximate bytes stored (values)
  /** Remote stores only: the id the node reports for itself (its `<dataDir>/node-id`); `id` is the store's id. */
  nodeId?: string;
}

export interface ListResult {
  keys: Array<{ key: string; size: number }>;
  /** When set, more keys follow: pass it as `after` to continue. */
  next?: string;
}

/** Thrown (or rejected) when a node cannot be reached or is closed: the caller treats its fragments as missing. */
export class NodeUnavailableError extends Error {
  readonly code = 'NodeUnavailable';
  constructor(readonly nodeId: string, cause?: unknown) {
    super(`storage node ${nodeId} is unavailable${cause instanceof Error ? `: ${cause.message}` : ''}`);
  }
}

/**
 * The node refused the request and retrying will not help: an invalid key, value, range or list option
 * ('NodeBadRequest'), or a missing or wrong bearer token ('NodeUnauthorized'). Both stores throw it alike.
 */
export class NodeRequestError extends Error {
  constructor(readonly nodeId: string, readonly code: 'NodeBadRequest' | 'NodeUnauthorized', message: string) {
    super(`storage node ${nodeId}: ${message}`);
  }
}

export interface FragmentStore {
  /** Stable name of the node (used for placement): e.g. 'node-3' or the URL. */
  readonly id: string;
  /** Stores all entries; resolves only once they are durable (fsync'd). Atomic per call on one node. */
  put(entries: FragmentEntry[]): Promise<void>;
  /** One fragment or a byte range of it ([start, end), clamped to its size); undefined when absent. */
  get(key: string, range?: { start: number; end: number }): Promise<Buffer | undefined>;
  /** Many whole fragments, in order; undefined for each absent one. */
  getMany(keys: string[]): Promise<(Buffer | undefined)[]>;
  /** Removes the keys that exist; missing keys are not an error. Durable on resolve. */
  delete(keys: string[]): Promise<void>;
  /** Keys in byte order, starting after `after`, restricted to `prefix`, at most `limit` (default 1000). */
  list(opts?: { prefix?: string; after?: string; limit?: number }): Promise<ListResult>;
  status(): Promise<NodeStatus>;
  close(): Promise<void>;
}
