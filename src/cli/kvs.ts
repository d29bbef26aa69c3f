// `securegrid kvs …`: start, gateway, node, keys, heal.
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SealedFileKeyProvider } from '../crypto/index.js';
import { localNodeSpecs, startGateway, startNodeServer, type NodeSpec, type HealReport } from '../kvs/index.js';
import { Accounts } from '../kvs/gateway/accounts.js';
import { MetaStore } from '../kvs/gateway/meta-store.js';
import { intFlag, parseFlags, sizeFlag, usage, UsageError, type FlagSpec } from './args.js';

const COMMON: Record<string, FlagSpec> = {
  host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
  port: { type: 'string', default: '9000', help: 'port to listen on (0 = any free port)' },
  'insecure-http': { type: 'boolean', default: false, help: 'serve plain HTTP (loopback hosts only)' },
  cert: { type: 'string', help: 'PEM certificate (default: self-signed, made at first start)' },
  key: { type: 'string', help: 'PEM private key for --cert' },
  policy: { type: 'string', help: 'default policy of new buckets: replicate:N, ec:K+M or hybrid:R+K/N (default replicate:3)' },
  'max-object-size': { type: 'string', default: '5GiB', help: 'largest object accepted' },
  'scrub-interval': { type: 'string', default: '600', help: 'seconds between background scrubs (0 = off)' },
};

/** The gateway options the COMMON flags set (kvs start and kvs gateway share them). */
function gatewayFlags(f: Record<string, string | boolean | undefined>) {
  return {
    host: String(f.host),
    port: intFlag(f.port, 'port', 0, 65535),
    insecureHttp: Boolean(f['insecure-http']),
    certFile: f.cert as string | undefined,
    keyFile: f.key as string | undefined,
    defaultPolicy: f.policy as string | undefined,
    maxObjectSize: sizeFlag(f['max-object-size'], 'max-object-size'),
    scrubIntervalMs: intFlag(f['scrub-interval'], 'scrub-interval') * 1000,
  };
}

function gatewayDir(data: string): string {
  const nested = join(data, 'gateway');
  return existsSync(nested) || existsSync(join(data, 'nodes')) ? nested : data;
}

