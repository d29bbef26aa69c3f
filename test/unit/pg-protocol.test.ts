import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import pg from 'pg';
import {
  BackendWriter,
  FrontendParser,
  serialize,
  decodePassword,
  decodeSaslInitialResponse,
  type ColumnDesc,
  type FrontendMessage,
  type NoticeFields,
} from '../../src/cascadb/server/pg-protocol.js';

// ---- a tiny, independent backend-message parser (what a client does) ----

type Parsed =
  | { t: 'auth'; code: number; mechanisms?: string[]; data?: string }
  | { t: 'parameterStatus'; name: string; value: string }
  | { t: 'backendKeyData'; pid: number; secret: number }
  | { t: 'readyForQuery'; status: string }
  | { t: 'rowDescription'; fields: Array<ColumnDesc & { format: number }> }
  | { t: 'dataRow'; values: Array<string | null> }
  | { t: 'commandComplete'; tag: string }
  | { t: 'error' | 'notice'; fields: Record<string, string> }
  | { t: 'parameterDescription'; oids: number[] }
  | { t: 'negotiateProtocolVersion'; minor: number; options: string[] }
  | { t: 'emptyQuery' | 'parseComplete' | 'bindComplete' | 'closeComplete' | 'noData' | 'portalSuspended' };

function parseBackend(buf: Buffer): Parsed[] {
  const out: Parsed[] = [];
  let p = 0;
  while (p < buf.length) {
    const type = String.fromCharCode(buf[p]!);
    const len = buf.readInt32BE(p + 1);
    const body = buf.subarray(p + 5, p + 1 + len);
    p += 1 + len;
    let q = 0;
    const i16 = (): number => ((q += 2), body.readInt16BE(q - 2));
    const i32 = (): number => ((q += 4), body.readInt32BE(q - 4));
    const u32 = (): number => ((q += 4), body.readUInt32BE(q - 4));
    const cstr = (): string => {
      const e = body.indexOf(0, q);
      assert.ok(e >= 0, 'unterminated string');
      const s = body.toString('utf8', q, e);
      q = e + 1;
      return s;
    };
    switch (type) {
      case 'R': {
        const code = i32();
        if (code === 10) {
          const mechanisms: string[] = [];
          for (let m = cstr(); m !== ''; m = cstr()) mechanisms.push(m);
          out.push({ t: 'auth', code, mechanisms });
        } else if (code === 11 || code === 12) out.push({ t: 'auth', code, data: body.toString('utf8', q) });
        else out.push({ t: 'auth', code });
        q = body.length;
        break;
      }
      case 'S':
        out.push({ t: 'parameterStatus', name: cstr(), value: cstr() });
        break;
      case 'K':
        out.push({ t: 'backendKeyData', pid: i32(), secret: i32() });
        break;
      case 'Z':
        out.push({ t: 'readyForQuery', status: String.fromCharCode(body[q++]!) });
        break;
      case 'T': {
        const n = i16();
        const fields = [];
        for (let i = 0; i < n; i++) {
          fields.push({ name: cstr(), tableOid: i32(), columnAttr: i16(), typeOid: i32(), typeSize: i16(), typeMod: i32(), format: i16() });
        }
        out.push({ t: 'rowDescription', fields });
        break;
      }
      case 'D': {
        const n = i16();
        const values: Array<string | null> = [];
        for (let i = 0; i < n; i++) {
          const l = i32();
          if (l === -1) values.push(null);
          else {
            values.push(body.toString('utf8', q, q + l));
            q += l;
          }
        }
        out.push({ t: 'dataRow', values });
        break;
      }
      case 'C':
        out.push({ t: 'commandComplete', tag: cstr() });
        break;
      case 'E':
      case 'N': {
        const fields: Record<string, string> = {};
        for (let c = body[q++]!; c !== 0; c = body[q++]!) fields[String.fromCharCode(c)] = cstr();
        out.push({ t: type === 'E' ? 'error' : 'notice', fields });
        break;
      }
      case 't': {
        const n = i16();
        const oids = [];
        for (let i = 0; i < n; i++) oids.push(u32());
        out.push({ t: 'parameterDescription', oids });
        break;
      }
      case 'v': {
        const minor = i32();
        const n = i32();
        const options = [];
        for (let i = 0; i < n; i++) options.push(cstr());
        out.push({ t: 'negotiateProtocolVersion', minor, options });
        break;
      }
      default: {
        const names: Record<string, Parsed['t']> = {
          I: 'emptyQuery',
          '1': 'parseComplete',
          '2': 'bindComplete',
          '3': 'closeComplete',
          n: 'noData',
          s: 'portalSuspended',
        };
        const t = names[type];
        assert.ok(t, `unknown backend message type ${type}`);
        out.push({ t } as Parsed);
      }
    }
    assert.equal(q, body.length, `message ${type}: ${body.length - q} trailing bytes`);
  }
  assert.equal(p, buf.length);
  return out;
}

