// broker/: the embedded MQTT broker (aedes on loopback) with MQTT shared subscriptions and a traffic tap.
export { startBroker, BrokerError, type Broker, type BrokerOptions, type BrokerStats } from './broker.js';
export { parseShareTopic } from './shared-subscriptions.js';
