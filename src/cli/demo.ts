// `securegrid demo`: the whole pipeline on one machine. At this stage: an embedded Secure KVS (a gateway and
// 9 storage nodes on loopback, data in a temp dir) written and read under every policy, a node killed,
// reads still served, the node's disk replaced and healed, and a scan of every node's files for plaintext.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KvsClient, startGateway, startNodeServer } from '../kvs/index.js';
import { setLogLevel } from '../observe/index.js';
import { parseFlags, intFlag, usage, UsageError, type FlagSpec } from './args.js';
import { demoMeters } from './demo-meters.js';
import { filesUnder } from './files.js';
import { progress } from './progress.js';

const SPEC: Record<string, FlagSpec> = {
  objects: { type: 'string', default: '8', help: 'objects per size per policy' },
  meters: { type: 'string', default: '2000', help: 'simulated meters (0 skips meters-to-store)' },
  days: { type: 'string', default: '2', help: 'simulated days' },
  start: { type: 'string', default: '2026-11-01', help: 'first simulated local day (yyyy-mm-dd)' },
  keep: { type: 'boolean', default: false, help: 'keep the temp data directory' },
};

const POLICIES = [
  { bucket: 'hot-readings', policy: 'replicate:3', label: 'hot' },
  { bucket: 'warm-readings', policy: 'hybrid:1+6/8', label: 'warm' },
  { bucket: 'cold-archive', policy: 'ec:6+2', label: 'cold' },
];
const SIZES = [1024, 64 * 1024, 1024 * 1024, 4 * 1024 * 1024];

