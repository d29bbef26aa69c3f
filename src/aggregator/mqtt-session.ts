// The aggregator's MQTT client: a persistent session under a stable client id, reconnecting forever with
// exponential backoff, MQTT 5 when the broker speaks it and 3.1.1 otherwise (the embedded aedes broker).
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

export type MqttVersion = 4 | 5 | 'auto';

export interface MqttSessionOptions {
  url: string;
  clientId: string;
  version?: MqttVersion;
  /** MQTT 5 session expiry: how long the broker keeps the session (and queued downlinks) while away. */
  sessionExpirySec?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  keepaliveSec?: number;
  onVersionFallback?: () => void;
}

// CONNACK codes for "protocol version not supported": 3.1.1 return code 1, MQTT 5 reason code 132
const UNSUPPORTED_VERSION = new Set([1, 132]);

export function connectMqtt(o: MqttSessionOptions): MqttClient {
  const min = o.minBackoffMs ?? 250;
  const max = o.maxBackoffMs ?? 10_000;
  const v5 = o.version === 5 || o.version === undefined || o.version === 'auto';
  const opts: IClientOptions = {
    clientId: o.clientId,
    clean: false,
    protocolVersion: v5 ? 5 : 4,
    keepalive: o.keepaliveSec ?? 30,
    reconnectPeriod: min,
    connectTimeout: 10_000,
    reconnectOnConnackError: true,
    // the aggregator resubscribes itself whenever the broker has no session for it
    resubscribe: false,
    ...(v5 ? { properties: { sessionExpiryInterval: o.sessionExpirySec ?? 86_400 } } : {}),
  };
  const client = mqtt.connect(o.url, opts);
  let period = min;
  client.on('reconnect', () => {
    // jittered doubling: the next attempt after this one waits longer, up to max
    period = Math.min(max, period * 2);
    client.options.reconnectPeriod = Math.round(period * (0.75 + Math.random() * 0.5));
  });
  client.on('connect', () => {
    period = min;
    client.options.reconnectPeriod = min;
  });
  client.on('error', (err: Error & { code?: number }) => {
    if (o.version === 'auto' || o.version === undefined) {
      if (client.options.protocolVersion === 5 && typeof err.code === 'number' && UNSUPPORTED_VERSION.has(err.code)) {
        client.options.protocolVersion = 4;
        delete client.options.properties;
        // retry at once with 3.1.1 rather than after a backoff
        client.options.reconnectPeriod = 1;
        o.onVersionFallback?.();
      }
    }
  });
  return client;
}
