// meter/: the smart-meter simulator — fleet, load profiles, phasors, theft and tamper injection, virtual clock,
// labels, and the runtime that drives meters over FieldLinks (docs/meter-pipeline.md).
export {
  Fleet,
  createFleet,
  fleetDirectory,
  directoryEntry,
  directoryJsonLine,
  directoryCsvLine,
  parseDirectoryLine,
  writeDirectory,
  saveFleet,
  loadFleet,
  checkRsaBudget,
  DIRECTORY_CSV_HEADER,
  DEFAULT_SUITE,
  MAX_FLEET,
  MAX_RSA_METERS,
  THEFT_TYPES,
  type FleetOptions,
  type TheftOptions,
  type MeterSpec,
  type CustomerClass,
  type Region,
  type TheftType,
  type CustomerRow,
  type MeterRow,
  type DirectoryEntry,
} from './fleet.js';
export { intervalEnergyWh, dayEnergiesWh, dayTypeOf, type DayType } from './load.js';
export { phasorReport, powerFactorAt, gridFrequencyHz, nominalPhaseVoltage, type PhasorInput, type TheftVariant } from './phasors.js';
export { theftPlan, applyTheft, theftDay, theftRng, windowDays, type TheftPlan, type TheftDayParams } from './theft.js';
export {
  LabelLog,
  LabelWriter,
  readLabels,
  theftLabel,
  writeTheftLabels,
  emptySummary,
  countTamper,
  TAMPER_KINDS,
  type LabelSink,
  type LabelRecord,
  type TheftLabel,
  type TamperLabel,
  type TamperSummary,
  type TamperKind,
  type ForgeryKind,
} from './labels.js';
export { TamperPlan, expectation, flipCiphertextBit, randomRecord, REPLAY_DELAY_INTERVALS, type TamperOptions, type TamperEvent } from './tamper.js';
export { VirtualClock, speedForDaySeconds, type ClockOptions } from './clock.js';
export { ReportModel, generateReports, meterReports } from './reports.js';
export { Simulator, DOWNLINK_TITLE_SIZE, type SimulatorOptions, type SimulatorStats, type SimulatorProgress } from './simulator.js';
export { INTERVAL_MS, DAY_MS, INTERVALS_PER_DAY, LOCAL_OFFSET_MS, localDay, slotOf, tsOf, weekday, isoDate, dayOfIso, season } from './time.js';
export { Prng } from './rng.js';
