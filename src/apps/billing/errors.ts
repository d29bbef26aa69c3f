// Billing and audit errors: a stable code for scripts and a message a person can act on.
export type BillingErrorCode =
  | 'bad-tariffs' // the tariff file does not parse or a tariff is malformed
  | 'unknown-tariff' // a customer's tariff is not in the tariff file
  | 'bad-period' // --period / --from / --to do not name a valid span
  | 'unknown-customer' // a requested customer is not in the directory
  | 'bad-report' // a report file is not a securegrid-bill/1 report
  | 'store' // the store answered something inconsistent (e.g. a reading names no batch)
  | 'worker'; // a billing worker thread failed

export class BillingError extends Error {
  constructor(readonly code: BillingErrorCode, message: string) {
    super(message);
    this.name = 'BillingError';
  }
}
