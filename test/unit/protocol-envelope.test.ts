import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  EnvelopeType,
  EnvelopeError,
  FieldFrameDecoder,
  MAX_FIELD_FRAME,
  MAX_ENVELOPE_BODY,
  MAX_BATCH_ENVELOPES,
  SHARED_UP,
  RESP_ALL,
  encodeEnvelope,
  decodeEnvelope,
  encodeFieldFrame,
  encodeUplinkBatch,
  decodeUplinkBatch,
  encodeDownlink,
  decodeDownlink,
  encodeAck,
  decodeAck,
  encodeAlert,
  decodeAlert,
  envelopeTypeName,
  isUplinkType,
  isDownlinkType,
  isAggregatorId,
  topics,
  parseTopic,
  aggregatorIdFromTopic,
  type MeterEnvelope,
  type EnvelopeErrorDetail,
} from '../../src/protocol/envelope.js';
import { REJECT_REASONS } from '../../src/protocol/types.js';

function throwsEnv(fn: () => unknown, detail?: EnvelopeErrorDetail): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof EnvelopeError, `expected EnvelopeError, got ${String(e)}`);
    assert.equal(e.code, 'malformed');
    if (detail !== undefined) assert.equal(e.detail, detail, e.message);
    return true;
  });
}

// ---- arbitraries ----
const UP = [EnvelopeType.clientHello, EnvelopeType.finish, EnvelopeType.record, EnvelopeType.response];
const DOWN = [EnvelopeType.serverHello, EnvelopeType.established, EnvelopeType.downlink, EnvelopeType.alert];
const bytes = (n: number, max: number): fc.Arbitrary<Buffer> => fc.uint8Array({ minLength: n, maxLength: max }).map((a) => Buffer.from(a));
function envelopeArb(types: readonly EnvelopeType[]): fc.Arbitrary<MeterEnvelope> {
  return fc.record(
    {
      type: fc.constantFrom(...types),
      serial: fc.integer({ min: 0, max: 99_999_999 }),
      sessionId: fc.oneof(fc.constant(Buffer.alloc(8)), bytes(8, 8)),
      body: fc.oneof({ weight: 5, arbitrary: bytes(0, 300) }, { weight: 1, arbitrary: bytes(1000, 3000) }),
    },
    { noNullPrototype: true },
  );
}
const anyEnvelope = envelopeArb([...UP, ...DOWN]);
const ID_CHARS = [...Array(0x7f - 0x21).keys()].map((i) => String.fromCharCode(0x21 + i)).filter((c) => !'/+#'.includes(c));
const aggId = fc.string({ unit: fc.constantFrom(...ID_CHARS), minLength: 1, maxLength: 64 });
const seq = fc.oneof(fc.nat({ max: 1000 }), fc.maxSafeNat());
const batch = fc.record({ aggregatorId: aggId, seq, envelopes: fc.array(envelopeArb(UP), { maxLength: 20 }) }, { noNullPrototype: true });
const downlink = fc.record({ aggregatorId: aggId, envelopes: fc.array(envelopeArb(DOWN), { maxLength: 20 }) }, { noNullPrototype: true });
const ack = fc.record({ aggregatorId: aggId, seqs: fc.array(seq, { maxLength: 50 }) }, { noNullPrototype: true });

const env1: MeterEnvelope = { type: EnvelopeType.record, serial: 12345678, sessionId: Buffer.from('0102030405060708', 'hex'), body: Buffer.from('hello') };

