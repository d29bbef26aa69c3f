// AWS Signature Version 4, as S3 clients speak it: the Authorization header form and presigned URLs,
// plus the per-chunk signatures of STREAMING-AWS4-HMAC-SHA256-PAYLOAD. Signing and verifying share one
// canonical-request builder, so our own client (kvs/client) signs exactly what the gateway verifies.
// HMAC-SHA256 and SHA-256 come from node:crypto.
//
// Canonicalisation follows S3 (not the generic SigV4 of other services): the path is not double-encoded and
// not dot-segment-normalised; each path segment is percent-decoded byte-wise and re-encoded with the RFC 3986
// unreserved set (A-Z a-z 0-9 - _ . ~), '/' kept. Query names and values are treated the same way ('+' is a
// literal plus, as every AWS SDK sends '%20' for a space), sorted by encoded name, then encoded value.

import { createHmac, hash, timingSafeEqual } from 'node:crypto';

export type SigV4ErrorCode =
  | 'AccessDenied' // missing / unsupported auth, wrong region/service scope
  | 'InvalidAccessKeyId' // unknown access key id
  | 'SignatureDoesNotMatch'
  | 'AuthorizationHeaderMalformed'
  | 'AuthorizationQueryParametersError'
  | 'RequestTimeTooSkewed' // header form: |now - x-amz-date| > 15 min
  | 'ExpiredToken'; // presigned URL past X-Amz-Expires (S3 answers AccessDenied "Request has expired"; use AccessDenied code, this for internal)

export class SigV4Error extends Error {
  constructor(readonly code: SigV4ErrorCode, message: string) {
    super(message);
  }
}

/** What the gateway knows about the incoming request (raw, as received). */
export interface SignedRequest {
  method: string;
  /** Raw path as sent on the wire, percent-encoded, without the query string (e.g. '/bucket/a%20b'). */
  rawPath: string;
  /** Raw query string without '?', as sent (may be ''). */
  rawQuery: string;
  /** Header names lower-case; repeated headers joined with ','. */
  headers: Record<string, string | undefined>;
}

export interface VerifiedAuth {
  accessKeyId: string;
  /** 'UNSIGNED-PAYLOAD', a hex SHA-256, or one of the STREAMING-* values, taken from x-amz-content-sha256 (presigned: UNSIGNED-PAYLOAD). */
  payloadHash: string;
  /** For STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]: what the chunk decoder needs to verify chunk signatures. */
  chunkSigning?: ChunkSigningContext;
  presigned: boolean;
}

export interface ChunkSigningContext {
  signingKey: Buffer;
  amzDate: string; // e.g. 20261126T064000Z
  scope: string; // e.g. 20261126/us-east-1/s3/aws4_request
  seedSignature: string; // the request's own signature
}

// ---------------------------------------------------------------------------------------------------------------
// Constants

export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const STREAMING_PAYLOAD = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
export const STREAMING_PAYLOAD_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER';
export const STREAMING_UNSIGNED_PAYLOAD_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';
/** SHA-256 of the empty string. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** Maximum |now - request time| for the header form. */
export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;
/** Maximum X-Amz-Expires (one week). */
export const MAX_PRESIGNED_EXPIRES = 604800;

const SERVICE = 's3';
const TERMINATOR = 'aws4_request';
const HEX64 = /^[0-9a-f]{64}$/;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;

/** Headers our signer never signs (same set as the AWS SDKs), besides the generated ones. */
const UNSIGNABLE_HEADERS = new Set([
  'authorization',
  'cache-control',
  'connection',
  'date',
  'expect',
  'from',
  'keep-alive',
  'max-forwards',
  'pragma',
  'referer',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'user-agent',
  'x-amzn-trace-id',
]);

const VALID_STREAMING_HASHES = new Set([
  UNSIGNED_PAYLOAD,
  STREAMING_PAYLOAD,
  STREAMING_PAYLOAD_TRAILER,
  STREAMING_UNSIGNED_PAYLOAD_TRAILER,
]);

const MSG_SIGNATURE =
  'The request signature we calculated does not match the signature you provided. Check your key and signing method.';

// ---------------------------------------------------------------------------------------------------------------
// Primitives

export function sha256Hex(data: string | Uint8Array): string {
  // One-shot hashing: no Hash object per call (this runs several times per request).
  return hash('sha256', data, 'hex');
}

