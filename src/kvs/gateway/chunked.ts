// aws-chunked request bodies (Content-Encoding: aws-chunked), as S3 clients send them:
//  - x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER (AWS SDK v3's default for PutObject/UploadPart
//    over HTTPS, with an x-amz-checksum-crc32 trailer),
//  - STREAMING-AWS4-HMAC-SHA256-PAYLOAD and STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER (signed chunks; every chunk
//    signature is verified against the seed signature; the trailer signature too).
// Format: hex-size[;chunk-signature=sig]\r\n data \r\n ... 0[;chunk-signature=sig]\r\n [trailer-name:value\r\n]*
// [x-amz-trailer-signature:sig\r\n] \r\n
import type { Readable } from 'node:stream';
import type { ChunkSigningContext } from './sigv4.js';

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

/**
 * Decodes an aws-chunked stream. `signing` is required for the signed variants; `decodedLength` (from
 * x-amz-decoded-content-length) is checked when given. When a trailer x-amz-checksum-crc32 is present it is
 * checked against the decoded bytes (zlib.crc32) and a mismatch fails with BadDigest.
 */
export declare function decodeAwsChunked(
  input: Readable,
  opts: { mode: 'unsigned-trailer' | 'signed' | 'signed-trailer'; signing?: ChunkSigningContext; decodedLength?: number },
): DecodedChunkedBody;
