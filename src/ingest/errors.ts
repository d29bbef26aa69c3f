// Errors of the ingest service and its tools; `code` is stable, messages say what to do.
export type IngestErrorCode =
  | 'bad-input' // a file, flag or request the operator gave is wrong
  | 'unknown-meter' // a meter id not in the directory
  | 'no-keys' // the key directory is missing a key
  | 'no-session' // the meter has no established session
  | 'timeout' // the meter did not answer in time
  | 'store' // CascaDB failed
  | 'closed' // the service is stopping
  | 'internal';

export class IngestError extends Error {
  constructor(readonly code: IngestErrorCode, message: string) {
    super(message);
    this.name = 'IngestError';
  }
}
