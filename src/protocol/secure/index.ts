// protocol/secure: the secure-session handshake and the DLMS-style record layer (docs/meter-pipeline.md).
// Bytes in, bytes out; the only I/O is FileCounterStore's counter file.
export { SecureError, isSecureError, type SecureErrorCode } from './errors.js';
export {
  SC_AUTH_ENC,
  SYSTEM_TITLE_SIZE,
  RECORD_TAG_SIZE,
  RECORD_OVERHEAD,
  sealRecord,
  openRecord,
  peekCounter,
  type RecordKeys,
} from './record.js';
export { REPLAY_WINDOW_SIZE, REPLAY_WINDOW_BYTES, ReplayWindow } from './replay-window.js';
export {
  MAX_UPLINK_COUNTER,
  DEFAULT_COUNTER_BLOCK,
  CounterStoreError,
  MemoryCounterStore,
  FileCounterStore,
  type CounterStore,
  type CounterStoreErrorCode,
} from './counter-store.js';
export {
  HandshakeType,
  decodeClientHello,
  decodeServerHello,
  decodeFinish,
  decodeEstablished,
  type ClientHello,
  type ServerHello,
  type Finish,
  type Established,
} from './messages.js';
export {
  DEFAULT_REKEY_AFTER,
  meterSystemTitle,
  newCollectorSystemTitle,
  openUplink,
  sealDownlink,
  encodeSession,
  decodeSession,
  type SessionState,
} from './session.js';
export { MeterSession, type MeterSessionOptions } from './meter-session.js';
export { Collector, COOKIE_TTL_MS, type CollectorOptions, type MeterRecord, type MeterLookup } from './collector.js';
