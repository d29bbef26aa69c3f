// `npm run bench:kvs`: throughput of the Secure KVS against a bare HTTPS server on the same stack.
//
// What runs (all on 127.0.0.1, data in a temp dir removed at the end):
//   - securegrid: startGateway (HTTPS, self-signed) over 9 storage nodes — local LMDB stores as
//     `securegrid kvs start` runs them (default), or 9 in-process HTTP node servers with --remote-nodes —
//     one API key, one bucket per policy (replicate:3, ec:6+2, hybrid:1+6/8).
//   - bare: a fastify HTTPS server (same fastify, same certificate, same server options) that stores a PUT
//     body in a Map and answers a GET with it: the cost of the stack without the KVS.
//   - clients: 32 requests in flight (the paper's setup) from KvsClient (undici Pool, 32 connections,
//     SigV4-signed; the bare server ignores the signature, so the client does the same work for both).
// Each cell (system × object size × PUT/GET) warms up, then runs for --seconds; PUTs write fresh keys, GETs
// read back the keys that cell's PUTs wrote. Per size the bare server runs before and after the policies, and
// ratio = securegrid ops/s ÷ the mean of those two bare runs. Reported: ops/s, MB/s (10^6 bytes), p50/p99
// latency, the server process's CPU (cores, and µs per operation — the figure least disturbed by other load
// on a shared box), and the ratio.
// Then raw storage per policy (the paper's Fig. 5): --raw-objects × 1 MiB objects into a fresh bucket per
// policy, raw/logical from the object metadata and from what the nodes report holding.
//
// Where the load generator runs (--client): on 2 cores, an in-process client shares the server's one
// JavaScript thread (TLS, SigV4 signing and hashing of every body, undici parsing), so the server only gets
// what the client leaves, and the bare server, whose own work is tiny, loses far more to that than
// securegrid does, which flatters the ratios. Measured both ways on the 2-core box, back to back, quiet
// machine, 3 s cells, ec:6+2 over local nodes (ops/s; MB/s for 1 MiB):
//                       bare 1KiB PUT/GET   sg 1KiB PUT/GET   bare 1MiB PUT/GET   sg 1MiB PUT   ratio 1KiB PUT/GET
//   separate process    17.7k / 24.6k       2.08k / 4.5k      ~610 / ~790 MB/s    ~131 MB/s     0.12× / 0.19×
//   in-process          10.1k / 13.3k       1.65k / 3.6k      ~430 / ~600 MB/s    ~127 MB/s     0.16× / 0.27×
// The in-process client costs the bare baseline ~45% and securegrid ~20%. In a separate process the client
// has its own event loop and the OS shares the 2 cores (and the gateway's LMDB and threadpool threads), and
// the server's CPU can be measured on its own; that is the default. --client inproc is kept for comparison.
//
// Profiling the server side: `node --cpu-prof dist/bench/kvs.js --sizes 1KiB --policies ec:6+2` (the client
// process is not profiled); with SG_BENCH_TRACE=1 each cell's window on the profile's clock goes to stderr,
// so one profile can be cut per cell.
//
// The last line of stdout is one JSON object with every figure and ratio. This is a measurement, not a test:
// it never fails on a figure (exit 1 only when requests fail).
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Fastify, { type FastifyInstance } from 'fastify';
import {
  KvsClient,
  localNodeSpecs,
  parsePolicy,
  startGateway,
  startNodeServer,
  type Gateway,
  type NodeSpec,
} from '../src/kvs/index.js';
import { setLogLevel } from '../src/observe/index.js';
import {
  bytesHuman,
  closedLoop,
  coresUsed,
  num,
  parseSize,
  printJsonLast,
  ratio,
  round,
  sizeLabel,
  table,
  type LoadStats,
} from './lib.js';

const TENANT = 'bench';
const DEFAULT_POLICIES = ['replicate:3', 'ec:6+2', 'hybrid:1+6/8'];
/** Raw/logical in the paper's Fig. 5. */
const PAPER_RAW: Record<string, number> = { 'replicate:3': 3, 'ec:6+2': 8 / 6, 'hybrid:1+6/8': 1 + 8 / 6 };

// ------------------------------------------------------------------------------------------ client side

type TargetName = 'sg' | 'bare';
type Op = 'put' | 'get';

