// Fraud detection building blocks: SOM, correlation, AUC, the per-customer scorer on each theft type, short and
// gappy histories, the fleet-level z-scores.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createFleet, DAY_MS, LOCAL_OFFSET_MS, theftPlan, type TheftType } from '../../src/meter/index.js';
import { auc, bmu, buildModel, evaluate, FEATURES, rankResults, scoreCustomer, simulatedSeries, statScore, trainSom, znorm, type CustomerResult } from '../../src/apps/fraud/index.js';
import { at } from '../../src/apps/fraud/series.js';
import { pearson } from '../../src/apps/fraud/stats.js';

const START = Date.UTC(2026, 8, 1) / DAY_MS;

describe('fraud building blocks', () => {
  test('pearson is 1 for a scaled copy, −1 reversed-sign, 0 against a flat profile, and bounded', () => {
    const a = Float64Array.from({ length: 24 }, (_, i) => Math.sin(i / 3) + 2);
    assert.ok(Math.abs(pearson(a, a.map((v) => 3 * v + 1)) - 1) < 1e-12);
    assert.ok(Math.abs(pearson(a, a.map((v) => -v)) + 1) < 1e-12);
    assert.equal(pearson(a, new Float64Array(24).fill(5)), 0);
    fc.assert(
      fc.property(fc.array(fc.double({ min: -1e3, max: 1e3, noNaN: true }), { minLength: 24, maxLength: 24 }), fc.array(fc.double({ min: -1e3, max: 1e3, noNaN: true }), { minLength: 24, maxLength: 24 }), (x, y) => {
        const r = pearson(x, y);
        return r >= -1 - 1e-9 && r <= 1 + 1e-9;
      }),
    );
  });

  test('AUC: perfect, inverted, ties counted half', () => {
    assert.equal(auc([3, 4], [1, 2]), 1);
    assert.equal(auc([1, 2], [3, 4]), 0);
    assert.equal(auc([1], [1]), 0.5);
    assert.ok(Number.isNaN(auc([], [1])));
  });

  test('the SOM separates morning and evening profiles onto different cells', () => {
    const bump = (mu: number, k: number) => znorm(Float64Array.from({ length: 24 }, (_, h) => Math.exp(-((h - mu) ** 2) / 4) + 0.01 * Math.sin(k * 7 + h)));
    const samples = [...Array.from({ length: 50 }, (_, k) => bump(7, k)), ...Array.from({ length: 50 }, (_, k) => bump(19, k))];
    const som = trainSom(samples, 24, { width: 4, height: 4, seed: 3 });
    const morning = new Set(samples.slice(0, 50).map((s) => bmu(som, s)));
    const evening = new Set(samples.slice(50).map((s) => bmu(som, s)));
    for (const c of morning) assert.ok(!evening.has(c), 'no cell holds both behaviours');
  });

  test('statScore: the strongest deviation plus half the second; negatives ignored', () => {
    assert.equal(statScore([-5, 2, 8, 1]), 9);
    assert.equal(statScore([0, 0]), 0);
  });
});

describe('scoreCustomer on simulated thieves', () => {
  const types: TheftType[] = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6'];
  const fleet = createFleet({ count: 120, seed: 'fraud-unit', aggregators: 1, start: START * DAY_MS - LOCAL_OFFSET_MS, days: 21, theft: { fraction: 0.3, types, variant: 'tampering', days: Array.from({ length: 11 }, (_, i) => 10 + i) } });
  const series = Array.from({ length: fleet.count }, (_, i) => simulatedSeries(fleet, i));
  const model = buildModel(series.slice(0, 60));
  const results: CustomerResult[] = series.map((s) => scoreCustomer(s, model));
  const plan = (i: number) => theftPlan(fleet, fleet.meter(i));

  test('every customer gets all features, finite', () => {
    for (const r of results) {
      assert.equal(r.features.length, FEATURES.length);
      for (const v of r.features) assert.ok(Number.isFinite(v));
      assert.equal(r.usableDays, 21);
    }
  });

  test('flat (h5) and zeroed (h2) days are counted on exactly the theft days', () => {
    for (let i = 0; i < fleet.count; i++) {
      const p = plan(i);
      const r = results[i]!;
      if (p?.type === 'h5') assert.deepEqual(Array.from(r.daily.flat).map((f, d) => (f ? d : -1)).filter((d) => d >= 0), Array.from({ length: 11 }, (_, k) => 10 + k));
      else assert.equal(r.daily.flat.reduce((x, y) => x + y, 0), 0, `meter ${i} has no flat day`);
      if (p?.type === 'h2') for (let d = 10; d < 21; d++) assert.ok(r.daily.zeros[d]! >= 16);
      if (!p) assert.equal(r.daily.zeros.reduce((x, y) => x + y, 0), 0);
    }
  });

  test('h1 (scaled, α drawn per day) shows as a level drop inside the theft window', () => {
    for (let i = 0; i < fleet.count; i++) {
      if (plan(i)?.type !== 'h1') continue;
      const r = results[i]!;
      assert.ok(r.onset !== null && r.onset >= 9, `onset ${r.onset}`);
      assert.ok(r.features[FEATURES.indexOf('levelDrop')]! > 3);
      assert.ok(r.dropPct > 15);
    }
  });

  test('the ranking puts every thief above the clean customers on this clear-cut fleet, and explains', () => {
    const ranking = rankResults(results, model, { from: 'a', to: 'b' });
    const labels = [];
    for (let i = 0; i < fleet.count; i++) {
      const p = plan(i);
      if (p) labels.push({ kind: 'theft' as const, serial: fleet.meter(i).serial, customerId: '', customerClass: 'residential' as const, supplyKv: 0.22, attack: p.type, variant: p.variant, days: [], params: {} });
    }
    const ev = evaluate(ranking, labels);
    const stat = ev.rows.find((r) => r.method === 'stat' && r.group === 'all')!;
    assert.ok(stat.auc > 0.97, `stat AUC ${stat.auc}`);
    const paper = ev.rows.find((r) => r.method === 'paper' && r.group === 'h5')!;
    assert.equal(paper.auc, 1, 'the paper method sees flat days');
    for (const c of ranking.customers.slice(0, 10)) assert.ok(c.reasons.length > 0, `rank ${c.rank} has reasons`);
  });

  test('gaps are not zeros, and a customer with no usable day is reported, not crashed', () => {
    const s = simulatedSeries(fleet, 0);
    for (let t = 0; t < 40; t++) for (let ch = 0; ch < 14; ch++) s.data[at(s, ch, 3, t)] = Number.NaN;
    const r = scoreCustomer(s, model);
    assert.equal(r.usableDays, 20, 'the day with 40 missing intervals is skipped');
    assert.equal(r.daily.zeros.reduce((x, y) => x + y, 0), 0);
    s.data.fill(Number.NaN);
    const empty = scoreCustomer(s, model);
    assert.equal(empty.usableDays, 0);
    assert.match(empty.notes[0]!, /not scored/);
  });
});
