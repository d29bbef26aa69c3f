// The aggregator relay end to end over the embedded broker, with a fake ingest that decodes batches and acks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { startBroker, type Broker } from '../../src/broker/index.js';
import {
  connectFieldLink,
  FieldLinkServer,
  inProcessFieldLink,
  RetransmitBuffer,
  startAggregator,
  type Aggregator,
  type FieldLink,
} from '../../src/aggregator/index.js';
import {
  decodeUplinkBatch,
  encodeAck,
  encodeDownlink,
  encodeFieldFrame,
  EnvelopeType,
  RESP_ALL,
  SHARED_UP,
  topics,
  type MeterEnvelope,
} from '../../src/protocol/index.js';

const sid = Buffer.alloc(8, 7);
const rec = (serial: number, i: number): MeterEnvelope => ({ type: EnvelopeType.record, serial, sessionId: sid, body: Buffer.from(`reading-${serial}-${i}`) });

async function until(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Stands in for the ingest service: decodes uplink batches from the shared subscription and acks them. */
class FakeIngest {
  /** body → times delivered */
  readonly got = new Map<string, number>();
  readonly responses: string[] = [];
  /** seq → times delivered */
  readonly deliveries = new Map<number, number>();
  /** Return false to leave a delivery unacked. */
  shouldAck: (seq: number, delivery: number) => boolean = () => true;
  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload) => {
      const b = decodeUplinkBatch(payload);
      const n = (this.deliveries.get(b.seq) ?? 0) + 1;
      this.deliveries.set(b.seq, n);
      for (const e of b.envelopes) {
        const body = Buffer.from(e.body).toString();
        if (topic.endsWith('/resp')) this.responses.push(body);
        else this.got.set(body, (this.got.get(body) ?? 0) + 1);
      }
      if (this.shouldAck(b.seq, n)) client.publish(topics(b.aggregatorId).ack, encodeAck({ aggregatorId: b.aggregatorId, seqs: [b.seq] }), { qos: 1 });
    });
  }
  static async start(url: string, protocolVersion: 4 | 5 = 4): Promise<FakeIngest> {
    const client = mqtt.connect(url, { protocolVersion, reconnectPeriod: 100, connectTimeout: 3000 });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    await client.subscribeAsync({ [SHARED_UP]: { qos: 1 }, [RESP_ALL]: { qos: 1 } });
    return new FakeIngest(client);
  }
  downlink(agg: string, envs: MeterEnvelope[]): Promise<unknown> {
    return this.client.publishAsync(topics(agg).down, encodeDownlink({ aggregatorId: agg, envelopes: envs }), { qos: 1 });
  }
  close(): void {
    this.client.end(true);
  }
}

/** Feeds envelopes respecting the link's backpressure. */
async function feed(link: FieldLink, envs: MeterEnvelope[]): Promise<void> {
  for (const e of envs) if (!link.send(e)) await link.drained();
}

async function withRig(fn: (r: { broker: Broker; ingest: FakeIngest }) => Promise<void>): Promise<void> {
  const broker = await startBroker({ port: 0 });
  const ingest = await FakeIngest.start(broker.url);
  try {
    await fn({ broker, ingest });
  } finally {
    ingest.close();
    await broker.close();
  }
}

test('RetransmitBuffer: ack forgets, due() picks never-sent and stale batches, counts envelopes', () => {
  const b = new RetransmitBuffer();
  const x = b.add(1, 't', Buffer.from('a'), 10);
  const y = b.add(2, 't', Buffer.from('b'), 5);
  assert.equal(b.envelopes, 15);
  assert.deepEqual(b.due(1000, 100).map((p) => p.seq), [1, 2]);
  b.markSent(x, 1000);
  b.markSent(y, 1050);
  assert.deepEqual(b.due(1099, 100).map((p) => p.seq), []);
  assert.deepEqual(b.due(1100, 100).map((p) => p.seq), [1]);
  assert.equal(b.ack(1), true);
  assert.equal(b.ack(1), false);
  assert.equal(b.envelopes, 5);
  assert.equal(b.batches, 1);
  assert.deepEqual(b.all().map((p) => p.seq), [2]);
});

