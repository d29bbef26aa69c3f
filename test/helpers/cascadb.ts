// Test fixture: a CascaDB engine over an embedded KVS (in-process gateway + local LMDB nodes).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedKvStore, localNodeSpecs, parsePolicy, startGateway, type Gateway } from '../../src/kvs/index.js';
import { Engine, runJson } from '../../src/cascadb/index.js';
import { logger } from '../../src/observe/index.js';
import type { Session } from '../../src/cascadb/server/backend.js';

export interface TestDb {
  engine: Engine;
  gateway: Gateway;
  dir: string;
  session: Session;
  /** Runs SQL; returns rows as JSON values. */
  q(sql: string, params?: unknown[]): Promise<{ columns: Array<{ name: string; type: string }>; rows: unknown[][]; rowCount: number; command: string }>;
  close(): Promise<void>;
}

let ids = 1;

export async function startTestDb(nodes = 3): Promise<TestDb> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-cascadb-'));
  const gateway = await startGateway({ dataDir: join(dir, 'gw'), nodes: localNodeSpecs(join(dir, 'nodes'), nodes), noListen: true });
  await gateway.objects.createBucket('t', 'db', parsePolicy(`replicate:${Math.min(3, nodes)}`));
  const engine = new Engine({ kv: new EmbeddedKvStore(gateway.objects, 't', 'db'), log: logger('test') });
  await engine.start();
  const session: Session = { id: ids++, user: 'test', database: 'test', params: {}, txStatus: 'I', state: {} };
  return {
    engine,
    gateway,
    dir,
    session,
    q: (sql, params = []) => runJson(engine, session, sql, params),
    async close() {
      await gateway.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
