// aws-chunked request bodies (Content-Encoding: aws-chunked), as S3 clients send them:
//  - x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER (AWS SDK v3's default for PutObject/UploadPart
//    over HTTPS, with an x-amz-checksum-crc32 trailer),
//  - STREAMING-AWS4-HMAC-SHA256-PAYLOAD and STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER (signed chunks; every chunk
//    signature is verified against the seed signature; the trailer signature too).
// Format: hex-size[;chunk-signature=sig]\r\n data \r\n ... 0[;chunk-signature=sig]\r\n [trailer-name:value\r\n]*
// [x-amz-trailer-signature:sig\r\n] \r\n
//
// The decoder is a state machine fed with arbitrary slices of the input (chunk headers, CRLFs and trailers may be
// split anywhere); it never holds more than one chunk header / trailer line, plus — in the signed modes — the data
// of the current chunk, which is released only once its signature has verified (signed chunks are limited to
// MAX_SIGNED_CHUNK_SIZE). Unsigned data is streamed as it arrives. Whatever the mode, the body ends successfully
// only after every signature, the decoded length and the CRC32 trailer have been checked: a consumer must treat an
// error on the stream as "discard everything".
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import type { ChunkSigningContext } from './sigv4.js';
import { EMPTY_SHA256, canonicalHeaderValue, chunkSignature, signaturesEqual, trailerSignature } from './sigv4.js';

export class ChunkedError extends Error {
  constructor(readonly code: 'IncompleteBody' | 'SignatureDoesNotMatch' | 'InvalidRequest' | 'BadDigest', message: string) {
    super(message);
  }
}

export interface DecodedChunkedBody {
  /** The decoded payload, streamed (a Readable that errors with ChunkedError on bad framing or signatures). */
  body: Readable;
  /** Resolves once the body has been fully read, with the trailers (lower-case names), e.g. {'x-amz-checksum-crc32': 'base64'}. */
  trailers: Promise<Record<string, string>>;
}

export type AwsChunkedMode = 'unsigned-trailer' | 'signed' | 'signed-trailer';

/** Longest chunk-header or trailer line accepted (a signed chunk header is ~90 bytes). */
export const MAX_LINE_LENGTH = 4096;
/** Total size of the trailer section accepted. */
export const MAX_TRAILER_BYTES = 16 * 1024;
/** Largest signed chunk (its data is held until the chunk signature verifies). SDKs use 64–128 KiB. */
export const MAX_SIGNED_CHUNK_SIZE = 16 * 1024 * 1024;

const CR = 0x0d;
const LF = 0x0a;
const HEX64 = /^[0-9a-f]{64}$/;
const TRAILER_SIGNATURE = 'x-amz-trailer-signature';

type State = 'size' | 'data' | 'data-cr' | 'data-lf' | 'final-line' | 'trailer' | 'done';

/** base64 of the big-endian CRC32, as x-amz-checksum-crc32 carries it. */
export function crc32Base64(value: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b.toString('base64');
}

/**
 * Synchronous aws-chunked parser. push() takes any slice of the encoded body and returns the decoded data that
 * may be released; finish() is called at end of input and returns the trailers. Both throw ChunkedError.
 */
export class AwsChunkedParser {
  private state: State = 'size';
  private line: Buffer[] = [];
  private lineLength = 0;
  private remaining = 0;
  private hash: Hash | undefined;
  private held: Buffer[] = [];
  private chunkSig = '';
  private previousSig: string;
  private decoded = 0;
  private crc = 0;
  private readonly trailerMap: Record<string, string> = {};
  private trailerBytes = 0;
  private trailerSig: string | undefined;
  private sawTrailerBytes = false;
  private readonly signed: boolean;
  private readonly withTrailer: boolean;

  constructor(private readonly opts: { mode: AwsChunkedMode; signing?: ChunkSigningContext; decodedLength?: number }) {
    this.signed = opts.mode !== 'unsigned-trailer';
    this.withTrailer = opts.mode !== 'signed';
    if (this.signed && !opts.signing) throw new TypeError(`aws-chunked mode '${opts.mode}' needs the signing context`);
    if (opts.decodedLength !== undefined && (!Number.isSafeInteger(opts.decodedLength) || opts.decodedLength < 0)) {
      throw new TypeError('decodedLength must be a non-negative integer');
    }
    this.previousSig = opts.signing?.seedSignature ?? '';
  }

  /** Number of decoded payload bytes seen so far. */
  get decodedBytes(): number {
    return this.decoded;
  }