describe('meter envelope', () => {
  test('layout: type ‖ serial u32 ‖ sessionId ‖ body', () => {
    assert.equal(encodeEnvelope(env1).toString('hex'), '03' + '00bc614e' + '0102030405060708' + Buffer.from('hello').toString('hex'));
    assert.equal(encodeFieldFrame(env1).toString('hex'), '00000012' + encodeEnvelope(env1).toString('hex'));
  });

  test('round trip', () => {
    fc.assert(
      fc.property(anyEnvelope, (e) => {
        assert.deepEqual(decodeEnvelope(encodeEnvelope(e)), e);
      }),
    );
  });

  test('types: names and directions', () => {
    for (const t of UP) assert.ok(isUplinkType(t) && !isDownlinkType(t));
    for (const t of DOWN) assert.ok(isDownlinkType(t) && !isUplinkType(t));
    assert.equal(envelopeTypeName(EnvelopeType.serverHello), 'serverHello');
    assert.equal(envelopeTypeName(0x7f), undefined);
    assert.ok(!isUplinkType(0) && !isDownlinkType(0xff));
  });

  test('bad envelopes', () => {
    throwsEnv(() => decodeEnvelope(Buffer.alloc(12)), 'length');
    throwsEnv(() => decodeEnvelope(Buffer.alloc(13)), 'type'); // type 0
    const e = encodeEnvelope(env1);
    e.writeUInt32BE(100_000_000, 1);
    throwsEnv(() => decodeEnvelope(e), 'field');
    throwsEnv(() => decodeEnvelope(Buffer.alloc(MAX_FIELD_FRAME + 1, 3)), 'limit');
    throwsEnv(() => encodeEnvelope({ ...env1, type: 9 as EnvelopeType }), 'type');
    throwsEnv(() => encodeEnvelope({ ...env1, serial: -1 }), 'field');
    throwsEnv(() => encodeEnvelope({ ...env1, serial: 2.5 }), 'field');
    throwsEnv(() => encodeEnvelope({ ...env1, sessionId: Buffer.alloc(7) }), 'field');
    throwsEnv(() => encodeEnvelope({ ...env1, body: 'text' as unknown as Buffer }), 'field');
    throwsEnv(() => encodeEnvelope({ ...env1, body: Buffer.alloc(MAX_ENVELOPE_BODY + 1) }), 'limit');
    assert.equal(encodeEnvelope({ ...env1, body: Buffer.alloc(MAX_ENVELOPE_BODY) }).length, MAX_FIELD_FRAME);
  });

  test('alert bodies', () => {
    for (const r of REJECT_REASONS) assert.equal(decodeAlert(encodeAlert(r)), r);
    assert.equal(new Set(REJECT_REASONS.map((r) => encodeAlert(r)[0])).size, REJECT_REASONS.length);
    throwsEnv(() => decodeAlert(Buffer.alloc(0)), 'field');
    throwsEnv(() => decodeAlert(Buffer.from([0])), 'field');
    throwsEnv(() => decodeAlert(Buffer.from([4, 4])), 'field');
    throwsEnv(() => encodeAlert('nope' as never), 'field');
  });
});

