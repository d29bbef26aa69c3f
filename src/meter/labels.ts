// Ground truth for tests and the fraud/billing evaluations: which customers steal (and how), and which frames
// the simulator tampered with. Written beside the data, never into it.
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { RejectReason } from '../protocol/index.js';
import type { CustomerClass, Fleet, TheftType } from './fleet.js';
import type { TheftVariant } from './phasors.js';
import { dayEnergiesWh } from './load.js';
import { theftDay, theftPlan, type TheftDayParams } from './theft.js';
import { isoDate } from './time.js';

export interface TheftLabel {
  kind: 'theft';
  serial: number;
  customerId: string;
  customerClass: CustomerClass;
  supplyKv: number;
  attack: TheftType;
  variant: TheftVariant;
  /** Local dates (yyyy-mm-dd) on which the meter under-reports. */
  days: string[];
  /** Per date: h1's α or h2's window (h3/h4's 96 γ_t are left out; theftDay recomputes them). */
  params: Record<string, Omit<TheftDayParams, 'gamma'>>;
}

export type TamperKind = 'dropped' | 'duplicated' | 'altered' | 'replayed' | 'forged';
export type ForgeryKind = 'random' | 'unknown-serial' | 'cross-meter';
export const TAMPER_KINDS: readonly TamperKind[] = ['dropped', 'duplicated', 'altered', 'replayed', 'forged'];

export interface TamperLabel {
  kind: 'tamper';
  /** The meter whose interval the event belongs to. */
  serial: number;
  /** The interval (report ts) at which the event happened. */
  ts: number;
  event: TamperKind;
  forgery?: ForgeryKind;
  /** The serial written on the injected envelope, when it is not `serial` (unknown-serial forgeries). */
  sentSerial?: number;
  /** replayed: the ts of the reading in the re-sent record. */
  replayOf?: number;
  /** What a correct ingest answers to the injected envelope (dropped: nothing reaches it). */
  expect: RejectReason | null;
  /** Whether the meter's genuine reading (serial, ts) still reaches the store. */
  stored: boolean;
}

export interface TamperSummary {
  kind: 'summary';
  reportsSent: number;
  tamper: Record<TamperKind, number>;
  forged: Record<ForgeryKind, number>;
  /** Rejections a correct ingest counts for the injected envelopes, by reason. */
  expectedRejects: Partial<Record<RejectReason, number>>;
  /** Genuine readings that never reach the store (dropped or altered). */
  lost: number;
}

export type LabelRecord = TheftLabel | TamperLabel | TamperSummary;

/** Where labels go: a JSONL file (LabelWriter) or memory (LabelLog). */
export interface LabelSink {
  write(label: LabelRecord): void;
}

export function emptySummary(): TamperSummary {
  return {
    kind: 'summary',
    reportsSent: 0,
    tamper: { dropped: 0, duplicated: 0, altered: 0, replayed: 0, forged: 0 },
    forged: { random: 0, 'unknown-serial': 0, 'cross-meter': 0 },
    expectedRejects: {},
    lost: 0,
  };
}

/** Adds one tamper event to a summary. */
export function countTamper(s: TamperSummary, l: TamperLabel): void {
  s.tamper[l.event]++;
  if (l.forgery) s.forged[l.forgery]++;
  if (l.expect) s.expectedRejects[l.expect] = (s.expectedRejects[l.expect] ?? 0) + 1;
  if (!l.stored) s.lost++;
}

/** Labels in memory, for tests and in-process runs. */
export class LabelLog implements LabelSink {
  readonly theft: TheftLabel[] = [];
  readonly tamper: TamperLabel[] = [];
  summary: TamperSummary | undefined;
  write(label: LabelRecord): void {
    if (label.kind === 'theft') this.theft.push(label);
    else if (label.kind === 'tamper') this.tamper.push(label);
    else this.summary = label;
  }
}

/** Labels as JSON lines in a file (mode 0600: they say who steals), buffered. */
export class LabelWriter implements LabelSink {
  readonly #fd: number;
  #buf: string[] = [];
  #size = 0;
  constructor(readonly path: string) {
    this.#fd = openSync(path, 'w', 0o600);
  }
  write(label: LabelRecord): void {
    const line = `${JSON.stringify(label)}\n`;
    this.#buf.push(line);
    this.#size += line.length;
    if (this.#size > 1 << 16) this.flush();
  }
  flush(): void {
    if (this.#buf.length === 0) return;
    writeSync(this.#fd, this.#buf.join(''));
    this.#buf = [];
    this.#size = 0;
  }
  close(): void {
    this.flush();
    closeSync(this.#fd);
  }
}

/** Reads a labels file written by LabelWriter. */
export function readLabels(path: string): LabelLog {
  const log = new LabelLog();
  for (const line of readFileSync(path, 'utf8').split('\n')) if (line.trim()) log.write(JSON.parse(line) as LabelRecord);
  return log;
}

/** The theft label of one meter, or undefined if it does not steal. */
export function theftLabel(fleet: Fleet, index: number): TheftLabel | undefined {
  const m = fleet.meter(index);
  const plan = theftPlan(fleet, m);
  if (!plan) return undefined;
  const params: Record<string, Omit<TheftDayParams, 'gamma'>> = {};
  if (plan.type === 'h1' || plan.type === 'h2') {
    for (const day of plan.days) {
      const p = theftDay(m, plan, day, dayEnergiesWh(m, day)).params ?? {};
      params[isoDate(day)] = plan.type === 'h1' ? { alpha: p.alpha! } : { window: p.window! };
    }
  }
  return { kind: 'theft', serial: m.serial, customerId: m.customerId, customerClass: m.customerClass, supplyKv: m.supplyKv, attack: plan.type, variant: plan.variant, days: plan.days.map(isoDate), params };
}

/** Writes every thief's label; returns how many. */
export function writeTheftLabels(fleet: Fleet, sink: LabelSink): number {
  let n = 0;
  for (let i = 0; i < fleet.count; i++) {
    const l = theftLabel(fleet, i);
    if (l) {
      sink.write(l);
      n++;
    }
  }
  return n;
}
