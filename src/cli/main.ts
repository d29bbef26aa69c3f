// The `securegrid` command: `demo` and one subcommand per service. Logic lives in the components.
import { runAggregator } from './aggregator.js';
import { UsageError } from './args.js';
import { runBroker } from './broker.js';
import { runCascadb } from './cascadb.js';
import { runDemo } from './demo.js';
import { runKvs } from './kvs.js';

const HELP = `securegrid — confidential processing of smart-metering data

usage: securegrid <command> [flags]

commands:
  demo                 run the whole pipeline on this machine with embedded defaults
  kvs start            a KVS gateway and N local storage nodes in one process
  kvs gateway          a KVS gateway over remote storage nodes (--nodes URL,URL,…)
  kvs node             one storage node (--data DIR --port P)
  kvs keys create      create an API key for a tenant (prints the secret once)
  kvs keys list        list API keys (never their secrets)
  kvs heal             check every fragment and rebuild missing or corrupt ones
  cascadb              SQL over the KVS: PostgreSQL protocol and POST /v1/sql
  broker               an embedded MQTT broker (aedes) for aggregators and ingest
  aggregator           an untrusted relay: meters' field link in, MQTT batches out

Run 'securegrid <command> --help' for its flags.`;

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'demo':
        return await runDemo(rest);
      case 'kvs':
        return await runKvs(rest);
      case 'cascadb':
        return await runCascadb(rest);
      case 'broker':
        return await runBroker(rest);
      case 'aggregator':
        return await runAggregator(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(HELP);
        return 0;
      default:
        console.error(`securegrid: unknown command '${cmd}'\n\n${HELP}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`securegrid: ${err.message}`);
      return 2;
    }
    throw err;
  }
}
