// The gateway's TLS identity: a given certificate, or a self-signed one made at first start and kept in
// <data>/tls (the private key file is 0600 and never committed or logged).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import selfsigned from 'selfsigned';

export interface TlsIdentity {
  cert: string;
  key: string;
  selfSigned: boolean;
  certPath: string;
}

export function loadOrCreateTls(dir: string, given?: { certFile?: string; keyFile?: string }, hosts: string[] = ['localhost']): TlsIdentity {
  if (given?.certFile || given?.keyFile) {
    if (!given.certFile || !given.keyFile) throw new Error('--cert and --key must be given together');
    return { cert: readFileSync(given.certFile, 'utf8'), key: readFileSync(given.keyFile, 'utf8'), selfSigned: false, certPath: given.certFile };
  }
  mkdirSync(dir, { recursive: true });
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  if (existsSync(certPath) && existsSync(keyPath)) {
    return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8'), selfSigned: true, certPath };
  }
  const altNames = [
    ...hosts.map((h) => ({ type: 2, value: h })),
    { type: 7, ip: '127.0.0.1' },
    { type: 7, ip: '::1' },
  ];
  const pems = selfsigned.generate([{ name: 'commonName', value: 'securegrid-kvs' }], {
    keySize: 2048,
    days: 825,
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames },
    ],
  });
  writeFileSync(keyPath, pems.private, { mode: 0o600 });
  writeFileSync(certPath, pems.cert);
  return { cert: pems.cert, key: pems.private, selfSigned: true, certPath };
}
