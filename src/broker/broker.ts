// The embedded MQTT broker: aedes over a node:net server on loopback, with shared subscriptions and a tap.
// aedes 1.2 speaks MQTT 3.1.1 only (it answers an MQTT 5 CONNECT with "unacceptable protocol version"), so
// clients of this broker use 3.1.1; the aggregator's client falls back to it by itself.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Aedes, type Client } from 'aedes';
import { logger, Metrics } from '../observe/index.js';
import { parseShareTopic, SharedSubscriptions } from './shared-subscriptions.js';

export interface BrokerOptions {
  host?: string;
  /** 0 = any free port. */
  port?: number;
  /** Sees every published packet (topic and payload), e.g. to scan broker traffic for plaintext. */
  tap?: (topic: string, payload: Buffer) => void;
  metrics?: Metrics;
}

export interface Broker {
  url: string;
  port: number;
  metrics: Metrics;
  stats(): BrokerStats;
  close(): Promise<void>;
}

export interface BrokerStats {
  clients: number;
  messagesIn: number;
  messagesOut: number;
  sharedUndeliverable: number;
}

export class BrokerError extends Error {
  constructor(readonly code: 'listen-failed', message: string) {
    super(message);
    this.name = 'BrokerError';
  }
}

type Deliver = (packet: unknown, cb: () => void) => void;

export async function startBroker(opts: BrokerOptions = {}): Promise<Broker> {
  const host = opts.host ?? '127.0.0.1';
  const log = logger('broker');
  const metrics = opts.metrics ?? new Metrics('broker');
  const mIn = metrics.counter('broker_messages_in_total', 'PUBLISH packets received from clients');
  const mOut = metrics.counter('broker_messages_out_total', 'PUBLISH packets handed to subscribers');
  const mClients = metrics.gauge('broker_clients', 'connected clients');
  let messagesIn = 0;
  let messagesOut = 0;

  const shared = new SharedSubscriptions();
  const aedes = await Aedes.createBroker({
    // counts deliveries; wrapped before aedes restores a persistent session's subscriptions with them
    preConnect: (client, _packet, cb) => {
      const c = client as unknown as { deliver0: Deliver; deliverQoS: Deliver };
      const d0 = c.deliver0;
      const dq = c.deliverQoS;
      c.deliver0 = (p, done) => (messagesOut++, mOut.inc(), d0(p, done));
      // qos 0 packets go on to deliver0, which counts them
      c.deliverQoS = (p, done) => ((p as { qos: number }).qos > 0 && (messagesOut++, mOut.inc()), dq(p, done));
      cb(null, true);
    },
    authorizeSubscribe: (client, sub, cb) => {
      if (sub.topic.startsWith('$share/')) {
        if (!parseShareTopic(sub.topic)) return cb(new Error(`malformed shared subscription '${sub.topic}'`));
        shared.join(sub.topic, client);
      }
      cb(null, sub);
    },
  });
  shared.attach(aedes);

  aedes.on('publish', (packet, client: Client | null) => {
    if (client) {
      messagesIn++;
      mIn.inc();
    }
    if (opts.tap) {
      try {
        opts.tap(packet.topic, Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload));
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'tap threw');
      }
    }
  });
  aedes.on('client', () => mClients.set(aedes.connectedClients));
  aedes.on('clientDisconnect', () => mClients.set(aedes.connectedClients));
  aedes.on('clientError', (client, err) => log.debug({ client: client.id, err: err.message }, 'client error'));
  aedes.on('connectionError', (_client, err) => log.debug({ err: err.message }, 'connection error'));

  const sockets = new Set<Socket>();
  const server: Server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    aedes.handle(sock);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 1883, host, () => (server.off('error', reject), resolve()));
    });
  } catch (err) {
    await new Promise<void>((r) => aedes.close(() => r()));
    throw new BrokerError('listen-failed', `cannot listen on ${host}:${opts.port ?? 1883}: ${(err as Error).message}`);
  }
  const port = (server.address() as AddressInfo).port;
  log.info({ host, port }, 'broker listening');

  let closing: Promise<void> | undefined;
  return {
    url: `mqtt://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    metrics,
    stats: () => ({ clients: aedes.connectedClients, messagesIn, messagesOut, sharedUndeliverable: shared.undeliverable }),
    close: () =>
      (closing ??= (async () => {
        const closed = new Promise<void>((r) => server.close(() => r()));
        await new Promise<void>((r) => aedes.close(() => r()));
        // aedes closes its clients; anything still half-open goes now so the port frees at once
        for (const s of sockets) s.destroy();
        await closed;
      })()),
  };
}