// ---- independent frontend-message encoders (what a client sends) ----

function msg(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const h = Buffer.alloc(5);
  h[0] = type.charCodeAt(0);
  h.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([h, body]);
}
const cstr = (s: string): Buffer => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);
const i16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeInt16BE(v);
  return b;
};
const i32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v);
  return b;
};
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};

function encodeFrontend(m: FrontendMessage): Buffer {
  switch (m.type) {
    case 'startup': {
      const body = Buffer.concat([i32(m.protocol), ...Object.entries(m.params).flatMap(([k, v]) => [cstr(k), cstr(v)]), Buffer.from([0])]);
      return Buffer.concat([i32(body.length + 4), body]);
    }
    case 'sslRequest':
      return Buffer.concat([i32(8), i32(80877103)]);
    case 'gssEncRequest':
      return Buffer.concat([i32(8), i32(80877104)]);
    case 'cancelRequest':
      return Buffer.concat([i32(16), i32(80877102), i32(m.processId), i32(m.secretKey)]);
    case 'query':
      return msg('Q', cstr(m.sql));
    case 'parse':
      return msg('P', cstr(m.name), cstr(m.sql), i16(m.paramOids.length), ...m.paramOids.map(u32));
    case 'bind':
      return msg(
        'B',
        cstr(m.portal),
        cstr(m.statement),
        i16(m.paramFormats.length),
        ...m.paramFormats.map(i16),
        i16(m.params.length),
        ...m.params.flatMap((v) => (v === null ? [i32(-1)] : [i32(v.length), v])),
        i16(m.resultFormats.length),
        ...m.resultFormats.map(i16),
      );
    case 'describe':
      return msg('D', Buffer.from(m.kind), cstr(m.name));
    case 'close':
      return msg('C', Buffer.from(m.kind), cstr(m.name));
    case 'execute':
      return msg('E', cstr(m.portal), i32(m.maxRows));
    case 'sync':
      return msg('S');
    case 'flush':
      return msg('H');
    case 'terminate':
      return msg('X');
    case 'password':
      return msg('p', m.data);
    default:
      throw new Error(`no encoder for ${m.type}`);
  }
}

// ---- arbitraries ----

const noNul = (s: string): boolean => !s.includes('\0');
const text = fc.string({ unit: 'grapheme', maxLength: 40 }).filter(noNul);
const name = fc.string({ maxLength: 12 }).filter(noNul);
const int16 = fc.integer({ min: -32768, max: 32767 });
const int32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const oid = fc.integer({ min: 0, max: 0xffffffff });
const bytes = fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a));