test('in-process field link: every envelope arrives, acked batches are never re-sent; aedes makes the client fall back to 3.1.1', async () => {
  await withRig(async ({ broker, ingest }) => {
    const { meterSide, aggregatorSide } = inProcessFieldLink();
    const agg = await startAggregator({ id: 'A1', broker: broker.url, field: aggregatorSide, batchMax: 100, batchMs: 20, retransmitMs: 300 });
    try {
      await agg.whenConnected();
      assert.equal(agg.mqttVersion, 4);
      const N = 2500;
      await feed(meterSide, Array.from({ length: N }, (_, i) => rec(1000 + (i % 50), i)));
      await until(() => ingest.got.size === N, 10_000, 'all envelopes');
      await until(() => agg.stats().unackedBatches === 0);
      await sleep(700); // > 2 × retransmitMs: nothing acked may come back
      const s = agg.stats();
      assert.equal(s.envelopesIn, N);
      assert.equal(s.retransmits, 0);
      assert.equal(s.acks, s.batchesPublished);
      assert.ok(s.batchesPublished >= N / 100);
      assert.ok([...ingest.deliveries.values()].every((n) => n === 1), 'each batch delivered once');
      assert.ok([...ingest.got.values()].every((n) => n === 1));
      assert.equal(s.unackedEnvelopes, 0);
    } finally {
      await agg.close();
    }
  });
});

test('an unacked batch is re-published after retransmitMs until acked', async () => {
  await withRig(async ({ broker, ingest }) => {
    // the first two deliveries of every batch go unacked, as if two ingest instances crashed before committing
    ingest.shouldAck = (_seq, n) => n >= 3;
    const { meterSide, aggregatorSide } = inProcessFieldLink();
    const agg = await startAggregator({ id: 'A2', broker: broker.url, field: aggregatorSide, batchMax: 10, batchMs: 10, retransmitMs: 150 });
    try {
      await agg.whenConnected();
      const t0 = Date.now();
      await feed(meterSide, Array.from({ length: 30 }, (_, i) => rec(7, i)));
      await until(() => agg.stats().acks === 3, 5000, 'acks');
      assert.ok(Date.now() - t0 >= 2 * 150 - 20, 'waited for two retransmit timeouts');
      assert.deepEqual([...ingest.deliveries.values()], [3, 3, 3]);
      const s = agg.stats();
      assert.equal(s.batchesPublished, 3);
      assert.equal(s.retransmits, 6);
      await sleep(400);
      assert.equal(agg.stats().retransmits, 6, 'no more once acked');
    } finally {
      await agg.close();
    }
  });
});

test('TCP field link: many meters on several connections, responses to every instance, downlinks to the connection their meter spoke from', async () => {
  await withRig(async ({ broker, ingest }) => {
    const agg = await startAggregator({ id: 'A3', broker: broker.url, fieldPort: 0, batchMax: 200, batchMs: 20 });
    const plain = await FakeIngest.start(broker.url); // a second instance: gets responses, shares uplinks
    const links = [0, 1, 2].map(() => connectFieldLink(agg.fieldServer!.url));
    const down: Array<Array<[number, string]>> = [[], [], []];
    links.forEach((l, k) => l.onEnvelope((e) => down[k]!.push([e.serial, Buffer.from(e.body).toString()])));
    try {
      await agg.whenConnected();
      assert.match(agg.fieldServer!.url, /^tcp:\/\/127\.0\.0\.1:\d+$/);
      const N = 3000;
      // connection k carries meters 100k..100k+9
      await Promise.all(links.map((l, k) => feed(l, Array.from({ length: N / 3 }, (_, i) => rec(100 * k + (i % 10), i)))));
      await links[1]!.send({ type: EnvelopeType.response, serial: 105, sessionId: sid, body: Buffer.from('resp-105') });
      await until(() => ingest.got.size + plain.got.size === N, 10_000, 'all envelopes');
      await until(() => ingest.responses.length === 1 && plain.responses.length === 1, 5000, 'responses');
      assert.ok(ingest.got.size > 0 && plain.got.size > 0, 'the shared subscription spread the batches');
      assert.equal(agg.fieldServer!.stats().meters, 30);
      assert.equal(agg.fieldServer!.stats().connections, 3);

      await ingest.downlink('A3', [
        { type: EnvelopeType.downlink, serial: 203, sessionId: sid, body: Buffer.from('cmd-203') },
        { type: EnvelopeType.serverHello, serial: 77, sessionId: sid, body: Buffer.from('hello-77') }, // never spoke: held
        { type: EnvelopeType.downlink, serial: 1, sessionId: sid, body: Buffer.from('cmd-1') },
      ]);
      await until(() => down[2]!.length === 1 && down[0]!.length === 1, 5000, 'downlinks');
      assert.deepEqual(down[2], [[203, 'cmd-203']]);
      assert.deepEqual(down[0], [[1, 'cmd-1']]);
      assert.deepEqual(down[1], []);
      assert.equal(agg.fieldServer!.stats().downlinksHeld, 1);
      // meter 77 speaks up on connection 1: its held downlink follows it there
      links[1]!.send(rec(77, 0));
      await until(() => down[1]!.length === 1, 5000, 'held downlink');
      assert.deepEqual(down[1], [[77, 'hello-77']]);
      assert.equal(agg.stats().downlinks, 3);
    } finally {
      plain.close();
      await Promise.all(links.map((l) => l.close()));
      await agg.close();
    }
  });
});

