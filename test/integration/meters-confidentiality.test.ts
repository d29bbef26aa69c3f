// Confidentiality of readings on the way from the meters to the store: the untrusted parts — the MQTT broker, the
// aggregators and the storage nodes — never see a reading in clear. One canary meter's readings (taken from
// generateReports, the ground truth of what it sends) are searched for in every form a leak could take: the 258-byte
// plaintext frames, the 76-byte report blocks (and 16-byte windows of them, raw, hex, base64, JSON byte lists), the
// 80-byte canonical readings, the float columns as CascaDB's row codec writes them (float64 big-endian) and
// little-endian, the decimal text of the energy register and of the float values. Searched: every payload a raw '#'
// subscriber on the test's own broker received, the aggregators' stdout and debug logs, every file of the CascaDB
// server's storage nodes. Positive controls show the same search finds the canary where it is: the plaintext built
// here, the rows read back through SQL (pg and the JSON door), a planted file in a node directory.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { reportFromRow } from '../../src/ingest/index.js';
import { generateReports, type Fleet } from '../../src/meter/index.js';
import { canonicalReading, decodeUplinkBatch, encodeReport, type PhasorReport } from '../../src/protocol/index.js';
import { API_TOKEN, filesUnder, fleetOf, haveMosquitto, Pipeline, type CliFleet } from '../helpers/pipeline.js';

const RUN = randomBytes(3).toString('hex');
const AGGS = [`conf${RUN}-a`, `conf${RUN}-b`];
const FLEET: CliFleet = { count: 20, seed: `confidentiality/${RUN}`, start: '2026-11-05', days: 0.25, aggregatorIds: AGGS };
const CANARY_INDEX = 7;

// ------------------------------------------------------------------ the canary's forms

interface Pattern {
  family: string;
  bytes: Buffer;
  /** Decimal text: a hit counts only between non-digits (so 12345678 is not found inside 912345678). */
  number?: boolean;
}

const ANCHOR = 12;

/** `s` base64-encoded at each of the three byte alignments, keeping only the characters `s` alone determines. */
function base64Forms(s: Buffer): string[] {
  const out: string[] = [];
  for (let o = 0; o < 3; o++) {
    const enc = Buffer.concat([Buffer.alloc(o), s]).toString('base64');
    out.push(enc.slice(Math.ceil((o * 8) / 6), Math.floor(((o + s.length) * 8) / 6)));
  }
  return out;
}

/** The shortest decimal that reads back as the float32 `v` (what a float4-aware printer writes). */
function float32Text(v: number): string {
  for (let p = 1; p <= 9; p++) {
    const n = Number(v.toPrecision(p));
    if (Math.fround(n) === v) return String(n);
  }
  return String(v);
}

const nonZero = (b: Buffer) => b.reduce((n, x) => n + (x !== 0 ? 1 : 0), 0);

function floats(vals: number[], width: 4 | 8, le: boolean): Buffer {
  const b = Buffer.alloc(vals.length * width);
  vals.forEach((v, i) => (width === 8 ? (le ? b.writeDoubleLE(v, i * 8) : b.writeDoubleBE(v, i * 8)) : le ? b.writeFloatLE(v, i * 4) : b.writeFloatBE(v, i * 4)));
  return b;
}

