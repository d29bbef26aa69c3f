// apps/billing/: the data-validation application of the paper — billing validation (every reading's metrology
// signature, completeness, register checks), the bill and its hash, and the independent auditor. Formats and
// rules: FORMAT.md next to this file. Must not trust unsigned data: every reading is verified before use.
export { billPeriod, periodOf, type BillPeriodOptions, type BillingRun } from './run.js';
export { billCustomer, billCustomerJson, type BillingTask, type BillingContext, type ReportHead } from './bill.js';
export { BillingPool, type PoolOptions } from './pool.js';
export { BatchVerifier } from './verifier.js';
export { loadDirectory, sqlTask, kvTask, type CustomerEntry } from './source.js';
export { parseTariffs, loadTariffs, compileTariff, canonicalJson, TARIFFS_FORMAT, type TariffBook, type TariffSpec, type AppliedTariff } from './tariff.js';
export { parsePeriod, type Period, type PeriodSpec } from './time.js';
export { reportHash, reportHashOf, reportSerialization, reportMarkdown, writeReport, writeReports, writeIndex, REPORT_FORMAT, type BillingReport, type Finding, type FindingCode, type BillLine } from './report.js';
export { progressPrinter, type BillingProgress } from './progress.js';
export { audit, readReportFile, AuditError, type AuditOptions, type AuditResult, type Discrepancy, type DiscrepancyCode } from './auditor.js';
export { BillingError, type BillingErrorCode } from './errors.js';
