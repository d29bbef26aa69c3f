import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { roundReport, type PhasorReport } from '../../src/protocol/index.js';
import {
  LabelLog,
  LabelWriter,
  Prng,
  ReportModel,
  TamperPlan,
  VirtualClock,
  applyTheft,
  createFleet,
  dayEnergiesWh,
  dayOfIso,
  directoryEntry,
  directoryJsonLine,
  expectation,
  flipCiphertextBit,
  generateReports,
  intervalEnergyWh,
  isoDate,
  loadFleet,
  localDay,
  parseDirectoryLine,
  readLabels,
  saveFleet,
  slotOf,
  theftDay,
  theftLabel,
  theftPlan,
  tsOf,
  weekday,
  writeTheftLabels,
  LOCAL_OFFSET_MS,
  type Fleet,
  type MeterSpec,
} from '../../src/meter/index.js';

const DAY = 86_400_000;
/** Local midnight of a yyyy-mm-dd date, as epoch ms. */
const localMidnight = (date: string): number => dayOfIso(date) * DAY - LOCAL_OFFSET_MS;

function fleet(opts: Partial<Parameters<typeof createFleet>[0]> = {}): Fleet {
  return createFleet({ count: 200, seed: 'model-test', aggregators: 2, start: localMidnight('2026-11-02'), days: 2, ...opts });
}

/** Energy of local days [from, from + n) for meter m, Wh. */
function energyOver(m: MeterSpec, fromDay: number, n: number): number {
  let s = 0;
  for (let d = fromDay; d < fromDay + n; d++) for (const x of dayEnergiesWh(m, d)) s += x;
  return s;
}

describe('time', () => {
  test('a local day has 96 slots, ending at local midnight', () => {
    const day = dayOfIso('2026-11-02');
    assert.equal(weekday(day), 1); // a Monday
    assert.equal(tsOf(day, 0), localMidnight('2026-11-02') + 900_000);
    assert.equal(localDay(tsOf(day, 95)), day);
    assert.equal(slotOf(tsOf(day, 95)), 95);
    assert.equal(localDay(tsOf(day, 95) + 900_000), day + 1);
    assert.equal(isoDate(day), '2026-11-02');
  });
});

