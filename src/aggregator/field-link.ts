// The field link between meters and an aggregator (the paper's Zigbee mesh): `u32 length ‖ MeterEnvelope`
// frames over TCP on loopback, many meters multiplexed on one connection, or an in-process pair.
import { EventEmitter } from 'node:events';
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { logger } from '../observe/index.js';
import { encodeFieldFrame, FieldFrameDecoder, type MeterEnvelope } from '../protocol/index.js';

/** One end of a field link. Both ends have the same shape; the meters' end and the aggregator's end differ only in who sends what. */
export interface FieldLink {
  /** Queues an envelope; false when the link's buffer is full (wait for `drained()` before sending more). */
  send(env: MeterEnvelope): boolean;
  onEnvelope(cb: (env: MeterEnvelope) => void): void;
  /** Called whenever a full buffer has emptied. */
  onDrain(cb: () => void): void;
  /** Resolves once the link can take more (at once when it can now). */
  drained(): Promise<void>;
  /** Stops delivering received envelopes (and reading from the peer) until resume(): backpressure upstream. */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export class FieldLinkError extends Error {
  constructor(readonly code: 'listen-failed' | 'bad-url' | 'closed', message: string) {
    super(message);
    this.name = 'FieldLinkError';
  }
}

/** Delivery to onEnvelope listeners with pause/resume; envelopes arriving while paused wait here, in order. */
class Inbox {
  private readonly listeners: Array<(env: MeterEnvelope) => void> = [];
  private readonly held: MeterEnvelope[] = [];
  paused = false;
  constructor(private readonly onResume: () => void = () => {}) {}
  listen(cb: (env: MeterEnvelope) => void): void {
    this.listeners.push(cb);
  }
  deliver(env: MeterEnvelope): void {
    if (this.paused || this.held.length > 0) this.held.push(env);
    else this.emit(env);
  }
  get backlog(): number {
    return this.held.length;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
    // a listener may pause again mid-flush; the rest stays held (one splice, not a shift per envelope: O(n))
    let i = 0;
    while (!this.paused && i < this.held.length) this.emit(this.held[i++]!);
    this.held.splice(0, i);
    if (!this.paused) this.onResume();
  }
  private emit(env: MeterEnvelope): void {
    for (const l of this.listeners) {
      try {
        l(env);
      } catch (err) {
        logger('field-link').error({ err: (err as Error).message, serial: env.serial }, 'envelope listener threw');
      }
    }
  }
}

function waitDrain(ev: EventEmitter, ready: () => boolean): Promise<void> {
  if (ready()) return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (!ready()) return;
      ev.off('drain', check);
      resolve();
    };
    ev.on('drain', check);
  });
}

export interface FieldLinkServerOptions {
  host?: string;
  /** 0 = any free port. */
  port?: number;
  /** Downlinks kept per meter that has no live connection, until it speaks again. */
  maxHeldPerMeter?: number;
}

export interface FieldLinkServerStats {
  connections: number;
  meters: number;
  envelopesIn: number;
  envelopesOut: number;
  malformed: number;
  downlinksHeld: number;
  downlinksDropped: number;
}

/** The aggregator's end of the TCP field link. Downlinks go to the connection the meter last spoke from. */
export class FieldLinkServer implements FieldLink {
  private readonly ev = new EventEmitter();
  private readonly sockets = new Set<Socket>();
  private readonly route = new Map<number, Socket>();
  private readonly held = new Map<number, MeterEnvelope[]>();
  private readonly inbox = new Inbox(() => {
    for (const s of this.sockets) s.resume();
  });
  private readonly log = logger('field-link');
  private readonly maxHeld: number;
  private counts = { envelopesIn: 0, envelopesOut: 0, malformed: 0, downlinksDropped: 0 };
  readonly port: number;
  readonly url: string;

