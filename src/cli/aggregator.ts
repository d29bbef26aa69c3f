// `securegrid aggregator`: the untrusted relay between meters (TCP field link) and the MQTT broker.
import { AggregatorError, startAggregator } from '../aggregator/index.js';
import { intFlag, parseFlags, usage, UsageError, type FlagSpec } from './args.js';

const SPEC: Record<string, FlagSpec> = {
  id: { type: 'string', help: 'aggregator id, the <agg> of its MQTT topics sg/<agg>/… (required)' },
  broker: { type: 'string', default: 'mqtt://127.0.0.1:1883', help: 'MQTT broker URL' },
  host: { type: 'string', default: '127.0.0.1', help: 'address to listen on for meters' },
  'field-port': { type: 'string', default: '7001', help: 'TCP port for meters (0 = any free port)' },
  'batch-max': { type: 'string', default: '500', help: 'envelopes per uplink batch' },
  'batch-ms': { type: 'string', default: '50', help: 'longest wait before a partial batch goes out, ms' },
  'retransmit-ms': { type: 'string', default: '20000', help: 're-publish a batch not acked after this many ms' },
  'max-unacked': { type: 'string', default: '20000', help: 'unacked envelopes beyond which meters are no longer read' },
};

export async function runAggregator(argv: string[]): Promise<number> {
  const f = parseFlags(argv, SPEC);
  if (f.help) return (console.log(usage('aggregator', 'Relays meter envelopes to the broker in batches until ingest acks them, and downlinks back. Holds no key.', SPEC)), 0);
  if (typeof f.id !== 'string' || !f.id) throw new UsageError('--id ID is required');
  let agg;
  try {
    agg = await startAggregator({
      id: f.id,
      broker: String(f.broker),
      fieldHost: String(f.host),
      fieldPort: intFlag(f['field-port'], 'field-port', 0, 65535),
      batchMax: intFlag(f['batch-max'], 'batch-max', 1, 65535),
      batchMs: intFlag(f['batch-ms'], 'batch-ms', 1),
      retransmitMs: intFlag(f['retransmit-ms'], 'retransmit-ms', 1),
      maxUnacked: intFlag(f['max-unacked'], 'max-unacked', 1),
    });
  } catch (err) {
    if (err instanceof AggregatorError) throw new UsageError(err.message);
    throw err;
  }
  console.log(`securegrid aggregator ${agg.id} listening for meters on ${agg.fieldServer!.url}, relaying to ${f.broker} (topics sg/${agg.id}/…)`);
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  await agg.close();
  return 0;
}