export function hmacSha256(key: string | Uint8Array, data: string | Uint8Array): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

const SIGNING_KEY_CACHE_MAX = 512;
const signingKeyCache = new Map<string, Buffer>();

/**
 * kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request"), cached per
 * (secret, date, region, service). The cache key holds a SHA-256 of the secret, not the secret.
 */
export function deriveSigningKey(secretAccessKey: string, shortDate: string, region: string, service = SERVICE): Buffer {
  const cacheKey = `${sha256Hex(secretAccessKey)}\n${shortDate}\n${region}\n${service}`;
  const hit = signingKeyCache.get(cacheKey);
  if (hit) {
    // refresh LRU position
    signingKeyCache.delete(cacheKey);
    signingKeyCache.set(cacheKey, hit);
    return hit;
  }
  const kDate = hmacSha256(`AWS4${secretAccessKey}`, shortDate);
  const kRegion = hmacSha256(kDate, region);
  const kService = hmacSha256(kRegion, service);
  const kSigning = hmacSha256(kService, TERMINATOR);
  signingKeyCache.set(cacheKey, kSigning);
  if (signingKeyCache.size > SIGNING_KEY_CACHE_MAX) {
    const oldest = signingKeyCache.keys().next().value;
    if (oldest !== undefined) signingKeyCache.delete(oldest);
  }
  return kSigning;
}

/** Number of derived signing keys currently cached (for tests). */
export function signingKeyCacheSize(): number {
  return signingKeyCache.size;
}

/** Formats a Date as the ISO 8601 basic form SigV4 uses: 20130524T000000Z. */
export function toAmzDate(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

let lastAmzDate: { s: string; t: number } | undefined;

/** Parses 20130524T000000Z; undefined if malformed. */
export function parseAmzDate(s: string): Date | undefined {
  // Concurrent requests mostly carry the same second: the last good parse is kept.
  if (lastAmzDate !== undefined && lastAmzDate.s === s) return new Date(lastAmzDate.t);
  const m = AMZ_DATE.exec(s);
  if (!m) return undefined;
  const [y, mo, d, h, mi, se] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const t = Date.UTC(y, mo - 1, d, h, mi, se);
  const date = new Date(t);
  // Reject overflowing fields (month 13, second 61, …).
  if (Number.isNaN(t) || toAmzDate(date) !== s) return undefined;
  lastAmzDate = { s, t };
  return date;
}

function isHexDigit(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function hexValue(c: number): number {
  if (c <= 0x39) return c - 0x30;
  if (c <= 0x46) return c - 0x41 + 10;
  return c - 0x61 + 10;
}

/**
 * Byte-wise percent-decoding: '%XX' → that byte, anything else → its UTF-8 bytes. Malformed escapes ('%' not
 * followed by two hex digits) are kept literally and invalid UTF-8 is kept as bytes, so decoding never fails and
 * re-encoding reproduces exactly what the client meant.
 */
export function percentDecodeBytes(s: string): Buffer {
  const src = Buffer.from(s, 'utf8');
  if (!src.includes(0x25)) return src;
  const out = Buffer.allocUnsafe(src.length);
  let o = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === 0x25 && i + 2 < src.length && isHexDigit(src[i + 1]!) && isHexDigit(src[i + 2]!)) {
      out[o++] = (hexValue(src[i + 1]!) << 4) | hexValue(src[i + 2]!);
      i += 2;
    } else {
      out[o++] = c;
    }
  }
  return out.subarray(0, o);
}

const UNRESERVED = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~') UNRESERVED[c.charCodeAt(0)] = 1;
const HEX_UPPER = '0123456789ABCDEF';

/** RFC 3986 encoding of bytes: unreserved characters as-is, everything else as %XX (upper-case hex). */
export function uriEncodeBytes(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) {
    if (UNRESERVED[b]) out += String.fromCharCode(b);
    else out += '%' + HEX_UPPER[b >> 4]! + HEX_UPPER[b & 15]!;
  }
  return out;
}

/** RFC 3986 encoding of a (decoded) string, UTF-8. */
export function uriEncode(s: string): string {
  return uriEncodeBytes(Buffer.from(s, 'utf8'));
}

