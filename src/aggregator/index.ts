// aggregator/: the untrusted relay between meters and ingest (field link ⇄ MQTT). It holds no key.
export { Aggregator, AggregatorError, startAggregator, type AggregatorOptions, type AggregatorStats } from './aggregator.js';
export {
  connectFieldLink,
  FieldLinkClient,
  FieldLinkError,
  FieldLinkServer,
  inProcessFieldLink,
  type FieldLink,
  type FieldLinkClientOptions,
  type FieldLinkServerOptions,
  type FieldLinkServerStats,
} from './field-link.js';
export { RetransmitBuffer, type PendingBatch } from './retransmit.js';
export { connectMqtt, type MqttSessionOptions, type MqttVersion } from './mqtt-session.js';
