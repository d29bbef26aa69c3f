import type { FragmentEntry, FragmentStore, ListResult, NodeStatus } from './fragment-store.js';

/**
 * LMDB-backed store in `dir` (binary values, no compression, durable commits; lmdb-js batches concurrent
 * writes into one transaction). Several processes may open the same dir (LMDB locking).
 * After close() every call rejects with NodeUnavailableError (the demo "kills" a node this way).
 */
export declare class LocalFragmentStore implements FragmentStore {
  constructor(opts: { id: string; dir: string });
  readonly id: string;
  readonly dir: string;
  put(entries: FragmentEntry[]): Promise<void>;
  get(key: string, range?: { start: number; end: number }): Promise<Buffer | undefined>;
  getMany(keys: string[]): Promise<(Buffer | undefined)[]>;
  delete(keys: string[]): Promise<void>;
  list(opts?: { prefix?: string; after?: string; limit?: number }): Promise<ListResult>;
  status(): Promise<NodeStatus>;
  close(): Promise<void>;
}