/** Normalises one already-encoded component: decode byte-wise, re-encode with the unreserved set. */
function normaliseComponent(raw: string): string {
  return uriEncodeBytes(percentDecodeBytes(raw));
}

/** The S3 canonical URI of a raw (as sent) path: each '/'-separated segment normalised, no double encoding. */
export function canonicalUri(rawPath: string): string {
  if (rawPath === '') return '/';
  const path = rawPath.startsWith('/') ? rawPath : `/${rawPath}`;
  return path.split('/').map(normaliseComponent).join('/');
}

/** Splits a raw query string into raw (still encoded) name/value pairs; empty pieces are skipped. */
function splitQuery(rawQuery: string): Array<[string, string]> {
  const q = rawQuery.startsWith('?') ? rawQuery.slice(1) : rawQuery;
  const pairs: Array<[string, string]> = [];
  if (q === '') return pairs;
  for (const piece of q.split('&')) {
    if (piece === '') continue;
    const eq = piece.indexOf('=');
    pairs.push(eq < 0 ? [piece, ''] : [piece.slice(0, eq), piece.slice(eq + 1)]);
  }
  return pairs;
}

/** Decoded query parameters (UTF-8; '+' stays '+'), in order. */
export function parseQuery(rawQuery: string): Array<[string, string]> {
  return splitQuery(rawQuery).map(([n, v]) => [percentDecodeBytes(n).toString('utf8'), percentDecodeBytes(v).toString('utf8')]);
}

/** The canonical query string: every pair re-encoded, sorted by encoded name then encoded value. */
export function canonicalQuery(rawQuery: string, excludeName?: string): string {
  const pairs: Array<[string, string]> = [];
  for (const [rn, rv] of splitQuery(rawQuery)) {
    const n = normaliseComponent(rn);
    if (excludeName !== undefined && n === excludeName) continue;
    pairs.push([n, normaliseComponent(rv)]);
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([n, v]) => `${n}=${v}`).join('&');
}

/** Header value canonical form: sequential spaces/tabs collapsed to one space, leading/trailing space removed. */
export function canonicalHeaderValue(v: string): string {
  return v.replace(/[\r\n]/g, ' ').replace(/[ \t]+/g, ' ').replace(/^ | $/g, '');
}

export function buildCanonicalRequest(p: {
  method: string;
  canonicalUri: string;
  canonicalQuery: string;
  headers: Record<string, string | undefined>;
  signedHeaders: readonly string[];
  payloadHash: string;
}): string {
  const headerLines = p.signedHeaders.map((h) => `${h}:${canonicalHeaderValue(p.headers[h] ?? '')}\n`).join('');
  return [p.method, p.canonicalUri, p.canonicalQuery, headerLines, p.signedHeaders.join(';'), p.payloadHash].join('\n');
}

export function buildStringToSign(amzDate: string, scope: string, canonicalRequest: string): string {
  return `${ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(canonicalRequest)}`;
}

export function credentialScope(shortDate: string, region: string, service = SERVICE): string {
  return `${shortDate}/${region}/${service}/${TERMINATOR}`;
}

/** HMAC-SHA256 inner and outer key blocks (RFC 2104) per signing key (the derived keys are cached objects). */
const hmacPads = new WeakMap<Uint8Array, { inner: Buffer; outer: Buffer }>();
const outerScratch = Buffer.allocUnsafe(64 + 32);

/** Hex signature of a string to sign. */
export function signString(signingKey: Uint8Array, stringToSign: string): string {
  if (signingKey.length > 64) return createHmac('sha256', signingKey).update(stringToSign).digest('hex');
  // HMAC from two one-shot SHA-256 calls over precomputed pads: createHmac costs a key import per request.
  let p = hmacPads.get(signingKey);
  if (!p) {
    const inner = Buffer.alloc(64, 0x36);
    const outer = Buffer.alloc(64, 0x5c);
    for (let i = 0; i < signingKey.length; i++) {
      inner[i]! ^= signingKey[i]!;
      outer[i]! ^= signingKey[i]!;
    }
    hmacPads.set(signingKey, (p = { inner, outer }));
  }
  const msg = Buffer.allocUnsafe(64 + Buffer.byteLength(stringToSign));
  p.inner.copy(msg, 0);
  msg.write(stringToSign, 64, 'utf8');
  p.outer.copy(outerScratch, 0);
  (hash('sha256', msg, 'buffer') as unknown as Buffer).copy(outerScratch, 64);
  return hash('sha256', outerScratch, 'hex');
}

