// The `securegrid` command: `demo` and one subcommand per service. Logic lives in the components.
import { runAggregator } from './aggregator.js';
import { UsageError } from './args.js';
import { runAudit } from './audit.js';
import { runBilling } from './billing.js';
import { runBroker } from './broker.js';
import { runCascadb } from './cascadb.js';
import { runDemo } from './demo.js';
import { runFraud } from './fraud.js';
import { runImport } from './import.js';
import { runIngest } from './ingest.js';
import { runKvs } from './kvs.js';
import { runMeters } from './meters.js';

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
  meters               the smart-meter simulator (load profiles, phasors, theft and tamper injection)
  meters directory     write the registration directory (customers, meters, public keys)
  broker               an embedded MQTT broker (aedes) for aggregators and ingest
  aggregator           an untrusted relay: meters' field link in, MQTT batches out
  ingest               the authentication service: decrypt, verify, sign (metrology), store
  ingest keys init     create the collector identities, cookie, session and metrology keys
  ingest keys public   print the collector and metrology public keys (for meters and auditors)
  ingest provision     register customers and meters from a directory file
  ingest close-day     write one KVS blob per meter and day (the measurement sets)
  import FILE.csv      load historical readings from a utility's MDM export, signed as imported
  billing              bill customers for a period, verifying every reading's metrology signature
  audit                the independent auditor: re-verify a billing report against the signed readings
  fraud                rank the consumer units most likely to be stealing (SOM + daily correlation, and more)
  fraud eval           AUC, precision@k and recall@k per method and attack type against theft labels

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
      case 'meters':
        return await runMeters(rest);
      case 'broker':
        return await runBroker(rest);
      case 'aggregator':
        return await runAggregator(rest);
      case 'ingest':
        return await runIngest(rest);
      case 'import':
        return await runImport(rest);
      case 'billing':
        return await runBilling(rest);
      case 'audit':
        return await runAudit(rest);
      case 'fraud':
        return await runFraud(rest);
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
