// The ingest store seam over the PostgreSQL wire protocol (TLS, password) to a real CascaDB server: the same
// rows, types and transactions as over the in-process engine.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCascadb, type Cascadb } from '../../src/cascadb/index.js';
import { decodeProof, generateMetrologyKey, leafHash, verifyBatch, verifyInclusion } from '../../src/crypto/index.js';
import { EmbeddedKvStore, localNodeSpecs, parsePolicy, startGateway, type Gateway } from '../../src/kvs/index.js';
import { canonicalReading, type PhasorReport } from '../../src/protocol/index.js';
import { EngineSqlClient, ensureSchema, PgSqlClient, reportFromRow, signBatch, storeBatch, type SqlClient } from '../../src/ingest/index.js';

function rep(serial: number, k: number): PhasorReport {
  const ph = { voltageV: 220.1, currentA: 3.3, angleDeg: -12.5 };
  return { serial, ts: Date.UTC(2024, 4, 1) + k * 900_000, phases: [ph, ph, ph], activePowerW: 2100.7, reactivePowerVar: 300, powerFactor: 0.97, thdPercent: 2.2, frequencyHz: 59.99, demandW: 2100, energyWh: 2 ** 40 + k, status: 4 };
}

describe('ingest SqlClient over the PostgreSQL protocol', () => {
  let dir: string;
  let gw: Gateway;
  let db: Cascadb;
  let pg: SqlClient;
  let local: SqlClient;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sg-ingest-pg-'));
    gw = await startGateway({ dataDir: join(dir, 'gw'), nodes: localNodeSpecs(join(dir, 'nodes'), 3), noListen: true });
    await gw.objects.createBucket('t', 'db', parsePolicy('replicate:3'));
    db = await startCascadb({ store: new EmbeddedKvStore(gw.objects, 't', 'db'), pgPort: 0, httpPort: -1, user: 'ingest', password: 'pw-0123456789', tlsDir: join(dir, 'tls'), requireTls: true });
    pg = new PgSqlClient({ url: `postgres://ingest:pw-0123456789@localhost:${db.pgPort}/securegrid`, ca: db.tlsCert });
    local = new EngineSqlClient(db.engine);
  });
  after(async () => {
    await pg.close();
    await db.close();
    await gw.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('schema, a signed batch in one transaction, values normalised like the engine client', async () => {
    await ensureSchema(pg);
    await ensureSchema(pg); // IF NOT EXISTS: a second instance starting is a no-op
    const key = generateMetrologyKey();
    const readings = Array.from({ length: 3000 }, (_, i) => ({ report: rep(10 + (i % 30), Math.floor(i / 30)), counter: i + 1 }));
    const b = signBatch(readings, { batchId: 'pg-1', source: 'ingest', instance: 'test', key });
    const t = performance.now();
    assert.deepEqual(await storeBatch(pg, b), { inserted: 3000, duplicates: 0 });
    const ms = performance.now() - t;
    console.log(`# 3000 readings in one batch over pg wire + TLS: ${ms.toFixed(0)} ms (${Math.round(3000 / (ms / 1000))} readings/s)`);
    assert.deepEqual(await storeBatch(pg, { ...b, batchId: 'pg-2' }), { inserted: 0, duplicates: 3000 });
    const q = 'SELECT * FROM reading WHERE meter_id = $1 AND ts = $2';
    const args = [12, new Date(Date.UTC(2024, 4, 1) + 5 * 900_000)];
    const viaPg = (await pg.query(q, args)).rows[0]!;
    const viaEngine = (await local.query(q, args)).rows[0]!;
    assert.deepEqual(viaPg, viaEngine);
    assert.equal(viaPg.energy_wh, 2 ** 40 + 5);
    assert.equal(viaPg.ts, args[1]!.valueOf());
    const batch = (await pg.query('SELECT * FROM batch WHERE batch_id = $1', ['pg-1'])).rows[0]!;
    assert.ok(verifyBatch(key.publicKey, { batchId: 'pg-1', count: Number(batch.count), root: batch.merkle_root as Buffer }, batch.signature as Buffer));
    assert.ok(verifyInclusion(leafHash(canonicalReading(reportFromRow(viaPg))), Number(viaPg.leaf), 3000, decodeProof(viaPg.proof as Buffer), batch.merkle_root as Buffer));
  });

  test('a failing statement rolls the whole transaction back', async () => {
    await assert.rejects(
      pg.transaction(async (tx) => {
        await tx.query('INSERT INTO batch (batch_id, count) VALUES ($1, $2)', ['rolled-back', 1]);
        await tx.query('INSERT INTO batch (batch_id, count) VALUES ($1, $2)', ['pg-1', 1]); // duplicate key
      }),
      (e: unknown) => (e as { code?: string }).code === '23505',
    );
    assert.equal((await pg.query('SELECT batch_id FROM batch WHERE batch_id = $1', ['rolled-back'])).rowCount, 0);
  });
});