/** Constant-time comparison of two lower-case 64-hex-digit signatures. */
export function signaturesEqual(expectedHex: string, givenHex: string): boolean {
  if (!HEX64.test(expectedHex) || !HEX64.test(givenHex)) return false;
  return timingSafeEqual(Buffer.from(expectedHex, 'hex'), Buffer.from(givenHex, 'hex'));
}

/** Signature of one aws-chunked chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD). */
export function chunkSignature(
  ctx: Pick<ChunkSigningContext, 'signingKey' | 'amzDate' | 'scope'>,
  previousSignature: string,
  chunkDataSha256Hex: string,
): string {
  const sts = `AWS4-HMAC-SHA256-PAYLOAD\n${ctx.amzDate}\n${ctx.scope}\n${previousSignature}\n${EMPTY_SHA256}\n${chunkDataSha256Hex}`;
  return signString(ctx.signingKey, sts);
}

/**
 * Canonical form of trailing headers for the trailer signature: 'name:value\n' per trailer, names lower-case and
 * sorted, values canonicalised like header values.
 */
export function canonicalTrailers(trailers: Record<string, string>): string {
  const lower = new Map<string, string>();
  for (const [k, v] of Object.entries(trailers)) lower.set(k.toLowerCase(), canonicalHeaderValue(v));
  return [...lower.keys()]
    .sort()
    .map((k) => `${k}:${lower.get(k)!}\n`)
    .join('');
}

/** Signature of the trailing-header chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER). */
export function trailerSignature(
  ctx: Pick<ChunkSigningContext, 'signingKey' | 'amzDate' | 'scope'>,
  previousSignature: string,
  trailers: Record<string, string>,
): string {
  const sts = `AWS4-HMAC-SHA256-TRAILER\n${ctx.amzDate}\n${ctx.scope}\n${previousSignature}\n${sha256Hex(canonicalTrailers(trailers))}`;
  return signString(ctx.signingKey, sts);
}

// ---------------------------------------------------------------------------------------------------------------
// Verification

interface ParsedCredential {
  accessKeyId: string;
  shortDate: string;
  region: string;
  service: string;
}

function parseCredential(value: string, errCode: 'AuthorizationHeaderMalformed' | 'AuthorizationQueryParametersError'): ParsedCredential {
  const parts = value.split('/');
  if (parts.length !== 5 || parts.some((p) => p === '')) {
    throw new SigV4Error(errCode, `The credential is malformed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`);
  }
  const [accessKeyId, shortDate, region, service, terminator] = parts as [string, string, string, string, string];
  if (!/^\d{8}$/.test(shortDate)) {
    throw new SigV4Error(errCode, `Invalid credential date "${shortDate}". This date is not the same as X-Amz-Date.`);
  }
  if (terminator !== TERMINATOR) {
    throw new SigV4Error(errCode, `The credential is malformed; incorrect terminal "${terminator}". This endpoint uses "aws4_request".`);
  }
  if (service !== SERVICE) {
    throw new SigV4Error('AccessDenied', `The credential is scoped to service "${service}"; this endpoint belongs to "s3".`);
  }
  return { accessKeyId, shortDate, region, service };
}

function parseSignedHeaders(value: string, errCode: 'AuthorizationHeaderMalformed' | 'AuthorizationQueryParametersError'): string[] {
  const list = value.split(';');
  const seen = new Set<string>();
  for (const h of list) {
    if (!HEADER_NAME.test(h) || seen.has(h)) {
      throw new SigV4Error(errCode, 'SignedHeaders must be a ;-separated list of distinct lower-case header names.');
    }
    seen.add(h);
  }
  if (!seen.has('host')) {
    throw new SigV4Error(errCode, 'The host header must be signed.');
  }
  return list;
}

interface AuthHeader {
  credential: string;
  signedHeaders: string;
  signature: string;
}