interface Target {
  url: string;
  ca: string;
  accessKeyId: string;
  secretAccessKey: string;
}

interface RunRequest {
  target: TargetName;
  op: Op;
  bucket: string;
  /** Keys are `${prefix}/${worker}/${seq}`; a GET reads what the PUT run with the same prefix wrote. */
  prefix: string;
  size: number;
  seconds: number;
  warmupSeconds: number;
  concurrency: number;
}

type RunResult = LoadStats & { clientCores: number };

/** The load generator: one KvsClient per target, reused across cells (connections stay warm). */
class LoadClient {
  private readonly clients: Record<TargetName, KvsClient>;
  private readonly payloads = new Map<number, Buffer>();
  private readonly written = new Map<string, number[]>();

  constructor(targets: Record<TargetName, Target>, connections: number) {
    const mk = (t: Target) => new KvsClient({ url: t.url, accessKeyId: t.accessKeyId, secretAccessKey: t.secretAccessKey, ca: t.ca, connections });
    this.clients = { sg: mk(targets.sg), bare: mk(targets.bare) };
  }

  async run(r: RunRequest): Promise<RunResult> {
    const c = this.clients[r.target];
    let payload = this.payloads.get(r.size);
    if (!payload) this.payloads.set(r.size, (payload = randomBytes(r.size)));
    const body = payload;
    const wkey = `${r.target}|${r.bucket}|${r.prefix}`;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let stats: LoadStats & { seqs: number[] };
    if (r.op === 'put') {
      stats = await closedLoop({
        concurrency: r.concurrency,
        seconds: r.seconds,
        warmupSeconds: r.warmupSeconds,
        op: async (w, seq) => {
          await c.put(r.bucket, `${r.prefix}/${w}/${seq}`, body);
          return body.length;
        },
      });
      this.written.set(wkey, stats.seqs);
    } else {
      const seqs = this.written.get(wkey);
      if (!seqs) throw new Error(`GET ${wkey} before any PUT`);
      const keys: string[] = [];
      seqs.forEach((n, w) => {
        for (let s = 0; s < n; s++) keys.push(`${r.prefix}/${w}/${s}`);
      });
      if (keys.length === 0) throw new Error(`nothing was written under ${wkey}`);
      let next = 0;
      stats = await closedLoop({
        concurrency: r.concurrency,
        seconds: r.seconds,
        warmupSeconds: r.warmupSeconds,
        op: async () => {
          const key = keys[next++ % keys.length]!;
          const got = await c.get(r.bucket, key);
          if (!got) throw new Error(`GET ${r.bucket}/${key}: not found`);
          if (got.length !== r.size) throw new Error(`GET ${r.bucket}/${key}: ${got.length} bytes, expected ${r.size}`);
          return got.length;
        },
      });
    }
    const clientCores = coresUsed(cpu0, process.cpuUsage(), (performance.now() - t0) / 1000);
    const { seqs: _seqs, ...rest } = stats;
    return { ...rest, clientCores };
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.clients.sg.close(), this.clients.bare.close()]);
  }
}

type ToChild = { type: 'init'; targets: Record<TargetName, Target>; connections: number } | { type: 'run'; id: number; req: RunRequest } | { type: 'close' };
type FromChild = { type: 'ready' } | { type: 'result'; id: number; result: RunResult } | { type: 'error'; id: number; message: string };

/** Entry point of the forked load-generator process. */
function clientWorker(): void {
  let lc: LoadClient | undefined;
  const send = (m: FromChild) => process.send!(m);
  process.on('message', (m: ToChild) => {
    if (m.type === 'init') {
      lc = new LoadClient(m.targets, m.connections);
      send({ type: 'ready' });
    } else if (m.type === 'run') {
      lc!.run(m.req).then(
        (result) => send({ type: 'result', id: m.id, result }),
        (err: Error) => send({ type: 'error', id: m.id, message: err.message }),
      );
    } else if (m.type === 'close') {
      void (lc?.close() ?? Promise.resolve()).finally(() => process.disconnect());
    }
  });
  // The parent going away ends this process too.
  process.on('disconnect', () => setTimeout(() => process.exit(0), 100).unref());
}

interface Runner {
  run(req: RunRequest): Promise<RunResult>;
  close(): Promise<void>;
}

