#!/usr/bin/env node
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

// SECUREGRID_DIST points at another build of this checkout (developers' parallel builds); default ../dist.
const dist = process.env.SECUREGRID_DIST ? resolve(process.env.SECUREGRID_DIST) : resolve(import.meta.dirname, '..', 'dist');
const { main } = await import(pathToFileURL(resolve(dist, 'src', 'cli', 'main.js')).href);

main(process.argv.slice(2)).then(
  (code) => { if (typeof code === 'number') process.exitCode = code; },
  (err) => {
    console.error(`securegrid: ${err && err.message ? err.message : err}`);
    process.exitCode = 1;
  },
);