function parseAuthorizationHeader(value: string): AuthHeader {
  const v = value.trim();
  if (/^AWS\s/.test(v) || v.startsWith('AWS4-ECDSA-P256-SHA256')) {
    throw new SigV4Error('AccessDenied', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.');
  }
  const m = /^AWS4-HMAC-SHA256\s+(.*)$/s.exec(v);
  if (!m) {
    throw new SigV4Error('AuthorizationHeaderMalformed', 'The authorization header is malformed; it must start with AWS4-HMAC-SHA256.');
  }
  const fields = new Map<string, string>();
  for (const rawPart of m[1]!.split(',')) {
    const part = rawPart.trim();
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq).trim();
    if (eq < 0 || !['Credential', 'SignedHeaders', 'Signature'].includes(name) || fields.has(name)) {
      throw new SigV4Error('AuthorizationHeaderMalformed', `The authorization header is malformed; unexpected component "${name}".`);
    }
    fields.set(name, part.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (credential === undefined || signedHeaders === undefined || signature === undefined) {
    throw new SigV4Error(
      'AuthorizationHeaderMalformed',
      'The authorization header is malformed; the authorization header requires three components: Credential, SignedHeaders, and Signature.',
    );
  }
  if (!HEX64.test(signature)) {
    throw new SigV4Error('AuthorizationHeaderMalformed', 'The authorization header is malformed; the signature must be 64 lower-case hex digits.');
  }
  return { credential, signedHeaders, signature };
}

function validPayloadHash(v: string): boolean {
  return VALID_STREAMING_HASHES.has(v) || /^[0-9a-fA-F]{64}$/.test(v);
}

function lowerCaseHeaders(h: Record<string, string | undefined>): Record<string, string | undefined> {
  let allLower = true;
  for (const k of Object.keys(h)) if (k !== k.toLowerCase()) allLower = false;
  if (allLower) return h;
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    const lk = k.toLowerCase();
    out[lk] = out[lk] === undefined ? v : `${out[lk]},${v}`;
  }
  return out;
}

/** x-amz-* headers that travel unsigned must not exist (they change S3 semantics). These are covered anyway. */
const UNSIGNED_AMZ_ALLOWED = new Set(['x-amz-content-sha256', 'x-amz-date']);

function checkAmzHeadersSigned(headers: Record<string, string | undefined>, signed: readonly string[]): void {
  const set = new Set(signed);
  const unsigned: string[] = [];
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || !k.startsWith('x-amz-') || UNSIGNED_AMZ_ALLOWED.has(k) || set.has(k)) continue;
    unsigned.push(k);
  }
  if (unsigned.length > 0) {
    throw new SigV4Error('AccessDenied', `There were headers present in the request which were not signed: ${unsigned.sort().join(', ')}`);
  }
}

function computeSignatures(
  req: SignedRequest,
  headers: Record<string, string | undefined>,
  signedHeaders: readonly string[],
  payloadHash: string,
  amzDate: string,
  scope: string,
  signingKey: Buffer,
  excludeQuery: string | undefined,
): string[] {
  const query = canonicalQuery(req.rawQuery, excludeQuery);
  const uris = [canonicalUri(req.rawPath)];
  // Some clients sign exactly the bytes they send without re-encoding (e.g. a literal '!' or '*'); the raw path is
  // what was on the wire, so accepting a signature over it is no weaker.
  const rawUri = req.rawPath === '' ? '/' : req.rawPath;
  if (rawUri !== uris[0]) uris.push(rawUri);
  return uris.map((uri) =>
    signString(
      signingKey,
      buildStringToSign(
        amzDate,
        scope,
        buildCanonicalRequest({ method: req.method.toUpperCase(), canonicalUri: uri, canonicalQuery: query, headers, signedHeaders, payloadHash }),
      ),
    ),
  );
}

function anyEqual(candidates: string[], given: string): boolean {
  let ok = false;
  for (const c of candidates) if (signaturesEqual(c, given)) ok = true; // no early exit
  return ok;
}

function streamingContext(payloadHash: string, signingKey: Buffer, amzDate: string, scope: string, signature: string): ChunkSigningContext | undefined {
  if (payloadHash !== STREAMING_PAYLOAD && payloadHash !== STREAMING_PAYLOAD_TRAILER) return undefined;
  return { signingKey, amzDate, scope, seedSignature: signature };
}

/**
 * Verifies a request signed with the Authorization header or with presigned query parameters.
 * `lookupSecret(accessKeyId)` returns the secret or undefined (→ InvalidAccessKeyId).
 * Accepts any region; service must be 's3'. `now` for tests. Throws SigV4Error.
 */
