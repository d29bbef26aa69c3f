// The untrusted relay between meters and the ingest service. It sees envelope headers (type, serial, session
// id) as a field network sees addresses, batches envelopes to MQTT, keeps each batch until ingest acks it and
// hands downlinks to the field link. It holds no key and never opens a body.
import type { MqttClient } from 'mqtt';
import { logger, Metrics, type Logger } from '../observe/index.js';
import { decodeAck, decodeDownlink, encodeUplinkBatch, envelopeTypeName, EnvelopeType, isAggregatorId, isUplinkType, MAX_BATCH_ENVELOPES, topics, type MeterEnvelope } from '../protocol/index.js';
import { FieldLinkServer, type FieldLink } from './field-link.js';
import { connectMqtt, type MqttVersion } from './mqtt-session.js';
import { RetransmitBuffer, type PendingBatch } from './retransmit.js';

export interface AggregatorOptions {
  /** Aggregator id: the `<agg>` of its topic tree; letters, digits, '-' and '_'. */
  id: string;
  /** mqtt://host:port */
  broker: string;
  /** Listen for meters on this TCP port (0 = any); ignored when `field` is given. */
  fieldPort?: number;
  fieldHost?: string;
  /** The aggregator's end of an existing field link (e.g. inProcessFieldLink().aggregatorSide). */
  field?: FieldLink;
  /** Envelopes per uplink batch. */
  batchMax?: number;
  /** Longest wait before a partial batch is published. */
  batchMs?: number;
  /** Re-publish a batch not acked this long after its last publish. */
  retransmitMs?: number;
  /** Envelopes held unacked (sent or not) beyond which the aggregator stops reading from the field link; keep it well under what the ingest commits within retransmitMs, or batches still queued are re-sent (default 20,000). */
  maxUnacked?: number;
  mqttVersion?: MqttVersion;
  /** MQTT 5 session expiry, seconds. */
  sessionExpirySec?: number;
  /** On close, how long to wait for outstanding batches to be acked. */
  closeWaitMs?: number;
  metrics?: Metrics;
}

export interface AggregatorStats {
  envelopesIn: number;
  batchesPublished: number;
  retransmits: number;
  acks: number;
  /** Batches published and not yet acked. */
  unackedBatches: number;
  /** Envelopes not yet acked, including the open batches. */
  unackedEnvelopes: number;
  downlinks: number;
  malformedMessages: number;
  /** Envelopes from meters with a downlink type, refused. */
  wrongDirection: number;
  connected: boolean;
  paused: boolean;
  reconnects: number;
}

export class AggregatorError extends Error {
  constructor(readonly code: 'bad-id' | 'bad-broker-url' | 'bad-option', message: string) {
    super(message);
    this.name = 'AggregatorError';
  }
}

export class Aggregator {
  readonly id: string;
  readonly topics: ReturnType<typeof topics>;
  readonly metrics: Metrics;
  /** Set when the aggregator listens for meters itself. */
  fieldServer: FieldLinkServer | undefined;
  private field!: FieldLink;
  private client!: MqttClient;
  private readonly buffer = new RetransmitBuffer();
  private readonly open = { up: [] as MeterEnvelope[], resp: [] as MeterEnvelope[] };
  private batchTimer: NodeJS.Timeout | undefined;
  private tick: NodeJS.Timeout | undefined;
  private nextSeq = 1;
  private paused = false;
  private closing = false;
  private everConnected = false;
  /** Connected with subscriptions in place: batches may go out. */
  private ready = false;
  private readonly log: Logger;
  private readonly batchMax: number;
  private readonly batchMs: number;
  private readonly retransmitMs: number;
  private readonly maxUnacked: number;
  private readonly s = { envelopesIn: 0, batchesPublished: 0, retransmits: 0, acks: 0, downlinks: 0, malformedMessages: 0, wrongDirection: 0, reconnects: 0 };
  private readonly m: ReturnType<typeof meters>;
  private connectWaiters: Array<() => void> = [];

  constructor(private readonly opts: AggregatorOptions) {
    if (!isAggregatorId(opts.id)) throw new AggregatorError('bad-id', `aggregator id '${opts.id}' must be 1–64 printable ASCII characters without '/', '+', '#' or space (it is an MQTT topic level)`);
    if (!/^mqtts?:\/\/[^/]+/.test(opts.broker)) throw new AggregatorError('bad-broker-url', `broker '${opts.broker}' must be mqtt://host:port`);
    this.id = opts.id;
    this.topics = topics(opts.id);
    this.batchMax = positive(opts.batchMax ?? 500, 'batchMax', MAX_BATCH_ENVELOPES);
    this.batchMs = positive(opts.batchMs ?? 50, 'batchMs');
    this.retransmitMs = positive(opts.retransmitMs ?? 20_000, 'retransmitMs');
    this.maxUnacked = positive(opts.maxUnacked ?? 20_000, 'maxUnacked');
    this.log = logger('aggregator').child({ agg: opts.id });
    this.metrics = opts.metrics ?? new Metrics('aggregator');
    this.m = meters(this.metrics, opts.id);
  }

