// protocol/: the meter protocol, pure (bytes in, values out; no I/O): ABNT NBR 14522-style frames, the
// secure-session handshake and DLMS-style record layer, and the transport envelopes. See docs/meter-pipeline.md.
export * from './types.js';
export * from './secure/index.js';
export * from './frame/index.js';
export * from './envelope.js';