export async function verifyRequest(
  req: SignedRequest,
  lookupSecret: (accessKeyId: string) => Promise<string | undefined>,
  now: Date = new Date(),
): Promise<VerifiedAuth> {
  const headers = lowerCaseHeaders(req.headers);
  const params = parseQuery(req.rawQuery);
  const isPresigned = params.some(([n]) => n === 'X-Amz-Algorithm' || n === 'X-Amz-Credential' || n === 'X-Amz-Signature');
  const authorization = headers['authorization'];
  if (authorization !== undefined && isPresigned) {
    throw new SigV4Error(
      'AuthorizationQueryParametersError',
      'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified.',
    );
  }
  if (isPresigned) return verifyPresigned(req, headers, params, lookupSecret, now);
  if (authorization === undefined) {
    if (params.some(([n]) => n === 'AWSAccessKeyId' || n === 'Signature')) {
      throw new SigV4Error('AccessDenied', 'Signature version 2 is not supported. Please use AWS4-HMAC-SHA256.');
    }
    throw new SigV4Error('AccessDenied', 'Anonymous access is not supported; the request must be signed.');
  }
  return verifyHeaderAuth(req, headers, authorization, lookupSecret, now);
}

async function verifyHeaderAuth(
  req: SignedRequest,
  headers: Record<string, string | undefined>,
  authorization: string,
  lookupSecret: (accessKeyId: string) => Promise<string | undefined>,
  now: Date,
): Promise<VerifiedAuth> {
  const auth = parseAuthorizationHeader(authorization);
  const cred = parseCredential(auth.credential, 'AuthorizationHeaderMalformed');
  const signedHeaders = parseSignedHeaders(auth.signedHeaders, 'AuthorizationHeaderMalformed');

  // Request time: x-amz-date, else the Date header (converted to the basic ISO 8601 form for the string to sign).
  let amzDate: string | undefined;
  let time: Date | undefined;
  const xAmzDate = headers['x-amz-date'];
  if (xAmzDate !== undefined) {
    time = parseAmzDate(xAmzDate.trim());
    if (time) amzDate = xAmzDate.trim();
  } else if (headers['date'] !== undefined) {
    const t = Date.parse(headers['date']);
    if (!Number.isNaN(t)) {
      time = new Date(Math.floor(t / 1000) * 1000);
      amzDate = toAmzDate(time);
    }
  }
  if (!time || !amzDate) {
    throw new SigV4Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
  }
  if (cred.shortDate !== amzDate.slice(0, 8)) {
    throw new SigV4Error(
      'AuthorizationHeaderMalformed',
      `Invalid credential date "${cred.shortDate}". This date is not the same as X-Amz-Date: "${amzDate.slice(0, 8)}".`,
    );
  }
  if (Math.abs(now.getTime() - time.getTime()) > MAX_CLOCK_SKEW_MS) {
    throw new SigV4Error('RequestTimeTooSkewed', "The difference between the request time and the server's time is too large.");
  }

  const rawPayloadHash = headers['x-amz-content-sha256'];
  if (rawPayloadHash === undefined) {
    throw new SigV4Error('AuthorizationHeaderMalformed', 'Missing required header for this request: x-amz-content-sha256');
  }
  if (!validPayloadHash(rawPayloadHash)) {
    throw new SigV4Error(
      'AuthorizationHeaderMalformed',
      'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value.',
    );
  }
  checkAmzHeadersSigned(headers, signedHeaders);

  const secret = await lookupSecret(cred.accessKeyId);
  if (secret === undefined) {
    throw new SigV4Error('InvalidAccessKeyId', 'The AWS access key ID you provided does not exist in our records.');
  }
  const scope = credentialScope(cred.shortDate, cred.region, cred.service);
  const signingKey = deriveSigningKey(secret, cred.shortDate, cred.region, cred.service);
  const candidates = computeSignatures(req, headers, signedHeaders, rawPayloadHash, amzDate, scope, signingKey, undefined);
  if (!anyEqual(candidates, auth.signature)) throw new SigV4Error('SignatureDoesNotMatch', MSG_SIGNATURE);

  const payloadHash = VALID_STREAMING_HASHES.has(rawPayloadHash) ? rawPayloadHash : rawPayloadHash.toLowerCase();
  const chunkSigning = streamingContext(payloadHash, signingKey, amzDate, scope, auth.signature);
  return { accessKeyId: cred.accessKeyId, payloadHash, presigned: false, ...(chunkSigning ? { chunkSigning } : {}) };
}

