import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freshRandom, generateIdentity, type IdentityKey } from '../../src/crypto/index.js';
import {
  Collector,
  EnvelopeType,
  FileCounterStore,
  decodeFrame,
  encodeAlert,
  encodeCommand,
  newCollectorSystemTitle,
  openUplink,
  peekCounter,
  isSecureError,
  type MeterCommand,
  type MeterEnvelope,
  type MeterResponse,
  type PhasorReport,
  type RejectReason,
  type SessionState,
} from '../../src/protocol/index.js';
import { inProcessFieldLink, type FieldLink } from '../../src/aggregator/index.js';
import { LabelLog, Simulator, createFleet, generateReports, LOCAL_OFFSET_MS, dayOfIso, type Fleet } from '../../src/meter/index.js';

const SUITE = 'x25519-ed25519-aes256gcm';
const ZERO = Buffer.alloc(8);
const collectorIdentity: IdentityKey = generateIdentity(SUITE);

/**
 * A minimal collector on the aggregator's end of a link: handshakes with the protocol's Collector, opens records,
 * counts rejections by the ingest's rules (session, owner, window, tag, frame serial, dedupe) and keeps readings.
 */
class FakeCollector {
  readonly stored = new Map<string, PhasorReport>();
  readonly rejects = new Map<RejectReason, number>();
  readonly responses: MeterResponse[] = [];
  readonly counters = new Map<number, number[]>();
  readonly sessions = new Map<string, SessionState>();
  readonly latest = new Map<number, SessionState>();
  readonly collector = new Collector({ identities: { [SUITE]: collectorIdentity }, cookieKey: freshRandom(32), systemTitle: newCollectorSystemTitle() });
  /** When set, records of these serials are answered no-session once (the ingest lost the session). */
  forget = new Set<number>();

  constructor(readonly fleet: Fleet, readonly link: FieldLink) {
    link.onEnvelope((env) => this.#on(env));
  }

  #lookup = (serial: number) => {
    const m = this.fleet.bySerial(serial);
    return m && { suite: m.suite, publicKey: this.fleet.identity(m).publicKey };
  };

