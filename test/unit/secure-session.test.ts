// The secure layer: cipher suites, the DLMS record layer (Green Book vector), replay windows, counter stores,
// and the SIGMA-style handshake for every suite, including every way it must fail.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import {
  CryptoError,
  SUITES,
  generateIdentity,
  identityFromSeed,
  parseSuite,
  signWith,
  suiteInfo,
  verifyWith,
  type IdentityKey,
  type SuiteName,
} from '../../src/crypto/index.js';
import {
  Collector,
  CounterStoreError,
  FileCounterStore,
  MAX_UPLINK_COUNTER,
  MemoryCounterStore,
  MeterSession,
  REPLAY_WINDOW_SIZE,
  ReplayWindow,
  SC_AUTH_ENC,
  SecureError,
  decodeClientHello,
  decodeEstablished,
  decodeFinish,
  decodeServerHello,
  decodeSession,
  encodeSession,
  meterSystemTitle,
  newCollectorSystemTitle,
  openRecord,
  openUplink,
  peekCounter,
  sealDownlink,
  sealRecord,
  type SecureErrorCode,
  type SessionState,
} from '../../src/protocol/index.js';

const generateKeyPairAsync = promisify(generateKeyPair);

/** RSA identities come from the thread pool in parallel: keygen is the slow part of this file. */
async function rsaIdentity(suite: SuiteName): Promise<IdentityKey> {
  const { publicKey, privateKey } = await generateKeyPairAsync('rsa', { modulusLength: suiteInfo(suite).identityBits, publicExponent: 0x10001 });
  return { suite, publicKey: publicKey.export({ type: 'spki', format: 'der' }), privateKey };
}

/** Per suite: the collector's identity and two meters' (for RSA the "other meter" is a third key pair). */
const keys = {} as Record<SuiteName, { collector: IdentityKey; meterA: IdentityKey; meterB: IdentityKey }>;

before(async () => {
  await Promise.all(
    SUITES.map(async (suite) => {
      if (suiteInfo(suite).derivable) {
        keys[suite] = { collector: generateIdentity(suite), meterA: generateIdentity(suite), meterB: generateIdentity(suite) };
      } else {
        const [collector, meterA, meterB] = await Promise.all([rsaIdentity(suite), rsaIdentity(suite), rsaIdentity(suite)]);
        keys[suite] = { collector, meterA, meterB };
      }
    }),
  );
});

function rejects(fn: () => unknown, code: SecureErrorCode, what?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SecureError, `${what ?? 'call'}: expected SecureError(${code}), got ${String(e)}`);
    assert.equal(e.code, code, `${what ?? 'call'}: ${e.message}`);
    return true;
  });
}

/** Runs fn on arbitrary input; passing or SecureError are both fine, anything else is a defect. */
function onlySecureError(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof SecureError)) throw new Error(`threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} instead of SecureError`);
  }
}

const SERIAL_A = 12_345_678;
const SERIAL_B = 87_654_321;
const cookieKey = randomBytes(32);

interface Pair {
  meter: MeterSession;
  collector: Collector;
  session: SessionState;
}

function newCollector(suite: SuiteName, opts: { now?: () => number; identity?: IdentityKey; cookieKey?: Buffer } = {}): Collector {
  return new Collector({
    identities: { [suite]: opts.identity ?? keys[suite].collector },
    cookieKey: opts.cookieKey ?? cookieKey,
    systemTitle: newCollectorSystemTitle(),
    now: opts.now,
  });
}

function newMeter(suite: SuiteName, serial = SERIAL_A, identity = keys[suite].meterA, rekeyAfter?: number): MeterSession {
  return new MeterSession({ suite, serial, identity, collectorPublicKey: keys[suite].collector.publicKey, counters: new MemoryCounterStore(), rekeyAfter });
}

function handshake(suite: SuiteName, meter = newMeter(suite), collector = newCollector(suite), registered = keys[suite].meterA): Pair {
  const sh = collector.serverHello(meter.clientHello(), { suite, publicKey: registered.publicKey });
  const { session, established } = collector.finish(meter.onServerHello(sh), registered.publicKey);
  meter.onEstablished(established);
  return { meter, collector, session };
}

function flipBit(b: Buffer, bit: number): Buffer {
  const out = Buffer.from(b);
  out[bit >> 3] ^= 1 << (bit & 7);
  return out;
}