test('broker restart on the same port mid-stream: nothing is lost', async () => {
  const first = await startBroker({ port: 0 });
  const port = first.port;
  const ingest = await FakeIngest.start(first.url);
  const { meterSide, aggregatorSide } = inProcessFieldLink();
  const agg = await startAggregator({ id: 'A4', broker: first.url, field: aggregatorSide, batchMax: 50, batchMs: 10, retransmitMs: 500 });
  let second: Broker | undefined;
  try {
    await agg.whenConnected();
    const N = 3000;
    const envs = Array.from({ length: N }, (_, i) => rec(i % 200, i));
    await feed(meterSide, envs.slice(0, 1000));
    await sleep(50);
    await first.close();
    await feed(meterSide, envs.slice(1000, 2000)); // while the broker is down
    await sleep(300);
    assert.equal(agg.stats().connected, false);
    second = await startBroker({ port });
    await feed(meterSide, envs.slice(2000));
    await until(() => ingest.got.size === N, 20_000, 'all envelopes after the restart');
    await until(() => agg.stats().unackedBatches === 0, 10_000, 'all acked');
    const s = agg.stats();
    assert.equal(s.envelopesIn, N);
    assert.ok(s.reconnects >= 1);
    assert.ok(envs.every((e) => ingest.got.has(Buffer.from(e.body).toString())), 'every envelope at least once');
  } finally {
    ingest.close();
    await agg.close();
    await second?.close();
    await first.close();
  }
});

test('backpressure: past maxUnacked the aggregator stops reading from the field link, and resumes on acks, dropping nothing', async () => {
  await withRig(async ({ broker, ingest }) => {
    let acking = false;
    ingest.shouldAck = () => acking;
    const { meterSide, aggregatorSide } = inProcessFieldLink({ highWaterMark: 100 });
    const agg = await startAggregator({ id: 'A5', broker: broker.url, field: aggregatorSide, batchMax: 50, batchMs: 10, retransmitMs: 200, maxUnacked: 500 });
    try {
      await agg.whenConnected();
      const N = 2000;
      let sent = 0;
      let sawFull = false;
      const feeding = (async () => {
        for (let i = 0; i < N; i++) {
          sent++;
          if (!meterSide.send(rec(9, i))) {
            sawFull = true;
            await meterSide.drained();
          }
        }
      })();
      await until(() => agg.stats().paused, 5000, 'pause');
      await sleep(300);
      assert.ok(sawFull, 'the meter side saw a full link');
      assert.ok(sent < N, 'the feeder is held back');
      assert.ok(agg.stats().unackedEnvelopes <= 500 + 50, `bounded: ${agg.stats().unackedEnvelopes}`);
      acking = true;
      await feeding;
      await until(() => ingest.got.size === N, 20_000, 'everything after resuming');
      await until(() => agg.stats().unackedBatches === 0);
      assert.equal(agg.stats().paused, false);
    } finally {
      await agg.close();
    }
  });
});

