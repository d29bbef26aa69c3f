// KvStore: what CascaDB and our other services need from the KVS — binary keys in byte order, atomic
// multi-key writes, point reads and ordered scans — over one bucket. Two implementations: RemoteKvStore
// (HTTPS to a gateway, any number of processes) and EmbeddedKvStore (a gateway's object layer in-process).
// Binary keys travel as lower-case hex object names, which keep byte order.

export type KvWrite = { op: 'put'; key: Buffer; value: Buffer } | { op: 'delete'; key: Buffer };

export interface KvEntry {
  key: Buffer;
  value: Buffer;
}

export interface KvStore {
  get(key: Buffer): Promise<Buffer | undefined>;
  getMany(keys: Buffer[]): Promise<(Buffer | undefined)[]>;
  /** Which keys exist, without reading their values (optional: callers fall back to getMany). */
  hasMany?(keys: Buffer[]): Promise<boolean[]>;
  /** All puts and deletes become visible together, or none does. */
  write(ops: KvWrite[]): Promise<void>;
  /** Entries with start ≤ key < end (end undefined: to the end), in byte order, fetched page by page. */
  scan(start: Buffer, end?: Buffer, opts?: { pageSize?: number }): AsyncGenerator<KvEntry>;
  close(): Promise<void>;
}

export const toName = (key: Buffer): string => key.toString('hex');
export const fromName = (name: string): Buffer => Buffer.from(name, 'hex');
