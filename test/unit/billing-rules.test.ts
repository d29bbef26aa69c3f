// The billing rules on their own: the memoizing verifier agrees with verifyInclusion, tariff windows (tarifa
// branca: working days, weekends, holidays), the estimation rules, exact amounts, periods, tariff validation.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { generateMetrologyKey, leafHash, merkleTree, verifyInclusion } from '../../src/crypto/index.js';
import { encodeDayBlob, signBatch, type DayReading } from '../../src/ingest/index.js';
import { canonicalReading, type PhasorReport } from '../../src/protocol/index.js';
import { BatchVerifier, billCustomer, billCustomerJson, BillingError, compileTariff, parsePeriod, parseTariffs, reportHash, reportSerialization, type BillingTask, type TariffBook } from '../../src/apps/billing/index.js';
import { energyCents, windowOf } from '../../src/apps/billing/tariff.js';

const STEP = 900_000;
const key = generateMetrologyKey();

const BOOK: TariffBook = parseTariffs({
  format: 'securegrid-tariffs/1',
  currency: 'BRL',
  holidays: ['2024-03-29'],
  tariffs: {
    flat: { kind: 'flat', pricePerKwh: 0.8, charges: [{ name: 'fixed', amount: 30, per: 'month' }], taxes: [{ name: 'ICMS', rate: 0.18 }] },
    branca: {
      kind: 'time-of-use',
      windows: [
        { name: 'peak', pricePerKwh: 1.5, weekdayHours: ['18:00-21:00'] },
        { name: 'intermediate', pricePerKwh: 1, weekdayHours: ['17:00-18:00', '21:00-22:00'] },
        { name: 'off-peak', pricePerKwh: 0.5 },
      ],
    },
  },
});

function report(serial: number, ts: number, energyWh: number, demandW: number): PhasorReport {
  const ph = { voltageV: 127, currentA: 1, angleDeg: 10 };
  return { serial, ts, phases: [ph, ph, ph], activePowerW: demandW, reactivePowerVar: 10, powerFactor: 0.95, thdPercent: 4, frequencyHz: 60, demandW, energyWh, status: 0 };
}

/** A meter's readings at slot indices `present` of a period, 100 Wh per interval, signed in one batch. */
function task(period: ReturnType<typeof parsePeriod>, present: (k: number) => boolean, tariff = 'flat'): BillingTask {
  const meter = 42;
  const readings: Array<{ report: PhasorReport; counter: number }> = [];
  for (let k = 0; k <= period.slots; k++) readings.push({ report: report(meter, period.fromMs + k * STEP, 1_000_000 + 100 * k, 400), counter: k });
  const b = signBatch(readings, { batchId: 'b-1', source: 'ingest', instance: 't', key });
  const day: DayReading[] = [];
  readings.forEach((r, i) => {
    if (!present(i)) return;
    const tree = merkleTree(readings.map((x) => leafHash(canonicalReading(x.report))));
    day.push({ report: r.report, canonical: canonicalReading(r.report), batch: { batchId: b.batchId, keyId: b.keyId, count: readings.length, root: b.root, signature: b.signature }, leaf: i, proof: tree.proof(i) });
  });
  return { customer: { id: 'C1', class: 'residential', tariff }, meters: [meter], period, source: 'sql', sets: [encodeDayBlob(meter, '2024-03-04', day)], malformed: [] };
}