  push(buf: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < buf.length) {
      switch (this.state) {
        case 'size':
        case 'final-line':
        case 'trailer': {
          const lf = buf.indexOf(LF, pos);
          const end = lf < 0 ? buf.length : lf;
          this.appendLine(buf.subarray(pos, end));
          pos = end;
          if (lf >= 0) {
            pos = lf + 1;
            const line = this.takeLine();
            if (this.state === 'size') this.onSizeLine(line);
            else if (this.state === 'final-line') this.onFinalLine(line);
            else this.onTrailerLine(line);
          }
          break;
        }
        case 'data': {
          const n = Math.min(this.remaining, buf.length - pos);
          const slice = buf.subarray(pos, pos + n);
          pos += n;
          this.remaining -= n;
          if (this.withTrailer) this.crc = crc32(slice, this.crc);
          if (this.hash) {
            this.hash.update(slice);
            this.held.push(slice);
          } else {
            out.push(slice);
          }
          if (this.remaining === 0) this.state = 'data-cr';
          break;
        }
        case 'data-cr':
          if (buf[pos] !== CR) throw new ChunkedError('InvalidRequest', 'aws-chunked: chunk data not followed by CRLF');
          pos++;
          this.state = 'data-lf';
          break;
        case 'data-lf':
          if (buf[pos] !== LF) throw new ChunkedError('InvalidRequest', 'aws-chunked: chunk data not followed by CRLF');
          pos++;
          this.endOfChunkData(out);
          this.state = 'size';
          break;
        case 'done':
          throw new ChunkedError('InvalidRequest', 'aws-chunked: unexpected data after the final chunk');
      }
    }
    return out;
  }

  /** End of input: returns the trailers (lower-case names) once everything has been checked. */
  finish(): Record<string, string> {
    if (this.state !== 'done') {
      // The AWS SDK's encoder ends with "0\r\n" and nothing else when it has no checksum to send.
      const bareFinal = this.state === 'trailer' && this.opts.mode === 'unsigned-trailer' && !this.sawTrailerBytes && this.lineLength === 0;
      if (!bareFinal) throw new ChunkedError('IncompleteBody', 'aws-chunked: the body ended before the final chunk');
      this.state = 'done';
    }
    if (this.opts.decodedLength !== undefined && this.decoded !== this.opts.decodedLength) {
      throw new ChunkedError(
        'IncompleteBody',
        `aws-chunked: decoded ${this.decoded} bytes, x-amz-decoded-content-length says ${this.opts.decodedLength}`,
      );
    }
    const expected = this.trailerMap['x-amz-checksum-crc32'];
    if (expected !== undefined && expected !== crc32Base64(this.crc)) {
      throw new ChunkedError('BadDigest', 'The CRC32 you specified did not match the calculated checksum.');
    }
    return { ...this.trailerMap };
  }

  private appendLine(part: Buffer): void {
    if (part.length === 0) return;
    this.lineLength += part.length;
    if (this.state === 'trailer') {
      this.sawTrailerBytes = true;
      if (this.trailerBytes + this.lineLength > MAX_TRAILER_BYTES) {
        throw new ChunkedError('InvalidRequest', 'aws-chunked: trailer section too large');
      }
    }
    if (this.lineLength > MAX_LINE_LENGTH) throw new ChunkedError('InvalidRequest', 'aws-chunked: line too long');
    this.line.push(part);
  }

  /** The line read so far (LF consumed), without its CR; bare LF is rejected. */
  private takeLine(): string {
    const raw = this.line.length === 1 ? this.line[0]! : Buffer.concat(this.line, this.lineLength);
    if (this.state === 'trailer') {
      this.sawTrailerBytes = true;
      this.trailerBytes += this.lineLength + 1;
    }
    this.line = [];
    this.lineLength = 0;
    if (raw.length === 0 || raw[raw.length - 1] !== CR) throw new ChunkedError('InvalidRequest', 'aws-chunked: line not terminated by CRLF');
    return raw.subarray(0, raw.length - 1).toString('latin1');
  }

  private onSizeLine(line: string): void {
    const m = /^([0-9a-fA-F]{1,13})((?:;[^;]*)*)$/.exec(line);
    if (!m) throw new ChunkedError('InvalidRequest', 'aws-chunked: malformed chunk header');
    const size = parseInt(m[1]!, 16);
    let sig: string | undefined;
    for (const ext of m[2]!.split(';').slice(1)) {
      const eq = ext.indexOf('=');
      const name = (eq < 0 ? ext : ext.slice(0, eq)).trim();
      if (name === 'chunk-signature') {
        if (sig !== undefined) throw new ChunkedError('InvalidRequest', 'aws-chunked: repeated chunk-signature');
        sig = ext.slice(eq + 1).trim();
      }
    }
    if (this.signed) {
      if (sig === undefined || !HEX64.test(sig)) {
        throw new ChunkedError('SignatureDoesNotMatch', 'aws-chunked: missing or malformed chunk-signature');
      }
      if (size > MAX_SIGNED_CHUNK_SIZE) throw new ChunkedError('InvalidRequest', 'aws-chunked: signed chunk too large');
      this.chunkSig = sig;
    }
    if (this.opts.decodedLength !== undefined && this.decoded + size > this.opts.decodedLength) {
      throw new ChunkedError('InvalidRequest', 'aws-chunked: body longer than x-amz-decoded-content-length');
    }
    this.decoded += size;
    if (size === 0) {
      if (this.signed) this.verifyChunk(EMPTY_SHA256);
      this.state = this.withTrailer ? 'trailer' : 'final-line';
      return;
    }
    this.remaining = size;
    this.hash = this.signed ? createHash('sha256') : undefined;
    this.state = 'data';
  }

  private endOfChunkData(out: Buffer[]): void {
    if (!this.hash) return;
    this.verifyChunk(this.hash.digest('hex'));
    this.hash = undefined;
    for (const b of this.held) out.push(b);
    this.held = [];
  }

  private verifyChunk(dataHash: string): void {
    const expected = chunkSignature(this.opts.signing!, this.previousSig, dataHash);
    if (!signaturesEqual(expected, this.chunkSig)) {
      throw new ChunkedError('SignatureDoesNotMatch', 'aws-chunked: chunk signature does not match');
    }
    this.previousSig = this.chunkSig;
  }

  private onFinalLine(line: string): void {
    if (line !== '') throw new ChunkedError('InvalidRequest', 'aws-chunked: unexpected data after the final chunk');
    this.state = 'done';
  }

  private onTrailerLine(line: string): void {
    if (line === '') {
      if (this.opts.mode === 'signed-trailer') {
        if (this.trailerSig === undefined) throw new ChunkedError('SignatureDoesNotMatch', 'aws-chunked: missing x-amz-trailer-signature');
        const expected = trailerSignature(this.opts.signing!, this.previousSig, this.trailerMap);
        if (!signaturesEqual(expected, this.trailerSig)) {
          throw new ChunkedError('SignatureDoesNotMatch', 'aws-chunked: trailer signature does not match');
        }
      }
      this.state = 'done';
      return;
    }
    const colon = line.indexOf(':');
    const name = colon < 0 ? '' : line.slice(0, colon).trim().toLowerCase();
    if (!/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) throw new ChunkedError('InvalidRequest', 'aws-chunked: malformed trailer');
    const value = canonicalHeaderValue(line.slice(colon + 1));
    if (this.trailerSig !== undefined) throw new ChunkedError('InvalidRequest', 'aws-chunked: trailer after x-amz-trailer-signature');
    if (name === TRAILER_SIGNATURE) {
      if (this.opts.mode === 'signed-trailer' && !HEX64.test(value)) {
        throw new ChunkedError('SignatureDoesNotMatch', 'aws-chunked: malformed x-amz-trailer-signature');
      }
      this.trailerSig = value;
      return;
    }
    if (Object.prototype.hasOwnProperty.call(this.trailerMap, name)) throw new ChunkedError('InvalidRequest', `aws-chunked: repeated trailer ${name}`);
    this.trailerMap[name] = value;
  }
}