test('bad input never crashes the relay: malformed acks/downlinks, wrong-direction envelopes, a garbage field stream', async () => {
  await withRig(async ({ broker, ingest }) => {
    const agg = await startAggregator({ id: 'A6', broker: broker.url, fieldPort: 0, batchMs: 10 });
    const good = connectFieldLink(agg.fieldServer!.url);
    try {
      await agg.whenConnected();
      const t = topics('A6');
      await ingest.client.publishAsync(t.ack, Buffer.from('not an ack'), { qos: 1 });
      await ingest.client.publishAsync(t.down, Buffer.from([0x44, 1, 2]), { qos: 1 });
      await ingest.client.publishAsync(t.ack, encodeAck({ aggregatorId: 'B9', seqs: [1] }), { qos: 1 });
      await until(() => agg.stats().malformedMessages === 3, 5000, 'malformed counted');
      good.send({ type: EnvelopeType.serverHello, serial: 5, sessionId: sid, body: Buffer.from('x') });
      good.send(rec(5, 1));
      // a connection speaking garbage is cut; the others carry on
      const { connect } = await import('node:net');
      const bad = connect(agg.fieldServer!.port, '127.0.0.1');
      await new Promise((r) => bad.once('connect', r));
      bad.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
      await new Promise((r) => bad.once('close', r));
      good.send(rec(5, 2));
      await until(() => ingest.got.size === 2, 5000, 'good envelopes');
      assert.equal(agg.stats().wrongDirection, 1);
      assert.equal(agg.fieldServer!.stats().malformed, 1);
      await until(() => agg.stats().unackedBatches === 0, 5000, 'acks');
    } finally {
      await good.close();
      await agg.close();
    }
  });
});

test('a persistent session: downlinks published while the aggregator was away arrive when it returns', async () => {
  await withRig(async ({ broker, ingest }) => {
    const a = inProcessFieldLink();
    let agg: Aggregator = await startAggregator({ id: 'A7', broker: broker.url, field: a.aggregatorSide });
    await agg.whenConnected();
    await agg.close();
    await ingest.downlink('A7', [{ type: EnvelopeType.downlink, serial: 3, sessionId: sid, body: Buffer.from('while-away') }]);
    const b = inProcessFieldLink();
    const got: string[] = [];
    b.meterSide.onEnvelope((e) => got.push(Buffer.from(e.body).toString()));
    agg = await startAggregator({ id: 'A7', broker: broker.url, field: b.aggregatorSide });
    try {
      await until(() => got.length === 1, 5000, 'queued downlink');
      assert.deepEqual(got, ['while-away']);
    } finally {
      await agg.close();
    }
  });
});

test('FieldLinkClient queues while the aggregator is not there yet and delivers once it is', async () => {
  const srv = await FieldLinkServer.listen({ port: 0 });
  const port = srv.port;
  await srv.close();
  const link = connectFieldLink(`tcp://127.0.0.1:${port}`, { minBackoffMs: 20, maxBackoffMs: 100 });
  const envs = Array.from({ length: 50 }, (_, i) => rec(1, i));
  for (const e of envs) link.send(e);
  assert.equal(link.queued, 50);
  await sleep(100);
  const again = await FieldLinkServer.listen({ port });
  const got: string[] = [];
  again.onEnvelope((e) => got.push(Buffer.from(e.body).toString()));
  try {
    await until(() => got.length === 50, 5000, 'queued envelopes');
    assert.deepEqual(got, envs.map((e) => e.body.toString()));
    assert.throws(() => connectFieldLink('http://x'), (e: Error & { code?: string }) => e.code === 'bad-url');
  } finally {
    await link.close();
    await again.close();
  }
});

test('the field frame on the wire is u32 length ‖ MeterEnvelope', async () => {
  const srv = await FieldLinkServer.listen({ port: 0 });
  const got: MeterEnvelope[] = [];
  srv.onEnvelope((e) => got.push(e));
  const { connect } = await import('node:net');
  const s = connect(srv.port, '127.0.0.1');
  try {
    await new Promise((r) => s.once('connect', r));
    const f = Buffer.concat([encodeFieldFrame(rec(42, 1)), encodeFieldFrame(rec(43, 2))]);
    for (let i = 0; i < f.length; i++) s.write(f.subarray(i, i + 1)); // one byte at a time
    await until(() => got.length === 2);
    assert.deepEqual(got.map((e) => [e.serial, e.body.toString()]), [[42, 'reading-42-1'], [43, 'reading-43-2']]);
  } finally {
    s.destroy();
    await srv.close();
  }
});

test('the aggregator holds no key: nothing in src/aggregator imports crypto or the secure layer', () => {
  const dir = join(process.cwd(), 'src', 'aggregator'); // tests run from the checkout's root
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length >= 4);
  for (const f of files) {
    const src = readFileSync(join(dir, f), 'utf8');
    const imports = [...src.matchAll(/from\s+'([^']+)'/g)].map((m) => m[1]!);
    for (const i of imports) {
      assert.ok(!/crypto|secure/.test(i), `${f} imports ${i}`);
      assert.ok(!i.startsWith('..') || /^\.\.\/(observe|protocol)\/index\.js$/.test(i), `${f} reaches past a door: ${i}`);
    }
  }
});
