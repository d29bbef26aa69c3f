// The aggregator relay against a real Mosquitto: MQTT 5 and $share on the one at 127.0.0.1:1883, and a
// Mosquitto process of our own killed and restarted mid-stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { connectFieldLink, inProcessFieldLink, startAggregator, type FieldLink } from '../../src/aggregator/index.js';
import { decodeUplinkBatch, encodeAck, encodeDownlink, EnvelopeType, topics, type MeterEnvelope } from '../../src/protocol/index.js';
import { freePort } from '../helpers/node-procs.js';

const MOSQUITTO = '/usr/sbin/mosquitto';
const SHARED = 'mqtt://127.0.0.1:1883';
const sid = Buffer.alloc(8, 3);
const rec = (serial: number, i: number): MeterEnvelope => ({ type: EnvelopeType.record, serial, sessionId: sid, body: Buffer.from(`r-${serial}-${i}`) });
// other suites may run ingest on the shared broker: our group and aggregator ids are our own
const tag = randomBytes(4).toString('hex');

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** A fake ingest instance: a member of the shared group that decodes batches and acks them. */
class Ingest {
  readonly got = new Map<string, number>();
  readonly responses: string[] = [];
  batches = 0;
  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload) => {
      const b = decodeUplinkBatch(payload);
      this.batches++;
      for (const e of b.envelopes) {
        const body = Buffer.from(e.body).toString();
        if (topic.endsWith('/resp')) this.responses.push(body);
        else this.got.set(body, (this.got.get(body) ?? 0) + 1);
      }
      client.publish(topics(b.aggregatorId).ack, encodeAck({ aggregatorId: b.aggregatorId, seqs: [b.seq] }), { qos: 1 });
    });
  }
  static async start(url: string, group: string, agg: string): Promise<Ingest> {
    const client = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 100, connectTimeout: 3000 });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    await client.subscribeAsync({ [`$share/${group}/sg/+/up`]: { qos: 1 }, [topics(agg).resp]: { qos: 1 } });
    return new Ingest(client);
  }
  close(): void {
    this.client.end(true);
  }
}

async function feed(link: FieldLink, envs: MeterEnvelope[]): Promise<void> {
  for (const e of envs) if (!link.send(e)) await link.drained();
}

class Mosquitto {
  private proc: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'sg-mosq-'));
  constructor(readonly port: number) {
    writeFileSync(join(this.dir, 'mosquitto.conf'), `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
  }
  async start(): Promise<void> {
    this.proc = spawn(MOSQUITTO, ['-c', join(this.dir, 'mosquitto.conf')], { stdio: 'ignore' });
    const end = Date.now() + 10_000;
    while (!(await reachable(this.port))) {
      if (Date.now() > end) throw new Error('mosquitto did not start');
      await sleep(50);
    }
  }
  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await gone;
  }
  async dispose(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const haveShared = await reachable(1883);
const haveMosquitto = existsSync(MOSQUITTO);

test('against Mosquitto at 127.0.0.1:1883: MQTT 5, $share spreads batches over two instances, responses reach both, downlinks routed', { skip: !haveShared && 'no broker on 127.0.0.1:1883' }, async () => {
  const agg = `IT${tag}`;
  const a = await Ingest.start(SHARED, `ing${tag}`, agg);
  const b = await Ingest.start(SHARED, `ing${tag}`, agg);
  const relay = await startAggregator({ id: agg, broker: SHARED, fieldPort: 0, batchMax: 100, batchMs: 20, retransmitMs: 1000, sessionExpirySec: 60 });
  const links = [connectFieldLink(relay.fieldServer!.url), connectFieldLink(relay.fieldServer!.url)];
  const down: string[][] = [[], []];
  links.forEach((l, k) => l.onEnvelope((e) => down[k]!.push(`${e.serial}:${Buffer.from(e.body).toString()}`)));
  try {
    await relay.whenConnected();
    assert.equal(relay.mqttVersion, 5);
    const N = 4000;
    const t0 = Date.now();
    await Promise.all(links.map((l, k) => feed(l, Array.from({ length: N / 2 }, (_, i) => rec(k * 1000 + (i % 100), i)))));
    await until(() => a.got.size + b.got.size === N, 20_000, 'all envelopes');
    const ms = Date.now() - t0;
    assert.ok(a.batches > 0 && b.batches > 0, `both instances got a share (${a.batches}/${b.batches})`);
    const union = new Set([...a.got.keys(), ...b.got.keys()]);
    assert.equal(union.size, N);
    links[0]!.send({ type: EnvelopeType.response, serial: 5, sessionId: sid, body: Buffer.from('resp-5') });
    await until(() => a.responses.length === 1 && b.responses.length === 1, 15_000, 'responses at both instances');
    await a.client.publishAsync(topics(agg).down, encodeDownlink({ aggregatorId: agg, envelopes: [{ type: EnvelopeType.downlink, serial: 1042, sessionId: sid, body: Buffer.from('cmd') }] }), { qos: 1 });
    await until(() => down[1]!.length === 1, 15_000, 'downlink');
    assert.deepEqual(down, [[], ['1042:cmd']]);
    await until(() => relay.stats().unackedBatches === 0, 5000, 'acks');
    console.log(`${N} envelopes through the aggregator to Mosquitto and two $share subscribers in ${ms} ms (${Math.round((N / ms) * 1000)} envelopes/s)`);
  } finally {
    await Promise.all(links.map((l) => l.close()));
    await relay.close();
    a.close();
    b.close();
    // leave no persistent session behind on the shared broker
    const c = mqtt.connect(SHARED, { clientId: `sg-agg-${agg}`, clean: true, protocolVersion: 5, reconnectPeriod: 0 });
    await new Promise<void>((r) => (c.once('connect', () => r()), c.once('error', () => r())));
    await c.endAsync(true);
  }
});

test('own Mosquitto killed (SIGKILL) and restarted on the same port mid-stream: every envelope arrives', { skip: !haveMosquitto && 'no mosquitto binary' }, async () => {
  const port = await freePort();
  const mq = new Mosquitto(port);
  await mq.start();
  const url = `mqtt://127.0.0.1:${port}`;
  const ingest = await Ingest.start(url, 'ingest', 'R1');
  const { meterSide, aggregatorSide } = inProcessFieldLink();
  const relay = await startAggregator({ id: 'R1', broker: url, field: aggregatorSide, batchMax: 50, batchMs: 10, retransmitMs: 1000 });
  try {
    await relay.whenConnected();
    const N = 6000;
    const envs = Array.from({ length: N }, (_, i) => rec(i % 300, i));
    const feeding = (async () => {
      for (let i = 0; i < N; i += 100) {
        await feed(meterSide, envs.slice(i, i + 100));
        await sleep(5);
      }
    })();
    await until(() => ingest.got.size >= 1000, 10_000, 'a first part');
    await mq.kill();
    await sleep(500);
    assert.equal(relay.stats().connected, false);
    await mq.start();
    await feeding;
    await until(() => ingest.got.size === N, 30_000, 'every envelope after the restart');
    await until(() => relay.stats().unackedBatches === 0, 10_000, 'all acked');
    assert.ok(relay.stats().reconnects >= 1);
    assert.ok(envs.every((e) => ingest.got.has(e.body.toString())));
  } finally {
    ingest.close();
    await relay.close();
    await mq.dispose();
  }
});