describe('record layer', () => {
  // DLMS UA Green Book (DLMS UA 1000-2), general-glo-ciphering example.
  const gb = {
    keys: { ek: Buffer.from('000102030405060708090A0B0C0D0E0F', 'hex'), ak: Buffer.from('D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF', 'hex') },
    title: Buffer.from('4D4D4D0000BC614E', 'hex'),
    ic: 0x01234567,
    plaintext: Buffer.from('C0010000080000010000FF0200', 'hex'),
    record: Buffer.from('30' + '01234567' + '411312FF935A47566827C467BC' + '7D825C3BE4A77C3FCC056B6B', 'hex'),
  };

  test('seals the Green Book vector to the exact ciphertext and tag', () => {
    const record = sealRecord(gb.keys, gb.title, gb.ic, gb.plaintext);
    assert.equal(record.toString('hex').toUpperCase(), gb.record.toString('hex').toUpperCase());
    assert.equal(record.subarray(5, 18).toString('hex'), '411312ff935a47566827c467bc');
    assert.equal(record.subarray(18).toString('hex'), '7d825c3be4a77c3fcc056b6b');
    assert.equal(record[0], SC_AUTH_ENC);
  });

  test('opens the Green Book vector, and peekCounter reads its IC', () => {
    const { ic, plaintext } = openRecord(gb.keys, gb.title, gb.record);
    assert.equal(ic, 0x01234567);
    assert.deepEqual(plaintext, gb.plaintext);
    assert.equal(peekCounter(gb.record), 0x01234567);
  });

  test('round-trips any plaintext under AES-128 and AES-256 keys', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(16, 32),
        fc.uint8Array({ minLength: 8, maxLength: 8 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.uint8Array({ maxLength: 600 }),
        (ekLen, title, ic, plain) => {
          const k = { ek: randomBytes(ekLen), ak: randomBytes(16) };
          const record = sealRecord(k, Buffer.from(title), ic, Buffer.from(plain));
          assert.equal(record.length, plain.length + 17);
          const opened = openRecord(k, Buffer.from(title), record);
          assert.equal(opened.ic, ic);
          assert.deepEqual(opened.plaintext, Buffer.from(plain));
        },
      ),
    );
  });

  test('a flipped bit anywhere after the SC byte is auth; in the SC byte it is malformed (only 0x30 exists)', () => {
    for (let bit = 0; bit < gb.record.length * 8; bit++) {
      rejects(() => openRecord(gb.keys, gb.title, flipBit(gb.record, bit)), bit < 8 ? 'malformed' : 'auth', `bit ${bit}`);
    }
  });

  test('another sender title, EK or AK does not open it', () => {
    rejects(() => openRecord(gb.keys, flipBit(gb.title, 3), gb.record), 'auth');
    rejects(() => openRecord({ ek: flipBit(gb.keys.ek, 0), ak: gb.keys.ak }, gb.title, gb.record), 'auth');
    rejects(() => openRecord({ ek: gb.keys.ek, ak: flipBit(gb.keys.ak, 100) }, gb.title, gb.record), 'auth');
  });

  test('short or non-0x30 records are malformed before any decryption', () => {
    for (let n = 0; n < 17; n++) rejects(() => openRecord(gb.keys, gb.title, gb.record.subarray(0, n)), 'malformed', `${n} bytes`);
    rejects(() => peekCounter(Buffer.from('31000000010000000000000000000000000000', 'hex')), 'malformed');
    // exactly the overhead: an empty plaintext is a valid record
    const empty = sealRecord(gb.keys, gb.title, 7, Buffer.alloc(0));
    assert.equal(openRecord(gb.keys, gb.title, empty).plaintext.length, 0);
  });

  test('bad keys, titles and counters are caller errors (CryptoError), not SecureError', () => {
    assert.throws(() => sealRecord({ ek: Buffer.alloc(24), ak: gb.keys.ak }, gb.title, 1, gb.plaintext), CryptoError);
    assert.throws(() => sealRecord(gb.keys, Buffer.alloc(7), 1, gb.plaintext), CryptoError);
    assert.throws(() => sealRecord(gb.keys, gb.title, 2 ** 32, gb.plaintext), CryptoError);
    assert.throws(() => sealRecord(gb.keys, gb.title, -1, gb.plaintext), CryptoError);
  });
});

