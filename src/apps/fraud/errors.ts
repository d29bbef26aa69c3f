// Errors of the fraud application; `code` is stable, messages say what to do.
export type FraudErrorCode =
  | 'bad-input' // a flag, date range or file the analyst gave is wrong
  | 'no-data' // the store holds no meters or no readings in the window
  | 'labels' // a labels file that cannot be read or matches no customer
  | 'store' // CascaDB failed
  | 'worker' // a scoring worker failed
  | 'internal';

export class FraudError extends Error {
  constructor(readonly code: FraudErrorCode, message: string) {
    super(message);
    this.name = 'FraudError';
  }
}
