// The embedded aedes broker: 3.1.1 publish/subscribe, MQTT 5 refusal, shared subscriptions, the tap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type MqttClient } from 'mqtt';
import { parseShareTopic, startBroker } from '../../src/broker/index.js';

async function client(url: string, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const c = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 3000, ...opts });
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve());
    c.once('error', reject);
  });
  return c;
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('parseShareTopic', () => {
  assert.deepEqual(parseShareTopic('$share/ingest/sg/+/up'), { group: 'ingest', filter: 'sg/+/up' });
  assert.equal(parseShareTopic('$share/ingest'), undefined);
  assert.equal(parseShareTopic('$share//a'), undefined);
  assert.equal(parseShareTopic('$share/g+/a'), undefined);
  assert.equal(parseShareTopic('sg/a/up'), undefined);
});

test('MQTT 3.1.1 publish/subscribe at QoS 1; the tap sees every payload; stats count', async () => {
  const tapped: Array<[string, string]> = [];
  const b = await startBroker({ port: 0, tap: (t, p) => tapped.push([t, p.toString()]) });
  const sub = await client(b.url);
  const pub = await client(b.url);
  try {
    assert.match(b.url, /^mqtt:\/\/127\.0\.0\.1:\d+$/);
    await sub.subscribeAsync('t/+', { qos: 1 });
    const got: string[] = [];
    sub.on('message', (_t, p) => got.push(p.toString()));
    for (let i = 0; i < 20; i++) await pub.publishAsync('t/x', `canary-${i}`, { qos: 1 });
    await until(() => got.length === 20);
    assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => `canary-${i}`));
    const mine = tapped.filter(([t]) => t === 't/x').map(([, p]) => p);
    assert.deepEqual(mine, got);
    const s = b.stats();
    assert.equal(s.clients, 2);
    assert.equal(s.messagesIn, 20);
    assert.ok(s.messagesOut >= 20);
  } finally {
    sub.end(true);
    pub.end(true);
    await b.close();
  }
});

test('aedes refuses MQTT 5 clients (unacceptable protocol version)', async () => {
  const b = await startBroker({ port: 0 });
  const c = mqtt.connect(b.url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 3000 });
  try {
    const err = await new Promise<Error & { code?: number }>((resolve) => c.once('error', resolve));
    assert.equal(err.code, 1);
  } finally {
    c.end(true);
    await b.close();
  }
});

test('$share group of 2: each message goes to exactly one member, both get a share; plain subscribers get all', async () => {
  const b = await startBroker({ port: 0 });
  const a = await client(b.url);
  const c = await client(b.url);
  const plain = await client(b.url);
  const pub = await client(b.url);
  try {
    const gotA: string[] = [];
    const gotC: string[] = [];
    const gotPlain: string[] = [];
    a.on('message', (t, p) => gotA.push(`${t}:${p}`));
    c.on('message', (t, p) => gotC.push(`${t}:${p}`));
    plain.on('message', (t, p) => gotPlain.push(`${t}:${p}`));
    await a.subscribeAsync('$share/ingest/sg/+/up', { qos: 1 });
    await c.subscribeAsync('$share/ingest/sg/+/up', { qos: 1 });
    await plain.subscribeAsync('sg/+/up', { qos: 1 });
    const N = 100;
    for (let i = 0; i < N; i++) await pub.publishAsync(`sg/A${i % 3}/up`, String(i), { qos: 1 });
    await until(() => gotA.length + gotC.length === N && gotPlain.length === N);
    assert.ok(gotA.length > 10 && gotC.length > 10, `both share: ${gotA.length}/${gotC.length}`);
    assert.equal(new Set([...gotA, ...gotC]).size, N, 'no message twice, none missing');
    assert.ok(gotA.every((m) => m.startsWith('sg/A')), 'members see the real topic');
    // a member that leaves no longer gets a share
    await c.unsubscribeAsync('$share/ingest/sg/+/up');
    gotA.length = 0;
    gotC.length = 0;
    for (let i = 0; i < 10; i++) await pub.publishAsync('sg/A1/up', String(i), { qos: 1 });
    await until(() => gotA.length === 10);
    assert.equal(gotC.length, 0);
    // and a disconnected member neither
    const d = await client(b.url);
    await d.subscribeAsync('$share/ingest/sg/+/up', { qos: 1 });
    d.end(true);
    await until(() => b.stats().clients === 4);
    gotA.length = 0;
    for (let i = 0; i < 10; i++) await pub.publishAsync('sg/A1/up', String(i), { qos: 1 });
    await until(() => gotA.length === 10);
  } finally {
    for (const x of [a, c, plain, pub]) x.end(true);
    await b.close();
  }
});

test('a persistent session gets QoS 1 messages published while it was away', async () => {
  const b = await startBroker({ port: 0 });
  const opts = { clientId: 'persist-1', clean: false };
  let s = await client(b.url, opts);
  const pub = await client(b.url);
  try {
    await s.subscribeAsync('sg/A1/down', { qos: 1 });
    s.end(true);
    await until(() => b.stats().clients === 1);
    await pub.publishAsync('sg/A1/down', 'queued', { qos: 1 });
    const got: string[] = [];
    s = mqtt.connect(b.url, { protocolVersion: 4, reconnectPeriod: 0, ...opts });
    s.on('message', (_t, p) => got.push(p.toString()));
    await until(() => got.length === 1);
    assert.deepEqual(got, ['queued']);
  } finally {
    s.end(true);
    pub.end(true);
    await b.close();
  }
});

test('a persistent $share member rejoins its group when its session is restored', async () => {
  const b = await startBroker({ port: 0 });
  const opts = { clientId: 'share-persist', clean: false };
  let m = await client(b.url, opts);
  const pub = await client(b.url);
  try {
    await m.subscribeAsync('$share/g/x/#', { qos: 1 });
    const first: string[] = [];
    m.on('message', (_t, p) => first.push(String(p)));
    await pub.publishAsync('x/0', 'before', { qos: 1 });
    await until(() => first.length === 1);
    m.end(true);
    await until(() => b.stats().clients === 1);
    m = mqtt.connect(b.url, { protocolVersion: 4, reconnectPeriod: 0, ...opts });
    const got: string[] = [];
    m.on('message', (t, p) => got.push(`${t}:${p}`));
    await new Promise<void>((r) => m.once('connect', () => r()));
    await pub.publishAsync('x/1', 'after', { qos: 1 });
    await until(() => got.length === 1);
    assert.deepEqual(got, ['x/1:after']);
  } finally {
    m.end(true);
    pub.end(true);
    await b.close();
  }
});

test('listening on a taken port fails with code listen-failed', async () => {
  const b = await startBroker({ port: 0 });
  try {
    await assert.rejects(startBroker({ port: b.port }), (e: Error & { code?: string }) => e.code === 'listen-failed');
  } finally {
    await b.close();
  }
});
