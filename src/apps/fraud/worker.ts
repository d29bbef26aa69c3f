// A worker of the customer pool: receives the fleet model once, then batches of customers (stored series, or
// simulator indices to generate), and answers with one result per customer.
import { parentPort } from 'node:worker_threads';
import type { FleetModel } from './model.js';
import { scoreCustomer } from './score.js';
import type { CustomerSeries } from './series.js';
import { fleetOf, simulatedSeries } from './simulate.js';
import type { WorkerRequest } from './pool.js';

let model: FleetModel | undefined;

parentPort!.on('message', (msg: WorkerRequest) => {
  try {
    if (msg.op === 'model') {
      model = msg.model;
      parentPort!.postMessage({ id: msg.id, ok: true });
      return;
    }
    const series: CustomerSeries[] = msg.op === 'score' ? msg.series : msg.indices.map((i) => simulatedSeries(fleetOf(msg.fleet), i, msg.firstDay, msg.days));
    if (msg.op === 'simulate' && !msg.score) {
      parentPort!.postMessage({ id: msg.id, ok: true, series }, series.map((s) => s.data.buffer as ArrayBuffer));
      return;
    }
    if (!model) throw new Error('the worker got customers before the fleet model');
    const m = model;
    parentPort!.postMessage({ id: msg.id, ok: true, results: series.map((s) => scoreCustomer(s, m)) });
  } catch (err) {
    parentPort!.postMessage({ id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) });
  }
});
