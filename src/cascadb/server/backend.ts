// What the PostgreSQL front door needs from the SQL engine. The wire server (pgwire.ts) speaks the protocol;
// the engine (cascadb/sql) answers through this interface. Values cross it in PostgreSQL's text format.

/** A PostgreSQL error: SQLSTATE code and message, as ErrorResponse carries them. */
export class PgError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly extra: { detail?: string; hint?: string; position?: number; severity?: 'ERROR' | 'FATAL' } = {},
  ) {
    super(message);
  }
}

/** One result column, as RowDescription describes it. */
export interface FieldDesc {
  name: string;
  typeOid: number; // e.g. 23 int4, 20 int8, 700 float4, 701 float8, 1700 numeric, 25 text, 1043 varchar, 16 bool, 1114 timestamp, 17 bytea
  typeSize: number; // e.g. 4, 8, -1 for variable length
  typeMod: number; // -1 unless known (varchar(n) → n + 4)
  tableOid: number; // 0 when not a plain column
  columnAttr: number; // 0 when not a plain column
}

export type TxStatus = 'I' | 'T' | 'E'; // idle, in a transaction block, in a failed transaction block

export interface Session {
  readonly id: number;
  user: string;
  database: string;
  /** Startup parameters (application_name, client_encoding, DateStyle, …). */
  params: Record<string, string>;
  txStatus: TxStatus;
  /** Engine-private state (open transaction, …). */
  state: Record<string, unknown>;
}

/** Rows as PostgreSQL text-format values (null = SQL NULL). */
export type TextRow = Array<string | null>;

export interface Result {
  /** null for statements that return no rows (INSERT without RETURNING, CREATE, …). */
  fields: FieldDesc[] | null;
  /** Streamed; the server pulls as it writes DataRows (bounded memory), and may stop early (portal suspension). */
  rows: AsyncIterable<TextRow> | Iterable<TextRow>;
  /** The CommandComplete tag once all rows are out, e.g. 'SELECT 3', 'INSERT 0 5', 'UPDATE 2', 'CREATE TABLE', 'BEGIN'.
   *  Called after rows are exhausted; `sent` is the number of rows the server wrote. */
  tag(sent: number): string;
}

export interface Prepared {
  /** Parameter type OIDs ($1 → [0]); 0 where the engine leaves it unspecified (sent as text 25 … clients cope). */
  paramOids: number[];
  /** Result columns, or null when the statement returns no rows. */
  fields: FieldDesc[] | null;
}

export interface SqlBackend {
  /** Called once per connection after authentication; may reject with PgError (e.g. 3D000). */
  open(session: Session): Promise<void>;
  /** A simple-protocol Query: zero or more statements; one Result per statement, in order. An empty query yields none. */
  simpleQuery(session: Session, sql: string): AsyncIterable<Result>;
  /** Extended protocol Parse: checks and describes one statement. `paramOids` are what the client declared (0 = unspecified). */
  prepare(session: Session, sql: string, paramOids: number[]): Promise<Prepared>;
  /** Extended protocol Bind+Execute: runs a prepared statement with text-format parameters. */
  execute(session: Session, sql: string, prepared: Prepared, params: Array<string | null>): Promise<Result>;
  /** The connection ended (Terminate or socket close): roll back what is open. */
  close(session: Session): Promise<void>;
}

/** Authentication: a user's SCRAM-SHA-256 verifier (RFC 5802 / 7677), as PostgreSQL stores it. */
export interface ScramVerifier {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

export interface UserStore {
  /** undefined for an unknown user (the server still runs a fake exchange so that user names don't leak). */
  verifier(user: string): Promise<ScramVerifier | undefined>;
}