/** Every form of one reading a leak could take (low-entropy windows left out: they would match anything). */
function readingForms(r: PhasorReport): Pattern[] {
  const out: Pattern[] = [];
  const add = (family: string, bytes: Buffer | string, number = false) => out.push({ family, bytes: Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'latin1'), number });
  const frame = encodeReport(r);
  const block = frame.subarray(5, 5 + 76);
  add('frame', frame);
  add('canonical', canonicalReading(r));
  for (let at = 0; at + 16 <= block.length; at += 4) {
    const w = block.subarray(at, at + 16);
    if (nonZero(w) < 8) continue;
    add('block16', Buffer.from(w));
    add('hex', w.toString('hex'));
    add('hex', w.toString('hex').toUpperCase());
    for (const b64 of base64Forms(w)) {
      add('base64', b64);
      add('base64', b64.replace(/\+/g, '-').replace(/\//g, '_'));
    }
  }
  for (let at = 0; at + 8 <= block.length; at += 4) {
    const w = block.subarray(at, at + 8);
    if (nonZero(w) >= 6) add('json-bytes', [...w].join(','));
  }
  const [a, b, c] = r.phases;
  const groups: Record<string, number[]> = {
    v: [a.voltageV, b.voltageV, c.voltageV],
    i: [a.currentA, b.currentA, c.currentA],
    a: [a.angleDeg, b.angleDeg, c.angleDeg],
    power: [r.activePowerW, r.reactivePowerVar, r.powerFactor, r.thdPercent, r.frequencyHz, r.demandW],
  };
  for (const vals of Object.values(groups)) {
    add('f64be', floats(vals, 8, false));
    add('f64le', floats(vals, 8, true));
    add('f32le', floats(vals, 4, true));
  }
  for (const v of Object.values(groups).flat()) {
    if (String(v).length >= ANCHOR) add('float-text', String(v)); // the float32 as a double prints
    const short = float32Text(v);
    if (short.length >= 6 && short !== String(v)) add('float32-text', short, true); // the shortest text that reads back as it
  }
  add('register-text', String(r.energyWh), true);
  return out;
}

/**
 * A multi-pattern search: patterns of ANCHOR bytes or more by a rolling hash of their first ANCHOR bytes (one pass
 * over the data whatever the number of patterns), shorter decimal numbers by indexOf with digit boundaries.
 */
class Scanner {
  private readonly long = new Map<number, number[]>();
  private readonly filter = new Uint32Array(1 << 15);
  private readonly short: number[] = [];
  private static readonly B = 0x01000193;
  private static readonly POW = (() => {
    let p = 1;
    for (let i = 0; i < ANCHOR - 1; i++) p = Math.imul(p, Scanner.B);
    return p;
  })();

  constructor(readonly patterns: Pattern[]) {
    patterns.forEach((p, i) => {
      if (p.bytes.length < ANCHOR) {
        this.short.push(i);
        return;
      }
      const h = Scanner.hash(p.bytes, 0);
      this.filter[(h >>> 12) >>> 5]! |= 1 << ((h >>> 12) & 31);
      const l = this.long.get(h);
      if (l) l.push(i);
      else this.long.set(h, [i]);
    });
  }

  private static hash(b: Buffer, at: number): number {
    let h = 0;
    for (let i = 0; i < ANCHOR; i++) h = (Math.imul(h, Scanner.B) + b[at + i]!) | 0;
    return h >>> 0;
  }

  /** Indices of the patterns found in `buf` (each once per position). */
  scan(buf: Buffer): number[] {
    const hits: number[] = [];
    const n = buf.length;
    if (n >= ANCHOR && this.long.size > 0) {
      let h = Scanner.hash(buf, 0) | 0;
      for (let at = 0; ; at++) {
        const u = h >>> 0;
        if (this.filter[(u >>> 12) >>> 5]! & (1 << ((u >>> 12) & 31))) {
          for (const i of this.long.get(u) ?? []) {
            const p = this.patterns[i]!.bytes;
            if (at + p.length <= n && buf.compare(p, 0, p.length, at, at + p.length) === 0) hits.push(i);
          }
        }
        if (at + ANCHOR >= n) break;
        h = (Math.imul((h - Math.imul(buf[at]!, Scanner.POW)) | 0, Scanner.B) + buf[at + ANCHOR]!) | 0;
      }
    }
    for (const i of this.short) {
      const p = this.patterns[i]!.bytes;
      for (let at = buf.indexOf(p); at >= 0; at = buf.indexOf(p, at + 1)) {
        const before = at > 0 ? buf[at - 1]! : 0x20;
        const next = at + p.length < n ? buf[at + p.length]! : 0x20;
        const digit = (c: number) => c >= 0x30 && c <= 0x39;
        if (!this.patterns[i]!.number || (!digit(before) && before !== 0x2e && !digit(next))) hits.push(i);
      }
    }
    return hits;
  }
}

interface Hit {
  where: string;
  family: string;
}

/** Scans each source (a file is read only when its turn comes). */
function scanAll(scanner: Scanner, sources: Array<{ where: string; data: Buffer | (() => Buffer) }>): { hits: Hit[]; bytes: number } {
  const hits: Hit[] = [];
  let bytes = 0;
  for (const s of sources) {
    const data = typeof s.data === 'function' ? s.data() : s.data;
    bytes += data.length;
    for (const i of scanner.scan(data)) hits.push({ where: s.where, family: scanner.patterns[i]!.family });
  }
  return { hits, bytes };
}

const families = (hits: Hit[]) => [...new Set(hits.map((h) => h.family))].sort();

function postSql(p: Pipeline, sql: string, params: unknown[]): Promise<Buffer> {
  const u = new URL(`${p.httpUrl}/v1/sql`);
  const body = JSON.stringify({ sql, params });
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        ca: readFileSync(p.caFile, 'utf8'),
        headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${p.dbUser}:${p.dbPassword}`).toString('base64')}` },
        timeout: 20_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`POST /v1/sql: HTTP ${res.statusCode} ${Buffer.concat(chunks).toString()}`))));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