function inProcessRunner(targets: Record<TargetName, Target>, connections: number): Runner {
  const lc = new LoadClient(targets, connections);
  return { run: (req) => lc.run(req), close: () => lc.close() };
}

async function childRunner(targets: Record<TargetName, Target>, connections: number): Promise<Runner> {
  // No inherited --cpu-prof etc.: profile the server process only. The child's stdout goes to our stderr so
  // that nothing it might print can land after the JSON line.
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--client-worker'], { execArgv: [], stdio: ['ignore', 2, 2, 'ipc'] });
  const pending = new Map<number, { resolve: (r: RunResult) => void; reject: (e: Error) => void }>();
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  let exited = false;
  child.on('message', (m: FromChild) => {
    if (m.type === 'ready') ready();
    else if (m.type === 'result') pending.get(m.id)?.resolve(m.result);
    else pending.get(m.id)?.reject(new Error(`client process: ${m.message}`));
    if (m.type !== 'ready') pending.delete(m.id);
  });
  const gone = new Promise<void>((resolve) =>
    child.on('exit', (code) => {
      exited = true;
      for (const p of pending.values()) p.reject(new Error(`client process exited (${code})`));
      pending.clear();
      resolve();
    }),
  );
  child.send({ type: 'init', targets, connections } satisfies ToChild);
  await isReady;
  let nextId = 0;
  return {
    run(req) {
      if (exited) return Promise.reject(new Error('client process is gone'));
      const id = nextId++;
      return new Promise<RunResult>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ type: 'run', id, req } satisfies ToChild);
      });
    },
    async close() {
      if (!exited) child.send({ type: 'close' } satisfies ToChild);
      const t = setTimeout(() => child.kill(), 5000);
      await gone;
      clearTimeout(t);
    },
  };
}

// ------------------------------------------------------------------------------------------ server side

/** The baseline: the same fastify over the same TLS identity, storing PUT bodies in a Map. */
async function startBareServer(tls: { cert: string; key: string }): Promise<{ url: string; store: Map<string, Buffer>; close(): Promise<void> }> {
  const store = new Map<string, Buffer>();
  // Same server options as createS3Server (src/kvs/gateway/s3-server.ts).
  const app = Fastify({
    https: { key: tls.key, cert: tls.cert },
    logger: false,
    bodyLimit: 64 * 1024 * 1024,
    routerOptions: { maxParamLength: 2048 },
    keepAliveTimeout: 65_000,
    requestTimeout: 0,
    disableRequestLogging: true,
    return503OnClosing: true,
  }) as unknown as FastifyInstance;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 64 * 1024 * 1024 }, (_req, body, done) => done(null, body));
  app.route({
    method: ['GET', 'PUT'],
    url: '/*',
    handler: async (req, reply) => {
      const url = req.raw.url ?? '/';
      if (req.method === 'PUT') {
        store.set(url, (req.body as Buffer | undefined) ?? Buffer.alloc(0));
        return reply.code(200).send();
      }
      const v = store.get(url);
      if (!v) return reply.code(404).header('content-type', 'application/xml').send('<Error><Code>NoSuchKey</Code><Message>none</Message></Error>');
      return reply.header('content-type', 'binary/octet-stream').header('content-length', String(v.length)).send(v);
    },
  });
  const addr = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url: `https://127.0.0.1:${new URL(addr).port}`, store, close: () => app.close() };
}

