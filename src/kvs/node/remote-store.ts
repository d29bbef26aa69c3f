import type { FragmentEntry, FragmentStore, ListResult, NodeStatus } from './fragment-store.js';

/**
 * HTTP client for a node started by `securegrid kvs node` (undici Pool, keep-alive). Network errors,
 * timeouts and 5xx become NodeUnavailableError. `token`, when set, is sent as `Authorization: Bearer`.
 */
export declare class RemoteFragmentStore implements FragmentStore {
  constructor(opts: { url: string; token?: string; timeoutMs?: number; id?: string });
  readonly id: string;
  put(entries: FragmentEntry[]): Promise<void>;
  get(key: string, range?: { start: number; end: number }): Promise<Buffer | undefined>;
  getMany(keys: string[]): Promise<(Buffer | undefined)[]>;
  delete(keys: string[]): Promise<void>;
  list(opts?: { prefix?: string; after?: string; limit?: number }): Promise<ListResult>;
  status(): Promise<NodeStatus>;
  close(): Promise<void>;
}
