// The PostgreSQL wire protocol (v3) server side: TLS (SSLRequest), SCRAM-SHA-256 (cleartext password only
// inside TLS, when enabled), the simple and the extended query protocol (Parse/Bind/Describe/Execute/Sync/
// Close/Flush, pipelined), portals with row limits (PortalSuspended), ErrorResponse with SQLSTATE, and
// skipping to Sync after an error in the extended protocol. The message codec lives in pg-protocol.ts.
import type { SecureContextOptions } from 'node:tls';
import type { SqlBackend, UserStore, ScramVerifier } from './backend.js';

export interface PgServerOptions {
  backend: SqlBackend;
  users: UserStore;
  host?: string; // default 127.0.0.1
  port: number; // 0 = any free port
  /** When set, SSLRequest is answered 'S' and the connection upgraded; with requireTls, plain connections are refused (28000). */
  tls?: SecureContextOptions;
  requireTls?: boolean;
  /** Also accept AuthenticationCleartextPassword — only ever offered on TLS connections. Default false (SCRAM only). */
  allowCleartextOverTls?: boolean;
  serverVersion?: string; // reported in ParameterStatus server_version, default '16.0 (securegrid cascadb)'
}

export interface PgServer {
  port: number;
  host: string;
  close(): Promise<void>;
}

export declare function startPgServer(o: PgServerOptions): Promise<PgServer>;
/** Makes a SCRAM-SHA-256 verifier from a password (random 16-byte salt, 4096 iterations by default). */
export declare function scramVerifier(password: string, iterations?: number): ScramVerifier;
