// A billing worker thread: bills the tasks it is sent with one verifier for its lifetime, so each batch
// signature is checked once per thread and proven Merkle nodes are shared by neighbouring customers.
import { parentPort, workerData } from 'node:worker_threads';
import { billCustomer, type BillingTask } from './bill.js';
import type { TariffBook } from './tariff.js';
import { BatchVerifier } from './verifier.js';

const init = workerData as { tariffs: TariffBook; metrologyPublicKey: Uint8Array };
const metrologyPublicKey = Buffer.from(init.metrologyPublicKey);
const verifier = new BatchVerifier(metrologyPublicKey);

parentPort!.on('message', (m: { id: number; task: BillingTask }) => {
  try {
    const report = billCustomer(m.task, { tariffs: init.tariffs, metrologyPublicKey, verifier });
    parentPort!.postMessage({ id: m.id, report, hashes: verifier.hashes, signatures: verifier.signatures });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    parentPort!.postMessage({ id: m.id, error: { code: e.code ?? 'worker', message: String(e.message ?? err) } });
  }
});