const frontendMessage: fc.Arbitrary<FrontendMessage> = fc.oneof(
  fc.record({ type: fc.constant('query' as const), sql: text }),
  fc.record({ type: fc.constant('parse' as const), name, sql: text, paramOids: fc.array(oid, { maxLength: 5 }) }),
  fc.record({
    type: fc.constant('bind' as const),
    portal: name,
    statement: name,
    paramFormats: fc.array(fc.integer({ min: 0, max: 1 }), { maxLength: 4 }),
    params: fc.array(fc.option(bytes, { nil: null }), { maxLength: 4 }),
    resultFormats: fc.array(fc.integer({ min: 0, max: 1 }), { maxLength: 4 }),
  }),
  fc.record({ type: fc.constant('describe' as const), kind: fc.constantFrom('S' as const, 'P' as const), name }),
  fc.record({ type: fc.constant('close' as const), kind: fc.constantFrom('S' as const, 'P' as const), name }),
  fc.record({ type: fc.constant('execute' as const), portal: name, maxRows: fc.integer({ min: 0, max: 0x7fffffff }) }),
  fc.constant({ type: 'sync' as const }),
  fc.constant({ type: 'flush' as const }),
  fc.record({ type: fc.constant('password' as const), data: bytes }),
);

const startupMessage = fc.record({
  type: fc.constant('startup' as const),
  protocol: fc.constant(196608),
  params: fc.dictionary(name.filter((k) => k !== ''), text, { maxKeys: 5 }),
});

/** Splits a buffer at sorted random points. */
function split(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    parts.push(buf.subarray(prev, p));
    prev = p;
  }
  parts.push(buf.subarray(prev));
  return parts;
}

function feedAll(parts: Buffer[], parser = new FrontendParser()): FrontendMessage[] {
  return parts.flatMap((p) => parser.feed(p));
}

