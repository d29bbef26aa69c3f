// Progress for long CLI work: a redrawn bar on a terminal, a line at each quarter in logs and CI.
const printed = new Map<string, number>();

export function progress(label: string, done: number, total: number): void {
  if (total <= 0) return;
  if (!process.stdout.isTTY) {
    const q = Math.floor((Math.min(done, total) * 4) / total);
    if (q > 0 && q !== printed.get(label)) console.log(`  ${label}: ${done}/${total}`);
    if (done >= total) printed.delete(label);
    else printed.set(label, q);
    return;
  }
  const width = 30;
  const filled = Math.round((Math.min(done, total) / total) * width);
  process.stdout.write(`\r  ${label.padEnd(34)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`);
  if (done >= total) process.stdout.write('\n');
}
