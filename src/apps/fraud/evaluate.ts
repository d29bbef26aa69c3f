// Scoring against ground truth (simulator labels or a labels file): AUC, precision@k and recall@k, overall and per
// attack type, for every method side by side. Per type, the negatives are the clean customers only.
import type { TheftLabel, TheftType } from '../../meter/index.js';
import { THEFT_TYPES } from '../../meter/index.js';
import { METHODS, type Method, type Ranking } from './rank.js';

export interface EvalRow {
  method: Method;
  /** 'all' or an attack type. */
  group: 'all' | TheftType;
  positives: number;
  negatives: number;
  auc: number;
  /** precision@k and recall@k for each k of `ks`. */
  at: Array<{ k: number; precision: number; recall: number }>;
}

export interface Evaluation {
  customers: number;
  thieves: number;
  ks: number[];
  rows: EvalRow[];
  /** Which method has the highest overall AUC. */
  best: Method;
}

/** Mann–Whitney AUC with ties counted half. */
export function auc(pos: readonly number[], neg: readonly number[]): number {
  if (pos.length === 0 || neg.length === 0) return Number.NaN;
  const all = [...pos.map((v) => [v, 1] as const), ...neg.map((v) => [v, 0] as const)].sort((a, b) => a[0] - b[0]);
  let rankSum = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j + 1 < all.length && all[j + 1]![0] === all[i]![0]) j++;
    const r = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) if (all[k]![1] === 1) rankSum += r;
    i = j + 1;
  }
  return (rankSum - (pos.length * (pos.length + 1)) / 2) / (pos.length * neg.length);
}

/** Evaluates every method's ordering of `ranking` against theft labels (matched by meter serial). */
export function evaluate(ranking: Ranking, labels: readonly TheftLabel[], o: { ks?: number[] } = {}): Evaluation {
  const attack = new Map<number, TheftType>();
  for (const l of labels) attack.set(l.serial, l.attack);
  const cs = ranking.customers;
  const thieves = cs.filter((c) => attack.has(c.meterId)).length;
  const ks = o.ks ?? [100, thieves];
  const rows: EvalRow[] = [];
  for (const method of METHODS) {
    // Ties broken by meter id, as the ranking does, so precision@k does not depend on input order.
    const ordered = [...cs].sort((a, b) => b.scores[method] - a.scores[method] || a.meterId - b.meterId);
    for (const group of ['all', ...THEFT_TYPES] as const) {
      const isPos = (m: number) => (group === 'all' ? attack.has(m) : attack.get(m) === group);
      const inGroup = ordered.filter((c) => isPos(c.meterId) || !attack.has(c.meterId));
      const pos = inGroup.filter((c) => isPos(c.meterId)).map((c) => c.scores[method]);
      const neg = inGroup.filter((c) => !attack.has(c.meterId)).map((c) => c.scores[method]);
      if (pos.length === 0) continue;
      const at = ks.map((k) => {
        const top = inGroup.slice(0, k);
        const hit = top.filter((c) => isPos(c.meterId)).length;
        return { k, precision: top.length ? hit / top.length : Number.NaN, recall: hit / pos.length };
      });
      rows.push({ method, group, positives: pos.length, negatives: neg.length, auc: auc(pos, neg), at });
    }
  }
  const overall = rows.filter((r) => r.group === 'all');
  const best = overall.length ? overall.reduce((a, b) => (b.auc > a.auc ? b : a)).method : 'combined';
  return { customers: cs.length, thieves, ks, rows, best };
}

/** The evaluation as a plain-text table: one row per group, each method's AUC, P@k and R@k side by side. */
export function evaluationTable(e: Evaluation): string {
  const methods = [...new Set(e.rows.map((r) => r.method))];
  const groups = [...new Set(e.rows.map((r) => r.group))];
  const head = ['group', 'thieves', ...methods.flatMap((m) => [`${m} AUC`, ...e.ks.flatMap((k) => [`P@${k}`, `R@${k}`])])];
  const body = groups.map((g) => {
    const any = e.rows.find((r) => r.group === g)!;
    const cells = [g, String(any.positives)];
    for (const m of methods) {
      const r = e.rows.find((x) => x.group === g && x.method === m);
      cells.push(r ? r.auc.toFixed(3) : '-');
      for (const a of r?.at ?? e.ks.map(() => undefined)) cells.push(a ? a.precision.toFixed(2) : '-', a ? a.recall.toFixed(2) : '-');
    }
    return cells;
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line), `customers ${e.customers}, thieves ${e.thieves}; per type: that type's thieves against the clean customers; best overall AUC: ${e.best}`].join('\n');
}
