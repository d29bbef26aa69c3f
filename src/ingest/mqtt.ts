// The ingest service's MQTT client: MQTT 5 when the broker speaks it, 3.1.1 otherwise (the embedded aedes
// broker), reconnecting with backoff. A clean session: a restarted instance starts afresh, and what it had
// not acked comes back from the aggregators' retransmission.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

// CONNACK codes for "protocol version not supported": 3.1.1 return code 1, MQTT 5 reason code 132
const UNSUPPORTED_VERSION = new Set([1, 132]);

export function connectIngestMqtt(o: {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  /** Called before PUBACK for every QoS 1 message; call back to let the next message in (flow control). */
  beforeAck?: (done: () => void) => void;
}): MqttClient {
  const opts: IClientOptions = {
    clientId: o.clientId,
    clean: true,
    protocolVersion: 5,
    keepalive: 30,
    reconnectPeriod: 250,
    connectTimeout: 10_000,
    reconnectOnConnackError: true,
    resubscribe: true,
    ...(o.username ? { username: o.username, password: o.password } : {}),
    ...(o.beforeAck ? { customHandleAcks: (_t: string, _m: Buffer, _p: unknown, cb: (e: Error | number, c?: number) => void) => o.beforeAck!(() => cb(0)) } : {}),
  };
  const client = mqtt.connect(o.url, opts as IClientOptions);
  let period = 250;
  client.on('reconnect', () => {
    period = Math.min(10_000, period * 2);
    client.options.reconnectPeriod = Math.round(period * (0.75 + Math.random() * 0.5));
  });
  client.on('connect', () => {
    period = 250;
    client.options.reconnectPeriod = 250;
  });
  client.on('error', (err: Error & { code?: number }) => {
    if (client.options.protocolVersion === 5 && typeof err.code === 'number' && UNSUPPORTED_VERSION.has(err.code)) {
      client.options.protocolVersion = 4;
      client.options.reconnectPeriod = 1; // retry at once with 3.1.1 rather than after a backoff
    }
  });
  return client;
}
