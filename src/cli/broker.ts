// `securegrid broker`: the embedded MQTT broker (aedes; MQTT 3.1.1 with shared subscriptions).
import { startBroker } from '../broker/index.js';
import { intFlag, parseFlags, usage, UsageError, type FlagSpec } from './args.js';

const SPEC: Record<string, FlagSpec> = {
  host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
  port: { type: 'string', default: '1883', help: 'port to listen on (0 = any free port)' },
};

export async function runBroker(argv: string[]): Promise<number> {
  const f = parseFlags(argv, SPEC);
  if (f.help) return (console.log(usage('broker', 'Runs the embedded MQTT broker (MQTT 3.1.1, $share/<group>/<filter> shared subscriptions, in-memory sessions).', SPEC)), 0);
  let broker;
  try {
    broker = await startBroker({ host: String(f.host), port: intFlag(f.port, 'port', 0, 65535) });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  console.log(`securegrid broker listening on ${broker.url}`);
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  await broker.close();
  return 0;
}