describe('uplink batch, downlink, ack', () => {
  test('round trips', () => {
    fc.assert(fc.property(batch, (b) => assert.deepEqual(decodeUplinkBatch(encodeUplinkBatch(b)), b)));
    fc.assert(fc.property(downlink, (d) => assert.deepEqual(decodeDownlink(encodeDownlink(d)), d)));
    fc.assert(fc.property(ack, (a) => assert.deepEqual(decodeAck(encodeAck(a)), a)));
  });

  test('compact: 2 + 1 + id + 8 + 2 + 15 per envelope + bodies', () => {
    const b = encodeUplinkBatch({ aggregatorId: 'agg-7', seq: 2 ** 40 + 3, envelopes: [env1, env1] });
    assert.equal(b.length, 3 + 5 + 8 + 2 + 2 * (15 + 5));
    assert.equal(b.subarray(0, 3).toString('hex'), '550105');
    assert.equal(b.toString('latin1', 3, 8), 'agg-7');
    assert.equal(b.readUInt32BE(8) * 2 ** 32 + b.readUInt32BE(12), 2 ** 40 + 3);
    assert.equal(encodeAck({ aggregatorId: 'a', seqs: [1, 2] }).toString('hex'), '41010161' + '0002' + '0000000000000001' + '0000000000000002');
  });

  test('decoded bodies and session ids are views of the input', () => {
    const wire = encodeUplinkBatch({ aggregatorId: 'a', seq: 1, envelopes: [env1] });
    const d = decodeUplinkBatch(wire);
    const e = d.envelopes[0]!;
    assert.equal(e.body.buffer, wire.buffer);
    assert.equal(e.body.byteOffset, wire.byteOffset + wire.length - 5);
    assert.equal(e.sessionId.buffer, wire.buffer);
  });

  test('limits and directions', () => {
    const small: MeterEnvelope = { type: EnvelopeType.record, serial: 1, sessionId: Buffer.alloc(8), body: Buffer.alloc(0) };
    const max = encodeUplinkBatch({ aggregatorId: 'a', seq: 0, envelopes: new Array<MeterEnvelope>(MAX_BATCH_ENVELOPES).fill(small) });
    assert.equal(decodeUplinkBatch(max).envelopes.length, MAX_BATCH_ENVELOPES);
    throwsEnv(() => encodeUplinkBatch({ aggregatorId: 'a', seq: 0, envelopes: new Array<MeterEnvelope>(MAX_BATCH_ENVELOPES + 1).fill(small) }), 'limit');
    throwsEnv(() => encodeAck({ aggregatorId: 'a', seqs: new Array<number>(0x10000).fill(1) }), 'limit');
    throwsEnv(() => encodeUplinkBatch({ aggregatorId: 'a', seq: 0, envelopes: [{ ...small, type: EnvelopeType.serverHello }] }), 'type');
    throwsEnv(() => encodeDownlink({ aggregatorId: 'a', envelopes: [small] }), 'type');
    throwsEnv(() => encodeUplinkBatch({ aggregatorId: 'a', seq: -1, envelopes: [] }), 'field');
    throwsEnv(() => encodeUplinkBatch({ aggregatorId: 'a', seq: 2 ** 53, envelopes: [] }), 'field');
    throwsEnv(() => encodeAck({ aggregatorId: 'a', seqs: [1, 0.5] }), 'field');
    for (const id of ['', 'x'.repeat(65), 'a/b', 'a+', '#', 'a b', 'é', 'tab\t', '\u007f']) {
      throwsEnv(() => encodeUplinkBatch({ aggregatorId: id, seq: 0, envelopes: [] }), 'aggregator');
      throwsEnv(() => encodeAck({ aggregatorId: id, seqs: [] }), 'aggregator');
      throwsEnv(() => topics(id), 'aggregator');
      assert.ok(!isAggregatorId(id));
    }
    assert.equal(encodeAck({ aggregatorId: 'x'.repeat(64), seqs: [] }).length, 3 + 64 + 2);
  });

  test('decoders: wrong kind, version, direction, truncation, trailing bytes, lying counts', () => {
    const up = encodeUplinkBatch({ aggregatorId: 'agg', seq: 5, envelopes: [env1, { ...env1, type: EnvelopeType.finish }] });
    throwsEnv(() => decodeAck(up), 'kind');
    throwsEnv(() => decodeDownlink(up), 'kind');
    const v2 = Buffer.from(up);
    v2[1] = 2;
    throwsEnv(() => decodeUplinkBatch(v2), 'kind');
    for (let n = 0; n < up.length; n++) throwsEnv(() => decodeUplinkBatch(up.subarray(0, n)));
    throwsEnv(() => decodeUplinkBatch(Buffer.concat([up, Buffer.alloc(1)])), 'length');
    const wrongWay = Buffer.from(up);
    wrongWay[3 + 3 + 8 + 2] = EnvelopeType.downlink;
    throwsEnv(() => decodeUplinkBatch(wrongWay), 'type');
    const lying = Buffer.from(up.subarray(0, 3 + 3 + 8 + 2));
    lying.writeUInt16BE(0xffff, lying.length - 2);
    throwsEnv(() => decodeUplinkBatch(lying), 'length');
    const bigSeq = Buffer.from(up);
    bigSeq[6] = 0x00;
    bigSeq[7] = 0x20; // hi word 0x00200000: seq ≥ 2^53
    throwsEnv(() => decodeUplinkBatch(bigSeq), 'field');
    const badId = Buffer.from(up);
    badId[4] = 0x2f; // 'a/g'
    throwsEnv(() => decodeUplinkBatch(badId), 'aggregator');
    const ackWire = encodeAck({ aggregatorId: 'agg', seqs: [1, 2, 3] });
    for (let n = 0; n < ackWire.length; n++) throwsEnv(() => decodeAck(ackWire.subarray(0, n)), 'length');
  });
});