describe('fleet', () => {
  test('a million meters are created at once and derived on demand', () => {
    const t0 = performance.now();
    const f = createFleet({ count: 1_000_000, seed: 7, aggregators: 8, start: Date.UTC(2026, 10, 1, 3), days: 1 });
    const m = f.meter(999_999);
    assert.ok(performance.now() - t0 < 1000);
    assert.equal(m.serial, 10_999_999);
    assert.equal(m.aggregatorId, 'agg-008');
    assert.equal(f.bySerial(10_999_999), m);
    assert.equal(f.bySerial(11_000_000), undefined);
    assert.equal(f.bySerial(f.foreignSerial(3)), undefined);
  });

  test('classes, supplies and tariffs follow the fractions; ids are unique', () => {
    const f = createFleet({ count: 20_000, seed: 's', aggregators: ['north', 'south'], start: 0, days: 1, largeCustomerFraction: 0.05, commercialFraction: 0.2 });
    const n = { residential: 0, commercial: 0, industrial: 0 };
    const customers = new Set<string>();
    for (const m of f.meters()) {
      n[m.customerClass]++;
      customers.add(m.customerId);
      if (m.customerClass === 'industrial') {
        assert.ok(m.supplyKv === 13.8 || m.supplyKv === 69, `industrial supply ${m.supplyKv}`);
        assert.match(m.tariff, m.supplyKv === 69 ? /^A3/ : /^A4/);
      } else {
        assert.equal(m.supplyKv, 0.22);
        assert.match(m.tariff, m.customerClass === 'residential' ? /^B1/ : /^B3/);
      }
      assert.ok(m.aggregatorId === 'north' || m.aggregatorId === 'south');
      assert.equal(m.suite, 'x25519-ed25519-aes256gcm');
    }
    assert.equal(customers.size, 20_000);
    assert.ok(Math.abs(n.industrial / 20_000 - 0.05) < 0.008, `industrial ${n.industrial}`);
    assert.ok(Math.abs(n.commercial / 20_000 - 0.95 * 0.2) < 0.015, `commercial ${n.commercial}`);
    assert.equal(f.meter(0).aggregatorId, 'north');
    assert.equal(f.meter(19_999).aggregatorId, 'south');
  });

  test('metersPerAggregator assigns consecutive blocks', () => {
    const f = createFleet({ count: 10, seed: 1, aggregators: 3, metersPerAggregator: 4, start: 0, days: 1 });
    assert.deepEqual([...f.meters()].map((m) => m.aggregatorId), ['agg-001', 'agg-001', 'agg-001', 'agg-001', 'agg-002', 'agg-002', 'agg-002', 'agg-002', 'agg-003', 'agg-003']);
  });

  test('identities derive from the seed: the same seed gives the same key, another seed another key', () => {
    const a = fleet();
    const b = fleet();
    const c = fleet({ seed: 'other' });
    const ka = a.identity(a.meter(5)).publicKey;
    assert.deepEqual(b.identity(b.meter(5)).publicKey, ka);
    assert.notDeepEqual(c.identity(c.meter(5)).publicKey, ka);
    assert.notDeepEqual(a.identity(a.meter(6)).publicKey, ka);
  });

  test('suite mix: P-256 meters get P-256 identities', () => {
    const f = fleet({ suiteMix: { 'p256-aes128gcm': 1, 'x25519-ed25519-aes256gcm': 1 } });
    const suites = new Set([...f.meters()].map((m) => m.suite));
    assert.deepEqual([...suites].sort(), ['p256-aes128gcm', 'x25519-ed25519-aes256gcm']);
    const p = [...f.meters()].find((m) => m.suite === 'p256-aes128gcm')!;
    assert.equal(f.identity(p).privateKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  });

  test('the directory line round-trips and carries the meter public key', () => {
    const f = fleet();
    const e = directoryEntry(f, f.meter(3));
    const back = parseDirectoryLine(directoryJsonLine(e));
    assert.deepEqual(back, e);
    assert.deepEqual(back.meter.public_key, f.identity(f.meter(3)).publicKey);
    assert.equal(back.meter.meter_id, f.meter(3).serial);
    assert.equal(back.customer.customer_id, back.meter.customer_id);
  });

  test('saveFleet writes 0600 and loadFleet reproduces reports and keys', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sg-fleet-'));
    try {
      const f = fleet({ theft: { fraction: 0.3 } });
      const file = path.join(dir, 'fleet.json');
      saveFleet(f, file);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const g = loadFleet(file);
      assert.equal(g.start, f.start);
      assert.deepEqual(g.identity(g.meter(9)).publicKey, f.identity(f.meter(9)).publicKey);
      assert.deepEqual([...generateReports(g, g.start + 900_000, g.start + 3 * 900_000)], [...generateReports(f, f.start + 900_000, f.start + 3 * 900_000)]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('load model', () => {
  test('same seed → same reports; another seed → other reports', () => {
    const a = [...generateReports(fleet(), undefined, fleet().start + 8 * 900_000)];
    const b = [...generateReports(fleet(), undefined, fleet().start + 8 * 900_000)];
    const c = [...generateReports(fleet({ seed: 'x' }), undefined, fleet().start + 8 * 900_000)];
    assert.equal(a.length, 200 * 8);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a.map((r) => r.activePowerW), c.map((r) => r.activePowerW));
  });

  test('interval energy is a pure function of (seed, serial, ts)', () => {
    const f = fleet();
    const m = f.meter(17);
    const ts = f.start + 37 * 900_000;
    const day = localDay(ts);
    assert.equal(intervalEnergyWh(m, ts), dayEnergiesWh(m, day)[slotOf(ts)]);
    assert.equal(intervalEnergyWh(fleet().meter(17), ts), intervalEnergyWh(m, ts));
  });

  test('monthly consumption per class is in the plausible range, summer and winter', () => {
    const f = createFleet({ count: 300, seed: 'mag', aggregators: 1, start: 0, days: 1, largeCustomerFraction: 0.1, commercialFraction: 0.3 });
    const range = { residential: [150, 400], commercial: [2_000, 20_000], industrial: [50_000, 500_000] } as const;
    const seen = { residential: 0, commercial: 0, industrial: 0 };
    for (const month of ['2026-01-01', '2026-07-01']) {
      for (const m of f.meters()) {
        const kwh = energyOver(m, dayOfIso(month), 31) / 1000;
        const [lo, hi] = range[m.customerClass];
        assert.ok(kwh >= lo && kwh <= hi, `${m.customerClass} ${m.serial} ${month}: ${kwh.toFixed(0)} kWh`);
        seen[m.customerClass]++;
      }
    }
    assert.ok(seen.residential > 100 && seen.commercial > 50 && seen.industrial > 20);
  });

  test('weekdays and weekends differ as each class lives', () => {
    const f = createFleet({ count: 600, seed: 'week', aggregators: 1, start: 0, days: 1, commercialFraction: 0.5 });
    const mon = dayOfIso('2026-11-02');
    const sun = dayOfIso('2026-11-08');
    let comWeek = 0;
    let comSun = 0;
    let resWeekNoon = 0;
    let resSunNoon = 0;
    for (const m of f.meters()) {
      const a = dayEnergiesWh(m, mon);
      const b = dayEnergiesWh(m, sun);
      const sum = (x: Float64Array, s0: number, s1: number): number => x.slice(s0, s1).reduce((p, v) => p + v, 0);
      if (m.customerClass === 'commercial') {
        comWeek += sum(a, 0, 96);
        comSun += sum(b, 0, 96);
      } else if (m.customerClass === 'residential') {
        resWeekNoon += sum(a, 40, 56); // 10–14 h
        resSunNoon += sum(b, 40, 56);
      }
    }
    assert.ok(comWeek > 2.5 * comSun, `commercial weekday ${comWeek} vs sunday ${comSun}`);
    assert.ok(resSunNoon > 1.3 * resWeekNoon, `residential sunday midday ${resSunNoon} vs weekday ${resWeekNoon}`);
  });

  test('summer (Brazil: December–February) uses more than winter, most at AC hours', () => {
    const f = createFleet({ count: 400, seed: 'season', aggregators: 1, start: 0, days: 1, largeCustomerFraction: 0, commercialFraction: 0 });
    const jan = dayOfIso('2026-01-13'); // a Tuesday
    const jul = dayOfIso('2026-07-14'); // a Tuesday
    let summer = 0;
    let winter = 0;
    let summerNight = 0;
    let winterNight = 0;
    for (const m of f.meters()) {
      if (m.region !== 'sudeste' && m.region !== 'centro-oeste') continue;
      for (let k = 0; k < 7; k++) {
        const a = dayEnergiesWh(m, jan + k);
        const b = dayEnergiesWh(m, jul + k);
        for (let s = 0; s < 96; s++) {
          summer += a[s]!;
          winter += b[s]!;
          if (s >= 88 || s < 4) {
            summerNight += a[s]!; // 22–01 h, bedroom AC
            winterNight += b[s]!;
          }
        }
      }
    }
    assert.ok(summer > 1.15 * winter, `summer ${summer} winter ${winter}`);
    assert.ok(summerNight / summer > (1.2 * winterNight) / winter, 'AC shifts load into the night');
  });
});

describe('phasor model', () => {
  const f = createFleet({ count: 120, seed: 'phasor', aggregators: 1, start: localMidnight('2026-12-14'), days: 1, largeCustomerFraction: 0.15, commercialFraction: 0.3 });
  const reports = [...generateReports(f)];
  const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(1, Math.abs(b));

  test('reports are float32-exact and physically consistent', () => {
    assert.equal(reports.length, 120 * 96);
    for (const r of reports) {
      assert.deepEqual(roundReport(r), r);
      let p = 0;
      let q = 0;
      for (const ph of r.phases) {
        p += ph.voltageV * ph.currentA * Math.cos((ph.angleDeg * Math.PI) / 180);
        q += ph.voltageV * ph.currentA * Math.sin((ph.angleDeg * Math.PI) / 180);
      }
      assert.ok(rel(p, r.activePowerW) < 1e-5, `Σ V·I·cos φ ${p} vs P ${r.activePowerW}`);
      assert.ok(rel(q, r.reactivePowerVar) < 1e-5, `Σ V·I·sin φ ${q} vs Q ${r.reactivePowerVar}`);
      const s = Math.hypot(r.activePowerW, r.reactivePowerVar);
      assert.ok(Math.abs(r.powerFactor - r.activePowerW / s) < 1e-6);
      assert.equal(r.demandW, r.activePowerW);
      assert.ok(r.frequencyHz >= 59.95 && r.frequencyHz <= 60.05);
      assert.ok(r.thdPercent >= 2 && r.thdPercent <= 8);
      assert.equal(r.status, 0);
    }
  });

  test('power factor, voltage and current per class and supply', () => {
    const pf = { residential: [0.92, 0.98], commercial: [0.88, 0.96], industrial: [0.85, 0.95] } as const;
    for (const r of reports) {
      const m = f.bySerial(r.serial)!;
      const [lo, hi] = pf[m.customerClass];
      for (const ph of r.phases) {
        const c = Math.cos((ph.angleDeg * Math.PI) / 180);
        assert.ok(c > lo - 0.02 && c < hi + 0.02, `${m.customerClass} phase pf ${c}`);
        const vn = m.supplyKv === 0.22 ? 127 : (m.supplyKv * 1000) / Math.sqrt(3);
        assert.ok(Math.abs(ph.voltageV / vn - 1) < 0.07, `voltage ${ph.voltageV} for ${m.supplyKv} kV`);
      }
      assert.ok(r.powerFactor >= lo - 0.01 && r.powerFactor <= hi + 0.01);
      const imax = Math.max(...r.phases.map((p) => p.currentA));
      if (m.customerClass === 'residential') assert.ok(imax < 60, `residential current ${imax} A`);
    }
  });

  test('the register is monotonic and accumulates the reported energy', () => {
    const by = new Map<number, PhasorReport[]>();
    for (const r of reports) (by.get(r.serial) ?? by.set(r.serial, []).get(r.serial)!).push(r);
    for (const [serial, rs] of by) {
      const m = f.bySerial(serial)!;
      let prev = m.registerStartWh;
      let energy = 0;
      for (const r of rs) {
        assert.ok(Number.isInteger(r.energyWh) && r.energyWh >= prev);
        assert.ok(Math.abs(r.energyWh - prev - r.activePowerW / 4) <= 1.001, `register step ${r.energyWh - prev} vs P/4 ${r.activePowerW / 4}`);
        energy += r.activePowerW / 4;
        prev = r.energyWh;
      }
      assert.ok(Math.abs(prev - m.registerStartWh - energy) <= 1.01);
    }
  });

  test('generateReports from the middle of the window continues the register', () => {
    const mid = f.start + 50 * 900_000;
    const tail = [...generateReports(f, mid)];
    assert.deepEqual(tail, reports.slice(49 * 120));
  });

  test('frequency is the grid’s: equal for every meter at one ts', () => {
    const at = reports.filter((r) => r.ts === f.start + 900_000 * 10);
    assert.equal(new Set(at.map((r) => r.frequencyHz)).size, 1);
  });
});

describe('theft', () => {
  const x = Float64Array.from({ length: 96 }, (_, t) => 100 + 50 * Math.sin(t / 7) + t);
  const mean = x.reduce((a, b) => a + b, 0) / 96;

  test('h1 = α·x with one α in [0.1, 0.8)', () => {
    const { values, params } = applyTheft('h1', x, new Prng(1));
    const alpha = new Prng(1).uniform(0.1, 0.8);
    assert.equal(params.alpha, alpha);
    assert.ok(alpha >= 0.1 && alpha < 0.8);
    for (let t = 0; t < 96; t++) assert.equal(values[t], alpha * x[t]!);
  });

  test('h2 zeroes one window of at least 16 intervals, leaves the rest', () => {
    for (let seed = 0; seed < 50; seed++) {
      const { values, params } = applyTheft('h2', x, new Prng(seed));
      const w = params.window!;
      assert.ok(w.length >= 16 && w.start >= 0 && w.start + w.length <= 96);
      for (let t = 0; t < 96; t++) assert.equal(values[t], t >= w.start && t < w.start + w.length ? 0 : x[t]);
    }
  });

  test('h3 = γ_t·x_t and h4 = γ_t·mean(x) with γ_t in [0.1, 0.8)', () => {
    const h3 = applyTheft('h3', x, new Prng(3));
    const h4 = applyTheft('h4', x, new Prng(3));
    assert.deepEqual(h3.params.gamma, h4.params.gamma);
    const g = h3.params.gamma!;
    assert.equal(new Set(g).size, 96);
    for (let t = 0; t < 96; t++) {
      assert.ok(g[t]! >= 0.1 && g[t]! < 0.8);
      assert.equal(h3.values[t], g[t]! * x[t]!);
      assert.equal(h4.values[t], g[t]! * mean);
    }
  });

  test('h5 = mean(x); h6 = x reversed', () => {
    const h5 = applyTheft('h5', x, new Prng(5)).values;
    const h6 = applyTheft('h6', x, new Prng(5)).values;
    for (let t = 0; t < 96; t++) {
      assert.equal(h5[t], mean);
      assert.equal(h6[t], x[95 - t]);
    }
  });

  test('a stealing meter reports the transformed day; its register follows the report', () => {
    const f = fleet({ count: 300, days: 3, theft: { fraction: 0.5 } });
    const model = new ReportModel(f);
    let checked = 0;
    for (let i = 0; i < f.count && checked < 40; i++) {
      const plan = model.plan(i);
      if (!plan) continue;
      const m = f.meter(i);
      const day = plan.days[0]!;
      const truth = dayEnergiesWh(m, day);
      const stolen = theftDay(m, plan, day, truth).values;
      for (let s = 0; s < 96; s++) {
        const e = model.energies(i, tsOf(day, s));
        assert.equal(e.truth, truth[s]);
        assert.equal(e.reported, stolen[s]);
      }
      checked++;
    }
    assert.ok(checked >= 30);
    const reports = [...generateReports(f)];
    const last = new Map<number, number>();
    for (const r of reports) last.set(r.serial, r.energyWh);
    for (let i = 0; i < f.count; i++) {
      const m = f.meter(i);
      let rep = 0;
      for (let ts = f.start + 900_000; ts <= f.end; ts += 900_000) rep += model.energies(i, ts).reported;
      assert.ok(Math.abs(last.get(m.serial)! - m.registerStartWh - rep) <= 1.01, `meter ${i} register`);
    }
  });

  test('tampering scales every phase; bypass cuts whole phases; both keep voltage', () => {
    const f = fleet({ count: 400, days: 2, theft: { fraction: 1, types: ['h1'] } });
    const model = new ReportModel(f);
    const honestFleet = fleet({ count: 400, days: 2 });
    const honest = [...generateReports(honestFleet)];
    const stolen = [...generateReports(f)];
    let tampering = 0;
    let bypass = 0;
    for (let k = 0; k < stolen.length; k++) {
      const a = honest[k]!;
      const b = stolen[k]!;
      const plan = model.plan(f.bySerial(b.serial)!.index)!;
      if (!plan.days.includes(localDay(b.ts))) continue;
      const ratio = b.activePowerW / a.activePowerW;
      assert.ok(ratio >= 0.099 && ratio < 0.801, `h1 ratio ${ratio}`);
      for (let j = 0; j < 3; j++) assert.equal(b.phases[j]!.voltageV, a.phases[j]!.voltageV);
      if (plan.variant === 'tampering') {
        tampering++;
        for (let j = 0; j < 3; j++) assert.ok(Math.abs(b.phases[j]!.currentA / a.phases[j]!.currentA - ratio) < 1e-5);
        assert.ok(Math.abs(b.powerFactor - a.powerFactor) < 1e-6);
      } else {
        bypass++;
        // Phase A keeps its full current until the jumper has taken C and B.
        const [ia, ib, ic] = b.phases.map((p, j) => p.currentA / a.phases[j]!.currentA);
        assert.ok(ic! <= ib! + 1e-6 && ib! <= ia! + 1e-6, `bypass order ${ia} ${ib} ${ic}`);
      }
    }
    assert.ok(tampering > 100 && bypass > 100);
  });

  test('h4–h6 are always tampering; the theft plan is deterministic', () => {
    const f = fleet({ count: 500, theft: { fraction: 1, types: ['h4', 'h5', 'h6'], variant: 'bypass' } });
    for (const m of f.meters()) {
      const p = theftPlan(f, m)!;
      assert.equal(p.variant, 'tampering');
      assert.deepEqual(theftPlan(fleet({ count: 500, theft: { fraction: 1, types: ['h4', 'h5', 'h6'], variant: 'bypass' } }), m), p);
    }
  });

  test('the fraction of thieves and the explicit days are honoured', () => {
    const f = createFleet({ count: 5000, seed: 'frac', aggregators: 1, start: localMidnight('2026-11-01'), days: 10, theft: { fraction: 0.1, days: [2, 3, 99] } });
    const log = new LabelLog();
    const n = writeTheftLabels(f, log);
    assert.equal(n, log.theft.length);
    assert.ok(Math.abs(n / 5000 - 0.1) < 0.015, `${n} thieves`);
    for (const l of log.theft) assert.deepEqual(l.days, ['2026-11-03', '2026-11-04']);
  });
});

describe('labels', () => {
  test('theft labels carry attack, variant, days and h1/h2 parameters; file is JSONL 0600', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sg-labels-'));
    try {
      const f = fleet({ count: 300, days: 4, theft: { fraction: 0.2, types: ['h1', 'h2'] } });
      const file = path.join(dir, 'labels.jsonl');
      const w = new LabelWriter(file);
      const n = writeTheftLabels(f, w);
      w.close();
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const back = readLabels(file);
      assert.equal(back.theft.length, n);
      assert.ok(n > 30);
      for (const l of back.theft) {
        const m = f.bySerial(l.serial)!;
        assert.deepEqual(l, theftLabel(f, m.index));
        const plan = theftPlan(f, m)!;
        assert.deepEqual(l.days, plan.days.map(isoDate));
        for (const day of plan.days) {
          const p = theftDay(m, plan, day, dayEnergiesWh(m, day)).params!;
          if (l.attack === 'h1') assert.equal(l.params[isoDate(day)]!.alpha, p.alpha);
          else assert.deepEqual(l.params[isoDate(day)]!.window, p.window);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('tamper plan', () => {
  test('rate and kinds as asked; pure in (serial, ts)', () => {
    const plan = new TamperPlan(42, { rate: 0.05 });
    const again = new TamperPlan(42, { rate: 0.05 });
    const kinds = new Map<string, number>();
    let hits = 0;
    for (let s = 0; s < 200; s++) {
      for (let k = 0; k < 200; k++) {
        const e = plan.at(10_000_000 + s, k * 900_000);
        assert.deepEqual(again.at(10_000_000 + s, k * 900_000), e);
        if (!e) continue;
        hits++;
        const key = e.forgery ? `forged/${e.forgery}` : e.event;
        kinds.set(key, (kinds.get(key) ?? 0) + 1);
      }
    }
    assert.ok(Math.abs(hits / 40_000 - 0.05) < 0.006, `${hits} hits`);
    assert.deepEqual([...kinds.keys()].sort(), ['altered', 'dropped', 'duplicated', 'forged/cross-meter', 'forged/random', 'forged/unknown-serial', 'replayed']);
    const only = new TamperPlan(42, { rate: 1, kinds: { dropped: 1 } });
    assert.equal(only.at(1, 900_000)?.event, 'dropped');
  });

  test('expectations: what a correct ingest answers and whether the reading is stored', () => {
    assert.deepEqual(expectation({ event: 'dropped' }), { expect: null, stored: false });
    assert.deepEqual(expectation({ event: 'altered' }), { expect: 'auth', stored: false });
    assert.deepEqual(expectation({ event: 'duplicated' }), { expect: 'replay', stored: true });
    assert.deepEqual(expectation({ event: 'replayed' }), { expect: 'replay', stored: true });
    assert.deepEqual(expectation({ event: 'forged', forgery: 'unknown-serial' }), { expect: 'no-session', stored: true });
    assert.deepEqual(expectation({ event: 'forged', forgery: 'cross-meter' }), { expect: 'auth', stored: true });
  });

  test('an altered record differs from the original in exactly one ciphertext bit', () => {
    const rec = Buffer.alloc(5 + 258 + 12, 0xa5);
    for (let seed = 0; seed < 100; seed++) {
      const alt = flipCiphertextBit(rec, new Prng(seed));
      let bits = 0;
      for (let i = 0; i < rec.length; i++) {
        const d = rec[i]! ^ alt[i]!;
        if (d !== 0) {
          assert.ok(i >= 5 && i < rec.length - 12, `flipped byte ${i}`);
          bits += d.toString(2).split('1').length - 1;
        }
      }
      assert.equal(bits, 1);
    }
  });
});

describe('virtual clock', () => {
  test('as fast as possible: every tick, no waiting', async () => {
    const c = new VirtualClock({ first: 900_000, last: 900_000 * 96, wait: () => assert.fail('must not wait') });
    let n = 0;
    for (let ts = await c.next(); ts !== undefined; ts = await c.next()) n++;
    assert.equal(n, 96);
    assert.equal(c.ticks, 96);
  });

  test('at a speed: waits until the wall clock catches up', async () => {
    let now = 1000;
    const waits: number[] = [];
    const c = new VirtualClock({ first: 900_000, last: 900_000 * 4, speed: 900, now: () => now, wait: async (ms) => (waits.push(ms), (now += ms)) });
    const ticks: number[] = [];
    for (let ts = await c.next(); ts !== undefined; ts = await c.next()) ticks.push(ts);
    assert.deepEqual(ticks, [900_000, 1_800_000, 2_700_000, 3_600_000]);
    assert.deepEqual(waits, [1000, 1000, 1000]); // 15 simulated minutes = 1 s at speed 900
  });
});