  #reject(r: RejectReason): void {
    this.rejects.set(r, (this.rejects.get(r) ?? 0) + 1);
  }

  #on(env: MeterEnvelope): void {
    const body = Buffer.from(env.body);
    try {
      if (env.type === EnvelopeType.clientHello) {
        this.link.send({ type: EnvelopeType.serverHello, serial: env.serial, sessionId: ZERO, body: this.collector.serverHello(body, this.#lookup) });
      } else if (env.type === EnvelopeType.finish) {
        const { session, established } = this.collector.finish(body, this.#lookup);
        this.sessions.set(session.sessionId.toString('hex'), session);
        this.latest.set(session.serial, session);
        this.link.send({ type: EnvelopeType.established, serial: env.serial, sessionId: session.sessionId, body: established });
      } else if (env.type === EnvelopeType.record || env.type === EnvelopeType.response) {
        const s = this.sessions.get(Buffer.from(env.sessionId).toString('hex'));
        if (!s) return this.#reject('no-session');
        if (s.serial !== env.serial) return this.#reject('auth');
        if (env.type === EnvelopeType.record && this.forget.delete(env.serial)) {
          this.sessions.delete(s.sessionId.toString('hex'));
          this.#reject('no-session');
          this.link.send({ type: EnvelopeType.alert, serial: env.serial, sessionId: Buffer.from(env.sessionId), body: encodeAlert('no-session') });
          return;
        }
        const { plaintext } = openUplink(s, body);
        (this.counters.get(env.serial) ?? this.counters.set(env.serial, []).get(env.serial)!).push(peekCounter(body));
        const f = decodeFrame(plaintext);
        if (f.serial !== env.serial) return this.#reject('auth');
        if (f.type === 'response') return void this.responses.push(f.response);
        if (f.type !== 'report') return this.#reject('malformed');
        const key = `${f.report.serial}:${f.report.ts}`;
        if (this.stored.has(key)) return this.#reject('duplicate');
        this.stored.set(key, f.report);
      }
    } catch (err) {
      if (isSecureError(err)) this.#reject(err.code);
      else throw err;
    }
  }

  command(serial: number, command: MeterCommand): void {
    const s = this.latest.get(serial)!;
    const record = this.collector.sealDownlink(s, encodeCommand(serial, command));
    this.link.send({ type: EnvelopeType.downlink, serial, sessionId: s.sessionId, body: Buffer.concat([this.collector.systemTitle, record]) });
  }

  async settle(): Promise<void> {
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  }
}

const start = dayOfIso('2026-11-02') * 86_400_000 - LOCAL_OFFSET_MS;

function setup(opts: Partial<Parameters<typeof createFleet>[0]> = {}, sim: Partial<ConstructorParameters<typeof Simulator>[0]> = {}) {
  const fleet = createFleet({ count: 50, seed: 'runtime', aggregators: 2, start, days: 2, theft: { fraction: 0.2 }, ...opts });
  const pairs = fleet.aggregatorIds.map(() => inProcessFieldLink({ highWaterMark: 256 }));
  const collectors = pairs.map((p) => new FakeCollector(fleet, p.aggregatorSide));
  const labels = new LabelLog();
  const simulator = new Simulator({ fleet, links: pairs.map((p) => p.meterSide), collectorKeys: { [SUITE]: collectorIdentity.publicKey }, labels, ...sim });
  const merged = () => {
    const stored = new Map<string, PhasorReport>();
    const rejects = new Map<RejectReason, number>();
    for (const c of collectors) {
      for (const [k, v] of c.stored) stored.set(k, v);
      for (const [k, v] of c.rejects) rejects.set(k, (rejects.get(k) ?? 0) + v);
    }
    return { stored, rejects };
  };
  return { fleet, collectors, labels, simulator, merged };
}

describe('simulator', () => {
  test('what the runtime sends over the links is exactly generateReports (50 meters × 2 days)', async () => {
    const { fleet, simulator, merged } = setup();
    const stats = await simulator.run();
    await new Promise((r) => setTimeout(r, 20));
    const truth = [...generateReports(fleet)];
    assert.equal(truth.length, 50 * 192);
    const { stored, rejects } = merged();
    assert.equal(rejects.size, 0, `rejects ${JSON.stringify([...rejects])}`);
    assert.equal(stored.size, truth.length);
    for (const r of truth) assert.deepEqual(stored.get(`${r.serial}:${r.ts}`), r);
    assert.equal(stats.handshakes, 50);
    assert.equal(stats.reportsSent, truth.length);
    assert.equal(stats.handshakeFailures, 0);
  });

  test('tamper events are labelled; the collector rejects exactly them and stores exactly the rest', async () => {
    const { fleet, simulator, labels, merged } = setup({ count: 40 }, { tamper: { rate: 0.03 } });
    await simulator.run();
    simulator.close();
    await new Promise((r) => setTimeout(r, 20));
    const { stored, rejects } = merged();
    const summary = labels.summary!;
    assert.ok(summary, 'a summary is written on close');
    assert.equal(labels.tamper.length, Object.values(summary.tamper).reduce((a, b) => a + b, 0));
    for (const k of ['dropped', 'duplicated', 'altered', 'replayed', 'forged'] as const) assert.ok(summary.tamper[k] > 0, `no ${k} events`);
    for (const k of ['random', 'unknown-serial', 'cross-meter'] as const) assert.ok(summary.forged[k] > 0, `no ${k} forgeries`);
    assert.deepEqual(Object.fromEntries(rejects), summary.expectedRejects);
    const lost = new Set(labels.tamper.filter((l) => !l.stored).map((l) => `${l.serial}:${l.ts}`));
    assert.equal(lost.size, summary.lost);
    const truth = [...generateReports(fleet)];
    for (const r of truth) {
      const key = `${r.serial}:${r.ts}`;
      if (lost.has(key)) assert.equal(stored.has(key), false, `${key} was lost but stored`);
      else assert.deepEqual(stored.get(key), r, `${key} missing`);
    }
    assert.equal(stored.size, truth.length - lost.size);
    for (const l of labels.tamper) if (l.event === 'replayed') assert.equal(l.replayOf, l.ts - 4 * 900_000);
  });

  test('commands: read answers a fresh report; disconnect zeroes the load and freezes the register; reconnect resumes', async () => {
    const { fleet, collectors, simulator } = setup({ count: 4, aggregators: 1, days: 1, theft: undefined });
    const c = collectors[0]!;
    await simulator.start();
    const serial = fleet.meter(1).serial;
    const t = (k: number) => fleet.start + k * 900_000;
    for (let k = 1; k <= 4; k++) await simulator.step(t(k));
    await c.settle();
    c.command(serial, { kind: 'read', requestId: 11 });
    await c.settle();
    const read = c.responses.find((r) => r.requestId === 11)!;
    assert.equal(read.kind, 'read');
    assert.deepEqual(read.kind === 'read' && read.report, c.stored.get(`${serial}:${t(4)}`));
    c.command(serial, { kind: 'disconnect', requestId: 12 });
    await c.settle();
    assert.deepEqual(c.responses.find((r) => r.requestId === 12), { kind: 'ack', requestId: 12, command: 'disconnect', ok: true, loadConnected: false });
    for (let k = 5; k <= 8; k++) await simulator.step(t(k));
    await c.settle();
    const frozen = c.stored.get(`${serial}:${t(4)}`)!.energyWh;
    for (let k = 5; k <= 8; k++) {
      const r = c.stored.get(`${serial}:${t(k)}`)!;
      assert.equal(r.status & 1, 1);
      assert.equal(r.activePowerW, 0);
      assert.deepEqual(r.phases.map((p) => p.currentA), [0, 0, 0]);
      assert.ok(r.phases.every((p) => p.voltageV > 100), 'the supply voltage is still measured');
      assert.equal(r.energyWh, frozen);
    }
    c.command(serial, { kind: 'reconnect', requestId: 13 });
    await c.settle();
    assert.equal(c.responses.find((r) => r.requestId === 13)?.kind, 'ack');
    await simulator.step(t(9));
    await c.settle();
    const back = c.stored.get(`${serial}:${t(9)}`)!;
    assert.equal(back.status, 0);
    assert.ok(back.activePowerW > 0 && back.energyWh >= frozen);
    // The other meters never noticed.
    const other = fleet.meter(2).serial;
    assert.equal(c.stored.get(`${other}:${t(6)}`)!.status, 0);
    assert.equal(simulator.stats.commands, 3);
  });

  test('a no-session alert makes the meter re-handshake and carry on', async () => {
    const { fleet, collectors, simulator } = setup({ count: 3, aggregators: 1, days: 1, theft: undefined });
    const c = collectors[0]!;
    await simulator.start();
    const serial = fleet.meter(0).serial;
    c.forget.add(serial);
    for (let k = 1; k <= 6; k++) {
      await simulator.step(fleet.start + k * 900_000);
      await c.settle();
    }
    assert.equal(c.rejects.get('no-session'), 1);
    assert.equal(simulator.stats.alerts, 1);
    assert.equal(simulator.stats.handshakes, 4);
    assert.ok(c.stored.has(`${serial}:${fleet.start + 6 * 900_000}`));
    assert.equal(c.stored.has(`${serial}:${fleet.start + 900_000}`), false); // sealed under the forgotten session
  });

  test('handshakes retry after a timeout', async () => {
    const fleet = createFleet({ count: 5, seed: 'retry', aggregators: 1, start, days: 1 });
    const { meterSide, aggregatorSide } = inProcessFieldLink();
    const c = new FakeCollector(fleet, aggregatorSide);
    // The first ClientHello of every meter is lost on the way.
    const seen = new Set<number>();
    const realSend = meterSide.send.bind(meterSide);
    meterSide.send = (env) => (env.type === EnvelopeType.clientHello && !seen.has(env.serial) ? (seen.add(env.serial), true) : realSend(env));
    const sim = new Simulator({ fleet, links: meterSide, collectorKeys: { [SUITE]: collectorIdentity.publicKey }, handshakeTimeoutMs: 400 }); // long enough for a loaded CI machine, short enough to retry quickly
    await sim.start();
    assert.equal(sim.stats.handshakes, 5);
    assert.equal(sim.stats.handshakeRetries, 5);
    await sim.step(fleet.start + 900_000);
    await c.settle();
    assert.equal(c.stored.size, 5);
  });

  test('with a FileCounterStore a restarted fleet never reuses a counter', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sg-counters-'));
    try {
      const file = path.join(dir, 'counters.json');
      const used: number[][] = [];
      for (let run = 0; run < 2; run++) {
        const fleet = createFleet({ count: 3, seed: 'restart', aggregators: 1, start, days: 1 });
        const { meterSide, aggregatorSide } = inProcessFieldLink();
        const c = new FakeCollector(fleet, aggregatorSide);
        const counters = FileCounterStore.open(file, { block: 8 });
        const sim = new Simulator({ fleet, links: meterSide, collectorKeys: { [SUITE]: collectorIdentity.publicKey }, counters, to: fleet.start + 5 * 900_000 });
        await sim.run();
        await c.settle();
        counters.close();
        used.push(c.counters.get(fleet.meter(0).serial)!);
      }
      assert.equal(used[0]!.length, 5);
      assert.ok(Math.min(...used[1]!) > Math.max(...used[0]!), `second run ${used[1]} after ${used[0]}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
