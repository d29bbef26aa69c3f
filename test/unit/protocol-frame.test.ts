import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  crc16,
  FrameError,
  FrameCode,
  COMMAND_FRAME_SIZE,
  RESPONSE_FRAME_SIZE,
  CANONICAL_READING_SIZE,
  MAX_METER_SERIAL,
  REPORT_INTERVAL_MS,
  encodeReport,
  encodeCommand,
  encodeResponse,
  decodeFrame,
  roundReport,
  canonicalReading,
  decodeCanonicalReading,
  type Frame,
  type FrameErrorDetail,
} from '../../src/protocol/frame/index.js';
import type { MeterCommand, MeterResponse, PhasorReport } from '../../src/protocol/types.js';

// ---- an independent, bitwise CRC-16/ARC (what a meter's firmware does) ----
function crcBitwise(b: Uint8Array): number {
  let c = 0;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
  }
  return c;
}

/** Rewrites the CRC so that a mutation reaches the decoder's later checks. */
function reseal(b: Buffer): Buffer {
  b.writeUInt16LE(crcBitwise(b.subarray(0, b.length - 2)), b.length - 2);
  return b;
}

function throwsFrame(fn: () => unknown, detail?: FrameErrorDetail): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FrameError, `expected FrameError, got ${String(e)}`);
    assert.equal(e.code, 'malformed');
    if (detail !== undefined) assert.equal(e.detail, detail, e.message);
    return true;
  });
}

// ---- arbitraries (plain-prototype records, so deepEqual compares them with decoded values) ----
const rec = <T,>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> => fc.record(model as never, { noNullPrototype: true }) as fc.Arbitrary<T>;
const anyFloat = fc.oneof(
  fc.float({ noNaN: true, noDefaultInfinity: true }),
  fc.double({ noNaN: true, min: -3.4e38, max: 3.4e38 }),
  fc.double({ noNaN: true, min: -1000, max: 1000 }),
);
const serial = fc.integer({ min: 0, max: MAX_METER_SERIAL });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const phase = rec({ voltageV: anyFloat, currentA: anyFloat, angleDeg: anyFloat });
function reportArb(ts: fc.Arbitrary<number>, s: fc.Arbitrary<number> = serial): fc.Arbitrary<PhasorReport> {
  return rec({
    serial: s,
    ts,
    phases: fc.tuple(phase, phase, phase),
    activePowerW: anyFloat,
    reactivePowerVar: anyFloat,
    powerFactor: anyFloat,
    thdPercent: anyFloat,
    frequencyHz: anyFloat,
    demandW: anyFloat,
    energyWh: fc.integer({ min: 0, max: 2 ** 48 - 1 }),
    status: fc.integer({ min: 0, max: 0xffff }),
  });
}
const gridTs = fc.integer({ min: 0, max: Math.floor(Number.MAX_SAFE_INTEGER / REPORT_INTERVAL_MS) }).map((k) => k * REPORT_INTERVAL_MS);
const periodicReport = reportArb(gridTs);
const anyTsReport = reportArb(fc.maxSafeNat());
const command: fc.Arbitrary<MeterCommand> = rec({ kind: fc.constantFrom('read' as const, 'disconnect' as const, 'reconnect' as const), requestId: u32 });
function responseArb(s: number): fc.Arbitrary<MeterResponse> {
  return fc.oneof(
    rec({ kind: fc.constant('read' as const), requestId: u32, report: reportArb(fc.maxSafeNat(), fc.constant(s)) }),
    rec({
      kind: fc.constant('ack' as const),
      requestId: u32,
      command: fc.constantFrom('disconnect' as const, 'reconnect' as const),
      ok: fc.boolean(),
      loadConnected: fc.boolean(),
    }),
    rec({ kind: fc.constant('nak' as const), requestId: u32, reason: fc.integer({ min: 0, max: 0xffff }) }),
  );
}
const serialAndResponse = serial.chain((s) => responseArb(s).map((r) => [s, r] as const));