describe('topics', () => {
  test('names', () => {
    assert.deepEqual(topics('agg-01'), { up: 'sg/agg-01/up', resp: 'sg/agg-01/resp', ack: 'sg/agg-01/ack', down: 'sg/agg-01/down' });
    assert.equal(SHARED_UP, '$share/ingest/sg/+/up');
    assert.equal(RESP_ALL, 'sg/+/resp');
  });

  test('aggregatorIdFromTopic inverts topics()', () => {
    fc.assert(
      fc.property(aggId, (id) => {
        assert.ok(isAggregatorId(id));
        for (const [kind, t] of Object.entries(topics(id))) {
          assert.equal(aggregatorIdFromTopic(t), id);
          assert.deepEqual(parseTopic(t), { aggregatorId: id, kind });
        }
      }),
    );
  });

  test('rejects other topics', () => {
    for (const t of ['sg/a/b', 'sg/a/up/x', 'xx/a/up', 'sg//up', 'sg/+/up', 'sg/#', SHARED_UP, RESP_ALL, '', 'sg/a b/up', `sg/${'x'.repeat(65)}/up`]) {
      throwsEnv(() => aggregatorIdFromTopic(t), 'topic');
    }
  });
});

describe('field-link stream', () => {
  const stream = fc.array(anyEnvelope, { maxLength: 12 });

  test('any chunking yields the same envelopes', () => {
    fc.assert(
      fc.property(stream, fc.array(fc.nat(), { maxLength: 30 }), (envs, cuts) => {
        const wire = Buffer.concat(envs.map(encodeFieldFrame));
        const points = [...new Set(cuts.map((c) => (wire.length === 0 ? 0 : c % (wire.length + 1))))].sort((a, b) => a - b);
        const dec = new FieldFrameDecoder();
        const out: MeterEnvelope[] = [];
        let prev = 0;
        for (const p of [...points, wire.length]) {
          out.push(...dec.push(wire.subarray(prev, p)));
          prev = p;
        }
        dec.end();
        assert.equal(dec.buffered, 0);
        assert.deepEqual(out, envs);
      }),
      { numRuns: 300 },
    );
  });

  test('byte at a time, and all in one chunk', () => {
    const envs = [env1, { ...env1, serial: 2, body: Buffer.alloc(0) }, { ...env1, type: EnvelopeType.clientHello, body: Buffer.alloc(5000, 7) }];
    const wire = Buffer.concat(envs.map(encodeFieldFrame));
    const dec = new FieldFrameDecoder();
    const out: MeterEnvelope[] = [];
    for (let i = 0; i < wire.length; i++) out.push(...dec.push(wire.subarray(i, i + 1)));
    assert.deepEqual(out, envs);
    assert.deepEqual(new FieldFrameDecoder().push(wire), envs);
  });

  test('an oversize length fails at once, without buffering, and for good', () => {
    const dec = new FieldFrameDecoder();
    const hdr = Buffer.alloc(4);
    hdr.writeUInt32BE(MAX_FIELD_FRAME + 1);
    throwsEnv(() => dec.push(hdr), 'limit');
    assert.ok(dec.failed);
    throwsEnv(() => dec.push(encodeFieldFrame(env1)), 'limit');
    throwsEnv(() => dec.end(), 'limit');

    const small = new FieldFrameDecoder({ maxFrameSize: 100 });
    assert.deepEqual(small.push(encodeFieldFrame(env1)), [env1]);
    throwsEnv(() => small.push(encodeFieldFrame({ ...env1, body: Buffer.alloc(88) })), 'limit');
    assert.throws(() => new FieldFrameDecoder({ maxFrameSize: MAX_FIELD_FRAME + 1 }), RangeError);

    const split = new FieldFrameDecoder();
    assert.deepEqual(split.push(hdr.subarray(0, 3)), []);
    throwsEnv(() => split.push(hdr.subarray(3)), 'limit');
  });

  test('short lengths, bad envelopes and cut-off streams', () => {
    throwsEnv(() => new FieldFrameDecoder().push(Buffer.from([0, 0, 0, 12, ...Buffer.alloc(12)])), 'length');
    const bad = encodeFieldFrame(env1);
    bad[4] = 0x7e;
    throwsEnv(() => new FieldFrameDecoder().push(bad), 'type');
    const dec = new FieldFrameDecoder();
    const f = encodeFieldFrame(env1);
    assert.deepEqual(dec.push(f.subarray(0, 10)), []);
    assert.equal(dec.buffered, 10);
    throwsEnv(() => dec.end(), 'length');
    assert.deepEqual(dec.push(f.subarray(10)), [env1]);
    dec.end();
  });
});

