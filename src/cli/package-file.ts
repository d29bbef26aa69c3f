// Files shipped with securegrid (config/), found from wherever this build runs (dist/ or another build dir).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function packageFile(rel: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'securegrid') return join(dir, rel);
    dir = dirname(dir);
  }
  throw new Error(`cannot find the securegrid package directory (looking for ${rel})`);
}