async function serveUntilSignal(close: () => Promise<void>): Promise<number> {
  await new Promise<void>((done) => {
    const stop = () => done();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await close();
  return 0;
}

function printHeal(r: HealReport): void {
  console.log(
    `heal: ${r.objects} objects, ${r.fragmentsChecked} fragments checked, ${r.missing} missing, ${r.corrupt} corrupt, ` +
      `${r.rebuilt} rebuilt, ${r.unrecoverable} unrecoverable, ${r.unreachable} on unreachable nodes, ${r.orphansRemoved} orphans removed`,
  );
}

export async function runKvs(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'start') {
    const spec = { ...COMMON, nodes: { type: 'string', default: '9', help: 'number of local storage nodes' } as FlagSpec, data: { type: 'string', default: './.sg-data/kvs', help: 'data directory' } as FlagSpec };
    const f = parseFlags(rest, spec);
    if (f.help) return (console.log(usage('kvs start', 'Runs a KVS gateway and local LMDB storage nodes in one process and prints its URL.', spec)), 0);
    const data = resolve(String(f.data));
    const count = intFlag(f.nodes, 'nodes', 1, 64);
    mkdirSync(join(data, 'nodes'), { recursive: true });
    const gw = await startGateway({
      dataDir: join(data, 'gateway'),
      nodes: localNodeSpecs(join(data, 'nodes'), count),
      ...gatewayFlags(f),
    });
    console.log(`securegrid kvs listening on ${gw.url} with ${count} local storage nodes in ${join(data, 'nodes')}`);
    if (gw.tls?.selfSigned) console.log(`self-signed certificate: ${gw.tls.certPath}`);
    console.log(`create an API key: securegrid kvs keys create --tenant NAME --data ${data}`);
    return serveUntilSignal(() => gw.close());
  }
  if (sub === 'gateway') {
    const spec = { ...COMMON, nodes: { type: 'string', help: 'comma-separated storage node URLs' } as FlagSpec, 'node-token': { type: 'string', help: 'bearer token the nodes require' } as FlagSpec, data: { type: 'string', default: './.sg-data/gateway', help: 'gateway data directory' } as FlagSpec };
    const f = parseFlags(rest, spec);
    if (f.help) return (console.log(usage('kvs gateway', 'Runs a KVS gateway over remote storage nodes.', spec)), 0);
    if (typeof f.nodes !== 'string' || !f.nodes) throw new UsageError('--nodes URL,URL,… is required');
    const nodes: NodeSpec[] = f.nodes.split(',').map((u) => {
      try {
        return { kind: 'remote' as const, url: new URL(u.trim()).toString().replace(/\/$/, ''), token: f['node-token'] as string | undefined };
      } catch {
        throw new UsageError(`--nodes: '${u}' is not a URL`);
      }
    });
    const gw = await startGateway({
      dataDir: resolve(String(f.data)),
      nodes,
      ...gatewayFlags(f),
    });
    console.log(`securegrid kvs gateway listening on ${gw.url} over ${nodes.length} storage nodes`);
    return serveUntilSignal(() => gw.close());
  }
  if (sub === 'node') {
    const spec: Record<string, FlagSpec> = {
      data: { type: 'string', help: 'directory for this node’s LMDB store (required)' },
      host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
      port: { type: 'string', default: '9100', help: 'port (0 = any free port)' },
      token: { type: 'string', help: 'bearer token required from the gateway' },
    };
    const f = parseFlags(rest, spec);
    if (f.help) return (console.log(usage('kvs node', 'Runs one untrusted storage node: it stores opaque fragments and never sees a key.', spec)), 0);
    if (typeof f.data !== 'string') throw new UsageError('--data DIR is required');
    const srv = await startNodeServer({ dataDir: resolve(f.data), host: String(f.host), port: intFlag(f.port, 'port', 0, 65535), token: f.token as string | undefined });
    console.log(`securegrid kvs node listening on ${srv.url} (data ${resolve(f.data)})`);
    return serveUntilSignal(() => srv.close());
  }
  if (sub === 'keys') {
    const [action, ...more] = rest;
    const spec: Record<string, FlagSpec> = {
      tenant: { type: 'string', help: 'tenant the key belongs to (create)' },
      data: { type: 'string', default: './.sg-data/kvs', help: 'the gateway’s data directory (or the kvs start directory)' },
    };
    const f = parseFlags(more, spec);
    if (f.help || (action !== 'create' && action !== 'list')) {
      console.log(usage('kvs keys create|list', 'Creates an API key (access key id + secret, printed once) or lists keys. Works while the gateway runs.', spec));
      return f.help ? 0 : 2;
    }
    const dir = gatewayDir(resolve(String(f.data)));
    const meta = new MetaStore(join(dir, 'meta'));
    const keys = new SealedFileKeyProvider(join(dir, 'keys'));
    try {
      const accounts = new Accounts(meta, keys);
      if (action === 'create') {
        if (typeof f.tenant !== 'string') throw new UsageError('--tenant NAME is required');
        let k;
        try {
          k = await accounts.create(f.tenant);
        } catch (err) {
          throw new UsageError((err as Error).message);
        }
        console.log(`tenant:            ${k.tenant}`);
        console.log(`access key id:     ${k.accessKeyId}`);
        console.log(`secret access key: ${k.secretAccessKey}`);
        console.log('the secret is shown only now; store it safely');
      } else {
        for (const k of accounts.list()) console.log(`${k.accessKeyId}  ${k.tenant}  ${new Date(k.created).toISOString()}${k.disabled ? '  (revoked)' : ''}`);
      }
    } finally {
      await meta.close();
      await keys.close();
    }
    return 0;
  }
  if (sub === 'heal') {
    const spec: Record<string, FlagSpec> = {
      data: { type: 'string', default: './.sg-data/kvs', help: 'the gateway’s data directory (or the kvs start directory)' },
      nodes: { type: 'string', help: 'storage node URLs (default: the nodes the gateway last ran with)' },
    };
    const f = parseFlags(rest, spec);
    if (f.help) return (console.log(usage('kvs heal', 'Checks every fragment against its checksum and rebuilds missing or corrupt ones. Safe while the gateway runs.', spec)), 0);
    const dir = gatewayDir(resolve(String(f.data)));
    let nodes: NodeSpec[];
    if (typeof f.nodes === 'string') nodes = f.nodes.split(',').map((u) => ({ kind: 'remote' as const, url: u.trim() }));
    else {
      const meta = new MetaStore(join(dir, 'meta'));
      nodes = (meta.settings.get('nodes') as NodeSpec[] | undefined) ?? [];
      await meta.close();
      if (nodes.length === 0) throw new UsageError(`no storage nodes recorded in ${dir}; pass --nodes`);
    }
    const gw = await startGateway({ dataDir: dir, nodes, noListen: true });
    try {
      let last = 0;
      const r = await gw.heal((done, rep) => {
        if (Date.now() - last > 1000) {
          last = Date.now();
          process.stderr.write(`\rhealing: ${done} objects checked, ${rep.rebuilt} fragments rebuilt`);
        }
      });
      process.stderr.write('\n');
      printHeal(r);
      return r.unrecoverable > 0 ? 1 : 0;
    } finally {
      await gw.close();
    }
  }
  console.error('usage: securegrid kvs start|gateway|node|keys|heal [flags] (--help for each)');
  return 2;
}