function human(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

export async function runDemo(argv: string[]): Promise<number> {
  const f = parseFlags(argv, SPEC);
  if (f.help) return (console.log(usage('demo', 'Runs the securegrid pipeline end to end on this machine.', SPEC)), 0);
  const perSize = intFlag(f.objects, 'objects', 1, 1000);
  const meters = intFlag(f.meters, 'meters', 0, 1_000_000);
  const days = intFlag(f.days, 'days', 1, 366);
  if (typeof f.start !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(f.start) || !Number.isFinite(Date.parse(f.start))) throw new UsageError(`--start must be a date yyyy-mm-dd, got '${f.start}'`);
  setLogLevel(process.env.SECUREGRID_LOG_LEVEL ?? 'error');
  const t0 = Date.now();
  const root = mkdtempSync(join(tmpdir(), 'securegrid-demo-'));
  const canary = `SG-CANARY-${randomBytes(6).toString('hex')}`;
  console.log('securegrid demo — Secure KVS, then meters to store');
  console.log(`data: ${root}`);
  console.log('trust model: no TEE hardware here; the gateway is an ordinary process, storage nodes are separate');
  console.log('servers that only ever receive ciphertext under opaque names.\n');

  // 1. Nine storage nodes (HTTP on loopback) and a gateway (HTTPS, self-signed) in front of them.
  const nodeDirs = Array.from({ length: 9 }, (_, i) => join(root, 'nodes', `node-${i}`));
  const nodes = await Promise.all(nodeDirs.map((dir) => startNodeServer({ dataDir: dir, port: 0 })));
  const gw = await startGateway({ dataDir: join(root, 'gateway'), nodes: nodes.map((n) => ({ kind: 'remote' as const, url: n.url })), port: 0, scrubIntervalMs: 0 });
  console.log(`1. started 9 storage nodes (${nodes[0]!.url} …) and the gateway at ${gw.url}`);
  const key = await gw.accounts.create('demo-utility');
  console.log(`   API key for tenant demo-utility: ${key.accessKeyId} (secret not shown)`);
  const client = new KvsClient({ url: gw.url, accessKeyId: key.accessKeyId, secretAccessKey: key.secretAccessKey, ca: gw.tls?.cert, connections: 8 });
  let exit = 0;
  try {
    // 2. Write objects under every policy.
    console.log('2. writing objects under every policy (each carries a plaintext canary)');
    const written = new Map<string, string>(); // bucket/key → sha256
    for (const p of POLICIES) await client.createBucket(p.bucket, { policy: p.policy });
    const jobs: Array<{ bucket: string; key: string; size: number }> = [];
    for (const p of POLICIES) for (const size of SIZES) for (let i = 0; i < perSize; i++) jobs.push({ bucket: p.bucket, key: `meter-${String(i).padStart(4, '0')}/day-2026-11-${String((i % 28) + 1).padStart(2, '0')}-${size}`, size });
    let done = 0;
    const tw = Date.now();
    let bytes = 0;
    for (let i = 0; i < jobs.length; i += 8) {
      await Promise.all(
        jobs.slice(i, i + 8).map(async (j) => {
          const body = randomBytes(j.size);
          Buffer.from(canary).copy(body, Math.min(100, j.size - canary.length));
          await client.put(j.bucket, j.key, body);
          written.set(`${j.bucket}/${j.key}`, createHash('sha256').update(body).digest('hex'));
          bytes += j.size;
          progress('writing', ++done, jobs.length);
        }),
      );
    }
    console.log(`   wrote ${jobs.length} objects, ${human(bytes)} in ${((Date.now() - tw) / 1000).toFixed(1)} s`);
    // A storage class picks the policy per object: GLACIER → cold (ec:6+2) even in the hot bucket.
    await client.put('hot-readings', 'archive/2025-annual-report', Buffer.from(`annual consumption summary ${canary}`), { storageClass: 'GLACIER' });
    const listed = await client.list('hot-readings', { prefix: 'archive/' });
    console.log(`   storage class GLACIER in bucket hot-readings → ${listed.keys[0]?.storageClass} (${gw.objects.head('demo-utility', 'hot-readings', 'archive/2025-annual-report').policy})`);

    const readAll = async (label: string): Promise<{ ok: number; bad: number; failed: number }> => {
      const r = { ok: 0, bad: 0, failed: 0 };
      const all = [...written];
      let n = 0;
      for (let i = 0; i < all.length; i += 8) {
        await Promise.all(
          all.slice(i, i + 8).map(async ([path, sum]) => {
            const at = path.indexOf('/');
            try {
              const got = await client.get(path.slice(0, at), path.slice(at + 1));
              if (got && createHash('sha256').update(got).digest('hex') === sum) r.ok++;
              else r.bad++;
            } catch {
              r.failed++;
            }
            progress(label, ++n, all.length);
          }),
        );
      }
      return r;
    };

    // 3. Read everything back.
    console.log('3. reading every object back and checking its SHA-256');
    const r1 = await readAll('reading');
    console.log(`   ${r1.ok} intact, ${r1.bad} wrong, ${r1.failed} failed`);

    // 4. Kill a node.
    const victim = 3;
    await nodes[victim]!.close();
    console.log(`4. killed storage node ${victim} (${nodes[victim]!.url}); reading everything again`);
    const r2 = await readAll('reading with a node down');
    console.log(`   ${r2.ok} intact, ${r2.bad} wrong, ${r2.failed} failed`);
    const during = randomBytes(256 * 1024);
    await client.put('warm-readings', 'written-while-degraded', during);
    written.set('warm-readings/written-while-degraded', createHash('sha256').update(during).digest('hex'));
    console.log('   a write during the outage succeeded (write quorum met)');

    // 5. Replace the node's disk and heal.
    rmSync(nodeDirs[victim]!, { recursive: true, force: true });
    const port = Number(new URL(nodes[victim]!.url).port);
    nodes[victim] = await startNodeServer({ dataDir: nodeDirs[victim]!, port });
    console.log(`5. node ${victim} back with an empty disk; healing`);
    let last = 0;
    const heal = await gw.heal((n, rep) => {
      if (Date.now() - last > 200) {
        last = Date.now();
        if (process.stdout.isTTY) process.stdout.write(`\r  healing: ${n} objects checked, ${rep.rebuilt} fragments rebuilt`);
      }
    });
    if (process.stdout.isTTY) process.stdout.write('\n');
    console.log(`   ${heal.objects} objects, ${heal.fragmentsChecked} fragments checked, ${heal.missing} missing, ${heal.corrupt} corrupt, ${heal.rebuilt} rebuilt, ${heal.unrecoverable} unrecoverable`);
    const again = await gw.heal();
    console.log(`   second pass: ${again.missing} missing, ${again.rebuilt} rebuilt`);
    const r3 = await readAll('reading after heal');
    console.log(`   ${r3.ok} intact, ${r3.bad} wrong, ${r3.failed} failed`);

    // 6. Confidentiality: no storage node file holds the canary.
    let files = 0;
    let hits = 0;
    let scanned = 0;
    for (const dir of nodeDirs) {
      for (const file of filesUnder(dir)) {
        files++;
        const buf = readFileSync(file);
        scanned += statSync(file).size;
        if (buf.includes(canary)) hits++;
      }
    }
    console.log(`6. scanned ${files} storage-node files (${human(scanned)}) for the canary: ${hits} hits`);

    const m = meters > 0 ? await demoMeters({ root: join(root, 'meters'), meters, days, start: f.start as string }) : { ok: true, lines: [] };

    // Summary.
    console.log('\nsummary (raw storage per policy, as in the paper\'s Fig. 5)');
    console.log('  policy            bucket          objects   logical      raw          overhead');
    for (const p of POLICIES) {
      const s = gw.objects.storageUse('demo-utility', p.bucket);
      console.log(`  ${`${p.label} ${p.policy}`.padEnd(18)}${p.bucket.padEnd(16)}${String(s.objects).padStart(7)}   ${human(s.logical).padEnd(12)} ${human(s.raw).padEnd(12)} ${(s.raw / s.logical).toFixed(2)}×`);
    }
    const kvsOk = r1.bad + r1.failed + r2.bad + r2.failed + r3.bad + r3.failed === 0 && hits === 0 && again.missing === 0 && heal.unrecoverable === 0;
    const ok = kvsOk && m.ok;
    console.log(`\n  kvs: reads intact: ${r1.ok + r2.ok + r3.ok}, wrong: ${r1.bad + r2.bad + r3.bad}, failed: ${r1.failed + r2.failed + r3.failed}; fragments rebuilt: ${heal.rebuilt}; plaintext canary hits on storage nodes: ${hits}`);
    for (const line of m.lines) console.log(`  ${line}`);
    console.log(`  ${ok ? 'DEMO PASSED' : 'DEMO FOUND PROBLEMS'} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    exit = ok ? 0 : 1;
  } finally {
    await client.close();
    await gw.close();
    await Promise.allSettled(nodes.map((n) => n.close()));
    if (!f.keep) rmSync(root, { recursive: true, force: true });
  }
  return exit;
}
