// Test fixture: storage nodes as separate OS processes (`securegrid kvs node --data DIR --port P`) on loopback,
// which a test can SIGKILL and restart on the same port and data directory. Needs the built CLI (`npm run build`).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** bin/securegrid.js of this checkout (this file runs from dist/test/helpers/). */
export const BIN = fileURLToPath(new URL('../../../bin/securegrid.js', import.meta.url));
const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const START_TIMEOUT_MS = 20_000;

/** Every child this module started and has not seen exit: killed on process exit, whatever happened. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export class NodeProc {
  readonly url: string;
  private proc: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  /** The tail of the child's output, for failure messages. */
  private output = '';

  constructor(readonly index: number, readonly dir: string, readonly port: number) {
    this.url = `http://127.0.0.1:${port}`;
  }

  get running(): boolean {
    return this.proc !== undefined;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Spawns the node and resolves once it printed its "listening on" line. */
  async start(): Promise<void> {
    if (this.proc) throw new Error(`node ${this.index} is already running`);
    mkdirSync(this.dir, { recursive: true });
    const proc = spawn(process.execPath, [BIN, 'kvs', 'node', '--data', this.dir, '--port', String(this.port), '--host', '127.0.0.1'], {
      env: { ...process.env, SECUREGRID_LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    live.add(proc);
    this.output = '';
    const keep = (d: Buffer) => {
      this.output = (this.output + d.toString('utf8')).slice(-4000);
    };
    proc.stderr!.on('data', keep);
    let onEarlyExit: ((why: string) => void) | undefined;
    this.exited = new Promise<void>((resolve) => {
      const gone = (why: string) => {
        live.delete(proc);
        if (this.proc === proc) this.proc = undefined;
        onEarlyExit?.(why);
        resolve();
      };
      proc.once('exit', (code, signal) => gone(`exited (${code ?? signal}) before listening`));
      proc.once('error', (err) => gone(`could not start: ${err.message}`));
    });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const fail = (why: string) => {
        clearTimeout(timer);
        onEarlyExit = undefined;
        proc.kill('SIGKILL');
        reject(new Error(`storage node ${this.index} (port ${this.port}) ${why}; output: ${this.output}`));
      };
      onEarlyExit = fail;
      const timer = setTimeout(() => fail(`printed no "listening on" line in ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
      proc.stdout!.on('data', (d: Buffer) => {
        keep(d);
        if (!onEarlyExit) return;
        out += d.toString('utf8');
        if (out.includes('listening on')) {
          clearTimeout(timer);
          onEarlyExit = undefined;
          resolve();
        }
      });
    });
  }

  /** Sends `signal` (SIGKILL by default) and resolves once the process is gone. */
  async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    const exited = this.exited;
    proc.kill(signal);
    await exited;
  }
}

export class NodeCluster {
  private constructor(readonly baseDir: string, readonly nodes: NodeProc[]) {}

  /** `count` node processes under <baseDir>/node-<i>, each on a port picked free beforehand, all started. */
  static async start(baseDir: string, count: number): Promise<NodeCluster> {
    if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first`);
    const ports = new Set<number>();
    while (ports.size < count) ports.add(await freePort());
    const nodes = [...ports].map((port, i) => new NodeProc(i, join(baseDir, `node-${i}`), port));
    const cluster = new NodeCluster(baseDir, nodes);
    try {
      await Promise.all(nodes.map((n) => n.start()));
    } catch (err) {
      await cluster.stopAll();
      throw err;
    }
    return cluster;
  }

  byUrl(url: string): NodeProc {
    const n = this.nodes.find((x) => x.url === url);
    if (!n) throw new Error(`no node process serves ${url}`);
    return n;
  }

  /** SIGKILLs the given nodes at once. */
  async kill(nodes: NodeProc[]): Promise<void> {
    await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
  }

  /** Restarts the given (stopped) nodes on their own ports and dirs. */
  async restart(nodes: NodeProc[]): Promise<void> {
    await Promise.all(nodes.filter((n) => !n.running).map((n) => n.start()));
  }

  /** Stops every running node (SIGTERM, SIGKILL after 5 s) and waits for each to exit. */
  async stopAll(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await Promise.all(
      this.nodes.map(async (n) => {
        if (!n.running) return;
        const t = setTimeout(() => void n.stop('SIGKILL'), 5000);
        try {
          await n.stop(signal);
        } finally {
          clearTimeout(t);
        }
      }),
    );
  }
}
