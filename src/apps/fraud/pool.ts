// The worker-thread pool customers are scored on (the paper's batch shape: independent tasks). With 0 workers the
// same code runs in this thread, for tests and tiny fleets.
import { Worker } from 'node:worker_threads';
import { FraudError } from './errors.js';
import type { FleetModel } from './model.js';
import { scoreCustomer, type CustomerResult } from './score.js';
import type { CustomerSeries } from './series.js';
import { fleetOf, simulatedSeries, type PlainFleetOptions } from './simulate.js';

export type WorkerRequest =
  | { op: 'model'; id: number; model: FleetModel }
  | { op: 'score'; id: number; series: CustomerSeries[] }
  | { op: 'simulate'; id: number; fleet: PlainFleetOptions; indices: number[]; firstDay: number; days: number; score: boolean };

interface WorkerReply {
  id: number;
  ok: boolean;
  error?: string;
  results?: CustomerResult[];
  series?: CustomerSeries[];
}

interface Slot {
  worker: Worker;
  busy: boolean;
}

export class CustomerPool {
  readonly size: number;
  readonly #slots: Slot[] = [];
  readonly #queue: Array<{ msg: WorkerRequest; transfer: ArrayBuffer[]; done: (r: WorkerReply) => void; fail: (e: Error) => void }> = [];
  readonly #pending = new Map<number, { done: (r: WorkerReply) => void; fail: (e: Error) => void; slot: Slot }>();
  #ids = 1;
  #model: FleetModel | undefined;

  constructor(workers: number) {
    this.size = Math.max(0, Math.floor(workers));
    for (let i = 0; i < this.size; i++) {
      // Resolved next to this compiled file: dist/…/apps/fraud/worker.js, whatever the build directory.
      const worker = new Worker(new URL('./worker.js', import.meta.url));
      const slot: Slot = { worker, busy: false };
      worker.on('message', (r: WorkerReply) => {
        const p = this.#pending.get(r.id);
        if (!p) return;
        this.#pending.delete(r.id);
        slot.busy = false;
        if (r.ok) p.done(r);
        else p.fail(new FraudError('worker', `a scoring worker failed: ${r.error}`));
        this.#pump();
      });
      worker.on('error', (err) => {
        for (const [id, p] of this.#pending) {
          if (p.slot !== slot) continue;
          this.#pending.delete(id);
          p.fail(new FraudError('worker', `a scoring worker crashed: ${err.message}`));
        }
      });
      this.#slots.push(slot);
    }
  }

  #pump(): void {
    for (const slot of this.#slots) {
      if (slot.busy) continue;
      const job = this.#queue.shift();
      if (!job) return;
      slot.busy = true;
      this.#pending.set(job.msg.id, { done: job.done, fail: job.fail, slot });
      slot.worker.postMessage(job.msg, job.transfer);
    }
  }

  #send(msg: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<WorkerReply> {
    return new Promise((done, fail) => {
      this.#queue.push({ msg, transfer, done, fail });
      this.#pump();
    });
  }

  /** Jobs queued or running (callers keep this bounded to bound memory). */
  get inFlight(): number {
    return this.#queue.length + this.#pending.size;
  }

  async setModel(model: FleetModel): Promise<void> {
    this.#model = model;
    // One message per worker: each must hold the model before its first customer.
    await Promise.all(
      this.#slots.map(
        (slot) =>
          new Promise<void>((done, fail) => {
            const id = this.#ids++;
            this.#pending.set(id, { done: () => done(), fail, slot });
            slot.worker.postMessage({ op: 'model', id, model } satisfies WorkerRequest);
          }),
      ),
    );
  }

  /** Scores series (their buffers move to the worker: do not use them afterwards). */
  async score(series: CustomerSeries[]): Promise<CustomerResult[]> {
    if (this.size === 0) {
      const m = this.#need();
      return series.map((s) => scoreCustomer(s, m));
    }
    const r = await this.#send({ op: 'score', id: this.#ids++, series }, series.map((s) => s.data.buffer as ArrayBuffer));
    return r.results!;
  }

  /** Generates simulator series for meter indices (score=false) or scores them right there (score=true). */
  async simulate(fleet: PlainFleetOptions, indices: number[], firstDay: number, days: number, score: true): Promise<CustomerResult[]>;
  async simulate(fleet: PlainFleetOptions, indices: number[], firstDay: number, days: number, score: false): Promise<CustomerSeries[]>;
  async simulate(fleet: PlainFleetOptions, indices: number[], firstDay: number, days: number, score: boolean): Promise<CustomerResult[] | CustomerSeries[]> {
    if (this.size === 0) {
      const f = fleetOf(fleet);
      const series = indices.map((i) => simulatedSeries(f, i, firstDay, days));
      if (!score) return series;
      const m = this.#need();
      return series.map((s) => scoreCustomer(s, m));
    }
    const r = await this.#send({ op: 'simulate', id: this.#ids++, fleet, indices, firstDay, days, score });
    return score ? r.results! : r.series!;
  }

  #need(): FleetModel {
    if (!this.#model) throw new FraudError('internal', 'customers were sent before the fleet model');
    return this.#model;
  }

  async close(): Promise<void> {
    await Promise.all(this.#slots.map((s) => s.worker.terminate()));
  }
}