// ------------------------------------------------------------------ the test

let p: Pipeline;
const fleet: Fleet = fleetOf(FLEET);
const canary = fleet.meter(CANARY_INDEX);
const canaryReports = [...generateReports(fleet)].filter((r) => r.serial === canary.serial);

describe('confidentiality: canary readings never in broker traffic, aggregator logs or storage node files', { skip: !haveMosquitto && 'no /usr/sbin/mosquitto' }, () => {
  before(async () => {
    p = await Pipeline.start({ ingests: 2, aggregatorIds: AGGS, fleet: FLEET, aggregatorLogLevel: 'debug' });
  });

  after(async () => {
    await p?.close();
  });

  test('no form of the canary meter\'s readings outside the trusted components; the same search finds them where they are', { timeout: 120_000 }, async () => {
    const t0 = Date.now();
    assert.equal(canaryReports.length, 24);
    const patterns = canaryReports.flatMap(readingForms);
    const scanner = new Scanner(patterns);
    const allFamilies = families(patterns.map((x) => ({ where: '', family: x.family })));

    // Control 1: the plaintext the canary sends, built here, holds every form (each family found).
    const plain = Buffer.concat(canaryReports.map((r) => encodeReport(r)));
    const inPlain = scanner.scan(plain);
    for (const r of canaryReports) assert.ok(inPlain.some((i) => patterns[i]!.family === 'frame' && patterns[i]!.bytes.equals(encodeReport(r))), 'each frame found in the plaintext');
    const one = canaryReports[5]!;
    const one64 = readingForms(one);
    const control = Buffer.concat(one64.flatMap((x) => [Buffer.from(' '), x.bytes, Buffer.from(' ')]));
    assert.deepEqual(families(scanAll(scanner, [{ where: 'control', data: control }]).hits), families(one64.map((x) => ({ where: '', family: x.family }))), 'the scan finds every family it looks for');
    for (const f of ['frame', 'canonical', 'block16', 'hex', 'base64', 'json-bytes', 'f64be', 'f64le', 'f32le', 'float32-text', 'register-text']) assert.ok(allFamilies.includes(f), `patterns of family ${f}`);
    assert.deepEqual(scanAll(scanner, [{ where: 'noise', data: randomBytes(4 << 20) }]).hits, [], 'and nothing in 4 MiB of random bytes');

    // The pipeline run; during it an operator reads the canary meter (a command downlink and an encrypted response
    // through the broker).
    const meters = p.meters(FLEET, ['--day-seconds', '60']);
    await meters.waitFor(/intervals: 6\/24/, 60_000);
    const ing = p.ingests[0]!;
    const res = await fetch(`${ing.apiUrl}/v1/meters/${canary.serial}/read?timeoutMs=15000`, { method: 'POST', headers: { authorization: `Bearer ${API_TOKEN}` } });
    assert.equal(res.status, 200, await res.clone().text());
    const read = (await res.json()) as { response: { kind: string; report: PhasorReport } };
    assert.equal(read.response.kind, 'read');
    assert.ok(canaryReports.some((r) => isDeepStrictEqual(r, read.response.report)), 'the operator read answers one of the canary\'s readings');
    const exit = await meters.wait(60_000);
    assert.equal(exit.code, 0, meters.tail());
    const rows = await p.drain(60_000);
    assert.equal(rows, fleet.count * 24);

    // Control 2: the decrypted rows, read back through SQL, are the canary's readings and hold its forms.
    const back = (await p.sql.query('SELECT * FROM reading WHERE meter_id = $1', [canary.serial])).rows.map(reportFromRow).sort((x, y) => x.ts - y.ts);
    assert.deepEqual(back, canaryReports);
    const viaPg = scanner.scan(Buffer.concat(back.map((r) => canonicalReading(r))));
    assert.equal(viaPg.filter((i) => patterns[i]!.family === 'canonical').length, 24, 'every canonical reading found in the rows read back');
    const json = await postSql(p, 'SELECT * FROM reading WHERE meter_id = $1', [canary.serial]);
    const viaJson = families(scanAll(scanner, [{ where: '/v1/sql', data: json }]).hits);
    assert.ok(viaJson.includes('register-text') && viaJson.includes('float32-text'), `the JSON door's answer holds the registers and floats as text (found ${viaJson.join(', ')})`);

    // Stop everything (whatever the processes write on the way out included), then scan.
    await p.stop();

    // The broker: every payload and topic the tap received; the canary's traffic went through it (encrypted).
    const msgs = p.tap.messages;
    let canaryEnvelopes = 0;
    for (const m of msgs) {
      if (!/^sg\/[^/]+\/(up|resp)$/.test(m.topic)) continue;
      for (const e of decodeUplinkBatch(m.payload).envelopes) if (e.serial === canary.serial) canaryEnvelopes++;
    }
    assert.ok(canaryEnvelopes >= 24 + 2 + 1, `the tap saw the canary's records, handshake and response (${canaryEnvelopes} envelopes)`);
    assert.ok(msgs.some((m) => m.topic.endsWith('/down')) && msgs.some((m) => m.topic.endsWith('/resp')), 'downlinks and responses tapped too');
    const broker = scanAll(scanner, msgs.map((m, i) => ({ where: `broker #${i} ${m.topic}`, data: Buffer.concat([Buffer.from(m.topic), Buffer.from([0]), m.payload]) })));
    assert.deepEqual(broker.hits, [], 'no canary form in broker traffic');

    // The aggregators' logs (debug) and stdout.
    const logs = p.aggregators.map((a) => ({ where: `${a.id} log`, data: Buffer.from(a.proc.out + a.proc.err) }));
    for (const a of p.aggregators) assert.match(a.proc.err, /"msg":"connected to broker"/, `${a.id} logged (debug) to the captured stderr`);
    const aggLogs = scanAll(scanner, logs);
    assert.deepEqual(aggLogs.hits, [], 'no canary form in aggregator logs');
    const logControl = scanAll(scanner, [{ where: 'log control', data: Buffer.from(`${logs[0]!.data.toString()}{"level":20,"energyWh":${one.energyWh},"v1":${one.phases[0].voltageV}}\n`) }]);
    assert.ok(families(logControl.hits).includes('register-text'), 'a log line holding a register would be found');

    // Every file of every storage node of the CascaDB server's KVS.
    const nodeDirs = p.storageNodeDirs;
    const nodeFiles = nodeDirs.flatMap((d) => filesUnder(d));
    const nodes = scanAll(scanner, nodeFiles.map((f) => ({ where: f, data: () => readFileSync(f) })));
    assert.equal(nodeDirs.length, 9);
    assert.ok(nodes.bytes > rows * 100, `the scan covered the stored data (${nodeFiles.length} files, ${nodes.bytes} bytes)`);
    for (const d of nodeDirs) assert.ok(filesUnder(d).some((f) => statSync(f).size > 0), `${d} holds data`);
    assert.deepEqual(nodes.hits, [], 'no canary form in any storage node file');
    // Control 3: a planted file with a row's float columns as the row codec writes them is found, and only it.
    const planted = join(nodeDirs[4]!, 'control-row.bin');
    let plantedHits: Hit[];
    try {
      writeFileSync(planted, Buffer.concat([randomBytes(100), one64.find((x) => x.family === 'f64be')!.bytes, randomBytes(100)]));
      plantedHits = scanAll(scanner, filesUnder(nodeDirs[4]!).map((f) => ({ where: f, data: () => readFileSync(f) }))).hits;
    } finally {
      rmSync(planted, { force: true });
    }
    assert.ok(plantedHits.length > 0 && plantedHits.every((h) => h.where === planted && h.family === 'f64be'), 'the planted control is found, and only it');

    console.log(
      `# confidentiality: canary meter ${canary.serial} (${canary.customerClass}), ${canaryReports.length} readings → ${patterns.length} patterns in ${allFamilies.length} families ` +
        `(${allFamilies.join(', ')}); broker: ${msgs.length} messages, ${broker.bytes} bytes, ${canaryEnvelopes} canary envelopes → ${broker.hits.length} hits; ` +
        `aggregator logs: ${aggLogs.bytes} bytes → ${aggLogs.hits.length} hits; storage nodes: ${nodeFiles.length} files, ${nodes.bytes} bytes → ${nodes.hits.length} hits; ` +
        `controls: plaintext ${inPlain.length} hits, pg rows ${viaPg.length}, JSON door ${viaJson.join('/')}, planted file ${plantedHits.length}; ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );
  });
});