/** Messages as comparable plain data (Buffers → arrays, null-prototype params → plain objects). */
function plain(ms: FrontendMessage[]): unknown {
  return JSON.parse(JSON.stringify(ms, (_k, v: unknown) => (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer' ? (v as { data: number[] }).data : v)));
}

/** The untyped part of pg's Connection that these tests drive. */
interface PgConnection {
  startup(params: Record<string, string>): void;
  parse(q: { name?: string; text: string; types?: number[] }): void;
  bind(b: { portal?: string; statement?: string; values?: unknown[] }): void;
  describe(d: { type: 'S' | 'P'; name?: string }): void;
  execute(e: { portal?: string; rows?: number }): void;
  close(c: { type: 'S' | 'P'; name?: string }): void;
  flush(): void;
  sync(): void;
  query(sql: string): void;
}

function startupBytes(): Buffer {
  return encodeFrontend({ type: 'startup', protocol: 196608, params: { user: 'u', database: 'd' } });
}

describe('pg-protocol: backend serializer', () => {
  const field: fc.Arbitrary<ColumnDesc> = fc.record({
    name: text,
    tableOid: fc.integer({ min: 0, max: 0x7fffffff }),
    columnAttr: int16,
    typeOid: fc.integer({ min: 0, max: 0x7fffffff }),
    typeSize: int16,
    typeMod: int32,
  });
  const row = fc.array(fc.option(fc.oneof(text, fc.string({ unit: 'grapheme', minLength: 20, maxLength: 200 })), { nil: null }), { maxLength: 12 });
  const notice: fc.Arbitrary<NoticeFields> = fc.record(
    {
      severity: fc.constantFrom('ERROR' as const, 'FATAL' as const, 'NOTICE' as const, 'WARNING' as const),
      code: fc.stringMatching(/^[0-9A-Z]{5}$/),
      message: text,
      detail: text,
      hint: text,
      position: fc.nat(100000),
    },
    { requiredKeys: ['severity', 'code', 'message'] },
  );

  // Each case: how to write it, and what the independent parser must read back.
  type Case = [(w: BackendWriter) => void, () => Buffer, Parsed];
  const cases: fc.Arbitrary<Case> = fc.oneof(
    fc.constant<Case>([(w) => w.authenticationOk(), () => serialize.authenticationOk(), { t: 'auth', code: 0 }]),
    fc.constant<Case>([(w) => w.authenticationCleartextPassword(), () => serialize.authenticationCleartextPassword(), { t: 'auth', code: 3 }]),
    fc.array(name.filter((s) => s !== ''), { maxLength: 3 }).map<Case>((ms) => [(w) => w.authenticationSASL(ms), () => serialize.authenticationSASL(ms), { t: 'auth', code: 10, mechanisms: ms }]),
    text.map<Case>((d) => [(w) => w.authenticationSASLContinue(d), () => serialize.authenticationSASLContinue(d), { t: 'auth', code: 11, data: d }]),
    text.map<Case>((d) => [(w) => w.authenticationSASLFinal(Buffer.from(d)), () => serialize.authenticationSASLFinal(d), { t: 'auth', code: 12, data: d }]),
    fc.tuple(name, text).map<Case>(([n, v]) => [(w) => w.parameterStatus(n, v), () => serialize.parameterStatus(n, v), { t: 'parameterStatus', name: n, value: v }]),
    fc.tuple(int32, int32).map<Case>(([a, b]) => [(w) => w.backendKeyData(a, b), () => serialize.backendKeyData(a, b), { t: 'backendKeyData', pid: a, secret: b }]),
    fc.constantFrom('I' as const, 'T' as const, 'E' as const).map<Case>((s) => [(w) => w.readyForQuery(s), () => serialize.readyForQuery(s), { t: 'readyForQuery', status: s }]),
    fc.array(field, { maxLength: 6 }).map<Case>((fs) => [
      (w) => w.rowDescription(fs),
      () => serialize.rowDescription(fs),
      { t: 'rowDescription', fields: fs.map((f) => ({ ...f, format: 0 })) },
    ]),
    row.map<Case>((r) => [(w) => w.dataRow(r), () => serialize.dataRow(r), { t: 'dataRow', values: r }]),
    text.map<Case>((tag) => [(w) => w.commandComplete(tag), () => serialize.commandComplete(tag), { t: 'commandComplete', tag }]),
    fc.constant<Case>([(w) => w.emptyQueryResponse(), () => serialize.emptyQueryResponse(), { t: 'emptyQuery' }]),
    fc.constant<Case>([(w) => w.parseComplete(), () => serialize.parseComplete(), { t: 'parseComplete' }]),
    fc.constant<Case>([(w) => w.bindComplete(), () => serialize.bindComplete(), { t: 'bindComplete' }]),
    fc.constant<Case>([(w) => w.closeComplete(), () => serialize.closeComplete(), { t: 'closeComplete' }]),
    fc.constant<Case>([(w) => w.noData(), () => serialize.noData(), { t: 'noData' }]),
    fc.constant<Case>([(w) => w.portalSuspended(), () => serialize.portalSuspended(), { t: 'portalSuspended' }]),
    fc.array(oid, { maxLength: 8 }).map<Case>((o) => [(w) => w.parameterDescription(o), () => serialize.parameterDescription(o), { t: 'parameterDescription', oids: o }]),
    fc.array(name, { maxLength: 3 }).map<Case>((o) => [
      (w) => w.negotiateProtocolVersion(0, o),
      () => serialize.negotiateProtocolVersion(0, o),
      { t: 'negotiateProtocolVersion', minor: 0, options: o },
    ]),
    fc.tuple(notice, fc.boolean()).map<Case>(([f, isError]) => {
      const fields: Record<string, string> = { S: f.severity, V: f.severity, C: f.code, M: f.message };
      if (f.detail !== undefined) fields.D = f.detail;
      if (f.hint !== undefined) fields.H = f.hint;
      if (f.position !== undefined) fields.P = String(f.position);
      return isError
        ? [(w) => w.errorResponse(f), () => serialize.errorResponse(f), { t: 'error', fields }]
        : [(w) => w.noticeResponse(f), () => serialize.noticeResponse(f), { t: 'notice', fields }];
    }),
  );

  test('every backend message round-trips, alone and batched in one buffer', () => {
    fc.assert(
      fc.property(fc.array(cases, { minLength: 1, maxLength: 30 }), fc.integer({ min: 1, max: 64 }), (cs, initial) => {
        for (const [, one, expected] of cs) assert.deepEqual(parseBackend(one()), [expected]);
        const w = new BackendWriter(initial); // small initial sizes force growth mid-message
        for (const [write] of cs) write(w);
        assert.deepEqual(parseBackend(w.take()), cs.map((c) => c[2]));
        assert.equal(w.length, 0);
      }),
      { numRuns: 300 },
    );
  });

  test('DataRow: UTF-8 lengths, NULL as -1, long values, many rows in one batch', () => {
    const rows = [
      ['abc', null, '', 'ü', '日本語テキスト', '🎉'.repeat(10), 'a'.repeat(23) + 'é', 'x'.repeat(5000), 'é'.repeat(5000)],
      [],
      [null],
    ];
    const w = new BackendWriter(8);
    for (let i = 0; i < 1000; i++) w.dataRow(rows[i % 3]!);
    const parsed = parseBackend(w.take());
    assert.equal(parsed.length, 1000);
    assert.deepEqual(parsed[0], { t: 'dataRow', values: rows[0] });
    assert.deepEqual(parsed[999], { t: 'dataRow', values: rows[0] });
    const one = serialize.dataRow(['1', null]);
    assert.deepEqual([...one], [0x44, 0, 0, 0, 15, 0, 2, 0, 0, 0, 1, 0x31, 0xff, 0xff, 0xff, 0xff]);
  });

  test('embedded NUL in a C string is dropped rather than breaking the framing', () => {
    assert.deepEqual(parseBackend(serialize.commandComplete('SEL\0ECT 1')), [{ t: 'commandComplete', tag: 'SELECT 1' }]);
  });

  test('taken buffers are not overwritten by later writes', () => {
    const w = new BackendWriter(64);
    w.commandComplete('first');
    const a = w.take();
    w.commandComplete('second');
    const b = w.take();
    assert.deepEqual(parseBackend(a), [{ t: 'commandComplete', tag: 'first' }]);
    assert.deepEqual(parseBackend(b), [{ t: 'commandComplete', tag: 'second' }]);
  });
});

describe('pg-protocol: frontend parser', () => {
  test('startup: SSLRequest, GSSENCRequest, CancelRequest, StartupMessage; then typed messages', () => {
    const p = new FrontendParser();
    assert.deepEqual(p.feed(encodeFrontend({ type: 'sslRequest' })), [{ type: 'sslRequest' }]);
    assert.deepEqual(p.feed(encodeFrontend({ type: 'gssEncRequest' })), [{ type: 'gssEncRequest' }]);
    assert.equal(p.inStartup, true);
    const ms = p.feed(Buffer.concat([startupBytes(), encodeFrontend({ type: 'query', sql: 'SELECT 1' })]));
    assert.deepEqual(plain(ms), [
      { type: 'startup', protocol: 196608, params: { user: 'u', database: 'd' } },
      { type: 'query', sql: 'SELECT 1' },
    ]);
    assert.equal(p.inStartup, false);
    const c = new FrontendParser().feed(encodeFrontend({ type: 'cancelRequest', processId: 7, secretKey: -5 }));
    assert.deepEqual(c, [{ type: 'cancelRequest', processId: 7, secretKey: -5 }]);
  });

  test('a pipelined Parse+Bind+Describe+Execute+Sync parses identically under any chunking', () => {
    fc.assert(
      fc.property(
        fc.array(frontendMessage, { minLength: 1, maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.option(startupMessage, { nil: undefined }),
        (ms, cuts, startup) => {
          const pipeline: FrontendMessage[] = [
            { type: 'parse', name: 's1', sql: 'SELECT $1::int4, $2', paramOids: [23, 0] },
            { type: 'bind', portal: '', statement: 's1', paramFormats: [0, 1], params: [Buffer.from('42'), null], resultFormats: [0] },
            { type: 'describe', kind: 'P', name: '' },
            { type: 'execute', portal: '', maxRows: 0 },
            { type: 'sync' },
            ...ms,
          ];
          const all: FrontendMessage[] = startup ? [startup, ...pipeline] : pipeline;
          const bytes = Buffer.concat(all.map(encodeFrontend));
          const parser = new FrontendParser();
          if (!startup) parser.feed(startupBytes());
          const got = feedAll(split(bytes, cuts), parser);
          assert.deepEqual(plain(got), plain(all));
          assert.equal(parser.buffered, 0);
        },
      ),
      { numRuns: 400 },
    );
  });

  test('one byte at a time', () => {
    const ms: FrontendMessage[] = [
      { type: 'parse', name: '', sql: 'SELECT 1', paramOids: [] },
      { type: 'bind', portal: 'p', statement: '', paramFormats: [], params: [], resultFormats: [] },
      { type: 'execute', portal: 'p', maxRows: 10 },
      { type: 'flush' },
      { type: 'close', kind: 'P', name: 'p' },
      { type: 'terminate' },
    ];
    const bytes = Buffer.concat([startupBytes(), ...ms.map(encodeFrontend)]);
    const p = new FrontendParser();
    const got = [...bytes].flatMap((b) => p.feed(Buffer.from([b])));
    assert.deepEqual(plain(got.slice(1)), plain(ms));
  });

  test("what node-postgres' own serializer writes parses as intended", () => {
    const stream = new PassThrough();
    // pg's Connection is its protocol layer: it serializes with pg-protocol and writes to the stream given.
    const con = new pg.Connection({ stream: stream as never }) as unknown as PgConnection;
    con.startup({ user: 'alice', database: 'db', application_name: 'x', client_encoding: 'UTF8' });
    con.parse({ name: 'q1', text: 'SELECT $1, $2, $3', types: [25] });
    con.bind({ portal: 'p1', statement: 'q1', values: ['héllo', null, Buffer.from([1, 2, 3])] });
    con.describe({ type: 'P', name: 'p1' });
    con.execute({ portal: 'p1', rows: 5 });
    con.flush();
    con.close({ type: 'S', name: 'q1' });
    con.sync();
    con.query('SELECT 1');
    const bytes = stream.read() as Buffer;
    const got = plain(new FrontendParser().feed(bytes)) as Array<Record<string, unknown>>;
    assert.deepEqual(got, [
      { type: 'startup', protocol: 196608, params: { user: 'alice', database: 'db', application_name: 'x', client_encoding: 'UTF8' } },
      { type: 'parse', name: 'q1', sql: 'SELECT $1, $2, $3', paramOids: [25] },
      {
        type: 'bind',
        portal: 'p1',
        statement: 'q1',
        paramFormats: [0, 0, 1],
        params: [[...Buffer.from('héllo')], null, [1, 2, 3]],
        resultFormats: [0],
      },
      { type: 'describe', kind: 'P', name: 'p1' },
      { type: 'execute', portal: 'p1', maxRows: 5 },
      { type: 'flush' },
      { type: 'close', kind: 'S', name: 'q1' },
      { type: 'sync' },
      { type: 'query', sql: 'SELECT 1' },
    ]);
  });

  test('password and SASL bodies', () => {
    assert.equal(decodePassword(Buffer.from('secret\0')), 'secret');
    assert.equal(decodePassword(Buffer.from('secret')), undefined);
    assert.equal(decodePassword(Buffer.from('sec\0ret\0')), undefined);
    const sasl = Buffer.concat([cstr('SCRAM-SHA-256'), i32(4), Buffer.from('n,,x')]);
    assert.deepEqual(plain([{ type: 'password', data: Buffer.alloc(0) }]), plain([{ type: 'password', data: Buffer.alloc(0) }]));
    const d = decodeSaslInitialResponse(sasl);
    assert.equal(d?.mechanism, 'SCRAM-SHA-256');
    assert.equal(d?.response.toString(), 'n,,x');
    assert.equal(decodeSaslInitialResponse(Buffer.concat([cstr('SCRAM-SHA-256'), i32(9), Buffer.from('n,,x')])), undefined);
  });

  test('absurd lengths are refused at the header, without waiting for the body', () => {
    const typed = (): FrontendParser => {
      const p = new FrontendParser();
      p.feed(startupBytes());
      return p;
    };
    for (const len of [0x40000001, 0x7fffffff, -1, 3, 0]) {
      const got = typed().feed(Buffer.concat([Buffer.from('Q'), i32(len)]));
      assert.equal(got.length, 1);
      assert.equal(got[0]!.type, 'protocolError', `length ${len}`);
    }
    const sync = typed().feed(Buffer.concat([Buffer.from('S'), i32(8), i32(0)]));
    assert.equal(sync[0]!.type, 'protocolError');
    for (const len of [0, 7, 10001, 0x7fffffff]) {
      const got = new FrontendParser().feed(i32(len));
      assert.equal(got[0]!.type, 'protocolError', `startup length ${len}`);
    }
    // HTTP to the PostgreSQL port
    const http = new FrontendParser().feed(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    assert.deepEqual(http, [{ type: 'protocolError', code: '08P01', message: 'invalid length of startup packet' }]);
    // protocol 2.0
    const v2 = new FrontendParser().feed(Buffer.concat([i32(9), i32(0x20000), Buffer.from([0])]));
    assert.equal((v2[0] as { code?: string }).code, '0A000');
    // COPY messages outside COPY, and unknown types
    for (const t of ['d', 'c', 'f', 'Z', '\0']) {
      const got = typed().feed(Buffer.from(t));
      assert.equal(got[0]!.type, 'protocolError', `type ${JSON.stringify(t)}`);
    }
  });

  test('malformed bodies are protocol errors', () => {
    const bad = [
      msg('Q', Buffer.from('no terminator')),
      msg('Q', cstr('a'), Buffer.from('x')),
      msg('D', Buffer.from('X'), cstr('')),
      msg('P', cstr(''), cstr('x'), i16(-1)),
      msg('B', cstr(''), cstr(''), i16(0), i16(1), i32(-2), i16(0)),
      msg('B', cstr(''), cstr(''), i16(0), i16(1), i32(100), i16(0)),
      msg('E', cstr('')),
    ];
    for (const b of bad) {
      const p = new FrontendParser();
      p.feed(startupBytes());
      const got = p.feed(Buffer.concat([b, encodeFrontend({ type: 'sync' })]));
      assert.equal(got.length, 1, b.toString('hex'));
      assert.equal(got[0]!.type, 'protocolError');
      assert.deepEqual(p.feed(encodeFrontend({ type: 'sync' })), [], 'nothing after a protocol error');
    }
  });

  test('random garbage never throws; a protocol error is always last', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 10 }), fc.boolean(), (g, cuts, afterStartup) => {
        const p = new FrontendParser();
        if (afterStartup) p.feed(startupBytes());
        const got = feedAll(split(Buffer.from(g), cuts), p);
        const err = got.findIndex((m) => m.type === 'protocolError');
        assert.ok(err === -1 || err === got.length - 1);
      }),
      { numRuns: 1000 },
    );
  });

  test('garbage behind a bad type byte or length is a protocol error', () => {
    fc.assert(
      fc.property(fc.constantFrom(...'abeghijklmnoqrtuvwyz0123456789'.split('')), fc.uint8Array({ maxLength: 100 }), (t, rest) => {
        const p = new FrontendParser();
        p.feed(startupBytes());
        const got = p.feed(Buffer.concat([Buffer.from(t), Buffer.from(rest)]));
        assert.equal(got.length, 1);
        assert.equal(got[0]!.type, 'protocolError');
      }),
    );
  });

  test('a large message arriving in small chunks is buffered once and parsed intact', () => {
    const sql = `SELECT '${'x'.repeat(3_000_000)}'`;
    const bytes = encodeFrontend({ type: 'query', sql });
    const p = new FrontendParser();
    p.feed(startupBytes());
    const got: FrontendMessage[] = [];
    for (let i = 0; i < bytes.length; i += 65536) got.push(...p.feed(bytes.subarray(i, i + 65536)));
    assert.equal(got.length, 1);
    assert.equal((got[0] as { sql: string }).sql, sql);
  });
});
