// apps/fraud/: energy-theft detection (paper, "Smart metering applications"): a SOM of daily load profiles and
// the daily correlation of each customer with its regular behaviour, a statistical scorer over level, shape and
// phasor features, their combination, the ranking with explanations, the labelled evaluation and the report.
export { runFraud, simulateFraud, readCustomers, readSeries, groupReader, READ_SQL, type FraudOptions, type SimulatedOptions, type CommonOptions, type FraudRun, type FraudProgress } from './run.js';
export { evaluate, evaluationTable, auc, type Evaluation, type EvalRow } from './evaluate.js';
export { rankResults, zScores, statScore, METHODS, METHOD_NAMES, type Method, type Ranking, type RankedCustomer, type DayFinding } from './rank.js';
export { scoreCustomer, FEATURES, type Feature, type CustomerResult, type DailyDetail } from './score.js';
export { buildModel, dayProfile, dailyEnergy, type FleetModel, type ModelOptions } from './model.js';
export { trainSom, bmu, uMatrix, znorm, type SomModel, type SomOptions } from './som.js';
export { addDayBlob, blobDates, blobKeys, fetchBlobs, seriesFromBlobs } from './blobs.js';
export { SeriesBuilder, emptySeries, usableDays, CHANNELS, type CustomerSeries, type CustomerInfo } from './series.js';
export { simulatedSeries } from './simulate.js';
export { CustomerPool } from './pool.js';
export { FraudError, type FraudErrorCode } from './errors.js';
export { writeFraudReport, reportHtml, rankingCsv, type ReportInput } from './report.js';
