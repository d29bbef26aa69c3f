// Meters to store, end to end, as separate processes on loopback: `securegrid meters` (300 meters, labelled frame
// attacks) → 2 `securegrid aggregator`s → a Mosquitto of the test's own (tapped) → 3 `securegrid ingest` instances
// → one CascaDB server (PostgreSQL protocol + TLS, embedded KVS). One ingest instance is SIGKILLed mid-stream; the
// stored readings must still be the simulator's ground truth exactly — every field of every reading, none lost,
// none twice — each with a Merkle proof to a batch root signed by the metrology key. Then a second simulated day
// through the two survivors, with no fault, where every injected attack must be counted by reason, exactly.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { countTamper, directoryEntry, directoryJsonLine, emptySummary, readLabels, type Fleet, type LabelLog, type TamperSummary } from '../../src/meter/index.js';
import type { IngestStats } from '../../src/ingest/index.js';
import type { PhasorReport } from '../../src/protocol/index.js';
import {
  compareReadings,
  diffReasons,
  expectedReadings,
  fleetOf,
  haveMosquitto,
  intervalIndex,
  Pipeline,
  storedReadings,
  sumReasons,
  until,
  verifyProofs,
  type CliFleet,
  type IngestProc,
  type Reasons,
} from '../helpers/pipeline.js';

const RUN = randomBytes(3).toString('hex');
const AGGS = [`m2s${RUN}-north`, `m2s${RUN}-south`];
const COUNT = 300;
// A fixed seed: which (meter, interval) each attack hits is a pure function of it, so every kind occurs.
const DAY1: CliFleet = { count: COUNT, seed: 'meters-to-store/1', start: '2026-11-02', days: 1, aggregatorIds: AGGS };
const DAY2: CliFleet = { ...DAY1, start: '2026-11-03', days: 0.25 };
const DAY_SECONDS = 20; // one simulated day per 20 s of real time: a stream long enough to kill an instance in
const RETRANSMIT_MS = 5000; // the aggregator's default

let p: Pipeline;
const fleet1: Fleet = fleetOf(DAY1);
const fleet2: Fleet = fleetOf(DAY2);
let expected1: Map<string, PhasorReport>;
let victim: IngestProc;
let survivors: IngestProc[];

function summaryOf(labels: LabelLog): TamperSummary {
  assert.ok(labels.summary, 'the labels end with a tamper summary');
  const recount = emptySummary();
  for (const l of labels.tamper) countTamper(recount, l);
  assert.deepEqual({ ...recount, reportsSent: labels.summary.reportsSent }, labels.summary, 'the summary is the sum of the tamper labels');
  return labels.summary;
}

const reasonsLine = (r: Partial<Reasons> | Record<string, number>) => Object.entries(r).filter(([, v]) => v).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';

