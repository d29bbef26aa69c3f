// The meter runtime: every meter of a fleet runs its secure session over its aggregator's FieldLink, sends one
// sealed report per 15-minute interval, answers operator commands, and re-keys when told to. Reports come from
// the same ReportModel as generateReports, so the offline stream is the ground truth of what is sent.
import type { SuiteName } from '../crypto/index.js';
import {
  EnvelopeType,
  MemoryCounterStore,
  MeterSession,
  SESSION_ID_SIZE,
  decodeAlert,
  decodeFrame,
  encodeReport,
  encodeResponse,
  type CounterStore,
  type MeterEnvelope,
  type MeterResponse,
} from '../protocol/index.js';
import type { FieldLink } from '../aggregator/index.js';
import { VirtualClock } from './clock.js';
import type { Fleet } from './fleet.js';
import { countTamper, emptySummary, type LabelSink, type TamperKind, type TamperLabel, type TamperSummary } from './labels.js';
import { ReportModel } from './reports.js';
import { REPLAY_DELAY_INTERVALS, TamperPlan, expectation, flipCiphertextBit, randomRecord, type TamperOptions } from './tamper.js';
import { INTERVAL_MS } from './time.js';

/** Body of a `downlink` envelope: the sending ingest process's system title (8) ‖ record. */
export const DOWNLINK_TITLE_SIZE = 8;
const ZERO_SESSION = Buffer.alloc(SESSION_ID_SIZE);

export interface SimulatorOptions {
  fleet: Fleet;
  /** One link per aggregator: by aggregator id, in fleet.aggregatorIds order, or one link for all. */
  links: FieldLink | FieldLink[] | Record<string, FieldLink>;
  /** The collector's identity public key (SPKI DER) per suite the fleet uses: what every meter embeds. */
  collectorKeys: Partial<Record<SuiteName, Buffer>>;
  /** Uplink counters (default in memory; give a FileCounterStore when the run may restart). */
  counters?: CounterStore;
  labels?: LabelSink;
  tamper?: TamperOptions;
  /** Simulated ms per real ms; 0 = as fast as the links take the reports. */
  speed?: number;
  /** Intervals to report, default the fleet window. */
  from?: number;
  to?: number;
  /** Handshakes in flight at once (default 2,000). */
  handshakeConcurrency?: number;
  /** Per attempt (default 10 s), and attempts before a meter gives up until its next interval (default 5). */
  handshakeTimeoutMs?: number;
  handshakeAttempts?: number;
  /** Records per session before re-keying (default the protocol's 2^20). */
  rekeyAfter?: number;
  onProgress?: (p: SimulatorProgress) => void;
}

export interface SimulatorStats {
  meters: number;
  handshakes: number;
  handshakeRetries: number;
  handshakeFailures: number;
  rekeys: number;
  /** Genuine periodic reports sealed (dropped ones included). */
  reportsSealed: number;
  /** Genuine periodic reports that left the meter (not dropped, not replaced by an altered copy). */
  reportsSent: number;
  /** Every envelope put on a link. */
  envelopesSent: number;
  commands: number;
  alerts: number;
  downlinkRejected: number;
  backpressureWaits: number;
  tamper: Record<TamperKind, number>;
  /** The last interval reported (simulated ts). */
  simulatedTs: number;
}

export interface SimulatorProgress {
  phase: 'handshake' | 'reporting' | 'done';
  done: number;
  total: number;
  stats: SimulatorStats;
}

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

/** Per-meter runtime state (allocated when the meter first handshakes). */
interface MeterRuntime {
  index: number;
  session: MeterSession;
  link: FieldLink;
  waiter: Waiter | undefined;
  handshaking: Promise<boolean> | undefined;
  disconnected: boolean;
  /** Frames waiting for a session (a meter keeps its load profile until it can send). */
  backlog: Buffer[];
  lastAlertRehandshake: number;
}

