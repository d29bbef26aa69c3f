// The values the meter protocol carries. Shared by the frame codec, the simulator, the ingest service and
// the applications; plain data, no behaviour.

/** A meter's serial number: an integer 0 ≤ serial ≤ 99_999_999 (8 BCD digits in frames). */
export type MeterSerial = number;

export interface PhaseReading {
  /** RMS line-to-neutral voltage, volts. */
  voltageV: number;
  /** RMS current, amperes. */
  currentA: number;
  /** Phase angle of the current behind the voltage, degrees (−180, 180]; positive = lagging (inductive). */
  angleDeg: number;
}

/** Status bits of a phasor report. */
export const enum ReportStatus {
  LoadDisconnected = 1 << 0,
  CoverOpened = 1 << 1,
  /** The meter restarted since its last report. */
  PowerUp = 1 << 2,
  ClockAdjusted = 1 << 3,
}

/**
 * The periodic 15-minute phasor report (paper, "Smart metering applications"). Quantities are averages
 * over the interval that ends at `ts`; `energyWh` is the cumulative active-energy register at `ts`.
 * On the wire phasor quantities are float32 and the register a 48-bit integer, so a report survives an
 * encode/decode round trip exactly once its numbers are float32-exact (the codec rounds on encode).
 */
export interface PhasorReport {
  serial: MeterSerial;
  /** End of the interval, epoch milliseconds UTC, a multiple of 900_000. */
  ts: number;
  phases: [PhaseReading, PhaseReading, PhaseReading];
  /** Three-phase active power, W. */
  activePowerW: number;
  /** Three-phase reactive power, var. */
  reactivePowerVar: number;
  powerFactor: number;
  /** Total harmonic distortion of the current, percent. */
  thdPercent: number;
  frequencyHz: number;
  /** Average demand over the interval, W. */
  demandW: number;
  /** Cumulative active-energy register, Wh (integer, monotonic). */
  energyWh: number;
  /** ReportStatus bits. */
  status: number;
}

/** Downlink commands an operator can send to a meter, and what the meter answers. */
export type MeterCommand =
  | { kind: 'read'; requestId: number }
  | { kind: 'disconnect'; requestId: number }
  | { kind: 'reconnect'; requestId: number };

export type MeterResponse =
  | { kind: 'read'; requestId: number; report: PhasorReport }
  | { kind: 'ack'; requestId: number; command: 'disconnect' | 'reconnect'; ok: boolean; loadConnected: boolean }
  | { kind: 'nak'; requestId: number; reason: number };

/** Everything a meter sends inside an encrypted record. */
export type MeterMessage = { kind: 'report'; report: PhasorReport } | { kind: 'response'; response: MeterResponse };

/** Stable reasons for rejecting an uplink message; metrics and the demo count by these. */
export type RejectReason =
  | 'malformed' // the envelope or frame does not decode (bad length, bad CRC, unknown code)
  | 'unknown-meter' // no such meter in the directory
  | 'handshake' // a handshake message that does not verify
  | 'no-session' // a record for a session this service does not know (expired, or never established)
  | 'auth' // AES-GCM authentication failed: altered, forged, or sent under another meter's session
  | 'replay' // invocation counter at or below the floor, or already seen
  | 'range' // decrypted fine, but a value is physically implausible
  | 'duplicate'; // a reading already stored (at-least-once redelivery), stored once

export const REJECT_REASONS: readonly RejectReason[] = ['malformed', 'unknown-meter', 'handshake', 'no-session', 'auth', 'replay', 'range', 'duplicate'];
