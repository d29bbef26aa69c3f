// Metrology batches: readings → Merkle tree (leaf = SHA-256(0x00 ‖ canonicalReading)) → root signed with the
// metrology key → one CascaDB transaction holding every reading row (with leaf index and proof) and the batch row.
import { encodeProof, leafHash, merkleTree, type MetrologyKey } from '../crypto/index.js';
import { canonicalReading, type PhasorReport } from '../protocol/index.js';
import { readingRow, READING_COLUMNS } from './reading.js';
import { insertRows } from './schema.js';
import type { SqlClient, SqlQueryable } from './sql.js';

export type BatchSource = 'ingest' | 'import';

export interface BatchReading {
  report: PhasorReport;
  /** The record's invocation counter (null for imported readings). */
  counter: number | null;
}

export interface SignedBatch {
  batchId: string;
  createdAt: Date;
  source: BatchSource;
  instance: string;
  keyId: string;
  root: Buffer;
  signature: Buffer;
  readings: readonly BatchReading[];
  proofs: Buffer[];
}

/** Builds the tree and signs its root; readings keep their order (leaf i = readings[i]). */
export function signBatch(readings: readonly BatchReading[], o: { batchId: string; source: BatchSource; instance: string; key: MetrologyKey }): SignedBatch {
  const tree = merkleTree(readings.map((r) => leafHash(canonicalReading(r.report))));
  const proofs = readings.map((_, i) => encodeProof(tree.proof(i)));
  const signature = o.key.signBatch({ batchId: o.batchId, count: readings.length, root: tree.root });
  return { batchId: o.batchId, createdAt: new Date(), source: o.source, instance: o.instance, keyId: o.key.keyId, root: tree.root, signature, readings, proofs };
}

const BATCH_COLUMNS = ['batch_id', 'created_at', 'source', 'instance', 'key_id', 'count', 'merkle_root', 'signature'];

/** Writes a signed batch's rows inside an open transaction; returns how many readings were new. */
export async function writeBatch(tx: SqlQueryable, b: SignedBatch): Promise<number> {
  const rows = b.readings.map((r, i) => readingRow(r.report, r.counter, b.batchId, i, b.proofs[i]!));
  const inserted = await insertRows(tx, 'reading', READING_COLUMNS, rows, true);
  await insertRows(tx, 'batch', BATCH_COLUMNS, [[b.batchId, b.createdAt, b.source, b.instance, b.keyId, b.readings.length, b.root, b.signature]], false);
  return inserted;
}

/**
 * Stores a signed batch in one transaction: resolves after COMMIT, with how many readings were new and how many
 * already existed ((meter_id, ts) taken: an at-least-once redelivery, stored once).
 */
export async function storeBatch(sql: SqlClient, b: SignedBatch): Promise<{ inserted: number; duplicates: number }> {
  const inserted = await sql.transaction((tx) => writeBatch(tx, b));
  return { inserted, duplicates: b.readings.length - inserted };
}
