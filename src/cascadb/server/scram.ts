// SCRAM-SHA-256 (RFC 5802, RFC 7677), server side, as PostgreSQL runs it: mechanism SCRAM-SHA-256 without
// channel binding (gs2 flags 'n' and 'y'; 'p' is refused), the user name in the SCRAM message is ignored (the
// startup packet's user counts), and unknown users go through the whole exchange against a mock verifier so the
// failure looks the same as a wrong password.
import { createHash, createHmac, pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { PgError, type ScramVerifier } from './backend.js';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
const DEFAULT_ITERATIONS = 4096;
const NONCE_BYTES = 18; // PostgreSQL's SCRAM_RAW_NONCE_LEN

const pbkdf2Async = promisify(pbkdf2);
/** Per-process secret for the mock verifiers of unknown users (stable salt per user name within a process). */
const MOCK_SECRET = randomBytes(32);

const hmac = (key: Buffer, data: string | Buffer): Buffer => createHmac('sha256', key).update(data).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

function fromSalted(salted: Buffer, iterations: number, salt: Buffer): ScramVerifier {
  const clientKey = hmac(salted, 'Client Key');
  return { iterations, salt, storedKey: sha256(clientKey), serverKey: hmac(salted, 'Server Key') };
}

/** A verifier from a password (UTF-8 as given; no SASLprep). */
export function makeVerifier(password: string, iterations = DEFAULT_ITERATIONS, salt: Buffer = randomBytes(16)): ScramVerifier {
  if (!Number.isInteger(iterations) || iterations < 1) throw new RangeError('SCRAM iterations must be a positive integer');
  return fromSalted(pbkdf2Sync(password, salt, iterations, 32, 'sha256'), iterations, salt);
}

/** A verifier that no password matches, with a salt derived from the user name (so probing shows nothing). */
export function mockVerifier(user: string): ScramVerifier {
  const salt = hmac(MOCK_SECRET, `salt:${user}`).subarray(0, 16);
  return { iterations: DEFAULT_ITERATIONS, salt, storedKey: randomBytes(32), serverKey: randomBytes(32) };
}

/** Checks a cleartext password (AuthenticationCleartextPassword over TLS) by recomputing the stored key. */
export async function verifyPassword(v: ScramVerifier, password: string): Promise<boolean> {
  const salted = await pbkdf2Async(password, v.salt, v.iterations, 32, 'sha256');
  const computed = fromSalted(salted, v.iterations, v.salt);
  return safeEqual(computed.storedKey, v.storedKey) && safeEqual(computed.serverKey, v.serverKey);
}

function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function authFailed(user: string): PgError {
  return new PgError('28P01', `password authentication failed for user "${user}"`, { severity: 'FATAL' });
}

function malformed(detail: string): PgError {
  return new PgError('08P01', 'malformed SCRAM message', { detail, severity: 'FATAL' });
}

const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/; // RFC 5802 'printable': no comma
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function base64(s: string, what: string): Buffer {
  if (!BASE64.test(s)) throw malformed(`${what} is not valid base64.`);
  return Buffer.from(s, 'base64');
}

/**
 * One SCRAM-SHA-256 exchange. first() takes the client-first-message and returns the server-first-message;
 * final() takes the client-final-message and returns the server-final-message, or throws PgError 28P01.
 * Malformed messages throw PgError 08P01 (0A000 for unsupported features).
 */
export class ScramExchange {
  private readonly verifier: ScramVerifier;
  private readonly doomed: boolean;
  private gs2Header = '';
  private clientFirstBare = '';
  private serverFirst = '';
  private nonce = '';

  constructor(private readonly user: string, verifier: ScramVerifier | undefined) {
    this.doomed = verifier === undefined;
    this.verifier = verifier ?? mockVerifier(user);
  }

  /** `serverNonce` is for test vectors only; by default 18 random bytes, base64. */
  first(clientFirst: string, serverNonce = randomBytes(NONCE_BYTES).toString('base64')): string {
    // gs2-header = gs2-cbind-flag "," [authzid] ","
    const flag = clientFirst[0];
    if (flag === 'p') {
      throw new PgError('08P01', 'malformed SCRAM message', {
        detail: 'The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data.',
        severity: 'FATAL',
      });
    }
    if ((flag !== 'n' && flag !== 'y') || clientFirst[1] !== ',') throw malformed('Unexpected channel-binding flag.');
    if (clientFirst[2] === 'a') {
      throw new PgError('0A000', 'client uses authorization identity, but it is not supported', { severity: 'FATAL' });
    }
    if (clientFirst[2] !== ',') throw malformed('Unexpected attribute in client-first-message.');
    this.gs2Header = clientFirst.slice(0, 3);
    this.clientFirstBare = clientFirst.slice(3);
    const attrs = this.clientFirstBare.split(',');
    if (attrs[0]?.startsWith('m=')) throw new PgError('0A000', 'client requires an unsupported SCRAM extension', { severity: 'FATAL' });
    if (!attrs[0]?.startsWith('n=')) throw malformed('Expected attribute "n" in client-first-message.');
    const r = attrs[1];
    if (!r?.startsWith('r=') || !PRINTABLE.test(r.slice(2))) throw malformed('Expected a nonce ("r") in client-first-message.');
    this.nonce = r.slice(2) + serverNonce;
    this.serverFirst = `r=${this.nonce},s=${this.verifier.salt.toString('base64')},i=${this.verifier.iterations}`;
    return this.serverFirst;
  }

  final(clientFinal: string): string {
    if (!this.serverFirst) throw malformed('client-final-message before client-first-message.');
    const proofAt = clientFinal.lastIndexOf(',p=');
    if (proofAt < 0) throw malformed('Expected a proof ("p") at the end of client-final-message.');
    const withoutProof = clientFinal.slice(0, proofAt);
    const attrs = withoutProof.split(',');
    if (attrs[0] !== `c=${Buffer.from(this.gs2Header).toString('base64')}`) {
      throw malformed('Unexpected SCRAM channel-binding attribute in client-final-message.');
    }
    if (attrs[1] !== `r=${this.nonce}`) throw malformed('SCRAM nonce mismatch.');
    const proof = base64(clientFinal.slice(proofAt + 3), 'The proof');
    if (proof.length !== 32) throw malformed('Malformed proof in client-final-message.');

    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const v = this.verifier;
    const signature = hmac(v.storedKey, authMessage);
    const clientKey = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) clientKey[i] = proof[i]! ^ signature[i]!;
    const ok = timingSafeEqual(sha256(clientKey), v.storedKey.length === 32 ? v.storedKey : Buffer.alloc(32));
    if (!ok || this.doomed) throw authFailed(this.user);
    return `v=${hmac(v.serverKey, authMessage).toString('base64')}`;
  }
}