/** What a response decodes to: the report inside a read is float32-rounded. */
function roundResponse(r: MeterResponse): MeterResponse {
  return r.kind === 'read' ? { ...r, report: roundReport(r.report) } : r;
}

const sample: PhasorReport = {
  serial: 12345678,
  ts: 1_700_000_100_000 - (1_700_000_100_000 % REPORT_INTERVAL_MS),
  phases: [
    { voltageV: 127.5, currentA: 10.25, angleDeg: 30 },
    { voltageV: 126, currentA: 9.5, angleDeg: -15.5 },
    { voltageV: 128.25, currentA: 11, angleDeg: 0 },
  ],
  activePowerW: 3500.5,
  reactivePowerVar: -200.25,
  powerFactor: 0.96875,
  thdPercent: 3.5,
  frequencyHz: 60,
  demandW: 3400,
  energyWh: 2 ** 40 + 12345,
  status: 0x0005,
};

describe('crc16', () => {
  test('CRC-16/ARC check value and edge cases', () => {
    assert.equal(crc16(Buffer.from('123456789')), 0xbb3d);
    assert.equal(crc16(Buffer.alloc(0)), 0);
    const b = Buffer.from('xx123456789yy');
    assert.equal(crc16(b, 2, 11), 0xbb3d);
    assert.throws(() => crc16(b, 3, 2), RangeError);
    assert.throws(() => crc16(b, 0, 14), RangeError);
    assert.throws(() => crc16(b, -1), RangeError);
  });

  test('table-driven equals bitwise on any bytes and range', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(), (a, x, y) => {
        const s = a.length === 0 ? 0 : x % (a.length + 1);
        const e = s + (a.length === 0 ? 0 : y % (a.length - s + 1));
        assert.equal(crc16(a, s, e), crcBitwise(a.subarray(s, e)));
      }),
    );
  });
});

describe('frames: layout', () => {
  test('hand-computed READ command frame', () => {
    const f = encodeCommand(12345678, { kind: 'read', requestId: 0x01020304 });
    const expected = Buffer.concat([Buffer.from([0x14, 0x12, 0x34, 0x56, 0x78, 0x01, 0x02, 0x03, 0x04]), Buffer.alloc(55), Buffer.from([0xd5, 0x76])]);
    assert.deepEqual(f, expected);
    assert.deepEqual(decodeFrame(expected), { type: 'command', serial: 12345678, command: { kind: 'read', requestId: 0x01020304 } });
  });

  test('periodic report frame, byte by byte from the documented layout', () => {
    const exp = Buffer.alloc(258);
    const dv = new DataView(exp.buffer, exp.byteOffset, exp.byteLength);
    exp[0] = 0xa0;
    exp.set([0x12, 0x34, 0x56, 0x78], 1);
    dv.setUint32(5, Math.floor(sample.ts / 2 ** 32));
    dv.setUint32(9, sample.ts % 2 ** 32);
    const floats = [
      ...sample.phases.map((p) => p.voltageV),
      ...sample.phases.map((p) => p.currentA),
      ...sample.phases.map((p) => p.angleDeg),
      sample.activePowerW,
      sample.reactivePowerVar,
      sample.powerFactor,
      sample.thdPercent,
      sample.frequencyHz,
      sample.demandW,
    ];
    floats.forEach((v, i) => dv.setFloat32(13 + 4 * i, v));
    dv.setUint16(73, Math.floor(sample.energyWh / 2 ** 32));
    dv.setUint32(75, sample.energyWh % 2 ** 32);
    dv.setUint16(79, sample.status);
    exp.writeUInt16LE(crcBitwise(exp.subarray(0, 256)), 256);
    assert.deepEqual(encodeReport(sample), exp);
    assert.deepEqual(decodeFrame(exp), { type: 'report', serial: 12345678, report: sample });
  });

  test('ack and nak payloads', () => {
    const ack = encodeResponse(1, { kind: 'ack', requestId: 7, command: 'reconnect', ok: true, loadConnected: false });
    assert.equal(ack.length, RESPONSE_FRAME_SIZE);
    assert.deepEqual([...ack.subarray(0, 12)], [0x06, 0x00, 0x00, 0x00, 0x01, 0, 0, 0, 7, 0x25, 1, 0]);
    const nak = encodeResponse(99_999_999, { kind: 'nak', requestId: 0xffffffff, reason: 0x0102 });
    assert.deepEqual([...nak.subarray(0, 11)], [0x15, 0x99, 0x99, 0x99, 0x99, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02]);
    assert.ok(nak.subarray(11, 256).every((x) => x === 0));
  });

  test('exact sizes: commands 66, everything else 258', () => {
    fc.assert(
      fc.property(serial, command, periodicReport, serialAndResponse, (s, c, r, [rs, resp]) => {
        assert.equal(encodeCommand(s, c).length, COMMAND_FRAME_SIZE);
        assert.equal(encodeReport(r).length, RESPONSE_FRAME_SIZE);
        assert.equal(encodeResponse(rs, resp).length, RESPONSE_FRAME_SIZE);
      }),
    );
  });
});

