// Errors of the secure layer. Codes are the RejectReason values the ingest counts, so it can pass them through.

import type { RejectReason } from '../types.js';

export type SecureErrorCode = Extract<RejectReason, 'malformed' | 'handshake' | 'auth' | 'replay' | 'no-session' | 'unknown-meter'>;

/** Any bytes fed to the secure layer either decode or throw this; `code` is stable, messages carry no secrets. */
export class SecureError extends Error {
  readonly code: SecureErrorCode;
  constructor(code: SecureErrorCode, message: string) {
    super(message);
    this.name = 'SecureError';
    this.code = code;
  }
}

export function isSecureError(e: unknown): e is SecureError {
  return e instanceof SecureError;
}