/**
 * Decodes an aws-chunked stream. `signing` is required for the signed variants; `decodedLength` (from
 * x-amz-decoded-content-length) is checked when given. When a trailer x-amz-checksum-crc32 is present it is
 * checked against the decoded bytes (zlib.crc32) and a mismatch fails with BadDigest.
 */
export function decodeAwsChunked(
  input: Readable,
  opts: { mode: 'unsigned-trailer' | 'signed' | 'signed-trailer'; signing?: ChunkSigningContext; decodedLength?: number },
): DecodedChunkedBody {
  const parser = new AwsChunkedParser(opts);
  let resolveTrailers!: (t: Record<string, string>) => void;
  let rejectTrailers!: (e: ChunkedError) => void;
  const trailers = new Promise<Record<string, string>>((res, rej) => {
    resolveTrailers = res;
    rejectTrailers = rej;
  });
  trailers.catch(() => {}); // observed through the body too; never an unhandled rejection

  let settled = false;
  let inputEnded = false;

  const detach = (): void => {
    input.off('data', onData);
    input.off('end', onEnd);
    input.off('error', onError);
    input.off('close', onClose);
  };

  const fail = (err: unknown): void => {
    if (settled) return;
    settled = true;
    const e =
      err instanceof ChunkedError
        ? err
        : new ChunkedError('IncompleteBody', `aws-chunked: reading the request body failed: ${(err as Error | undefined)?.message ?? String(err)}`);
    rejectTrailers(e);
    detach();
    input.on('error', () => {}); // late errors of a destroyed input are of no interest
    input.destroy();
    body.destroy(e);
  };

  function onData(piece: Buffer | string | Uint8Array): void {
    if (settled) return;
    let out: Buffer[];
    try {
      out = parser.push(Buffer.isBuffer(piece) ? piece : Buffer.from(piece as string | Uint8Array));
    } catch (err) {
      fail(err);
      return;
    }
    let more = true;
    for (const b of out) more = body.push(b);
    if (!more) input.pause();
  }

  function onEnd(): void {
    inputEnded = true;
    if (settled) return;
    let t: Record<string, string>;
    try {
      t = parser.finish();
    } catch (err) {
      fail(err);
      return;
    }
    settled = true;
    detach();
    resolveTrailers(t);
    body.push(null);
  }

  function onError(err: unknown): void {
    fail(err);
  }

  function onClose(): void {
    if (!inputEnded) fail(new ChunkedError('IncompleteBody', 'aws-chunked: the request body was cut short'));
  }

  const body = new Readable({
    read() {
      input.resume();
    },
    destroy(err, cb) {
      // The consumer gave up (or fail() above): stop reading the request and settle the trailers.
      if (!settled) {
        settled = true;
        rejectTrailers(
          err instanceof ChunkedError ? err : new ChunkedError('IncompleteBody', 'aws-chunked: the body was not read to the end'),
        );
        detach();
        input.on('error', () => {});
        input.destroy();
      }
      cb(err);
    },
  });

  input.pause();
  input.on('data', onData);
  input.on('end', onEnd);
  input.on('error', onError);
  input.on('close', onClose);
  return { body, trailers };
}