describe('frames: round trips', () => {
  test('periodic reports decode as roundReport says', () => {
    fc.assert(
      fc.property(periodicReport, (r) => {
        const f = encodeReport(r);
        const want: Frame = { type: 'report', serial: r.serial, report: roundReport(r) };
        assert.deepEqual(decodeFrame(f), want);
        // float32-exact reports are fixed points: same bytes, same value
        assert.deepEqual(encodeReport(roundReport(r)), f);
        assert.deepEqual(roundReport(roundReport(r)), roundReport(r));
      }),
      { numRuns: 500 },
    );
  });

  test('commands', () => {
    fc.assert(
      fc.property(serial, command, (s, c) => {
        assert.deepEqual(decodeFrame(encodeCommand(s, c)), { type: 'command', serial: s, command: c });
      }),
    );
  });

  test('responses', () => {
    fc.assert(
      fc.property(serialAndResponse, ([s, r]) => {
        assert.deepEqual(decodeFrame(encodeResponse(s, r)), { type: 'response', serial: s, response: roundResponse(r) });
      }),
      { numRuns: 300 },
    );
  });

  test('negative zero travels as +0', () => {
    const r = { ...sample, powerFactor: -0, phases: [{ voltageV: -0, currentA: 0, angleDeg: -0 }, sample.phases[1], sample.phases[2]] } as PhasorReport;
    const f = encodeReport(r);
    assert.deepEqual(f, encodeReport({ ...r, powerFactor: 0, phases: [{ voltageV: 0, currentA: 0, angleDeg: 0 }, sample.phases[1], sample.phases[2]] }));
    const d = decodeFrame(f);
    assert.ok(d.type === 'report' && Object.is(d.report.powerFactor, 0) && Object.is(d.report.phases[0].voltageV, 0));
    // a meter that sends −0 bytes is still read, as +0
    const g = Buffer.from(f);
    g.writeUInt32BE(0x80000000, 5 + 8 + 4 * 11);
    const e = decodeFrame(reseal(g));
    assert.ok(e.type === 'report' && Object.is(e.report.powerFactor, 0));
  });

  test('Uint8Array input is accepted', () => {
    const f = encodeCommand(42, { kind: 'disconnect', requestId: 9 });
    const u = new Uint8Array(f.length + 3).subarray(3);
    u.set(f);
    assert.deepEqual(decodeFrame(u), decodeFrame(f));
  });
});

