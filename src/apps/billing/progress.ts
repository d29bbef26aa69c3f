// Progress of a long billing run on stderr: a bar on a terminal, a plain line every 10 % or 10 s otherwise.
export interface BillingProgress {
  done: number;
  total: number;
  readings: number;
  elapsedMs: number;
}

export function progressPrinter(stream: NodeJS.WriteStream = process.stderr, label = 'billing'): (p: BillingProgress) => void {
  let lastLine = 0;
  let lastDecile = -1;
  return (p) => {
    const frac = p.total > 0 ? p.done / p.total : 1;
    const rate = p.elapsedMs > 0 ? (p.readings / p.elapsedMs) * 1000 : 0;
    const eta = frac > 0 && frac < 1 ? ((p.elapsedMs / frac) * (1 - frac)) / 1000 : 0;
    const text = `${p.done}/${p.total} customers, ${p.readings.toLocaleString('en-US')} readings, ${Math.round(rate).toLocaleString('en-US')} readings/s${eta > 0 ? `, ~${Math.ceil(eta)} s left` : ''}`;
    if (stream.isTTY) {
      const width = 30;
      const fill = Math.round(frac * width);
      stream.write(`\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${text}\x1b[K${p.done === p.total ? '\n' : ''}`);
      return;
    }
    const decile = Math.floor(frac * 10);
    if (decile !== lastDecile || p.elapsedMs - lastLine >= 10_000 || p.done === p.total) {
      lastDecile = decile;
      lastLine = p.elapsedMs;
      stream.write(`${label}: ${text}\n`);
    }
  };
}