describe('meters → aggregators → broker → 3 ingest instances → CascaDB, as processes', { skip: !haveMosquitto && 'no /usr/sbin/mosquitto' }, () => {
  before(async () => {
    const t0 = Date.now();
    p = await Pipeline.start({ ingests: 3, aggregatorIds: AGGS, fleet: DAY1, retransmitMs: RETRANSMIT_MS });
    console.log(`# pipeline up in ${((Date.now() - t0) / 1000).toFixed(1)} s (${JSON.stringify(p.timings)}): mosquitto ${p.mosquitto.url}, CascaDB pg port ${p.pgPort}, ingest ${p.ingests.map((i) => i.id).join(', ')}`);
  });

  after(async () => {
    await p?.close();
  });

  test('the CLI fleet and the test fleet are the same fleet (directory byte for byte)', () => {
    const lines = readFileSync(p.directoryFile, 'utf8').split('\n').filter(Boolean);
    assert.equal(lines.length, COUNT);
    for (let i = 0; i < COUNT; i++) assert.equal(lines[i], directoryJsonLine(directoryEntry(fleet1, fleet1.meter(i))), `directory line ${i}`);
    assert.deepEqual(new Set(Array.from({ length: COUNT }, (_, i) => fleet1.meter(i).aggregatorId)), new Set(AGGS));
  });

  test('an ingest instance SIGKILLed mid-stream: the others carry on, the store is the ground truth exactly (0 lost, 0 duplicated)', { timeout: 150_000 }, async () => {
    const t0 = Date.now();
    const labelsFile = join(p.dir, 'labels-day1.jsonl');
    const meters = p.meters(DAY1, ['--tamper-rate', '0.002', '--labels', labelsFile, '--day-seconds', String(DAY_SECONDS)]);
    // Mid-stream: a quarter of the day sent, readings committed, and the victim — of the instances that have
    // committed some, the one holding the most taken-but-uncommitted readings — dies with work in hand.
    await meters.waitFor(/intervals: 24\/96/, 60_000);
    const total = COUNT * 96;
    const atKill = (await until(
      async () => {
        const s = await Promise.all(p.ingests.map((i) => p.stats(i)));
        return s.reduce((a, x) => a + x.readingsStored, 0) >= 500 && s.some((x) => x.readingsStored > 0 && x.backlog > 0) ? s : undefined;
      },
      60_000,
      'readings stored, and an instance holding uncommitted ones',
      50,
    ))!;
    const vi = atKill.reduce((best, x, i) => (x.readingsStored > 0 && x.backlog > (best < 0 ? -1 : atKill[best]!.backlog) ? i : best), -1);
    victim = p.ingests[vi]!;
    survivors = p.ingests.filter((i) => i !== victim);
    const k: IngestStats = atKill[vi]!; // its last counts: a lower bound of what it had counted when it died
    const out = meters.out;
    const metersRunning = meters.running;
    await victim.proc.stop('SIGKILL');
    const killedAt = Date.now();
    const storedAtKill = atKill.reduce((a, x) => a + x.readingsStored, 0);
    const quarter = Math.max(...[24, 48, 72, 96].filter((q) => out.includes(`intervals: ${q}/96`)));
    assert.equal(victim.proc.exit?.signal, 'SIGKILL');
    assert.ok(metersRunning && quarter < 96, 'the meters were still sending when the instance died');
    assert.ok(storedAtKill < total / 2, `killed in the middle of the stream (${storedAtKill} of ${total} stored)`);
    assert.ok(k.readingsStored > 0 && k.backlog > 0, 'the victim had committed readings and held uncommitted ones');

    const exit = await meters.wait(90_000);
    assert.equal(exit.code, 0, `meters exit code\n${meters.tail()}`);
    assert.match(meters.out, /handshakes 300, retries \d+, failed 0/);
    const drained = await p.drain(90_000);
    const tDone = Date.now();

    // Ground truth: the simulator's reports, minus what the labels say never reached the store.
    const labels = readLabels(labelsFile);
    const sum = summaryOf(labels);
    expected1 = expectedReadings(fleet1, labels);
    assert.equal(expected1.size, total - sum.lost);
    assert.ok(sum.tamper.dropped + sum.tamper.altered > 0 && sum.lost === sum.tamper.dropped + sum.tamper.altered);
    assert.equal(sum.reportsSent, total - sum.lost, 'every genuine report not dropped or altered left its meter');

    const stored = await storedReadings(p.sql, fleet1);
    const cmp = compareReadings(stored, expected1);
    assert.deepEqual(cmp.duplicates, [], 'no reading stored twice');
    assert.deepEqual(cmp.missing.slice(0, 10), [], `${cmp.missing.length} readings lost`);
    assert.deepEqual(cmp.unexpected.slice(0, 10), [], `${cmp.unexpected.length} readings stored that no meter sent (forged, altered, cross-meter)`);
    assert.deepEqual(cmp.different.slice(0, 3), [], `${cmp.different.length} readings differ from what the meter measured`);
    assert.equal(stored.length, expected1.size);
    assert.equal(drained, expected1.size, 'nothing else in the reading table');

    // Every reading is provably what the metrology key signed.
    const proofs = await verifyProofs(p.sql, stored, p.metrologyPublicKey, p.metrologyKeyId);
    assert.equal(proofs.readings, stored.length);
    assert.deepEqual([proofs.orphans.length, proofs.badProofs.length, proofs.badSignatures.length, proofs.wrongKeyId.length], [0, 0, 0, 0]);

    // The victim's committed batches survived it; the survivors took the rest.
    const instanceOf = new Map((await p.sql.query('SELECT batch_id, instance FROM batch')).rows.map((b) => [String(b.batch_id), String(b.instance)]));
    const byInstance = new Map<string, number>();
    for (const s of stored) {
      const inst = instanceOf.get(String(s.row.batch_id))!;
      byInstance.set(inst, (byInstance.get(inst) ?? 0) + 1);
    }
    for (const i of p.ingests) assert.ok((byInstance.get(i.id) ?? 0) > 0, `${i.id} holds stored readings`);

    // Rejections by reason. The victim's counters died with it (k is its last poll, a lower bound), and batches it
    // held unacked were re-published to the survivors: bounds, not equalities, here (day 2 is exact).
    const final = await Promise.all(survivors.map((i) => p.stats(i)));
    const s = sumReasons(final);
    const e = sum.expectedRejects;
    const re = p.tap.republished();
    for (const r of ['malformed', 'unknown-meter', 'handshake', 'range'] as const) assert.equal(s[r] + k.rejected[r], 0, `no ${r} rejections`);
    for (const r of ['auth', 'no-session'] as const) {
      assert.ok(s[r] + k.rejected[r] <= (e[r] ?? 0) + re.envelopes, `${r}: survivors ${s[r]} + victim ≥ ${k.rejected[r]} ≤ injected ${e[r] ?? 0} + re-published envelopes ${re.envelopes}`);
    }
    assert.ok(s.replay + s.duplicate + k.rejected.replay + k.rejected.duplicate <= (e.replay ?? 0) + re.envelopes, 'replay + duplicate ≤ copies injected + copies re-published');
    // Attacks the meters made after the kill reached survivors only, so each was counted there. The meters had not
    // printed the next quarter when the victim died; 12 more intervals (~2 s at this speed) is the margin.
    const safeFrom = quarter + 24 + 12;
    const late = emptySummary();
    for (const l of labels.tamper) if (intervalIndex(fleet1, l.ts) >= safeFrom) countTamper(late, l);
    assert.ok(s.auth >= (late.expectedRejects.auth ?? 0), `auth: survivors ${s.auth} ≥ ${late.expectedRejects.auth ?? 0} injected after the kill`);
    assert.ok(s['no-session'] >= (late.expectedRejects['no-session'] ?? 0), 'no-session: every forgery after the kill counted');
    assert.ok(re.batches > 0, 'the batches the victim held were re-published (and taken by the survivors)');

    console.log(
      `# day 1: ${total} reports, ${COUNT} meters; attacks ${reasonsLine(sum.tamper)} (forged: ${reasonsLine(sum.forged)}); ` +
        `${victim.id} SIGKILLed at ${storedAtKill} stored (meters at quarter ${quarter}/96, its backlog ${k.backlog}), ${((killedAt - t0) / 1000).toFixed(1)} s in; ` +
        `drained ${((tDone - killedAt) / 1000).toFixed(1)} s after; stored ${stored.length} = truth ${expected1.size} ` +
        `(by instance: ${[...byInstance].map(([i, n]) => `${i} ${n}`).join(', ')}); ${proofs.batches} batches, every proof and signature verified; ` +
        `${re.batches} batches (${re.envelopes} envelopes) re-published; rejections survivors {${reasonsLine(s)}}, victim at kill {${reasonsLine(k.rejected)}}, ` +
        `injected {${reasonsLine(e)}}, after the kill {${reasonsLine(late.expectedRejects)}}`,
    );
  });

  test('a second day through the two survivors: every replayed, forged, cross-meter and altered frame rejected and counted by reason, exactly', { timeout: 90_000 }, async (t) => {
    assert.ok(survivors?.length === 2 && expected1, 'runs after the kill test');
    const before = await Promise.all(survivors.map((i) => p.stats(i)));
    const rowsBefore = await p.storedCount();
    const mark = Date.now();
    const labelsFile = join(p.dir, 'labels-day2.jsonl');
    const meters = p.meters(DAY2, ['--tamper-rate', '0.01', '--labels', labelsFile, '--day-seconds', String(DAY_SECONDS)]);
    const exit = await meters.wait(60_000);
    assert.equal(exit.code, 0, `meters exit code\n${meters.tail()}`);
    const rowsAfter = await p.drain(60_000);
    const afterStats = await Promise.all(survivors.map((i) => p.stats(i)));

    const labels = readLabels(labelsFile);
    const sum = summaryOf(labels);
    for (const [kind, n] of Object.entries(sum.tamper)) assert.ok(n > 0, `the simulator injected ${kind} frames`);
    for (const [kind, n] of Object.entries(sum.forged)) assert.ok(n > 0, `the simulator injected ${kind} forgeries`);

    const expected2 = expectedReadings(fleet2, labels);
    const stored = await storedReadings(p.sql, fleet2);
    const cmp = compareReadings(stored, expected2);
    assert.deepEqual([cmp.duplicates.length, cmp.missing.length, cmp.unexpected.length, cmp.different.length], [0, 0, 0, 0], JSON.stringify(cmp).slice(0, 2000));
    assert.equal(stored.length, expected2.size);
    assert.equal(rowsAfter, expected1.size + expected2.size, 'day 1 untouched, day 2 added');
    const proofs = await verifyProofs(p.sql, stored, p.metrologyPublicKey, p.metrologyKeyId);
    assert.deepEqual([proofs.readings, proofs.orphans.length, proofs.badProofs.length, proofs.badSignatures.length], [stored.length, 0, 0, 0]);

    const d = diffReasons(sumReasons(afterStats), sumReasons(before));
    const storedDelta = afterStats.reduce((a, x) => a + x.readingsStored, 0) - before.reduce((a, x) => a + x.readingsStored, 0);
    const rowsDelta = rowsAfter - rowsBefore;
    const e = sum.expectedRejects;
    const re = p.tap.republished(mark);
    // A second copy of a record is caught by the window of the instance that saw the first (replay), else by the
    // store's dedupe (duplicate) — or, racing the first copy's commit on another instance, by neither (CascaDB
    // counts both concurrent ON CONFLICT DO NOTHING inserts as inserted; see the todo below): one of the three.
    const doubleCounted = storedDelta - rowsDelta;
    for (const r of ['malformed', 'unknown-meter', 'handshake', 'range'] as const) assert.equal(d[r], 0, `no ${r} rejections`);
    if (re.batches === 0) {
      assert.equal(d.auth, e.auth ?? 0, 'auth = altered + random forgeries + cross-meter forgeries');
      assert.equal(d['no-session'], e['no-session'] ?? 0, 'no-session = forgeries under an unknown serial and session');
      assert.equal(d.replay + d.duplicate + doubleCounted, e.replay ?? 0, 'replay + duplicate (+ double-counted) = duplicated + replayed copies');
    } else {
      // A batch went out twice (a commit slower than the retransmit timeout): its envelopes may be counted twice.
      console.log(`# day 2: ${re.batches} batches re-published: bounds instead of equalities`);
      assert.ok(d.auth >= (e.auth ?? 0) && d.auth <= (e.auth ?? 0) + re.envelopes);
      assert.ok(d['no-session'] >= (e['no-session'] ?? 0) && d['no-session'] <= (e['no-session'] ?? 0) + re.envelopes);
      assert.ok(d.replay + d.duplicate + doubleCounted >= (e.replay ?? 0) && d.replay + d.duplicate + doubleCounted <= (e.replay ?? 0) + re.envelopes);
    }
    console.log(
      `# day 2: ${fleet2.count * 24} reports; attacks ${reasonsLine(sum.tamper)} (forged: ${reasonsLine(sum.forged)}); ${((Date.now() - mark) / 1000).toFixed(1)} s; ` +
        `stored ${stored.length} = truth; rejected {${reasonsLine(d)}} vs injected {${reasonsLine(e)}}; readings counted stored ${storedDelta}, rows added ${rowsDelta}`,
    );

    await t.test('every stored reading is counted stored once (Σ readingsStored = rows added)', { todo: 'CascaDB: two concurrent transactions INSERT … ON CONFLICT DO NOTHING the same key and both count it inserted' }, () => {
      assert.equal(storedDelta, rowsDelta);
    });
  });
});
