import { mkdirSync } from 'node:fs';
import { open, type RootDatabase } from 'lmdb';
import {
  NodeRequestError, NodeUnavailableError,
  type FragmentEntry, type FragmentStore, type ListResult, type NodeStatus,
} from './fragment-store.js';
import {
  MAX_VALUE_BYTES, boundProblem, clampRange, effectiveLimit, keyProblem, limitProblem, rangeProblem,
} from './wire.js';

/**
 * LMDB-backed store in `dir` (binary values, no compression, durable commits; lmdb-js batches concurrent
 * writes into one transaction). Several processes may open the same dir (LMDB locking).
 * After close() every call rejects with NodeUnavailableError (the demo "kills" a node this way).
 *
 * Durability: the environment is opened with `overlappingSync: false` (lmdb-js enables it by default on
 * Linux, and then resolves a write at commit, *before* the flush) and without noSync / noMetaSync /
 * useWritemap / mapAsync. Each commit therefore runs LMDB's classic synchronous commit: data pages are
 * written and fdatasync'd, then the meta page is written through the O_DSYNC descriptor, and only then
 * does lmdb-js resolve the write promises of that transaction. A put()/delete() resolves after that.
 * Open a node's dir only through this class: lmdb-js shares one environment per path within a process,
 * and an environment first opened elsewhere with overlappingSync would resolve writes before the flush.
 *
 * Atomicity: each put()/delete() queues its operations inside one `db.batch()` callback, which lmdb-js
 * guarantees to commit in one transaction (it may share that transaction with other calls of the same
 * event turn, which is how concurrent callers get one fsync per batch rather than one per call).
 */
export class LocalFragmentStore implements FragmentStore {
  readonly id: string;
  readonly dir: string;
  private db: RootDatabase<Buffer, string> | undefined;
  private closing: Promise<void> | undefined;

  constructor(opts: { id: string; dir: string }) {
    this.id = opts.id;
    this.dir = opts.dir;
    mkdirSync(opts.dir, { recursive: true });
    this.db = open<Buffer, string>({
      path: opts.dir,
      noSubdir: false, // `dir` is a directory even when its name has a dot in it
      encoding: 'binary',
      compression: false,
      overlappingSync: false,
      noSync: false,
      noMetaSync: false,
      useWritemap: false,
      cache: false,
    });
  }

  async put(entries: FragmentEntry[]): Promise<void> {
    const db = this.open();
    for (const e of entries) this.checkKey(e.key);
    for (const e of entries) {
      if (!(e.value instanceof Uint8Array)) this.bad('value must be a Buffer');
      if (e.value.length > MAX_VALUE_BYTES) this.bad(`value of ${e.value.length} bytes exceeds ${MAX_VALUE_BYTES}`);
    }
    if (entries.length === 0) return;
    await this.wrap(() => db.batch(() => {
      for (const e of entries) void db.put(e.key, e.value);
    }));
  }

  async get(key: string, range?: { start: number; end: number }): Promise<Buffer | undefined> {
    return (await this.read(key, range))?.value;
  }

  /**
   * One fragment, or a copy of a slice of it, together with the fragment's full size; undefined when absent.
   * `pick` (used by the server for HTTP Range) chooses [start, end) once the size is known; returning
   * undefined from it means the whole value. Lookup and copy happen in one synchronous read (one snapshot).
   */
  async read(
    key: string,
    range?: { start: number; end: number } | ((size: number) => [number, number] | undefined),
  ): Promise<{ value: Buffer; size: number } | undefined> {
    const db = this.open();
    this.checkKey(key);
    if (typeof range === 'object') {
      const rp = rangeProblem(range);
      if (rp) this.bad(rp);
    }
    return this.wrapSync(() => {
      // getBinaryFast may hand back a buffer lmdb reuses on the next read (or a view of the map): copy out of it.
      const fast = db.getBinaryFast(key);
      if (fast === undefined) return undefined;
      const size = fast.length;
      const slice = range === undefined ? undefined : typeof range === 'function' ? range(size) : clampRange(range, size);
      const [s, e] = slice ?? [0, size];
      const value = Buffer.allocUnsafe(e - s);
      value.set(fast.subarray(s, e));
      return { value, size };
    });
  }

  async getMany(keys: string[]): Promise<(Buffer | undefined)[]> {
    const db = this.open();
    for (const k of keys) this.checkKey(k);
    return this.wrapSync(() => keys.map((k) => {
      const v = db.getBinary(k);
      return v === undefined ? undefined : asBuffer(v);
    }));
  }

  async delete(keys: string[]): Promise<void> {
    const db = this.open();
    for (const k of keys) this.checkKey(k);
    if (keys.length === 0) return;
    await this.wrap(() => db.batch(() => {
      for (const k of keys) void db.remove(k);
    }));
  }

  async list(opts: { prefix?: string; after?: string; limit?: number } = {}): Promise<ListResult> {
    const db = this.open();
    const problem = boundProblem('prefix', opts.prefix) ?? boundProblem('after', opts.after) ?? limitProblem(opts.limit);
    if (problem) this.bad(problem);
    const prefix = opts.prefix ?? '';
    const after = opts.after || undefined;
    const limit = effectiveLimit(opts.limit);
    return this.wrapSync(() => {
      const start = after !== undefined && after > prefix ? after : prefix;
      const keys: string[] = [];
      let more = false;
      // Keys are printable ASCII, so lmdb's key order is plain byte order and a prefix is one contiguous run.
      for (const key of db.getKeys(start === '' ? {} : { start })) {
        if (typeof key !== 'string' || !key.startsWith(prefix)) break;
        if (after !== undefined && key <= after) continue;
        if (keys.length === limit) {
          more = true;
          break;
        }
        keys.push(key);
      }
      const out: ListResult = {
        keys: keys.map((key) => ({ key, size: db.getBinaryFast(key)?.length ?? 0 })),
      };
      if (more) out.next = keys[keys.length - 1];
      return out;
    });
  }

  async status(): Promise<NodeStatus> {
    const db = this.open();
    return this.wrapSync(() => {
      const st = db.getStats() as {
        entryCount: number; pageSize: number; treeLeafPageCount: number; treeBranchPageCount: number; overflowPages: number;
      };
      const pages = st.treeLeafPageCount + st.treeBranchPageCount + st.overflowPages;
      return { id: this.id, ok: true, entries: st.entryCount, bytes: st.entryCount === 0 ? 0 : pages * st.pageSize };
    });
  }

  close(): Promise<void> {
    if (!this.closing) {
      const db = this.db;
      this.db = undefined;
      this.closing = db ? db.close() : Promise.resolve();
    }
    return this.closing;
  }

  private open(): RootDatabase<Buffer, string> {
    if (!this.db) throw new NodeUnavailableError(this.id, new Error('store is closed'));
    return this.db;
  }

  private checkKey(key: string): void {
    const p = keyProblem(key);
    if (p) this.bad(p);
  }

  private bad(message: string): never {
    throw new NodeRequestError(this.id, 'NodeBadRequest', message);
  }

  /** An LMDB failure (I/O error, environment gone) makes the node unavailable to its caller. */
  private async wrap<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new NodeUnavailableError(this.id, err);
    }
  }

  private wrapSync<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw new NodeUnavailableError(this.id, err);
    }
  }
}

function asBuffer(v: Uint8Array): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.length);
}