export class Simulator {
  readonly fleet: Fleet;
  readonly model: ReportModel;
  readonly stats: SimulatorStats;
  readonly summary: TamperSummary = emptySummary();
  readonly #opts: SimulatorOptions;
  readonly #counters: CounterStore;
  readonly #tamper: TamperPlan | undefined;
  readonly #meters: Array<MeterRuntime | undefined>;
  readonly #linkOf: (aggregatorId: string) => FieldLink;
  readonly #replays = new Map<number, { ts: number; env: MeterEnvelope }>();
  /** Per link, the last meter that sealed a report: the victim of cross-meter forgeries. */
  readonly #lastSealer = new Map<FieldLink, number>();
  readonly #full = new Set<FieldLink>();
  #forgeSerial = 0;
  #started = false;
  #closed = false;

  constructor(opts: SimulatorOptions) {
    this.#opts = opts;
    this.fleet = opts.fleet;
    this.model = new ReportModel(opts.fleet);
    this.#counters = opts.counters ?? new MemoryCounterStore();
    this.#tamper = opts.tamper && opts.tamper.rate > 0 ? new TamperPlan(opts.fleet.seedWord, opts.tamper) : undefined;
    this.#meters = new Array<MeterRuntime | undefined>(opts.fleet.count);
    this.stats = {
      meters: opts.fleet.count,
      handshakes: 0,
      handshakeRetries: 0,
      handshakeFailures: 0,
      rekeys: 0,
      reportsSealed: 0,
      reportsSent: 0,
      envelopesSent: 0,
      commands: 0,
      alerts: 0,
      downlinkRejected: 0,
      backpressureWaits: 0,
      tamper: { dropped: 0, duplicated: 0, altered: 0, replayed: 0, forged: 0 },
      simulatedTs: 0,
    };
    const links = opts.links;
    const all = new Set<FieldLink>();
    if (Array.isArray(links)) {
      if (links.length !== this.fleet.aggregatorIds.length) throw new RangeError(`${links.length} links for ${this.fleet.aggregatorIds.length} aggregators`);
      const byId = new Map(this.fleet.aggregatorIds.map((id, i) => [id, links[i]!] as const));
      this.#linkOf = (id) => byId.get(id)!;
      links.forEach((l) => all.add(l));
    } else if (isLink(links)) {
      this.#linkOf = () => links;
      all.add(links);
    } else {
      for (const id of this.fleet.aggregatorIds) if (!links[id]) throw new RangeError(`no link for aggregator ${id}`);
      this.#linkOf = (id) => links[id]!;
      for (const id of this.fleet.aggregatorIds) all.add(links[id]!);
    }
    for (const l of all) l.onEnvelope((env) => this.#onDownlink(env));
  }

  /** Handshakes every meter (bounded concurrency, retries on timeout). */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const n = this.fleet.count;
    const limit = Math.max(1, this.#opts.handshakeConcurrency ?? 2000);
    let next = 0;
    let done = 0;
    const worker = async (): Promise<void> => {
      while (next < n && !this.#closed) {
        const i = next++;
        await this.#handshake(this.#runtime(i));
        done++;
        if (done % 1000 === 0 || done === n) this.#opts.onProgress?.({ phase: 'handshake', done, total: n, stats: this.stats });
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, n) }, worker));
  }

  /** Runs the whole window: handshakes, then every interval for every meter, then waits for the links to drain. */
  async run(): Promise<SimulatorStats> {
    await this.start();
    const from = Math.max(this.#opts.from ?? this.fleet.start + INTERVAL_MS, this.fleet.start + INTERVAL_MS);
    const first = Math.ceil(from / INTERVAL_MS) * INTERVAL_MS;
    const last = Math.floor((this.#opts.to ?? this.fleet.end) / INTERVAL_MS) * INTERVAL_MS;
    const clock = new VirtualClock({ first, last, speed: this.#opts.speed ?? 0 });
    const total = clock.ticks;
    let done = 0;
    for (let ts = await clock.next(); ts !== undefined && !this.#closed; ts = await clock.next()) {
      await this.step(ts);
      this.#opts.onProgress?.({ phase: 'reporting', done: ++done, total, stats: this.stats });
    }
    await this.drain();
    this.#opts.onProgress?.({ phase: 'done', done, total, stats: this.stats });
    return this.stats;
  }

  /** Every meter reports the interval ending at ts. */
  async step(ts: number): Promise<void> {
    for (let i = 0; i < this.fleet.count && !this.#closed; i++) {
      const rt = this.#runtime(i);
      const report = this.model.next(i, ts, rt.disconnected);
      this.#sendReport(rt, ts, encodeReport(report));
      if (this.#full.size > 0) await this.#relieve();
    }
    this.stats.simulatedTs = ts;
  }

  /** Waits until every link has taken what was queued. */
  async drain(): Promise<void> {
    const links = new Set<FieldLink>();
    for (const id of this.fleet.aggregatorIds) links.add(this.#linkOf(id));
    await Promise.all([...links].map((l) => l.drained()));
  }

  /** Stops the run (links stay open: the caller owns them) and writes the tamper summary to the labels. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const rt of this.#meters) if (rt?.waiter) rt.waiter.reject(new Error('simulator closed'));
    if (this.#tamper) this.#opts.labels?.write({ ...this.summary, reportsSent: this.stats.reportsSent });
  }

  #runtime(i: number): MeterRuntime {
    let rt = this.#meters[i];
    if (!rt) {
      const spec = this.fleet.meter(i);
      const collectorPublicKey = this.#opts.collectorKeys[spec.suite];
      if (!collectorPublicKey) throw new RangeError(`no collector public key for suite ${spec.suite} (meter ${spec.serial})`);
      const session = new MeterSession({
        suite: spec.suite,
        serial: spec.serial,
        identity: this.fleet.identity(spec),
        collectorPublicKey,
        counters: this.#counters,
        ...(this.#opts.rekeyAfter !== undefined ? { rekeyAfter: this.#opts.rekeyAfter } : {}),
      });
      rt = { index: i, session, link: this.#linkOf(spec.aggregatorId), waiter: undefined, handshaking: undefined, disconnected: false, backlog: [], lastAlertRehandshake: 0 };
      this.#meters[i] = rt;
    }
    return rt;
  }

  /** Puts an envelope on a link; a full link is remembered and waited for between meters (#relieve). */
  #put(link: FieldLink, env: MeterEnvelope): void {
    this.stats.envelopesSent++;
    if (!link.send(env)) this.#full.add(link);
  }

  /** Backpressure: waits until every link that reported a full buffer can take more. */
  async #relieve(): Promise<void> {
    if (this.#full.size === 0) return;
    const links = [...this.#full];
    this.#full.clear();
    this.stats.backpressureWaits++;
    await Promise.all(links.map((l) => l.drained()));
  }

  /** One handshake with retries; resolves true once established. Concurrent calls share the attempt. */
  #handshake(rt: MeterRuntime): Promise<boolean> {
    rt.handshaking ??= (async () => {
      const attempts = Math.max(1, this.#opts.handshakeAttempts ?? 5);
      const timeout = this.#opts.handshakeTimeoutMs ?? 10_000;
      try {
        for (let a = 0; a < attempts && !this.#closed; a++) {
          if (a > 0) this.stats.handshakeRetries++;
          const done = new Promise<void>((resolve, reject) => (rt.waiter = { resolve, reject }));
          let timer: NodeJS.Timeout | undefined;
          const timedOut = new Promise<void>((_, reject) => (timer = setTimeout(() => reject(new Error('timeout')), timeout)));
          try {
            this.#put(rt.link, { type: EnvelopeType.clientHello, serial: rt.session.serial, sessionId: ZERO_SESSION, body: rt.session.clientHello() });
            await this.#relieve();
            await Promise.race([done, timedOut]);
            this.stats.handshakes++;
            if (rt.backlog.length > 0) this.#flushBacklog(rt);
            return true;
          } catch {
            // timeout, or a ServerHello/Established that did not verify: start again with a fresh nonce
          } finally {
            clearTimeout(timer);
            rt.waiter = undefined;
          }
        }
        this.stats.handshakeFailures++;
        return false;
      } finally {
        rt.handshaking = undefined;
      }
    })();
    return rt.handshaking;
  }

  #sendReport(rt: MeterRuntime, ts: number, frame: Buffer): void {
    const s = rt.session;
    if (!s.established) {
      // No session (first handshake failed, or the ingest forgot it): keep the frame, try to get one.
      rt.backlog.push(frame);
      if (!rt.handshaking) void this.#handshake(rt);
      return;
    }
    if (rt.backlog.length > 0) this.#flushBacklog(rt);
    if (s.needsRekey && !rt.handshaking) {
      this.stats.rekeys++;
      void this.#handshake(rt);
    }
    this.#sealAndSend(rt, ts, frame);
  }

  #flushBacklog(rt: MeterRuntime): void {
    const frames = rt.backlog.splice(0);
    for (const f of frames) this.#sealAndSend(rt, decodeTs(f), f);
  }

  #sealAndSend(rt: MeterRuntime, ts: number, frame: Buffer): void {
    const s = rt.session;
    const serial = s.serial;
    const env: MeterEnvelope = { type: EnvelopeType.record, serial, sessionId: s.sessionId!, body: s.seal(frame) };
    this.stats.reportsSealed++;
    const plan = this.#tamper;
    const ev = plan?.at(serial, ts);
    if (plan?.keepForReplay(serial, ts) && ev?.event !== 'dropped' && ev?.event !== 'altered') this.#replays.set(serial, { ts, env });
    if (!plan || !ev) {
      this.#lastSealer.set(rt.link, rt.index);
      this.stats.reportsSent++;
      this.#put(rt.link, env);
      return;
    }
    const r = plan.prng(serial, ts);
    const label: TamperLabel = { kind: 'tamper', serial, ts, event: ev.event, ...expectation(ev) };
    switch (ev.event) {
      case 'dropped':
        break;
      case 'altered':
        this.#put(rt.link, { ...env, body: flipCiphertextBit(env.body, r) });
        break;
      case 'duplicated':
        this.stats.reportsSent++;
        this.#put(rt.link, env);
        this.#put(rt.link, { ...env, body: Buffer.from(env.body) });
        break;
      case 'replayed': {
        this.stats.reportsSent++;
        this.#put(rt.link, env);
        const old = this.#replays.get(serial);
        this.#replays.delete(serial);
        if (!old || old.ts !== ts - REPLAY_DELAY_INTERVALS * INTERVAL_MS) return; // nothing to replay: no event
        label.replayOf = old.ts;
        this.#put(rt.link, old.env);
        break;
      }
      case 'forged': {
        let forgery = ev.forgery ?? 'random';
        let victim: MeterRuntime | undefined;
        if (forgery === 'cross-meter') {
          const j = this.#lastSealer.get(rt.link);
          victim = j !== undefined && j !== rt.index ? this.#meters[j] : undefined;
          if (!victim?.session.established) forgery = 'random';
        }
        label.forgery = forgery;
        Object.assign(label, expectation({ event: 'forged', forgery }));
        if (forgery === 'random') {
          // Counter ahead of the genuine one and unseen: a correct ingest fails it on the tag, not the window.
          const ic = env.body.readUInt32BE(1) + 1 + r.int(1000);
          this.#put(rt.link, { ...env, body: randomRecord(env.body.length, ic, r) });
        } else if (forgery === 'unknown-serial') {
          const foreign = this.fleet.foreignSerial(this.#forgeSerial++ % 1000);
          label.sentSerial = foreign;
          this.#put(rt.link, { type: EnvelopeType.record, serial: foreign, sessionId: r.bytes(SESSION_ID_SIZE), body: randomRecord(env.body.length, 1 + r.int(1 << 20), r) });
        } else {
          // A record genuinely sealed under the victim's session (its own current reading), sent as this meter's.
          const v = victim!;
          const body = v.session.seal(encodeReport(this.model.current(v.index, v.disconnected)));
          this.#put(rt.link, { type: EnvelopeType.record, serial, sessionId: Buffer.from(v.session.sessionId!), body });
        }
        this.stats.reportsSent++;
        this.#lastSealer.set(rt.link, rt.index);
        this.#put(rt.link, env);
        break;
      }
    }
    this.stats.tamper[label.event]++;
    countTamper(this.summary, label);
    this.#opts.labels?.write(label);
  }

  #onDownlink(env: MeterEnvelope): void {
    const spec = this.fleet.bySerial(env.serial);
    if (!spec) return;
    const rt = this.#meters[spec.index];
    if (!rt || this.#closed) return;
    const s = rt.session;
    try {
      switch (env.type) {
        case EnvelopeType.serverHello: {
          const finish = s.onServerHello(Buffer.from(env.body));
          this.#put(rt.link, { type: EnvelopeType.finish, serial: s.serial, sessionId: ZERO_SESSION, body: finish });
          break;
        }
        case EnvelopeType.established:
          s.onEstablished(Buffer.from(env.body));
          rt.waiter?.resolve();
          break;
        case EnvelopeType.downlink:
          this.#onCommand(rt, Buffer.from(env.body));
          break;
        case EnvelopeType.alert: {
          // Unauthenticated advice: act on no-session, at most once per 5 s per meter.
          this.stats.alerts++;
          if (decodeAlert(env.body) === 'no-session' && !rt.handshaking && Date.now() - rt.lastAlertRehandshake > 5000) {
            rt.lastAlertRehandshake = Date.now();
            s.drop();
            void this.#handshake(rt);
          }
          break;
        }
        default:
          break;
      }
    } catch (err) {
      // Anything that does not verify or decode is an attacker's or a stale message: count it, carry on.
      if (env.type === EnvelopeType.serverHello || env.type === EnvelopeType.established) rt.waiter?.reject(err as Error);
      else this.stats.downlinkRejected++;
    }
  }

  #onCommand(rt: MeterRuntime, body: Buffer): void {
    const s = rt.session;
    const plain = s.openDownlink(body.subarray(0, DOWNLINK_TITLE_SIZE), body.subarray(DOWNLINK_TITLE_SIZE));
    const frame = decodeFrame(plain);
    if (frame.type !== 'command' || frame.serial !== s.serial) {
      this.stats.downlinkRejected++;
      return;
    }
    this.stats.commands++;
    const c = frame.command;
    let response: MeterResponse;
    if (c.kind === 'read') {
      response = { kind: 'read', requestId: c.requestId, report: this.model.current(rt.index, rt.disconnected) };
    } else {
      rt.disconnected = c.kind === 'disconnect';
      response = { kind: 'ack', requestId: c.requestId, command: c.kind, ok: true, loadConnected: !rt.disconnected };
    }
    const record = s.seal(encodeResponse(s.serial, response));
    this.#put(rt.link, { type: EnvelopeType.response, serial: s.serial, sessionId: Buffer.from(s.sessionId!), body: record });
  }
}

function isLink(x: unknown): x is FieldLink {
  return typeof (x as FieldLink).send === 'function' && typeof (x as FieldLink).onEnvelope === 'function';
}

function decodeTs(frame: Buffer): number {
  const f = decodeFrame(frame);
  if (f.type !== 'report') throw new Error('backlog holds a frame that is not a report');
  return f.report.ts;
}