describe('frames: corruption is caught', () => {
  const frames = [encodeReport(sample), encodeCommand(5, { kind: 'reconnect', requestId: 77 }), encodeResponse(sample.serial, { kind: 'read', requestId: 3, report: { ...sample, ts: 1234567 } })];

  test('every single-bit flip fails the CRC', () => {
    for (const f of frames) {
      for (let bit = 0; bit < f.length * 8; bit++) {
        const g = Buffer.from(f);
        g[bit >> 3]! ^= 1 << (bit & 7);
        throwsFrame(() => decodeFrame(g), 'crc');
      }
    }
  });

  test('any two-bit flip fails the CRC', () => {
    const f = frames[0]!;
    const bit = fc.integer({ min: 0, max: f.length * 8 - 1 });
    fc.assert(
      fc.property(bit, bit, (a, b) => {
        fc.pre(a !== b);
        const g = Buffer.from(f);
        g[a >> 3]! ^= 1 << (a & 7);
        g[b >> 3]! ^= 1 << (b & 7);
        throwsFrame(() => decodeFrame(g), 'crc');
      }),
      { numRuns: 2000 },
    );
  });

  test('each decode check has its detail', () => {
    const rep = encodeReport(sample);
    throwsFrame(() => decodeFrame(Buffer.alloc(0)), 'length');
    throwsFrame(() => decodeFrame(rep.subarray(0, 257)), 'length');
    throwsFrame(() => decodeFrame(Buffer.concat([rep, Buffer.alloc(1)])), 'length');
    throwsFrame(() => decodeFrame(Buffer.alloc(65)), 'length');
    throwsFrame(() => decodeFrame(Buffer.alloc(66)), 'code'); // all zero: CRC 0 is right, code 0 unknown
    const mut = (f: Buffer, at: number, v: number): Buffer => {
      const g = Buffer.from(f);
      g[at] = v;
      return reseal(g);
    };
    throwsFrame(() => decodeFrame(mut(rep, 0, 0x77)), 'code');
    throwsFrame(() => decodeFrame(mut(rep, 0, FrameCode.read)), 'length'); // a command code in a 258-byte frame
    const cmd = encodeCommand(1, { kind: 'read', requestId: 1 });
    throwsFrame(() => decodeFrame(mut(cmd, 0, FrameCode.ack)), 'length');
    throwsFrame(() => decodeFrame(mut(rep, 1, 0x1a)), 'bcd');
    throwsFrame(() => decodeFrame(mut(rep, 4, 0xa0)), 'bcd');
    throwsFrame(() => decodeFrame(mut(rep, 200, 1)), 'field'); // padding
    throwsFrame(() => decodeFrame(mut(cmd, 63, 1)), 'field'); // last padding byte
    throwsFrame(() => decodeFrame(mut(rep, 5, 0x80)), 'field'); // ts beyond 2^53
    throwsFrame(() => decodeFrame(mut(rep, 12, rep[12]! ^ 1)), 'field'); // ts off the 15-minute grid
    const nan = Buffer.from(rep);
    nan.writeUInt32BE(0x7fc00000, 13);
    throwsFrame(() => decodeFrame(reseal(nan)), 'field');
    const inf = Buffer.from(rep);
    inf.writeFloatBE(-Infinity, 13 + 4 * 14);
    throwsFrame(() => decodeFrame(reseal(inf)), 'field');
    const ack = encodeResponse(1, { kind: 'ack', requestId: 7, command: 'disconnect', ok: false, loadConnected: true });
    throwsFrame(() => decodeFrame(mut(ack, 9, FrameCode.read)), 'field');
    throwsFrame(() => decodeFrame(mut(ack, 10, 2)), 'field');
    throwsFrame(() => decodeFrame(mut(ack, 11, 0xff)), 'field');
    throwsFrame(() => decodeFrame(mut(ack, 12, 1)), 'field');
  });

  test('read responses may carry any ts; periodic reports may not', () => {
    const r = { ...sample, ts: 1 };
    assert.equal((decodeFrame(encodeResponse(r.serial, { kind: 'read', requestId: 1, report: r })) as { response: { report: PhasorReport } }).response.report.ts, 1);
    throwsFrame(() => encodeReport(r), 'field');
  });
});