  private constructor(private readonly server: Server, maxHeld: number) {
    this.maxHeld = maxHeld;
    const a = server.address() as AddressInfo;
    this.port = a.port;
    this.url = `tcp://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    server.on('connection', (s) => this.accept(s));
  }

  static async listen(opts: FieldLinkServerOptions = {}): Promise<FieldLinkServer> {
    const host = opts.host ?? '127.0.0.1';
    const server = createServer({ noDelay: true });
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(opts.port ?? 0, host, () => (server.off('error', reject), resolve()));
      });
    } catch (err) {
      throw new FieldLinkError('listen-failed', `cannot listen for meters on ${host}:${opts.port ?? 0}: ${(err as Error).message}`);
    }
    return new FieldLinkServer(server, opts.maxHeldPerMeter ?? 256);
  }

  private accept(s: Socket): void {
    this.sockets.add(s);
    if (this.inbox.paused) s.pause();
    const dec = new FieldFrameDecoder();
    s.on('data', (chunk: Buffer) => {
      let envs: MeterEnvelope[];
      try {
        envs = dec.push(chunk);
      } catch (err) {
        // a stream whose framing is broken cannot be resynchronised: drop that connection, keep the others
        this.counts.malformed++;
        this.log.warn({ code: 'malformed', remote: s.remotePort, err: (err as Error).message }, 'malformed field frame; closing the connection');
        s.destroy();
        return;
      }
      for (const env of envs) {
        this.counts.envelopesIn++;
        if (this.route.get(env.serial) !== s) {
          this.route.set(env.serial, s);
          this.flushHeld(env.serial, s);
        }
        this.inbox.deliver(env);
      }
      if (this.inbox.paused) s.pause();
    });
    s.on('drain', () => this.ev.emit('drain'));
    s.on('error', (err) => this.log.debug({ err: err.message }, 'field connection error'));
    s.on('close', () => {
      this.sockets.delete(s);
      for (const [serial, sock] of this.route) if (sock === s) this.route.delete(serial);
      this.ev.emit('drain');
    });
  }

  private flushHeld(serial: number, s: Socket): void {
    const q = this.held.get(serial);
    if (!q) return;
    this.held.delete(serial);
    for (const env of q) {
      this.counts.envelopesOut++;
      s.write(encodeFieldFrame(env));
    }
  }

  send(env: MeterEnvelope): boolean {
    const s = this.route.get(env.serial);
    if (!s || s.destroyed) {
      let q = this.held.get(env.serial);
      if (!q) this.held.set(env.serial, (q = []));
      if (q.length >= this.maxHeld) {
        q.shift();
        this.counts.downlinksDropped++;
        this.log.warn({ code: 'downlink-dropped', serial: env.serial }, 'meter unreachable and its downlink queue is full; oldest downlink dropped');
      }
      q.push(env);
      return true;
    }
    this.counts.envelopesOut++;
    return s.write(encodeFieldFrame(env));
  }

  onEnvelope(cb: (env: MeterEnvelope) => void): void {
    this.inbox.listen(cb);
  }
  onDrain(cb: () => void): void {
    this.ev.on('drain', cb);
  }
  drained(): Promise<void> {
    return waitDrain(this.ev, () => [...this.sockets].every((s) => !s.writableNeedDrain));
  }
  pause(): void {
    this.inbox.pause();
    for (const s of this.sockets) s.pause();
  }
  resume(): void {
    this.inbox.resume();
  }

  stats(): FieldLinkServerStats {
    let held = 0;
    for (const q of this.held.values()) held += q.length;
    return { connections: this.sockets.size, meters: this.route.size, downlinksHeld: held, ...this.counts };
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    for (const s of this.sockets) s.end();
    // sockets that do not finish their goodbye in time are cut
    const t = setTimeout(() => this.sockets.forEach((s) => s.destroy()), 1000);
    await closed;
    clearTimeout(t);
  }
}

export interface FieldLinkClientOptions {
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Envelopes queued while disconnected before send() reports a full buffer (it still queues them). */
  highWaterMark?: number;
}

/** The meters' end of the TCP field link: one connection for many meters, reconnecting with backoff. */
export class FieldLinkClient implements FieldLink {
  private readonly ev = new EventEmitter();
  private readonly inbox = new Inbox(() => this.sock?.resume());
  private readonly queue: MeterEnvelope[] = [];
  private sock: Socket | undefined;
  private live = false;
  private closed = false;
  private backoff: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly log = logger('field-link');
  private readonly hwm: number;

  constructor(readonly host: string, readonly port: number, private readonly opts: FieldLinkClientOptions = {}) {
    this.backoff = opts.minBackoffMs ?? 100;
    this.hwm = opts.highWaterMark ?? 10_000;
    this.dial();
  }

  get connected(): boolean {
    return this.live;
  }

  /** Resolves when the link is (again) connected. */
  whenConnected(): Promise<void> {
    if (this.live) return Promise.resolve();
    return new Promise((r) => this.ev.once('connect', r));
  }

  private dial(): void {
    if (this.closed) return;
    const s = netConnect({ host: this.host, port: this.port, noDelay: true });
    this.sock = s;
    const dec = new FieldFrameDecoder();
    s.on('connect', () => {
      this.live = true;
      this.backoff = this.opts.minBackoffMs ?? 100;
      if (this.inbox.paused) s.pause();
      while (this.queue.length > 0 && !s.writableNeedDrain) s.write(encodeFieldFrame(this.queue.shift()!));
      this.ev.emit('connect');
      if (!s.writableNeedDrain) this.ev.emit('drain');
    });
    s.on('data', (chunk: Buffer) => {
      try {
        for (const env of dec.push(chunk)) this.inbox.deliver(env);
      } catch (err) {
        this.log.warn({ code: 'malformed', err: (err as Error).message }, 'malformed field frame from the aggregator; reconnecting');
        s.destroy();
      }
      if (this.inbox.paused) s.pause();
    });
    s.on('drain', () => {
      while (this.queue.length > 0 && !s.writableNeedDrain) s.write(encodeFieldFrame(this.queue.shift()!));
      if (!s.writableNeedDrain) this.ev.emit('drain');
    });
    s.on('error', (err) => this.log.debug({ err: err.message }, 'field link error'));
    s.on('close', () => {
      if (this.sock === s) this.live = false;
      if (this.closed) return;
      this.timer = setTimeout(() => this.dial(), this.backoff);
      this.backoff = Math.min(this.opts.maxBackoffMs ?? 5000, this.backoff * 2);
    });
  }

  send(env: MeterEnvelope): boolean {
    if (this.closed) throw new FieldLinkError('closed', 'field link is closed');
    if (!this.live || !this.sock || this.queue.length > 0) {
      this.queue.push(env);
      return this.queue.length < this.hwm;
    }
    return this.sock.write(encodeFieldFrame(env));
  }

  onEnvelope(cb: (env: MeterEnvelope) => void): void {
    this.inbox.listen(cb);
  }
  onDrain(cb: () => void): void {
    this.ev.on('drain', cb);
  }
  drained(): Promise<void> {
    return waitDrain(this.ev, () => this.live && this.queue.length === 0 && !this.sock?.writableNeedDrain);
  }
  pause(): void {
    this.inbox.pause();
    this.sock?.pause();
  }
  resume(): void {
    this.inbox.resume();
  }

  /** Envelopes waiting for a connection. */
  get queued(): number {
    return this.queue.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    const s = this.sock;
    if (!s || s.destroyed) return;
    // end() flushes what the socket holds; a peer that never answers is cut after a second
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => s.destroy(), 1000);
      s.once('close', () => (clearTimeout(t), resolve()));
      if (this.live) s.end();
      else s.destroy();
    });
  }
}

/** Connects the meters' end to an aggregator's field port, `tcp://host:port`. */
export function connectFieldLink(url: string, opts: FieldLinkClientOptions = {}): FieldLinkClient {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new FieldLinkError('bad-url', `field link URL '${url}' is not a URL; expected tcp://host:port`);
  }
  if (u.protocol !== 'tcp:' || !u.port) throw new FieldLinkError('bad-url', `field link URL '${url}' must be tcp://host:port`);
  return new FieldLinkClient(u.hostname.replace(/^\[|\]$/g, ''), Number(u.port), opts);
}

/** One end of an in-process link: what it sends is delivered (asynchronously, in order) at the other end. */
class InProcessEnd implements FieldLink {
  peer!: InProcessEnd;
  readonly ev = new EventEmitter();
  readonly inbox: Inbox;
  /** Envelopes this end sent that the other end has not yet taken. */
  readonly outbox: MeterEnvelope[] = [];
  private scheduled = false;
  closed = false;

