// Flags > environment (SECUREGRID_<FLAG>) > config file (--config FILE, JSON) > defaults.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

export interface FlagSpec {
  type: 'string' | 'boolean';
  default?: string | boolean;
  help: string;
}

export class UsageError extends Error {}

export function parseFlags(argv: string[], spec: Record<string, FlagSpec>): Record<string, string | boolean | undefined> {
  const options: Record<string, { type: 'string' | 'boolean' }> = { config: { type: 'string' }, help: { type: 'boolean' } };
  for (const [k, v] of Object.entries(spec)) options[k] = { type: v.type };
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: false, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  let file: Record<string, unknown> = {};
  if (typeof v.config === 'string') {
    try {
      file = JSON.parse(readFileSync(v.config, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new UsageError(`cannot read config file ${v.config}: ${(err as Error).message}`);
    }
  }
  const out: Record<string, string | boolean | undefined> = { help: v.help };
  for (const [k, s] of Object.entries(spec)) {
    const env = process.env[`SECUREGRID_${k.toUpperCase().replace(/-/g, '_')}`];
    const fromFile = file[k];
    let val: string | boolean | undefined = v[k];
    if (val === undefined && env !== undefined) val = s.type === 'boolean' ? env === '1' || env === 'true' : env;
    if (val === undefined && fromFile !== undefined) val = s.type === 'boolean' ? Boolean(fromFile) : String(fromFile);
    if (val === undefined) val = s.default;
    out[k] = val;
  }
  return out;
}

export function usage(cmd: string, summary: string, spec: Record<string, FlagSpec>): string {
  const lines = [`usage: securegrid ${cmd} [flags]`, '', summary, '', 'flags:'];
  for (const [k, s] of Object.entries(spec)) {
    const def = s.default !== undefined && s.default !== false ? ` (default ${s.default})` : '';
    lines.push(`  --${k}${s.type === 'string' ? ' VALUE' : ''}`.padEnd(28) + s.help + def);
  }
  lines.push(`  --config FILE`.padEnd(28) + 'JSON file with any of these flags; flags and SECUREGRID_* environment variables win');
  return lines.join('\n');
}

export function intFlag(v: string | boolean | undefined, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer between ${min} and ${max}, got '${v}'`);
  return n;
}

export function sizeFlag(v: string | boolean | undefined, name: string): number {
  const m = typeof v === 'string' ? /^(\d+)\s*([kmgt]i?b?)?$/i.exec(v.trim()) : null;
  if (!m) throw new UsageError(`--${name} must be a size like 512MiB or 5GiB, got '${v}'`);
  const unit = (m[2] ?? '').toLowerCase()[0];
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : unit === 't' ? 1024 ** 4 : 1;
  return Number(m[1]) * mult;
}