describe('replay window', () => {
  test('matches a set-based model on random counter streams, and survives serialize/deserialize', () => {
    const counterStream = fc.array(
      fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 40 }), fc.constant(REPLAY_WINDOW_SIZE), fc.integer({ min: 0, max: 0xffffffff })),
      { maxLength: 300 },
    );
    fc.assert(
      fc.property(counterStream, fc.nat(300), (ics, cut) => {
        let w = new ReplayWindow();
        const seen = new Set<number>();
        let highest = 0;
        ics.forEach((ic, i) => {
          if (i === cut) w = ReplayWindow.deserialize(w.serialize());
          const floor = Math.max(0, highest - REPLAY_WINDOW_SIZE);
          const want = ic > floor && !seen.has(ic);
          assert.equal(w.check(ic), want, `check(${ic}) with highest ${highest}`);
          if (want) {
            w.accept(ic);
            seen.add(ic);
            highest = Math.max(highest, ic);
          } else {
            rejects(() => w.accept(ic), 'replay');
          }
          assert.equal(w.highest, highest);
          assert.equal(w.floor, Math.max(0, highest - REPLAY_WINDOW_SIZE));
        });
      }),
    );
  });

  test('slides: far ahead moves the floor; the old counters are then replays', () => {
    const w = new ReplayWindow();
    for (const ic of [5, 3, 4, 1, 2]) w.accept(ic);
    assert.equal(w.check(3), false);
    assert.equal(w.check(6), true);
    w.accept(5000);
    assert.equal(w.floor, 5000 - REPLAY_WINDOW_SIZE);
    assert.equal(w.check(6), false, 'below the new floor');
    assert.equal(w.check(5000 - REPLAY_WINDOW_SIZE + 1), true, 'lowest in window, unseen');
    assert.equal(w.check(0xffffffff), true);
    assert.equal(w.check(1.5), false);
    assert.equal(w.check(-1), false);
    assert.equal(w.check(2 ** 32), false);
  });

  test('serializes to a compact, validated 137 bytes', () => {
    const w = new ReplayWindow();
    for (const ic of [10, 2000, 1990, 1500]) w.accept(ic);
    const bytes = w.serialize();
    assert.equal(bytes.length, 137);
    const back = ReplayWindow.deserialize(bytes);
    assert.deepEqual([back.floor, back.highest, back.check(1990), back.check(1991)], [w.floor, w.highest, false, true]);
    assert.ok(bytes.equals(back.serialize()));
    rejects(() => ReplayWindow.deserialize(bytes.subarray(1)), 'malformed');
    const noHighest = Buffer.from(new ReplayWindow(0).serialize());
    noHighest.writeUInt32BE(5, 5); // claims highest 5 without marking it
    rejects(() => ReplayWindow.deserialize(noHighest), 'malformed');
    fc.assert(fc.property(fc.uint8Array({ minLength: 137, maxLength: 137 }), (b) => onlySecureError(() => ReplayWindow.deserialize(Buffer.from(b)))));
  });
});

describe('counter stores', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'sg-counters-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('FileCounterStore never repeats a counter across simulated crashes (random blocks, meters, crash points)', () => {
    let run = 0;
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 9 }), fc.array(fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constant(-1)), { maxLength: 80 }), (block, ops) => {
        const file = path.join(dir, `fleet-${run++}.json`);
        let store = FileCounterStore.open(file, { block });
        const last = new Map<number, number>();
        for (const op of ops) {
          if (op === -1) {
            store = FileCounterStore.open(file, { block }); // crash: the old instance is abandoned, never closed
            continue;
          }
          const c = store.next(op);
          assert.ok(c > (last.get(op) ?? 0), `meter ${op}: counter ${c} after ${last.get(op)}`);
          assert.ok(c <= store.reserved, 'handed out only after being reserved');
          last.set(op, c);
        }
      }),
      { numRuns: 60 },
    );
  });

  test('a reopened file continues above the watermark; reserves in blocks, not per counter', () => {
    const file = path.join(dir, 'fleet-blocks.json');
    const a = FileCounterStore.open(file, { block: 1024 });
    const first = Array.from({ length: 1500 }, () => a.next(42));
    assert.deepEqual(first.slice(0, 3), [1, 2, 3]);
    assert.equal(a.reserved, 2048, 'two blocks for 1500 counters');
    assert.equal(a.next(7), 1, 'other meters have their own sequence');
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { format: 'securegrid-counters/1', reserved: 2048 });
    const b = FileCounterStore.open(file, { block: 1024 });
    assert.equal(b.next(42), 2049);
    assert.equal(b.next(7), 2049);
    b.close();
    assert.throws(() => b.next(42), (e: unknown) => e instanceof CounterStoreError && e.code === 'closed');
  });

  test('a damaged counter file is refused (deleting it would repeat counters)', () => {
    const file = path.join(dir, 'fleet-bad.json');
    writeFileSync(file, '{"format":"securegrid-counters/1","reserved":-3}');
    assert.throws(() => FileCounterStore.open(file), (e: unknown) => e instanceof CounterStoreError && e.code === 'corrupt');
    writeFileSync(file, 'not json');
    assert.throws(() => FileCounterStore.open(file), (e: unknown) => e instanceof CounterStoreError && e.code === 'corrupt');
  });

  test('a meter never gets counter 2^32−1: the store is exhausted first', () => {
    const store = new MemoryCounterStore(MAX_UPLINK_COUNTER - 1);
    assert.equal(store.next(1), 0xfffffffd);
    assert.equal(store.next(1), 0xfffffffe);
    assert.throws(() => store.next(1), (e: unknown) => e instanceof CounterStoreError && e.code === 'exhausted');
  });
});