describe('frames: encoders reject what cannot travel', () => {
  test('field errors', () => {
    const bad: Array<Partial<PhasorReport>> = [
      { serial: -1 },
      { serial: 100_000_000 },
      { serial: 1.5 },
      { ts: -REPORT_INTERVAL_MS },
      { ts: 2 ** 53 + REPORT_INTERVAL_MS },
      { ts: 1.5 * REPORT_INTERVAL_MS },
      { ts: 1 },
      { activePowerW: NaN },
      { demandW: Infinity },
      { frequencyHz: 1e39 }, // finite double, but Infinity as float32
      { energyWh: -1 },
      { energyWh: 2 ** 48 },
      { energyWh: 0.5 },
      { status: 0x10000 },
      { status: -1 },
      { phases: [{ voltageV: NaN, currentA: 0, angleDeg: 0 }, sample.phases[1], sample.phases[2]] },
      { phases: [sample.phases[0], sample.phases[1], { voltageV: 1, currentA: 1, angleDeg: -Infinity }] },
    ];
    for (const b of bad) {
      const r = { ...sample, ...b } as PhasorReport;
      throwsFrame(() => encodeReport(r), 'field');
      if (b.ts === undefined) throwsFrame(() => canonicalReading(r), 'field');
    }
    throwsFrame(() => encodeCommand(1, { kind: 'read', requestId: -1 }), 'field');
    throwsFrame(() => encodeCommand(1, { kind: 'read', requestId: 2 ** 32 }), 'field');
    throwsFrame(() => encodeCommand(1, { kind: 'explode', requestId: 1 } as unknown as MeterCommand), 'field');
    throwsFrame(() => encodeCommand(123_456_789, { kind: 'read', requestId: 1 }), 'field');
    throwsFrame(() => encodeResponse(1, { kind: 'read', requestId: 1, report: sample }), 'field'); // serial mismatch
    throwsFrame(() => encodeResponse(1, { kind: 'nak', requestId: 1, reason: 0x10000 }), 'field');
    throwsFrame(() => encodeResponse(1, { kind: 'ack', requestId: 1, command: 'read', ok: true, loadConnected: true } as unknown as MeterResponse), 'field');
    throwsFrame(() => encodeResponse(-5, { kind: 'nak', requestId: 1, reason: 1 }), 'field');
    throwsFrame(() => encodeResponse(1, { kind: 'what', requestId: 1 } as unknown as MeterResponse), 'field');
  });
});