describe('fuzz', () => {
  const decoders: Array<[string, (b: Buffer) => unknown]> = [
    ['envelope', decodeEnvelope],
    ['uplink', decodeUplinkBatch],
    ['downlink', decodeDownlink],
    ['ack', decodeAck],
    ['alert', decodeAlert],
    ['field stream', (b) => new FieldFrameDecoder().push(b)],
  ];

  test('random bytes: a value or an EnvelopeError, from every decoder', () => {
    const prefix = fc.constantFrom(Buffer.alloc(0), Buffer.from([0x55, 1]), Buffer.from([0x44, 1]), Buffer.from([0x41, 1]), Buffer.from([0, 0, 0, 20]));
    fc.assert(
      fc.property(prefix, fc.uint8Array({ maxLength: 200 }), (p, a) => {
        const b = Buffer.concat([p, a]);
        for (const [name, dec] of decoders) {
          try {
            dec(b);
          } catch (e) {
            assert.ok(e instanceof EnvelopeError, `${name}: ${String(e)}`);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('mutations of valid encodings: an EnvelopeError, or a value that re-encodes to the same bytes', () => {
    const valid = fc.oneof(
      anyEnvelope.map((e) => ['envelope', encodeEnvelope(e)] as const),
      batch.map((b) => ['uplink', encodeUplinkBatch(b)] as const),
      downlink.map((d) => ['downlink', encodeDownlink(d)] as const),
      ack.map((a) => ['ack', encodeAck(a)] as const),
    );
    const encode: Record<string, (v: never) => Buffer> = { envelope: encodeEnvelope, uplink: encodeUplinkBatch, downlink: encodeDownlink, ack: encodeAck };
    const decode: Record<string, (b: Buffer) => unknown> = { envelope: decodeEnvelope, uplink: decodeUplinkBatch, downlink: decodeDownlink, ack: decodeAck };
    const edit = fc.oneof(
      fc.record({ op: fc.constant('set' as const), at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ op: fc.constant('cut' as const), at: fc.nat(), v: fc.constant(0) }),
      fc.record({ op: fc.constant('insert' as const), at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
    );
    fc.assert(
      fc.property(valid, fc.array(edit, { minLength: 1, maxLength: 3 }), ([kind, wire], edits) => {
        let b = Buffer.from(wire);
        for (const { op, at, v } of edits) {
          const i = b.length === 0 ? 0 : at % b.length;
          if (op === 'set' && b.length > 0) b[i] = v;
          else if (op === 'cut') b = b.subarray(0, i);
          else if (op === 'insert') b = Buffer.concat([b.subarray(0, i), Buffer.from([v]), b.subarray(i)]);
        }
        let value: unknown;
        try {
          value = decode[kind]!(b);
        } catch (e) {
          assert.ok(e instanceof EnvelopeError, String(e));
          return;
        }
        assert.deepEqual(encode[kind]!(value as never), b);
      }),
      { numRuns: 3000 },
    );
  });
});
