// The handshake transcript, hashed as it grows, and the signature contexts of both sides.
//   th2 = SHA-256("securegrid-hs/1" ‖ 0 ‖ u16 len(ClientHello) ‖ ClientHello ‖ ServerHello up to its ephemeral key)
//   th3 = SHA-256(th2 ‖ Finish up to its signature)      — the session keys' HKDF info
// The collector signs "securegrid-server/1" ‖ 0 ‖ th2; the meter signs "securegrid-meter/1" ‖ 0 ‖ th3.

import { sha256 } from '../../crypto/index.js';

const HS_LABEL = Buffer.from('securegrid-hs/1\0', 'ascii');
const SERVER_LABEL = Buffer.from('securegrid-server/1\0', 'ascii');
const METER_LABEL = Buffer.from('securegrid-meter/1\0', 'ascii');
/** Plaintext of the key-confirmation record in Established. */
export const CONFIRMATION = Buffer.from('securegrid-established/1', 'ascii');

export function transcriptAfterServerHello(clientHello: Buffer, serverHelloSigned: Buffer): Buffer {
  const len = Buffer.allocUnsafe(2);
  len.writeUInt16BE(clientHello.length, 0);
  return sha256(HS_LABEL, len, clientHello, serverHelloSigned);
}

export function transcriptAfterFinish(th2: Buffer, finishSigned: Buffer): Buffer {
  return sha256(th2, finishSigned);
}

export function serverSigningBytes(th2: Buffer): Buffer {
  return Buffer.concat([SERVER_LABEL, th2]);
}

export function meterSigningBytes(th3: Buffer): Buffer {
  return Buffer.concat([METER_LABEL, th3]);
}