describe('cipher suites', () => {
  test('parseSuite names the known suites when given an unknown one', () => {
    assert.equal(parseSuite('p256-aes128gcm'), 'p256-aes128gcm');
    assert.throws(() => parseSuite('p521-aes256gcm'), (e: unknown) => e instanceof CryptoError && e.code === 'BadInput' && e.message.includes('x25519-ed25519-aes256gcm'));
    assert.equal(SUITES.length, 5);
  });

  test('identityFromSeed is deterministic for EC and Ed25519 suites, and refuses RSA', () => {
    const seed = Buffer.alloc(32, 7);
    for (const suite of SUITES) {
      if (!suiteInfo(suite).derivable) {
        assert.throws(() => identityFromSeed(suite, seed), (e: unknown) => e instanceof CryptoError && e.code === 'BadInput' && /generated, not derived/.test(e.message));
        continue;
      }
      const a = identityFromSeed(suite, seed);
      const b = identityFromSeed(suite, Buffer.from(seed));
      const c = identityFromSeed(suite, Buffer.alloc(32, 8));
      assert.ok(a.publicKey.equals(b.publicKey), suite);
      assert.ok(!a.publicKey.equals(c.publicKey), suite);
      const sig = signWith(a, Buffer.from('x'));
      assert.equal(sig.length, suiteInfo(suite).signatureBytes);
      assert.ok(verifyWith(suite, b.publicKey, Buffer.from('x'), sig));
      assert.ok(!verifyWith(suite, c.publicKey, Buffer.from('x'), sig));
    }
    // Ed25519: the seed is the RFC 8032 private key (RFC 8032 §7.1 test 1)
    const rfc = identityFromSeed('x25519-ed25519-aes256gcm', Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex'));
    assert.equal(rfc.publicKey.subarray(-32).toString('hex'), 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
    assert.throws(() => identityFromSeed('p256-aes128gcm', Buffer.alloc(31)), CryptoError);
  });

  test('verifyWith: false for a bad signature, BadKey for a key of another suite', () => {
    const id = keys['p256-aes128gcm'].meterA;
    const sig = signWith(id, Buffer.from('data'));
    assert.ok(verifyWith('p256-aes128gcm', id.publicKey, Buffer.from('data'), sig));
    assert.ok(!verifyWith('p256-aes128gcm', id.publicKey, Buffer.from('data!'), sig));
    assert.ok(!verifyWith('p256-aes128gcm', id.publicKey, Buffer.from('data'), sig.subarray(1)));
    assert.throws(() => verifyWith('p384-aes256gcm', id.publicKey, Buffer.from('data'), sig), (e: unknown) => e instanceof CryptoError && e.code === 'BadKey');
    assert.throws(() => verifyWith('p256-aes128gcm', randomBytes(40), Buffer.from('data'), sig), (e: unknown) => e instanceof CryptoError && e.code === 'BadKey');
  });
});

describe('handshake and session, every suite', () => {
  for (const suite of SUITES) {
    test(`${suite}: handshake, uplink and downlink records, session persistence`, () => {
      const { meter, collector, session } = handshake(suite);
      assert.ok(meter.established);
      assert.ok(meter.sessionId!.equals(session.sessionId));
      assert.equal(session.suite, suite);
      assert.equal(session.serial, SERIAL_A);
      assert.equal(session.uplink.ek.length, suiteInfo(suite).ekBytes);
      assert.ok(session.meterSystemTitle.equals(meterSystemTitle(SERIAL_A)));
      assert.equal(meterSystemTitle(SERIAL_A).toString('hex'), '53474d0000bc614e');
      for (let i = 1; i <= 5; i++) {
        const frame = randomBytes(258);
        const { ic, plaintext } = openUplink(session, meter.seal(frame));
        assert.equal(ic, i);
        assert.deepEqual(plaintext, frame);
      }
      assert.equal(session.records, 5);
      const down = collector.sealDownlink(session, Buffer.from('disconnect'));
      assert.equal(meter.openDownlink(collector.systemTitle, down).toString(), 'disconnect');
      rejects(() => meter.openDownlink(collector.systemTitle, down), 'replay', 'downlink replay');
      // persisted and restored (as another ingest instance would), the window comes along
      const restored = decodeSession(encodeSession(session));
      assert.deepEqual(encodeSession(restored), encodeSession(session));
      const replayed = meter.seal(Buffer.from('six'));
      assert.equal(openUplink(restored, replayed).plaintext.toString(), 'six');
      rejects(() => openUplink(restored, replayed), 'replay');
      rejects(() => openUplink(session, replayed.subarray(0, 8)), 'malformed');
    });
  }

  test('records: a replay is rejected; reordering within the window is accepted once; far behind is a replay', () => {
    const { meter, session } = handshake('x25519-ed25519-aes256gcm');
    const recs = Array.from({ length: 6 }, (_, i) => meter.seal(Buffer.from(`r${i}`)));
    for (const i of [2, 0, 3, 1, 5, 4]) assert.equal(openUplink(session, recs[i]).plaintext.toString(), `r${i}`);
    for (const r of recs) rejects(() => openUplink(session, r), 'replay');
    const old = meter.seal(Buffer.from('late'));
    for (let i = 0; i < REPLAY_WINDOW_SIZE + 1; i++) openUplink(session, meter.seal(Buffer.from('x')));
    rejects(() => openUplink(session, old), 'replay', 'a record older than the window');
    assert.equal(session.records, 6 + REPLAY_WINDOW_SIZE + 1);
  });

  test('records: a flipped bit is auth and does not consume the counter', () => {
    const { meter, session } = handshake('p256-aes128gcm');
    const rec = meter.seal(randomBytes(258));
    for (const bit of [40, 41, 100, 8 * 200 + 3, rec.length * 8 - 1]) rejects(() => openUplink(session, flipBit(rec, bit)), 'auth', `bit ${bit}`);
    // IC bits: 'auth', unless the flip lands on counter 0 (below the floor)
    for (let bit = 8; bit < 40; bit++) {
      const flipped = flipBit(rec, bit);
      rejects(() => openUplink(session, flipped), peekCounter(flipped) === 0 ? 'replay' : 'auth', `IC bit ${bit}`);
    }
    assert.equal(openUplink(session, rec).ic, 1, 'the genuine record still opens');
  });

  test("records: meter A's record opened with meter B's session is auth", () => {
    const suite = 'x25519-ed25519-aes256gcm';
    const a = handshake(suite);
    const b = handshake(suite, newMeter(suite, SERIAL_B, keys[suite].meterB), a.collector, keys[suite].meterB);
    rejects(() => openUplink(b.session, a.meter.seal(Buffer.from('from A'))), 'auth');
    assert.equal(openUplink(b.session, b.meter.seal(Buffer.from('from B'))).plaintext.toString(), 'from B');
    // a downlink for A does not open at B either
    rejects(() => b.meter.openDownlink(a.collector.systemTitle, a.collector.sealDownlink(a.session, Buffer.from('cmd'))), 'auth');
  });

  for (const suite of SUITES) {
    test(`${suite}: a Finish signed by a key other than the registered one is handshake`, () => {
      const k = keys[suite];
      const collector = newCollector(suite);
      // the meter holds meterB's key, the directory has meterA's
      const impostor = new MeterSession({ suite, serial: SERIAL_A, identity: k.meterB, collectorPublicKey: k.collector.publicKey, counters: new MemoryCounterStore() });
      const fin = impostor.onServerHello(collector.serverHello(impostor.clientHello(), { suite, publicKey: k.meterA.publicKey }));
      rejects(() => collector.finish(fin, k.meterA.publicKey), 'handshake');
      rejects(() => collector.finish(fin, () => ({ suite, publicKey: k.meterA.publicKey })), 'handshake');
      rejects(() => collector.finish(fin, () => undefined), 'unknown-meter');
      assert.equal(collector.finish(fin, k.meterB.publicKey).session.serial, SERIAL_A, 'and it verifies under the key that signed');
    });

    test(`${suite}: the meter rejects a ServerHello not signed by its collector key`, () => {
      const k = keys[suite];
      const meter = newMeter(suite);
      const rogue = newCollector(suite, { identity: k.meterB });
      const ch = meter.clientHello();
      rejects(() => meter.onServerHello(rogue.serverHello(ch, { suite, publicKey: k.meterA.publicKey })), 'handshake');
      const genuine = newCollector(suite).serverHello(ch, { suite, publicKey: k.meterA.publicKey });
      rejects(() => meter.onServerHello(flipBit(genuine, 8 * 5)), 'handshake', 'tampered Nc');
      assert.ok(meter.onServerHello(genuine).length > 0, 'the genuine ServerHello still completes');
    });
  }

  test('the cookie: another instance with the same cookie key finishes; tampered, foreign or expired is handshake', () => {
    const suite = 'p384-aes256gcm';
    let clock = 1_700_000_000_000;
    const now = (): number => clock;
    const k = keys[suite];
    const start = (): { meter: MeterSession; fin: Buffer } => {
      const meter = newMeter(suite);
      const sh = newCollector(suite, { now }).serverHello(meter.clientHello(), { suite, publicKey: k.meterA.publicKey });
      return { meter, fin: meter.onServerHello(sh) };
    };
    const other = newCollector(suite, { now });
    const ok = start();
    clock += 59_999;
    const { established } = other.finish(ok.fin, k.meterA.publicKey);
    ok.meter.onEstablished(established);
    assert.ok(ok.meter.established, 'stateless: instance 2 completed what instance 1 began');

    const late = start();
    clock += 60_001;
    rejects(() => other.finish(late.fin, k.meterA.publicKey), 'handshake', 'expired');

    const tampered = start();
    const cookieLen = tampered.fin.readUInt16BE(1);
    for (const at of [3, 3 + 20, 3 + cookieLen - 1]) {
      const bad = Buffer.from(tampered.fin);
      bad[at] ^= 0x40;
      rejects(() => other.finish(bad, k.meterA.publicKey), 'handshake', `cookie byte ${at}`);
    }
    rejects(() => newCollector(suite, { now, cookieKey: randomBytes(32) }).finish(tampered.fin, k.meterA.publicKey), 'handshake', 'other cookie key');
  });

  test('Established: a tampered confirmation or another session is handshake; the meter keeps waiting for the genuine one', () => {
    const suite = 'x25519-ed25519-aes256gcm';
    const meter = newMeter(suite);
    const collector = newCollector(suite);
    const fin = meter.onServerHello(collector.serverHello(meter.clientHello(), { suite, publicKey: keys[suite].meterA.publicKey }));
    const { established } = collector.finish(fin, keys[suite].meterA.publicKey);
    rejects(() => meter.onEstablished(flipBit(established, 8 * 3)), 'handshake', 'session id');
    rejects(() => meter.onEstablished(flipBit(established, 8 * 20)), 'handshake', 'confirmation record');
    assert.equal(meter.established, false);
    meter.onEstablished(established);
    assert.ok(meter.established);
    rejects(() => meter.onEstablished(established), 'handshake', 'no Finish outstanding');
  });

  test('serverHello: unknown meter, suite or title mismatch, no collector key', () => {
    const suite = 'x25519-ed25519-aes256gcm';
    const meter = newMeter(suite);
    const ch = meter.clientHello();
    const collector = newCollector(suite);
    rejects(() => collector.serverHello(ch, () => undefined), 'unknown-meter');
    rejects(() => collector.serverHello(ch, { suite: 'p256-aes128gcm', publicKey: keys['p256-aes128gcm'].meterA.publicKey }), 'handshake');
    const wrongTitle = Buffer.from(ch);
    wrongTitle[6] ^= 1; // first byte of the system title
    rejects(() => collector.serverHello(wrongTitle, { suite, publicKey: keys[suite].meterA.publicKey }), 'handshake');
    rejects(() => newCollector('p256-aes128gcm').serverHello(ch, { suite, publicKey: keys[suite].meterA.publicKey }), 'handshake');
    const ecCh = newMeter('p256-aes128gcm').clientHello();
    const offCurve = Buffer.from(ecCh);
    offCurve[ecCh.length - 1] ^= 1; // y coordinate: the point leaves the curve
    rejects(() => newCollector('p256-aes128gcm').serverHello(offCurve, { suite: 'p256-aes128gcm', publicKey: keys['p256-aes128gcm'].meterA.publicKey }), 'handshake', 'off-curve point');
  });

  test('a session re-keys after rekeyAfter records; the old session works until the new one is established', () => {
    const suite = 'x25519-ed25519-aes256gcm';
    const meter = newMeter(suite, SERIAL_A, keys[suite].meterA, 3);
    const first = handshake(suite, meter);
    for (let i = 0; i < 3; i++) openUplink(first.session, meter.seal(Buffer.from('a')));
    assert.ok(meter.needsRekey);
    const sh = first.collector.serverHello(meter.clientHello(), { suite, publicKey: keys[suite].meterA.publicKey });
    openUplink(first.session, meter.seal(Buffer.from('still old')));
    const { session, established } = first.collector.finish(meter.onServerHello(sh), keys[suite].meterA.publicKey);
    meter.onEstablished(established);
    assert.ok(!meter.needsRekey);
    assert.ok(!session.sessionId.equals(first.session.sessionId));
    const rec = meter.seal(Buffer.from('new'));
    assert.equal(openUplink(session, rec).ic, 5, 'counters continue across sessions');
    rejects(() => openUplink(first.session, meter.seal(Buffer.from('x'))), 'auth');
    meter.drop();
    rejects(() => meter.seal(Buffer.from('x')), 'no-session');
  });

  test('sealDownlink with an explicit title and counter opens at the meter, once per counter', () => {
    const { meter, session } = handshake('p256-aes128gcm');
    const title = newCollectorSystemTitle();
    assert.equal(title.subarray(0, 3).toString(), 'SGC');
    const d7 = sealDownlink(session, title, 7, Buffer.from('seven'));
    const d3 = sealDownlink(session, title, 3, Buffer.from('three'));
    assert.equal(meter.openDownlink(title, d7).toString(), 'seven');
    assert.equal(meter.openDownlink(title, d3).toString(), 'three');
    rejects(() => meter.openDownlink(title, d3), 'replay');
    rejects(() => meter.openDownlink(newCollectorSystemTitle(), sealDownlink(session, title, 9, Buffer.from('x'))), 'auth', 'claimed another sender');
  });
});

describe('decoders take any bytes', () => {
  const suite = 'x25519-ed25519-aes256gcm';
  const bytes = fc.uint8Array({ maxLength: 700 }).map((u) => Buffer.from(u));

  test('a genuine message with a trailing or a missing byte is malformed', () => {
    const meter = newMeter(suite);
    const collector = newCollector(suite);
    const ch = meter.clientHello();
    const sh = collector.serverHello(ch, { suite, publicKey: keys[suite].meterA.publicKey });
    const fin = meter.onServerHello(sh);
    const { session, established } = collector.finish(fin, keys[suite].meterA.publicKey);
    const stored = encodeSession(session);
    for (const [decode, body] of [
      [decodeClientHello, ch],
      [decodeServerHello, sh],
      [decodeFinish, fin],
      [decodeSession, stored],
    ] as const) {
      decode(body);
      rejects(() => decode(Buffer.concat([body, Buffer.from([0])])), 'malformed', `${decode.name} + 1 byte`);
      rejects(() => decode(body.subarray(0, body.length - 1)), 'malformed', `${decode.name} - 1 byte`);
    }
    rejects(() => decodeEstablished(established.subarray(0, 17 + 16)), 'malformed', 'Established without a record');
    rejects(() => decodeClientHello(Buffer.from([0x02, ...ch.subarray(1)])), 'malformed', 'wrong type byte');
  });

  test('random bytes into every decoder and handshake step only ever throw SecureError', () => {
    const collector = newCollector(suite);
    const { meter, session } = handshake(suite);
    const waiting = newMeter(suite);
    waiting.clientHello();
    const lookup = (): { suite: SuiteName; publicKey: Buffer } => ({ suite, publicKey: keys[suite].meterA.publicKey });
    fc.assert(
      fc.property(bytes, (b) => {
        for (const fn of [
          () => decodeClientHello(b),
          () => decodeServerHello(b),
          () => decodeFinish(b),
          () => decodeEstablished(b),
          () => decodeSession(b),
          () => ReplayWindow.deserialize(b),
          () => peekCounter(b),
          () => openRecord(session.uplink, session.meterSystemTitle, b),
          () => openUplink(session, b),
          () => collector.serverHello(b, lookup),
          () => collector.finish(b, keys[suite].meterA.publicKey),
          () => waiting.onServerHello(b),
          () => meter.openDownlink(collector.systemTitle, b),
        ]) {
          onlySecureError(fn);
        }
      }),
      { numRuns: 400 },
    );
  });

  test('mutated genuine messages (every suite) only ever throw SecureError', () => {
    const mutation = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 });
    const mutate = (b: Buffer, m: [number, number][]): Buffer => {
      const out = Buffer.from(b);
      for (const [at, x] of m) out[at % out.length] ^= x;
      return out;
    };
    for (const s of SUITES) {
      const k = keys[s];
      const collector = newCollector(s);
      const meter = newMeter(s);
      const ch = meter.clientHello();
      const sh = collector.serverHello(ch, { suite: s, publicKey: k.meterA.publicKey });
      const fin = meter.onServerHello(sh);
      const { session, established } = collector.finish(fin, k.meterA.publicKey);
      const stored = encodeSession(session);
      const runs = suiteInfo(s).derivable ? 60 : 15;
      fc.assert(
        fc.property(mutation, fc.boolean(), (m, truncate) => {
          const cut = (b: Buffer): Buffer => (truncate ? b.subarray(0, m[0][0] % b.length) : b);
          onlySecureError(() => collector.serverHello(cut(mutate(ch, m)), { suite: s, publicKey: k.meterA.publicKey }));
          onlySecureError(() => collector.finish(cut(mutate(fin, m)), k.meterA.publicKey));
          onlySecureError(() => decodeSession(cut(mutate(stored, m))));
          const again = newMeter(s);
          again.clientHello();
          onlySecureError(() => again.onServerHello(cut(mutate(sh, m))));
          const m2 = new MeterSession({ suite: s, serial: SERIAL_A, identity: k.meterA, collectorPublicKey: k.collector.publicKey, counters: new MemoryCounterStore() });
          onlySecureError(() => m2.onEstablished(cut(mutate(established, m))));
        }),
        { numRuns: runs },
      );
      meter.onEstablished(established);
      assert.ok(meter.established, `${s}: the unmutated messages still complete`);
    }
  });
});