async function verifyPresigned(
  req: SignedRequest,
  headers: Record<string, string | undefined>,
  params: Array<[string, string]>,
  lookupSecret: (accessKeyId: string) => Promise<string | undefined>,
  now: Date,
): Promise<VerifiedAuth> {
  const E = 'AuthorizationQueryParametersError' as const;
  const get = (name: string): string | undefined => {
    const found = params.filter(([n]) => n === name);
    if (found.length > 1) throw new SigV4Error(E, `The ${name} query parameter must be given once.`);
    return found[0]?.[1];
  };
  const algorithm = get('X-Amz-Algorithm');
  const credential = get('X-Amz-Credential');
  const date = get('X-Amz-Date');
  const expires = get('X-Amz-Expires');
  const signedHeadersRaw = get('X-Amz-SignedHeaders');
  const signature = get('X-Amz-Signature');
  if (algorithm === undefined || credential === undefined || date === undefined || expires === undefined || signedHeadersRaw === undefined || signature === undefined) {
    throw new SigV4Error(
      E,
      'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.',
    );
  }
  if (algorithm !== ALGORITHM) throw new SigV4Error(E, 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"');
  const cred = parseCredential(credential, E);
  const time = parseAmzDate(date);
  if (!time) throw new SigV4Error(E, `X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd'T'HHmmss'Z'"`);
  if (cred.shortDate !== date.slice(0, 8)) {
    throw new SigV4Error(E, `Invalid credential date "${cred.shortDate}". This date is not the same as X-Amz-Date: "${date.slice(0, 8)}".`);
  }
  if (!/^\d{1,7}$/.test(expires)) throw new SigV4Error(E, 'X-Amz-Expires should be a number');
  const expiresIn = Number(expires);
  if (expiresIn < 1) throw new SigV4Error(E, 'X-Amz-Expires must be non-negative');
  if (expiresIn > MAX_PRESIGNED_EXPIRES) throw new SigV4Error(E, 'X-Amz-Expires must be less than a week (in seconds) that is 604800');
  const signedHeaders = parseSignedHeaders(signedHeadersRaw, E);
  if (!HEX64.test(signature)) throw new SigV4Error(E, 'X-Amz-Signature must be 64 lower-case hex digits.');

  if (time.getTime() - now.getTime() > MAX_CLOCK_SKEW_MS) throw new SigV4Error('AccessDenied', 'Request is not valid yet');
  if (now.getTime() > time.getTime() + expiresIn * 1000) throw new SigV4Error('AccessDenied', 'Request has expired');

  // The payload hash: the x-amz-content-sha256 header if sent, else an X-Amz-Content-Sha256 query parameter (the AWS
  // SDK v3 presigner hoists its 'UNSIGNED-PAYLOAD' header into the query, and signs with that value), else
  // UNSIGNED-PAYLOAD.
  const headerHash = headers['x-amz-content-sha256'] ?? get('X-Amz-Content-Sha256');
  if (headerHash !== undefined && !validPayloadHash(headerHash)) {
    throw new SigV4Error(E, 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a STREAMING-* value or a valid sha256 value.');
  }
  const rawPayloadHash = headerHash ?? UNSIGNED_PAYLOAD;
  checkAmzHeadersSigned(headers, signedHeaders);

  const secret = await lookupSecret(cred.accessKeyId);
  if (secret === undefined) {
    throw new SigV4Error('InvalidAccessKeyId', 'The AWS access key ID you provided does not exist in our records.');
  }
  const scope = credentialScope(cred.shortDate, cred.region, cred.service);
  const signingKey = deriveSigningKey(secret, cred.shortDate, cred.region, cred.service);
  const candidates = computeSignatures(req, headers, signedHeaders, rawPayloadHash, date, scope, signingKey, 'X-Amz-Signature');
  if (!anyEqual(candidates, signature)) throw new SigV4Error('SignatureDoesNotMatch', MSG_SIGNATURE);

  const payloadHash = VALID_STREAMING_HASHES.has(rawPayloadHash) ? rawPayloadHash : rawPayloadHash.toLowerCase();
  const chunkSigning = streamingContext(payloadHash, signingKey, date, scope, signature);
  return { accessKeyId: cred.accessKeyId, payloadHash, presigned: true, ...(chunkSigning ? { chunkSigning } : {}) };
}

// ---------------------------------------------------------------------------------------------------------------
// Signing (our own clients)

/** Signs a request for our own clients: returns the headers to add (authorization, x-amz-date, x-amz-content-sha256). */
export function signRequest(opts: {
  method: string;
  url: URL;
  headers: Record<string, string>;
  payloadHash: string; // hex SHA-256 of the body or 'UNSIGNED-PAYLOAD'
  accessKeyId: string;
  secretAccessKey: string;
  region?: string; // default us-east-1
  now?: Date;
}): Record<string, string> {
  const region = opts.region ?? 'us-east-1';
  const amzDate = toAmzDate(opts.now ?? new Date());
  const shortDate = amzDate.slice(0, 8);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(opts.headers)) {
    const lk = k.toLowerCase();
    if (UNSIGNABLE_HEADERS.has(lk) || lk.startsWith('proxy-') || lk.startsWith('sec-') || v === undefined) continue;
    headers[lk] = headers[lk] === undefined ? v : `${headers[lk]},${v}`;
  }
  headers['host'] ??= opts.url.host;
  headers['x-amz-date'] = amzDate;
  headers['x-amz-content-sha256'] = opts.payloadHash;
  const signedHeaders = Object.keys(headers).sort();
  const scope = credentialScope(shortDate, region);
  const canonical = buildCanonicalRequest({
    method: opts.method.toUpperCase(),
    canonicalUri: canonicalUri(opts.url.pathname),
    canonicalQuery: canonicalQuery(opts.url.search),
    headers,
    signedHeaders,
    payloadHash: opts.payloadHash,
  });
  const signature = signString(deriveSigningKey(opts.secretAccessKey, shortDate, region), buildStringToSign(amzDate, scope, canonical));
  return {
    authorization: `${ALGORITHM} Credential=${opts.accessKeyId}/${scope}, SignedHeaders=${signedHeaders.join(';')}, Signature=${signature}`,
    'x-amz-date': amzDate,
    'x-amz-content-sha256': opts.payloadHash,
  };
}

/** Presigns a URL (query form), expiresIn seconds (1..604800). */
export function presignUrl(opts: {
  method: string;
  url: URL;
  accessKeyId: string;
  secretAccessKey: string;
  expiresIn: number;
  region?: string;
  now?: Date;
}): URL {
  if (!Number.isInteger(opts.expiresIn) || opts.expiresIn < 1 || opts.expiresIn > MAX_PRESIGNED_EXPIRES) {
    throw new RangeError(`expiresIn must be an integer in 1..${MAX_PRESIGNED_EXPIRES}`);
  }
  const region = opts.region ?? 'us-east-1';
  const amzDate = toAmzDate(opts.now ?? new Date());
  const shortDate = amzDate.slice(0, 8);
  const scope = credentialScope(shortDate, region);
  const url = new URL(opts.url.href);
  const existing = url.search.slice(1);
  const added = [
    ['X-Amz-Algorithm', ALGORITHM],
    ['X-Amz-Credential', `${opts.accessKeyId}/${scope}`],
    ['X-Amz-Date', amzDate],
    ['X-Amz-Expires', String(opts.expiresIn)],
    ['X-Amz-SignedHeaders', 'host'],
  ]
    .map(([n, v]) => `${uriEncode(n!)}=${uriEncode(v!)}`)
    .join('&');
  const query = existing === '' ? added : `${existing}&${added}`;
  const canonical = buildCanonicalRequest({
    method: opts.method.toUpperCase(),
    canonicalUri: canonicalUri(url.pathname),
    canonicalQuery: canonicalQuery(query),
    headers: { host: url.host },
    signedHeaders: ['host'],
    payloadHash: UNSIGNED_PAYLOAD,
  });
  const signature = signString(deriveSigningKey(opts.secretAccessKey, shortDate, region), buildStringToSign(amzDate, scope, canonical));
  url.search = `${query}&X-Amz-Signature=${signature}`;
  return url;
}
