// ingest/: the authentication service of Fig. 1 — sessions, replay floors, decrypt, validate, dedupe, signed
// Merkle batches, durable store then ack, operator commands; plus CSV import and day blobs. See
// docs/meter-pipeline.md, "Ingest".
export { startIngest, type Ingest, type IngestOptions, type IngestStats } from './service.js';
export { startOperatorApi, type OperatorApi, type OperatorApiOptions } from './api.js';
export { FileIngestKeys, initIngestKeys, publicIngestKeys, type IngestKeys, type PublicIngestKeys } from './keys.js';
export { EngineSqlClient, PgSqlClient, SqlError, type SqlClient, type SqlQueryable, type SqlResult, type SqlParam, type PgSqlOptions } from './sql.js';
export { ensureSchema, provisionDirectory, parseDirectory, checkDirectoryEntry, insertRows, SCHEMA, MAX_PARAMS, type DirectoryEntry } from './schema.js';
export { signBatch, storeBatch, writeBatch, type BatchReading, type SignedBatch, type BatchSource } from './batch.js';
export { readingRow, reportFromRow, rangeViolation, READING_COLUMNS, RANGE } from './reading.js';
export { closeDay, readDayBlob, encodeDayBlob, decodeDayBlob, dayBlobKey, dayStart, type DayBlob, type DayBatch, type DayReading } from './close-day.js';
export { importCsv, splitCsvLine, PLACEHOLDER_CUSTOMER, type ImportOptions, type ImportResult, type ImportProgress } from './import.js';
export { IngestError, type IngestErrorCode } from './errors.js';
