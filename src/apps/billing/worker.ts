// A billing worker thread: bills the tasks it is sent with one verifier for its lifetime, so each batch
// signature is checked once per thread and proven Merkle nodes are shared by neighbouring customers.
// Reports go back as UTF-8 JSON bytes, transferred: no structured clone of every reading entry, no copy.
import { parentPort, workerData } from 'node:worker_threads';
import { billCustomerJson, type BillingTask } from './bill.js';
import type { TariffBook } from './tariff.js';
import { BatchVerifier } from './verifier.js';

const init = workerData as { tariffs: TariffBook; metrologyPublicKey: Uint8Array };
const metrologyPublicKey = Buffer.from(init.metrologyPublicKey);
const verifier = new BatchVerifier(metrologyPublicKey);

parentPort!.on('message', (m: { id: number; task: BillingTask }) => {
  try {
    const { json, head } = billCustomerJson(m.task, { tariffs: init.tariffs, metrologyPublicKey, verifier });
    parentPort!.postMessage({ id: m.id, json, head, hashes: verifier.hashes, signatures: verifier.signatures }, [json.buffer as ArrayBuffer]);
  } catch (err) {
    const e = err as { code?: string; message?: string };
    parentPort!.postMessage({ id: m.id, error: { code: e.code ?? 'worker', message: String(e.message ?? err) } });
  }
});