describe('billing rules', () => {
  test('the memoizing verifier gives verifyInclusion’s answer for every leaf, in any order, with corruption', () => {
    fc.assert(
      // memoSlots: the default table, and a tiny one where node slots keep evicting each other.
      fc.property(fc.integer({ min: 1, max: 300 }), fc.array(fc.tuple(fc.nat(), fc.boolean(), fc.nat()), { minLength: 1, maxLength: 60 }), fc.constantFrom(undefined, 2, 16), (n, picks, memoSlots) => {
        const leaves = Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`leaf-${n}-${i}`)));
        const tree = merkleTree(leaves);
        const signature = key.signBatch({ batchId: `fc-${n}`, count: n, root: tree.root });
        const v = new BatchVerifier(key.publicKey, memoSlots ? { memoSlots } : {});
        const s = v.batch({ batchId: `fc-${n}`, keyId: key.keyId, count: n, root: tree.root, signature });
        assert.equal(s.verdict, 'ok');
        for (const [pick, corrupt, where] of picks) {
          const i = pick % n;
          const proof = tree.proof(i).map((p) => Buffer.from(p));
          const leaf = Buffer.from(leaves[i]!);
          if (corrupt) {
            if (proof.length > 0 && where % 2 === 0) proof[where % proof.length]![where % 32]! ^= 1;
            else leaf[where % 32]! ^= 1;
          }
          const got = v.includes(s, i, leaf, Buffer.concat(proof), 0, proof.length);
          const genuine = leaf.equals(leaves[i]!);
          // A wrong leaf never passes; a genuine one with an intact proof always does (as verifyInclusion says);
          // a genuine leaf with a damaged proof may pass once a known node vouches for it.
          if (!genuine) assert.equal(got, false, `n=${n} i=${i}: a corrupted leaf passed`);
          else if (verifyInclusion(leaf, i, n, proof, tree.root)) assert.equal(got, true, `n=${n} i=${i}`);
        }
      }),
      { numRuns: 150 },
    );
  });

  test('a batch signed by another key, or with a forged signature, verifies nothing', () => {
    const leaves = [leafHash(Buffer.from('a')), leafHash(Buffer.from('b'))];
    const tree = merkleTree(leaves);
    const other = generateMetrologyKey();
    const v = new BatchVerifier(key.publicKey);
    const wrong = v.batch({ batchId: 'x', keyId: other.keyId, count: 2, root: tree.root, signature: other.signBatch({ batchId: 'x', count: 2, root: tree.root }) });
    assert.equal(wrong.verdict, 'wrong-key');
    const forged = v.batch({ batchId: 'x', keyId: key.keyId, count: 2, root: tree.root, signature: other.signBatch({ batchId: 'x', count: 2, root: tree.root }) });
    assert.equal(forged.verdict, 'bad-batch-signature');
    assert.equal(v.includes(forged, 0, leaves[0]!, Buffer.concat(tree.proof(0)), 0, 1), false);
  });

  test('tarifa branca windows: working-day hours in local time, weekends and holidays off-peak', () => {
    const p = parsePeriod({ period: '2024-03' }, -180);
    const t = compileTariff(BOOK, 'branca', p);
    const local = (d: number, h: number, m: number) => Date.UTC(2024, 2, d, h + 3, m) + STEP; // interval starting at local d h:m
    assert.equal(t.windows[windowOf(t, local(4, 18, 0))], 'peak', 'Monday 18:00–18:15');
    assert.equal(t.windows[windowOf(t, local(4, 20, 45))], 'peak');
    assert.equal(t.windows[windowOf(t, local(4, 21, 0))], 'intermediate');
    assert.equal(t.windows[windowOf(t, local(4, 17, 0))], 'intermediate');
    assert.equal(t.windows[windowOf(t, local(4, 16, 45))], 'off-peak');
    assert.equal(t.windows[windowOf(t, local(4, 22, 0))], 'off-peak');
    assert.equal(t.windows[windowOf(t, local(9, 19, 0))], 'off-peak', 'Saturday');
    assert.equal(t.windows[windowOf(t, local(29, 19, 0))], 'off-peak', 'Good Friday is a holiday');
    assert.deepEqual(t.applied.holidays, ['2024-03-29']);
  });

  test('periods: months and date spans in local time', () => {
    const feb = parsePeriod({ period: '2024-02' }, -180);
    assert.equal(feb.fromMs, Date.UTC(2024, 1, 1, 3));
    assert.equal(feb.slots, 29 * 96);
    assert.equal(parsePeriod({ from: '2024-03-04', to: '2024-03-05' }, -180).slots, 192);
    assert.throws(() => parsePeriod({ period: '2024-13' }, -180), (e: unknown) => e instanceof BillingError && e.code === 'bad-period');
    assert.throws(() => parsePeriod({ from: '2024-03-05', to: '2024-03-04' }, -180), /before/);
  });

  test('tariff files are validated with the field named', () => {
    const bad = (t: unknown, re: RegExp) => assert.throws(() => parseTariffs({ format: 'securegrid-tariffs/1', currency: 'BRL', tariffs: { x: t } }), (e: unknown) => e instanceof BillingError && e.code === 'bad-tariffs' && re.test(e.message));
    bad({ kind: 'flat', pricePerKwh: -1 }, /tariffs\.x\.pricePerKwh/);
    bad({ kind: 'time-of-use', windows: [{ name: 'p', pricePerKwh: 1, weekdayHours: ['18:10-21:00'] }, { name: 'o', pricePerKwh: 1 }] }, /15-minute grid/);
    bad({ kind: 'time-of-use', windows: [{ name: 'p', pricePerKwh: 1, weekdayHours: ['18:00-21:00'] }] }, /exactly one window/);
    bad({ kind: 'flat', pricePerKwh: 0.1234567 }, /decimals/);
    assert.throws(() => compileTariff(BOOK, 'nope', parsePeriod({ period: '2024-03' }, -180)), (e: unknown) => e instanceof BillingError && e.code === 'unknown-tariff');
  });

  test('amounts are exact: half-up cents of Wh × micro-price, charges prorated, taxes on the subtotal', () => {
    assert.equal(energyCents(1_000, 800_000), 80);
    assert.equal(energyCents(5, 1_000_000), 1, '0.5 cent rounds up');
    assert.equal(energyCents(4, 1_000_000), 0);
    const p = parsePeriod({ from: '2024-03-04', to: '2024-03-05' }, -180);
    const r = billCustomer(task(p, () => true), { tariffs: BOOK, metrologyPublicKey: key.publicKey });
    assert.deepEqual(r.findings, []);
    assert.equal(r.energy.totalWh, 192 * 100);
    assert.equal(r.lines[0]!.amountCents, 1536); // 19.2 kWh × 0.80
    assert.equal(r.charges[0]!.amountCents, 200); // 30.00 × 2 / 30 days
    assert.equal(r.taxes[0]!.amountCents, 312); // 18 % of 17.36 = 3.1248
    assert.equal(r.totalCents, 1536 + 200 + 312);
    assert.equal(r.total, '20.48');
  });

  test('estimation: E1 interpolates inner gaps exactly, O derives the opening, E2/E3 use the mean at the edges', () => {
    const p = parsePeriod({ from: '2024-03-04', to: '2024-03-04' }, -180);
    const inner = billCustomer(task(p, (k) => k < 10 || k > 13), { tariffs: BOOK, metrologyPublicKey: key.publicKey });
    assert.equal(inner.energy.totalWh, 96 * 100, 'the register difference across the gap is kept');
    assert.equal(inner.summary.estimated, 5, '4 missing readings → 5 intervals estimated');
    assert.deepEqual(inner.estimates.map((e) => e[2]), [100, 100, 100, 100, 100]);
    assert.deepEqual(inner.findings.map((f) => [f.code, f.count, f.fromMs]), [['gap', 4, p.fromMs + 10 * STEP]]);
    const noOpening = billCustomer(task(p, (k) => k > 0), { tariffs: BOOK, metrologyPublicKey: key.publicKey });
    assert.deepEqual(noOpening.findings, [], 'the opening comes from the first signed demand (rule O), not an estimate');
    assert.equal(noOpening.openings[0]!.source, 'demand');
    assert.equal(noOpening.energy.totalWh, 9600);
    const edges = billCustomer(task(p, (k) => k > 3 && k < 90), { tariffs: BOOK, metrologyPublicKey: key.publicKey });
    assert.deepEqual(edges.findings.map((f) => [f.code, f.count]), [['gap', 3], ['gap', 7]]);
    assert.equal(edges.summary.estimated, 4 + 7);
    assert.equal(edges.energy.totalWh, 9600, '100 Wh mean and demand 400 W × 15 min at the edges');
    const none = billCustomer(task(p, () => false), { tariffs: BOOK, metrologyPublicKey: key.publicKey });
    assert.deepEqual(none.findings.map((f) => f.code), ['no-readings']);
  });

  test('the hash: versioned serialization, changes with any billed value', () => {
    const p = parsePeriod({ from: '2024-03-04', to: '2024-03-04' }, -180);
    const r = billCustomer(task(p, () => true, 'branca'), { tariffs: BOOK, metrologyPublicKey: key.publicKey });
    const text = reportSerialization(r);
    assert.match(text, /^securegrid-bill\/1\ncustomer\tC1\nperiod\t/);
    assert.equal(text.split('\n').filter((l) => l.startsWith('reading\t')).length, 97);
    assert.equal(reportHash(r), r.hash.value);
    assert.notEqual(reportHash({ ...r, totalCents: r.totalCents + 1 }), r.hash.value);
    assert.deepEqual(r.lines.map((l) => l.window), ['peak', 'intermediate', 'off-peak']);
    assert.equal(r.lines[0]!.energyWh, 12 * 100, 'a Monday has 3 peak hours');
    assert.equal(r.lines[1]!.energyWh, 8 * 100);
  });

  test('the JSON text a worker sends is the report billCustomer returns, hash and head included', () => {
    const p = parsePeriod({ from: '2024-03-04', to: '2024-03-04' }, -180);
    const now = () => new Date(0);
    for (const present of [() => true, (k: number) => k < 10 || k > 13, (k: number) => k > 3 && k < 90, () => false]) {
      const t = task(p, present, 'branca');
      const obj = billCustomer(t, { tariffs: BOOK, metrologyPublicKey: key.publicKey, now });
      const { json, head } = billCustomerJson(t, { tariffs: BOOK, metrologyPublicKey: key.publicKey, now });
      assert.deepEqual(JSON.parse(json.toString('utf8')), JSON.parse(JSON.stringify(obj)));
      assert.equal(reportHash(obj), obj.hash.value);
      assert.deepEqual(head.hash, obj.hash);
      assert.equal(head.findings, obj.findings.length);
      assert.equal(head.summary.readingsUsed, obj.readings.length);
    }
  });
});