describe('throughput (printed for the report)', () => {
  test('sealRecord / openRecord of a 258-byte frame, and handshake time per suite', () => {
    const frame = randomBytes(258);
    const title = meterSystemTitle(SERIAL_A);
    for (const ekLen of [16, 32]) {
      const k = { ek: randomBytes(ekLen), ak: randomBytes(16) };
      const n = 50_000;
      const recs: Buffer[] = new Array<Buffer>(n);
      let t = performance.now();
      for (let i = 0; i < n; i++) recs[i] = sealRecord(k, title, i + 1, frame);
      const sealRate = n / ((performance.now() - t) / 1000);
      t = performance.now();
      for (let i = 0; i < n; i++) openRecord(k, title, recs[i]);
      const openRate = n / ((performance.now() - t) / 1000);
      console.log(`  AES-${ekLen * 8}-GCM 258-byte frame: sealRecord ${Math.round(sealRate)}/s, openRecord ${Math.round(openRate)}/s`);
      assert.ok(sealRate > 1000 && openRate > 1000);
    }
    for (const suite of SUITES) {
      const rounds = suiteInfo(suite).derivable ? 40 : 8;
      const collector = newCollector(suite);
      const t = performance.now();
      for (let i = 0; i < rounds; i++) handshake(suite, newMeter(suite), collector);
      console.log(`  ${suite}: ${((performance.now() - t) / rounds).toFixed(2)} ms per full handshake (both sides, one thread)`);
    }
  });
});
