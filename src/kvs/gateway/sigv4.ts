// AWS Signature Version 4, as S3 clients speak it: the Authorization header form and presigned URLs,
// plus the per-chunk signatures of STREAMING-AWS4-HMAC-SHA256-PAYLOAD. Signing and verifying share one
// canonical-request builder, so our own client (kvs/client) signs exactly what the gateway verifies.
// HMAC-SHA256 and SHA-256 come from node:crypto.

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

/**
 * Verifies a request signed with the Authorization header or with presigned query parameters.
 * `lookupSecret(accessKeyId)` returns the secret or undefined (→ InvalidAccessKeyId).
 * Accepts any region; service must be 's3'. `now` for tests. Throws SigV4Error.
 */
export declare function verifyRequest(
  req: SignedRequest,
  lookupSecret: (accessKeyId: string) => Promise<string | undefined>,
  now?: Date,
): Promise<VerifiedAuth>;

/** Signs a request for our own clients: returns the headers to add (authorization, x-amz-date, x-amz-content-sha256). */
export declare function signRequest(opts: {
  method: string;
  url: URL;
  headers: Record<string, string>;
  payloadHash: string; // hex SHA-256 of the body or 'UNSIGNED-PAYLOAD'
  accessKeyId: string;
  secretAccessKey: string;
  region?: string; // default us-east-1
  now?: Date;
}): Record<string, string>;

/** Presigns a URL (query form), expiresIn seconds (1..604800). */
export declare function presignUrl(opts: {
  method: string;
  url: URL;
  accessKeyId: string;
  secretAccessKey: string;
  expiresIn: number;
  region?: string;
  now?: Date;
}): URL;