function bucketFor(policy: string): string {
  return `bench-${policy.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
}

/** Raw bytes for a bucket from the object metadata (paper, Fig. 5). */
function rawFromMeta(gw: Gateway, bucket: string): { objects: number; logical: number; raw: number } {
  return gw.objects.storageUse(TENANT, bucket);
}

async function nodeBytes(gw: Gateway): Promise<number> {
  const st = await Promise.all(gw.nodes.map((n) => n.status()));
  return st.reduce((a, s) => a + s.bytes, 0);
}

// ------------------------------------------------------------------------------------------ main

const USAGE = `usage: node dist/bench/kvs.js [flags]   (npm run bench:kvs -- [flags])

  --seconds N          measured seconds per cell (default 3)
  --warmup N           warm-up seconds per cell (default 0.5)
  --concurrency N      requests in flight and client connections (default 32)
  --sizes LIST         object sizes (default 1KiB,64KiB,1MiB)
  --policies LIST      securegrid policies (default ${DEFAULT_POLICIES.join(',')}; none = bare only)
  --ops LIST           put,get (default both; get needs put)
  --client MODE        process (default) | inproc: where the load generator runs
  --remote-nodes       9 in-process HTTP node servers instead of local LMDB stores
  --raw-objects N      1 MiB objects per policy for the raw-storage figure (default 100; 0 = skip)
  --no-bare            skip the bare baseline (no ratios)
  --keep               keep the temp data directory`;

interface Cell {
  system: 'securegrid' | 'bare';
  policy: string | null;
  size: number;
  op: Op;
  stats: RunResult;
  serverCores: number;
  /** Bare cells: 1 = before the policies of this size, 2 = after. */
  run?: number;
  ratio?: { ops: number; mb: number };
}

async function main(): Promise<number> {
  const { values: f } = parseArgs({
    args: process.argv.slice(2),
    strict: true,
    options: {
      seconds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '0.5' },
      concurrency: { type: 'string', default: '32' },
      sizes: { type: 'string', default: '1KiB,64KiB,1MiB' },
      policies: { type: 'string', default: DEFAULT_POLICIES.join(',') },
      ops: { type: 'string', default: 'put,get' },
      client: { type: 'string', default: 'process' },
      'remote-nodes': { type: 'boolean', default: false },
      'raw-objects': { type: 'string', default: '100' },
      'no-bare': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (f.help) {
    console.log(USAGE);
    return 0;
  }
  const seconds = Number(f.seconds);
  const warmupSeconds = Number(f.warmup);
  const concurrency = Number(f.concurrency);
  const rawObjects = Number(f['raw-objects']);
  const sizes = f.sizes.split(',').map(parseSize);
  const policies = f.policies === 'none' ? [] : f.policies.split(',').map((p) => p.trim()).filter(Boolean);
  const opsAsked = f.ops.split(',').map((o) => o.trim());
  const clientMode = f.client;
  const remote = f['remote-nodes'];
  const withBare = !f['no-bare'];
  if (!(seconds > 0) || !(warmupSeconds >= 0) || !Number.isInteger(concurrency) || concurrency < 1 || !Number.isInteger(rawObjects) || rawObjects < 0) {
    throw new Error(`bad numeric flag\n${USAGE}`);
  }
  if (clientMode !== 'process' && clientMode !== 'inproc') throw new Error(`--client must be process or inproc\n${USAGE}`);
  if (opsAsked.some((o) => o !== 'put' && o !== 'get')) throw new Error(`--ops takes put and get\n${USAGE}`);
  if (opsAsked.includes('get') && !opsAsked.includes('put')) throw new Error('--ops get needs put (GETs read what the PUTs wrote)');
  const ops = (['put', 'get'] as const).filter((o) => opsAsked.includes(o));
  for (const p of policies) parsePolicy(p);

  setLogLevel(process.env.SECUREGRID_LOG_LEVEL ?? 'warn');
  const root = mkdtempSync(join(tmpdir(), 'securegrid-bench-kvs-'));
  const cleanups: Array<() => Promise<unknown>> = [];
  const cleanup = async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
    if (!f.keep) rmSync(root, { recursive: true, force: true });
  };
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  // A reader that goes away (`| head`) must not stop the run before the temp dir is removed.
  process.stdout.on('error', () => undefined);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const log = (s: string) => process.stdout.write(`${s}\n`);
  const t0 = Date.now();
  const cells: Cell[] = [];
  /** Mean of the two bare runs per size and op, and their relative spread. */
  const bareRef = new Map<string, { ops: number; mb: number; spread: number }>();
  let failed = 0;
  try {
    // Storage nodes and the gateway.
    let specs: NodeSpec[];
    if (remote) {
      const servers = await Promise.all(Array.from({ length: 9 }, (_, i) => startNodeServer({ dataDir: join(root, 'nodes', `node-${i}`), port: 0, host: '127.0.0.1' })));
      cleanups.push(() => Promise.allSettled(servers.map((s) => s.close())));
      specs = servers.map((s) => ({ kind: 'remote', url: s.url }));
    } else {
      specs = localNodeSpecs(join(root, 'nodes'), 9);
    }
    const gw = await startGateway({ dataDir: join(root, 'gateway'), nodes: specs, host: '127.0.0.1', port: 0, scrubIntervalMs: 0 });
    cleanups.push(() => gw.close());
    if (!gw.tls) throw new Error('the gateway is not serving HTTPS');
    const key = await gw.accounts.create(TENANT);
    const bare = await startBareServer(gw.tls);
    cleanups.push(() => bare.close());

    const targets: Record<TargetName, Target> = {
      sg: { url: gw.url, ca: gw.tls.cert, accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
      bare: { url: bare.url, ca: gw.tls.cert, accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey },
    };
    const admin = new KvsClient({ ...targets.sg, connections: 8 });
    cleanups.push(() => admin.close());
    for (const p of policies) await admin.createBucket(bucketFor(p), { policy: p });

    const runner = clientMode === 'process' ? await childRunner(targets, concurrency) : inProcessRunner(targets, concurrency);
    cleanups.push(() => runner.close());

    log(`securegrid KVS benchmark — node ${process.version}, ${cpus().length} cores, ${remote ? '9 in-process HTTP storage nodes' : '9 local LMDB storage nodes'}, gateway ${gw.url}`);
    if (f.keep) log(`data: ${root} (kept)`);
    log(`${concurrency} requests in flight (KvsClient, ${concurrency} connections, client in ${clientMode === 'process' ? 'a separate process' : 'the server process'}), ${warmupSeconds} s warm-up + ${seconds} s per cell; MB = 10^6 bytes`);
    log('');

    const cell = async (system: Cell['system'], policy: string | null, size: number, op: Op, prefix: string, run?: number): Promise<Cell> => {
      const cpu0 = process.cpuUsage();
      const w0 = performance.now();
      const mono0 = process.hrtime.bigint();
      const stats = await runner.run({
        target: system === 'bare' ? 'bare' : 'sg',
        op,
        bucket: policy ? bucketFor(policy) : 'bare',
        prefix,
        size,
        seconds,
        warmupSeconds,
        concurrency,
      });
      const serverCores = clientMode === 'process' ? coresUsed(cpu0, process.cpuUsage(), (performance.now() - w0) / 1000) : NaN;
      if (stats.errors) {
        failed += stats.errors;
        process.stderr.write(`${system} ${policy ?? ''} ${sizeLabel(size)} ${op}: ${stats.errors} errors, first: ${stats.firstError}\n`);
      }
      // SG_BENCH_TRACE=1: each cell's window on the monotonic clock (µs), the clock of --cpu-prof's timestamps,
      // so that a profile of the whole run can be cut into cells.
      if (process.env.SG_BENCH_TRACE) process.stderr.write(`trace ${system} ${policy ?? '-'} ${sizeLabel(size)} ${op} ${mono0 / 1000n} ${process.hrtime.bigint() / 1000n} wall-ms ${Date.now() - Math.round(performance.now() - w0)} ${Date.now()}\n`);
      const c: Cell = { system, policy, size, op, stats, serverCores, ...(run !== undefined ? { run } : {}) };
      cells.push(c);
      const label = `${system === 'bare' ? `bare #${run}` : policy} ${sizeLabel(size)} ${op}`;
      process.stderr.write(`  ${label.padEnd(28)} ${num(stats.opsPerSec).padStart(8)} ops/s ${num(stats.mbPerSec, 1).padStart(8)} MB/s  p50 ${stats.p50Ms.toFixed(1)} ms  p99 ${stats.p99Ms.toFixed(1)} ms\n`);
      return c;
    };

    // Untimed: TLS handshakes of every connection and JIT warm-up of both servers and the client.
    for (const t of [...(withBare ? ['bare' as const] : []), ...(policies.length ? ['sg' as const] : [])]) {
      const bucket = t === 'bare' ? 'bare' : bucketFor(policies[0]!);
      await runner.run({ target: t, op: 'put', bucket, prefix: 'warm', size: 4096, seconds: 1, warmupSeconds: 0, concurrency });
      await runner.run({ target: t, op: 'get', bucket, prefix: 'warm', size: 4096, seconds: 0.5, warmupSeconds: 0, concurrency });
    }
    bare.store.clear();

    // Per size: the bare server, every policy, the bare server again. Ratios are against the mean of the two
    // bare runs, so that drift (other load on the machine, page cache, thermal) hits both sides alike; the
    // two bare runs' spread is reported as the noise of the run.
    for (const size of sizes) {
      const before: Partial<Record<Op, Cell>> = {};
      if (withBare) {
        for (const op of ops) before[op] = await cell('bare', null, size, op, `s${sizeLabel(size)}-a`, 1);
        bare.store.clear();
      }
      const mine: Cell[] = [];
      for (const p of policies) for (const op of ops) mine.push(await cell('securegrid', p, size, op, `s${sizeLabel(size)}`));
      if (withBare) {
        for (const op of ops) {
          const after = await cell('bare', null, size, op, `s${sizeLabel(size)}-b`, 2);
          const b = before[op]!;
          const ref = { ops: (b.stats.opsPerSec + after.stats.opsPerSec) / 2, mb: (b.stats.mbPerSec + after.stats.mbPerSec) / 2 };
          bareRef.set(`${size}|${op}`, { ...ref, spread: Math.abs(b.stats.opsPerSec - after.stats.opsPerSec) / ref.ops });
          for (const c of mine) if (c.op === op) c.ratio = { ops: c.stats.opsPerSec / ref.ops, mb: c.stats.mbPerSec / ref.mb };
        }
        bare.store.clear();
      }
    }

    // Raw storage per policy: a fresh bucket of rawObjects × 1 MiB each.
    const raw: Array<{ policy: string; objects: number; logical: number; rawMeta: number; rawNodes: number }> = [];
    if (rawObjects > 0) {
      const body = randomBytes(1024 * 1024);
      for (const p of policies) {
        const bucket = `raw-${bucketFor(p)}`;
        await admin.createBucket(bucket, { policy: p });
        const before = await nodeBytes(gw);
        for (let i = 0; i < rawObjects; i += 8) {
          await Promise.all(Array.from({ length: Math.min(8, rawObjects - i) }, (_, j) => admin.put(bucket, `obj-${i + j}`, body)));
        }
        const after = await nodeBytes(gw);
        const m = rawFromMeta(gw, bucket);
        raw.push({ policy: p, objects: m.objects, logical: m.logical, rawMeta: m.raw, rawNodes: after - before });
      }
    }

    // ---------------------------------------------------------------- report
    // Grouped by size and operation: the two bare runs, then each policy with its ratio to their mean.
    const order = (c: Cell) => sizes.indexOf(c.size) * 1e6 + ops.indexOf(c.op) * 1e4 + (c.system === 'bare' ? c.run! : 10 + policies.indexOf(c.policy!));
    const sorted = [...cells].sort((x, y) => order(x) - order(y));
    const rows: string[][] = [];
    for (const c of sorted) {
      const ref = bareRef.get(`${c.size}|${c.op}`);
      rows.push([
        c.system === 'bare' ? `bare https #${c.run}` : c.policy!,
        sizeLabel(c.size),
        c.op.toUpperCase(),
        num(c.stats.opsPerSec),
        num(c.stats.mbPerSec, 1),
        c.stats.p50Ms.toFixed(2),
        c.stats.p99Ms.toFixed(2),
        Number.isFinite(c.serverCores) ? c.serverCores.toFixed(2) : '-',
        Number.isFinite(c.serverCores) ? num((c.serverCores * 1e6) / c.stats.opsPerSec) : '-',
        c.ratio ? ratio(c.ratio.ops) : c.system === 'bare' && ref ? `±${(ref.spread * 50).toFixed(0)}%` : '-',
        c.stats.errors ? String(c.stats.errors) : '',
      ]);
    }
    log(table(['system', 'size', 'op', 'ops/s', 'MB/s', 'p50 ms', 'p99 ms', 'srv cores', 'srv µs/op', 'vs bare', 'errors'], rows, { leftColumns: 3 }));
    log('vs bare: ops/s ÷ the mean of the two bare runs of that size and op (their ±half-spread shown on the bare rows);');
    log('srv cores: CPU time of the server process (all threads) ÷ wall time; srv µs/op: that CPU per operation (less');
    log('sensitive than ops/s to other load on the machine). Both need the client in its own process (--client process).');
    if (raw.length) {
      log('');
      log(`raw storage per policy (${rawObjects} × 1 MiB objects per policy; paper Fig. 5)`);
      log(
        table(
          ['policy', 'logical', 'raw (meta)', 'raw/logical', 'raw (nodes)', 'nodes/logical', 'paper'],
          raw.map((r) => [
            r.policy,
            bytesHuman(r.logical),
            bytesHuman(r.rawMeta),
            ratio(r.rawMeta / r.logical, 3),
            bytesHuman(r.rawNodes),
            ratio(r.rawNodes / r.logical, 3),
            PAPER_RAW[r.policy] !== undefined ? ratio(PAPER_RAW[r.policy]!, 2) : '-',
          ]),
        ),
      );
    }

    // Targets from the issue.
    const targetsOut: Array<{ name: string; value: number; target: number; met: boolean }> = [];
    const kib = sizes.find((s) => s === 1024);
    const mib = sizes.find((s) => s === 1024 * 1024);
    for (const c of cells) {
      if (c.system !== 'securegrid') continue;
      if (c.size === kib && c.ratio) targetsOut.push({ name: `${c.policy} 1KiB ${c.op} vs bare`, value: round(c.ratio.ops), target: 0.5, met: c.ratio.ops >= 0.5 });
      if (c.size === mib && c.policy === 'ec:6+2' && c.op === 'put') targetsOut.push({ name: 'ec:6+2 1MiB put MB/s', value: round(c.stats.mbPerSec, 1), target: 400, met: c.stats.mbPerSec >= 400 });
    }
    if (targetsOut.length) {
      log('');
      log('targets');
      log(table(['target', 'measured', 'wanted', 'met'], targetsOut.map((t) => [t.name, String(t.value), `≥ ${t.target}`, t.met ? 'yes' : 'NO'])));
    }
    log('');
    log(`done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);

    const jsonCell = (c: Cell) => ({
      system: c.system,
      policy: c.policy,
      size: c.size,
      sizeLabel: sizeLabel(c.size),
      op: c.op,
      ops: c.stats.ops,
      errors: c.stats.errors,
      seconds: round(c.stats.seconds),
      opsPerSec: round(c.stats.opsPerSec, 1),
      mbPerSec: round(c.stats.mbPerSec, 2),
      p50Ms: round(c.stats.p50Ms),
      p99Ms: round(c.stats.p99Ms),
      maxMs: round(c.stats.maxMs),
      serverCores: Number.isFinite(c.serverCores) ? round(c.serverCores, 2) : null,
      serverCpuUsPerOp: Number.isFinite(c.serverCores) ? round((c.serverCores * 1e6) / c.stats.opsPerSec, 1) : null,
      clientCores: round(c.stats.clientCores, 2),
      ratioOps: c.ratio ? round(c.ratio.ops) : c.system === 'bare' ? 1 : null,
      ratioMBps: c.ratio ? round(c.ratio.mb) : c.system === 'bare' ? 1 : null,
      ...(c.run !== undefined ? { run: c.run } : {}),
    });
    printJsonLast({
      bench: 'kvs',
      node: process.version,
      cores: cpus().length,
      config: { seconds, warmupSeconds, concurrency, sizes, policies, ops, client: clientMode, storageNodes: remote ? 'remote' : 'local', nodes: 9, rawObjects },
      cells: cells.map(jsonCell),
      bare: [...bareRef].map(([k, r]) => {
        const [size, op] = k.split('|');
        return { size: Number(size), sizeLabel: sizeLabel(Number(size)), op, opsPerSec: round(r.ops, 1), mbPerSec: round(r.mb, 2), spread: round(r.spread) };
      }),
      raw: raw.map((r) => ({
        policy: r.policy,
        objects: r.objects,
        objectSize: 1024 * 1024,
        logicalBytes: r.logical,
        rawBytesMeta: r.rawMeta,
        rawRatioMeta: round(r.rawMeta / r.logical, 4),
        rawBytesNodes: r.rawNodes,
        rawRatioNodes: round(r.rawNodes / r.logical, 4),
        paperRatio: PAPER_RAW[r.policy] !== undefined ? round(PAPER_RAW[r.policy]!, 4) : null,
      })),
      targets: targetsOut,
      failedRequests: failed,
      wallSeconds: round((Date.now() - t0) / 1000, 1),
    });
  } finally {
    await cleanup();
  }
  return failed > 0 ? 1 : 0;
}

if (process.argv.includes('--client-worker')) {
  clientWorker();
} else {
  main().then(
    (code) => process.exit(code),
    (err: Error) => {
      process.stderr.write(`bench:kvs failed: ${err.stack ?? err.message}\n`);
      process.exit(2);
    },
  );
}