  async start(): Promise<void> {
    if (this.opts.field) this.field = this.opts.field;
    else {
      this.fieldServer = await FieldLinkServer.listen({ host: this.opts.fieldHost ?? '127.0.0.1', port: this.opts.fieldPort ?? 0 });
      this.field = this.fieldServer;
    }
    this.field.onEnvelope((env) => this.onEnvelope(env));
    this.client = connectMqtt({
      url: this.opts.broker,
      clientId: `sg-agg-${this.id}`,
      version: this.opts.mqttVersion ?? 'auto',
      sessionExpirySec: this.opts.sessionExpirySec,
      onVersionFallback: () => this.log.info('broker does not speak MQTT 5; using MQTT 3.1.1'),
    });
    this.client.on('connect', (connack) => this.onConnect(connack.sessionPresent === true));
    this.client.on('close', () => {
      this.ready = false;
      this.m.connected.set(0);
    });
    this.client.on('offline', () => this.log.warn({ unacked: this.buffer.batches }, 'broker unreachable; holding batches'));
    this.client.on('error', (err) => this.log.debug({ err: err.message }, 'mqtt error'));
    this.client.on('message', (topic, payload) => this.onMessage(topic, payload));
    this.tick = setInterval(() => this.retransmitDue(), Math.max(10, Math.min(1000, Math.floor(this.retransmitMs / 4))));
  }