describe('frames: fuzz', () => {
  const sizes = fc.oneof(fc.constantFrom(COMMAND_FRAME_SIZE, RESPONSE_FRAME_SIZE), fc.nat({ max: 600 }));

  test('random bytes: a frame or a FrameError', () => {
    fc.assert(
      fc.property(
        sizes.chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
        fc.boolean(),
        (a, fix) => {
          const b = Buffer.from(a);
          if (fix && b.length >= 2) reseal(b);
          try {
            decodeFrame(b);
          } catch (e) {
            assert.ok(e instanceof FrameError, String(e));
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  test('mutations of valid frames (CRC fixed up): a FrameError, or a frame that re-encodes to itself', () => {
    const valid = fc.oneof(
      periodicReport.map((r) => encodeReport(r)),
      fc.tuple(serial, command).map(([s, c]) => encodeCommand(s, c)),
      serialAndResponse.map(([s, r]) => encodeResponse(s, r)),
    );
    const edit = rec({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) });
    fc.assert(
      fc.property(valid, fc.array(edit, { minLength: 1, maxLength: 4 }), (f, edits) => {
        const g = Buffer.from(f);
        for (const { at, value } of edits) g[at % (g.length - 2)] = value;
        reseal(g);
        let d: Frame;
        try {
          d = decodeFrame(g);
        } catch (e) {
          assert.ok(e instanceof FrameError, String(e));
          return;
        }
        const again = d.type === 'report' ? encodeReport(d.report) : d.type === 'command' ? encodeCommand(d.serial, d.command) : encodeResponse(d.serial, d.response);
        assert.deepEqual(decodeFrame(again), d);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('canonical reading', () => {
  test('layout: serial u32 then the report block, big-endian, 80 bytes', () => {
    assert.equal(CANONICAL_READING_SIZE, 80);
    const c = canonicalReading(sample);
    assert.equal(c.length, 80);
    assert.equal(c.readUInt32BE(0), 12345678);
    assert.equal(c.readUInt32BE(4) * 2 ** 32 + c.readUInt32BE(8), sample.ts);
    assert.equal(c.readFloatBE(12), 127.5); // v1
    assert.equal(c.readFloatBE(16), 126); // v2
    assert.equal(c.readFloatBE(24), 10.25); // i1
    assert.equal(c.readFloatBE(36), 30); // a1
    assert.equal(c.readFloatBE(48), 3500.5); // P
    assert.equal(c.readFloatBE(68), 3400); // demand
    assert.equal(c.readUIntBE(72, 6), sample.energyWh);
    assert.equal(c.readUInt16BE(78), 5);
    // the frame's report block is the same bytes, minus the serial
    assert.deepEqual(c.subarray(4), encodeReport(sample).subarray(5, 81));
  });

  test('deterministic and exactly invertible for float32-exact reports, any ts', () => {
    fc.assert(
      fc.property(anyTsReport, (r) => {
        const exact = roundReport(r);
        const c = canonicalReading(r);
        assert.deepEqual(canonicalReading(exact), c);
        assert.deepEqual(decodeCanonicalReading(c), exact);
      }),
      { numRuns: 500 },
    );
  });

  test('distinct readings have distinct encodings', () => {
    const pair = anyTsReport.chain((a) =>
      fc.oneof(
        fc.constant([a, a] as const),
        fc.constant([a, roundReport(a)] as const),
        fc.constant([a, { ...a, status: a.status ^ 1 }] as const),
        fc.constant([a, { ...a, ts: a.ts === 0 ? 1 : a.ts - 1 }] as const),
        anyTsReport.map((b) => [a, b] as const),
      ),
    );
    fc.assert(
      fc.property(pair, ([a, b]) => {
        const same = canonicalReading(a).equals(canonicalReading(b));
        let equal = true;
        try {
          assert.deepEqual(roundReport(a), roundReport(b));
        } catch {
          equal = false;
        }
        assert.equal(same, equal);
      }),
    );
  });

  test('decoder: a reading that re-encodes to its bytes, or a FrameError', () => {
    throwsFrame(() => decodeCanonicalReading(Buffer.alloc(79)), 'length');
    throwsFrame(() => decodeCanonicalReading(Buffer.alloc(81)), 'length');
    const big = Buffer.alloc(80);
    big.writeUInt32BE(100_000_000, 0);
    throwsFrame(() => decodeCanonicalReading(big), 'field');
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ minLength: 80, maxLength: 80 }), fc.uint8Array({ maxLength: 100 })), (input) => {
        const a = Buffer.from(input);
        let r: PhasorReport;
        try {
          r = decodeCanonicalReading(a);
        } catch (e) {
          assert.ok(e instanceof FrameError, String(e));
          return;
        }
        const back = canonicalReading(r);
        // −0 is the one float32 pattern that does not come back (it is read as +0)
        for (let off = 12; off < 72; off += 4) if (a[off] === 0x80 && a[off + 1] === 0 && a[off + 2] === 0 && a[off + 3] === 0) a.fill(0, off, off + 4);
        assert.deepEqual(back, a);
      }),
      { numRuns: 3000 },
    );
  });
});
