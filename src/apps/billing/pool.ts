// A worker-thread pool for billing tasks (each customer an independent task, the paper's batch shape).
// Consecutive tasks go to the same thread in chunks: neighbouring meters share Merkle batches, so a chunk
// on one thread reuses the nodes its verifier already proved. Callers keep `window` tasks in flight so that
// every thread holds a chunk at once (fewer, and the chunks take turns on one thread while the others idle).
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { billCustomer, billCustomerJson, type BillingTask, type ReportHead } from './bill.js';
import { BillingError } from './errors.js';
import type { BillingReport } from './report.js';
import type { TariffBook } from './tariff.js';
import { BatchVerifier } from './verifier.js';

/** A report as a worker sends it: its JSON text (UTF-8) and the fields a run needs without parsing it. */
export interface RawReport {
  json: Buffer;
  head: ReportHead;
}

interface Pending {
  resolve: (r: RawReport) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
  hashes: number;
  signatures: number;
}

export interface PoolOptions {
  tariffs: TariffBook;
  metrologyPublicKey: Buffer;
  /** Threads; 0 = bill in the calling thread. Default: every core. */
  workers?: number;
  /** Consecutive tasks kept on one thread (default 32). */
  chunk?: number;
}

/** The buffers a task can hand over without copying: those that own their whole ArrayBuffer. */
function transferable(task: BillingTask): { task: BillingTask; transfer: ArrayBuffer[] } {
  const transfer: ArrayBuffer[] = [];
  const sets = task.sets.map((s) => {
    const own = s.byteOffset === 0 && s.byteLength === s.buffer.byteLength && s.buffer instanceof ArrayBuffer && !transfer.includes(s.buffer);
    const u = own ? s : new Uint8Array(s); // pooled small Buffers share a slab: copy, never detach it
    transfer.push(u.buffer as ArrayBuffer);
    return u;
  });
  return { task: { ...task, sets }, transfer };
}

export class BillingPool {
  readonly size: number;
  /** Tasks a caller should keep in flight: a chunk for every thread and the next one queued. */
  readonly window: number;
  readonly #slots: Slot[] = [];
  readonly #chunk: number;
  readonly #inline?: { verifier: BatchVerifier; o: PoolOptions };
  #seq = 0;
  #chunkSlot = 0;
  #closed = false;

  constructor(o: PoolOptions) {
    this.size = o.workers ?? availableParallelism();
    this.#chunk = Math.max(1, o.chunk ?? 32);
    this.window = this.size === 0 ? 2 : (this.size + 1) * this.#chunk;
    if (this.size === 0) {
      this.#inline = { verifier: new BatchVerifier(o.metrologyPublicKey), o };
      return;
    }
    for (let i = 0; i < this.size; i++) {
            const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: { tariffs: o.tariffs, metrologyPublicKey: new Uint8Array(o.metrologyPublicKey) } });
      const slot: Slot = { worker, pending: new Map(), hashes: 0, signatures: 0 };
      worker.on('message', (m: { id: number; json?: Uint8Array; head?: ReportHead; error?: { code: string; message: string }; hashes?: number; signatures?: number }) => {
        const p = slot.pending.get(m.id);
        if (!p) return;
        slot.pending.delete(m.id);
        slot.hashes = m.hashes ?? slot.hashes;
        slot.signatures = m.signatures ?? slot.signatures;
        if (m.json && m.head) p.resolve({ json: Buffer.from(m.json.buffer, m.json.byteOffset, m.json.byteLength), head: m.head });
        else {
          const e = new BillingError((m.error?.code ?? 'worker') as 'worker', m.error?.message ?? 'billing worker failed');
          p.reject(e);
        }
      });
      const fail = (err: Error) => {
        for (const p of slot.pending.values()) p.reject(new BillingError('worker', `a billing worker thread failed: ${err.message}`));
        slot.pending.clear();
      };
      worker.on('error', fail);
      worker.on('exit', (code) => {
        if (!this.#closed) fail(new Error(`exited with code ${code}`));
      });
      this.#slots.push(slot);
    }
  }

  /** SHA-256 and signature verifications done so far (for the bench). */
  stats(): { hashes: number; signatures: number } {
    if (this.#inline) return { hashes: this.#inline.verifier.hashes, signatures: this.#inline.verifier.signatures };
    return { hashes: this.#slots.reduce((a, s) => a + s.hashes, 0), signatures: this.#slots.reduce((a, s) => a + s.signatures, 0) };
  }

  /** Tasks in flight (sent and not answered). */
  get inFlight(): number {
    return this.#slots.reduce((a, s) => a + s.pending.size, 0);
  }

  /** Bills one task; the report as an object. */
  async run(task: BillingTask): Promise<BillingReport> {
    if (this.#inline) {
      if (this.#closed) throw new BillingError('worker', 'the billing pool is closed');
      const { o, verifier } = this.#inline;
      return billCustomer(task, { tariffs: o.tariffs, metrologyPublicKey: o.metrologyPublicKey, verifier });
    }
    return JSON.parse((await this.runJson(task)).json.toString('utf8')) as BillingReport;
  }

  /** Bills one task; the report as JSON text and its head (nothing parsed in this thread). */
  runJson(task: BillingTask): Promise<RawReport> {
    if (this.#closed) return Promise.reject(new BillingError('worker', 'the billing pool is closed'));
    if (this.#inline) {
      try {
        const { o, verifier } = this.#inline;
        return Promise.resolve(billCustomerJson(task, { tariffs: o.tariffs, metrologyPublicKey: o.metrologyPublicKey, verifier }));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const id = this.#seq++;
    if (id % this.#chunk === 0) {
      // A new chunk goes to the least busy thread.
      let best = 0;
      for (let i = 1; i < this.#slots.length; i++) if (this.#slots[i]!.pending.size < this.#slots[best]!.pending.size) best = i;
      this.#chunkSlot = best;
    }
    const slot = this.#slots[this.#chunkSlot]!;
    const { task: t, transfer } = transferable(task);
    return new Promise<RawReport>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ id, task: t }, transfer);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
  }
}