  constructor(private readonly hwm: number) {
    this.inbox = new Inbox(() => this.peer.schedule());
  }

  send(env: MeterEnvelope): boolean {
    if (this.closed || this.peer.closed) throw new FieldLinkError('closed', 'field link is closed');
    this.outbox.push(env);
    this.schedule();
    return this.outbox.length < this.hwm;
  }

  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const wasFull = this.outbox.length >= this.hwm;
      // the receiver's inbox takes what it can; a paused inbox leaves the rest here, so the sender sees backpressure
      // (taken by index and cut once: shift() per envelope moves the whole outbox each time)
      const out = this.outbox;
      const end = Math.min(out.length, 4096);
      let i = 0;
      while (i < end && !this.peer.inbox.paused) this.peer.inbox.deliver(out[i++]!);
      out.splice(0, i);
      if (out.length > 0 && !this.peer.inbox.paused) this.schedule();
      if (wasFull && this.outbox.length < this.hwm) this.ev.emit('drain');
    });
  }

  onEnvelope(cb: (env: MeterEnvelope) => void): void {
    this.inbox.listen(cb);
  }
  onDrain(cb: () => void): void {
    this.ev.on('drain', cb);
  }
  drained(): Promise<void> {
    return waitDrain(this.ev, () => this.outbox.length < this.hwm);
  }
  pause(): void {
    this.inbox.pause();
  }
  resume(): void {
    this.inbox.resume();
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

/** A connected pair with no sockets, for the demo and tests. */
export function inProcessFieldLink(opts: { highWaterMark?: number } = {}): { meterSide: FieldLink; aggregatorSide: FieldLink } {
  const a = new InProcessEnd(opts.highWaterMark ?? 10_000);
  const b = new InProcessEnd(opts.highWaterMark ?? 10_000);
  a.peer = b;
  b.peer = a;
  return { meterSide: a, aggregatorSide: b };
}