  /** Resolves when connected to the broker with its subscriptions in place. */
  whenConnected(): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise((r) => this.connectWaiters.push(r));
  }

  get mqttVersion(): number {
    return this.client.options.protocolVersion ?? 4;
  }

  private onConnect(sessionPresent: boolean): void {
    if (this.everConnected) this.s.reconnects++;
    this.m.connected.set(1);
    this.log.info({ sessionPresent, version: this.mqttVersion, unacked: this.buffer.batches }, 'connected to broker');
    const ready = () => {
      this.everConnected = true;
      this.ready = true;
      // re-publish everything unacked: a restarted broker has lost what it held for ingest
      for (const b of this.buffer.all()) this.publish(b);
      for (const w of this.connectWaiters.splice(0)) w();
    };
    if (sessionPresent) return ready();
    this.client.subscribe(
      { [this.topics.ack]: { qos: 1 }, [this.topics.down]: { qos: 1 } },
      (err) => {
        // the connection dropped mid-subscribe; the next connect subscribes again
        if (err) return this.log.warn({ err: err.message }, 'subscribe failed');
        ready();
      },
    );
  }

  private onEnvelope(env: MeterEnvelope): void {
    if (!isUplinkType(env.type)) {
      // a downlink-typed envelope from a meter would make the whole batch unencodable: refuse it alone
      this.s.wrongDirection++;
      this.m.wrongDirection.inc();
      this.log.warn({ code: 'wrong-direction', serial: env.serial, type: envelopeTypeName(env.type) }, 'downlink-typed envelope from a meter; ignored');
      return;
    }
    this.s.envelopesIn++;
    this.m.envelopesIn.inc();
    // command responses go to every ingest instance, everything else to one of them
    const kind = env.type === EnvelopeType.response ? 'resp' : 'up';
    const q = this.open[kind];
    q.push(env);
    if (q.length >= this.batchMax) this.seal(kind);
    else if (!this.batchTimer) this.batchTimer = setTimeout(() => this.sealAll(), this.batchMs);
    this.updateBackpressure();
  }

  private sealAll(): void {
    this.batchTimer = undefined;
    this.seal('up');
    this.seal('resp');
  }

  private seal(kind: 'up' | 'resp'): void {
    const envs = this.open[kind];
    if (envs.length === 0) return;
    this.open[kind] = [];
    const seq = this.nextSeq++;
    const payload = encodeUplinkBatch({ aggregatorId: this.id, seq, envelopes: envs });
    const b = this.buffer.add(seq, kind === 'up' ? this.topics.up : this.topics.resp, payload, envs.length);
    this.s.batchesPublished++;
    this.m.batches.inc();
    this.publish(b);
    if (this.open.up.length === 0 && this.open.resp.length === 0 && this.batchTimer) {
      clearTimeout(this.batchTimer);
      this.batchTimer = undefined;
    }
  }

  private publish(b: PendingBatch): void {
    // while away, batches wait here; onConnect sends them all
    if (!this.ready) return;
    if (b.attempts > 0) {
      this.s.retransmits++;
      this.m.retransmits.inc();
    }
    this.buffer.markSent(b, Date.now());
    this.client.publish(b.topic, b.payload, { qos: 1 }, (err) => {
      // not fatal: the batch stays buffered and goes again after retransmitMs or the next connect
      if (err && this.buffer.has(b.seq)) this.log.debug({ seq: b.seq, err: err.message }, 'publish failed');
    });
  }

  private retransmitDue(): void {
    if (!this.ready) return;
    for (const b of this.buffer.due(Date.now(), this.retransmitMs)) this.publish(b);
  }

  private onMessage(topic: string, payload: Buffer): void {
    try {
      if (topic === this.topics.ack) {
        const ack = decodeAck(payload);
        if (ack.aggregatorId !== this.id) throw new Error(`ack names aggregator '${ack.aggregatorId}'`);
        for (const seq of ack.seqs) {
          if (this.buffer.ack(seq)) {
            this.s.acks++;
            this.m.acks.inc();
          }
        }
        this.updateBackpressure();
      } else if (topic === this.topics.down) {
        const down = decodeDownlink(payload);
        if (down.aggregatorId !== this.id) throw new Error(`downlink names aggregator '${down.aggregatorId}'`);
        for (const env of down.envelopes) {
          this.s.downlinks++;
          this.m.downlinks.inc();
          // the field link buffers what it cannot write now; nothing is dropped here
          this.field.send(env);
        }
      }
    } catch (err) {
      this.s.malformedMessages++;
      this.m.malformed.inc();
      this.log.warn({ code: 'malformed', topic, bytes: payload.length, err: (err as Error).message }, 'message did not decode; ignored');
    }
  }

  private unackedEnvelopes(): number {
    return this.buffer.envelopes + this.open.up.length + this.open.resp.length;
  }

  private updateBackpressure(): void {
    const n = this.unackedEnvelopes();
    this.m.unacked.set(n);
    if (!this.paused && n >= this.maxUnacked) {
      this.paused = true;
      this.field.pause();
      this.log.warn({ unacked: n }, 'too many unacked envelopes; no longer reading from meters');
    } else if (this.paused && n < this.maxUnacked * 0.8 && !this.closing) {
      // hysteresis, so a slow ingest does not flip the field link every ack
      this.paused = false;
      this.log.info({ unacked: n }, 'reading from meters again');
      this.field.resume();
    }
  }

  stats(): AggregatorStats {
    return {
      ...this.s,
      unackedBatches: this.buffer.batches,
      unackedEnvelopes: this.unackedEnvelopes(),
      connected: Boolean(this.client?.connected),
      paused: this.paused,
    };
  }

  /** Stops reading from meters, publishes the open batches and waits (closeWaitMs) for their acks. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.field?.pause();
    if (this.batchTimer) this.sealAll();
    const end = Date.now() + (this.opts.closeWaitMs ?? 2000);
    while (this.buffer.batches > 0 && this.ready && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    if (this.buffer.batches > 0) this.log.warn({ unackedBatches: this.buffer.batches, unackedEnvelopes: this.buffer.envelopes }, 'closing with unacked batches');
    clearInterval(this.tick);
    await this.client?.endAsync(true).catch(() => {});
    await this.fieldServer?.close();
  }
}

// Reuses a registry's metric when several aggregators share one (the demo runs a few in one process).
function meters(metrics: Metrics, id: string) {
  const get = <T>(name: string, make: () => T): T => (metrics.registry.getSingleMetric(name) as T | undefined) ?? make();
  const l = ['aggregator'];
  const counter = (name: string, help: string) => get(name, () => metrics.counter(name, help, l)).labels(id);
  const gauge = (name: string, help: string) => get(name, () => metrics.gauge(name, help, l)).labels(id);
  return {
    envelopesIn: counter('aggregator_envelopes_in_total', 'envelopes received from meters'),
    batches: counter('aggregator_batches_published_total', 'uplink batches published (first time)'),
    retransmits: counter('aggregator_retransmits_total', 'uplink batches re-published'),
    acks: counter('aggregator_acks_total', 'uplink batches acknowledged by ingest'),
    unacked: gauge('aggregator_unacked_envelopes', 'envelopes held until acked'),
    downlinks: counter('aggregator_downlinks_total', 'downlink envelopes handed to the field link'),
    malformed: counter('aggregator_malformed_messages_total', 'ack or downlink messages that did not decode'),
    wrongDirection: counter('aggregator_wrong_direction_total', 'downlink-typed envelopes received from meters, refused'),
    connected: gauge('aggregator_broker_connected', '1 while connected to the broker'),
  };
}

function positive(n: number, name: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(n) || n <= 0 || n > max) throw new AggregatorError('bad-option', `${name} must be an integer 1..${max}, got ${n}`);
  return n;
}

export async function startAggregator(opts: AggregatorOptions): Promise<Aggregator> {
  const a = new Aggregator(opts);
  await a.start();
  return a;
}