/**
 * Encodes data as aws-chunked (for our own client and for tests): one chunk per element of `chunks`, then the
 * final chunk, trailers and (signed-trailer) the trailer signature. In 'unsigned-trailer'/'signed-trailer' modes a
 * CRC32 trailer is added unless `trailers` is given.
 */
export function encodeAwsChunked(
  chunks: readonly Uint8Array[],
  opts: { mode: AwsChunkedMode; signing?: ChunkSigningContext; trailers?: Record<string, string> },
): Buffer {
  const parts: Buffer[] = [];
  let prev = opts.signing?.seedSignature ?? '';
  let crc = 0;
  const signed = opts.mode !== 'unsigned-trailer';
  if (signed && !opts.signing) throw new TypeError(`aws-chunked mode '${opts.mode}' needs the signing context`);
  const header = (data: Uint8Array): string => {
    if (!signed) return `${data.length.toString(16)}\r\n`;
    prev = chunkSignature(opts.signing!, prev, createHash('sha256').update(data).digest('hex'));
    return `${data.length.toString(16)};chunk-signature=${prev}\r\n`;
  };
  for (const c of chunks) {
    if (c.length === 0) continue;
    crc = crc32(c, crc);
    parts.push(Buffer.from(header(c), 'latin1'), Buffer.from(c.buffer, c.byteOffset, c.byteLength), Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(header(new Uint8Array(0)), 'latin1'));
  if (opts.mode === 'signed') {
    parts.push(Buffer.from('\r\n'));
  } else {
    const trailers = opts.trailers ?? { 'x-amz-checksum-crc32': crc32Base64(crc) };
    let text = Object.entries(trailers)
      .map(([k, v]) => `${k}:${v}\r\n`)
      .join('');
    if (opts.mode === 'signed-trailer') text += `${TRAILER_SIGNATURE}:${trailerSignature(opts.signing!, prev, trailers)}\r\n`;
    parts.push(Buffer.from(`${text}\r\n`, 'latin1'));
  }
  return Buffer.concat(parts);
}
