// The `securegrid kvs` commands as a user runs them: `kvs start` in one process, `kvs keys create` and
// `kvs heal` in others while it runs, and an AWS SDK client using the printed key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { sdkClient } from '../helpers/kvs.js';

const run = promisify(execFile);
const BIN = join(process.cwd(), 'bin', 'securegrid.js');

function startKvs(dir: string): Promise<{ proc: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [BIN, 'kvs', 'start', '--nodes', '9', '--data', dir, '--port', '0'], {
      env: { ...process.env, SECUREGRID_LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`kvs start printed no URL in 20 s: ${out}`)), 20_000);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (https:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ proc, url: m[1]! });
      }
    });
    proc.on('exit', (code) => reject(new Error(`kvs start exited with ${code}: ${out}`)));
  });
}

test('kvs start, then keys create and heal from other processes while it runs', { timeout: 90_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sg-cli-'));
  const { proc, url } = await startKvs(dir);
  try {
    const { stdout } = await run(process.execPath, [BIN, 'kvs', 'keys', 'create', '--tenant', 'utility-a', '--data', dir], { env: { ...process.env, SECUREGRID_LOG_LEVEL: 'silent' } });
    const id = /access key id:\s+(\S+)/.exec(stdout)?.[1];
    const secret = /secret access key:\s+(\S+)/.exec(stdout)?.[1];
    assert.ok(id && secret, stdout);
    const ca = readFileSync(join(dir, 'gateway', 'tls', 'cert.pem'), 'utf8');
    const s3 = sdkClient(url, id!, secret!, ca);
    await s3.send(new CreateBucketCommand({ Bucket: 'meter-data' }));
    await s3.send(new PutObjectCommand({ Bucket: 'meter-data', Key: '2026/11/26.csv', Body: 'meter,ts,kwh\nm1,2026-11-26T00:15Z,0.42\n', StorageClass: 'STANDARD_IA' }));
    const got = await s3.send(new GetObjectCommand({ Bucket: 'meter-data', Key: '2026/11/26.csv' }));
    assert.match(await got.Body!.transformToString(), /m1,2026-11-26T00:15Z,0.42/);
    const heal = await run(process.execPath, [BIN, 'kvs', 'heal', '--data', dir], { env: { ...process.env, SECUREGRID_LOG_LEVEL: 'silent' } });
    assert.match(heal.stdout, /heal: 1 objects, 9 fragments checked, 0 missing, 0 corrupt, 0 rebuilt, 0 unrecoverable/);
    const list = await run(process.execPath, [BIN, 'kvs', 'keys', 'list', '--data', dir], { env: { ...process.env, SECUREGRID_LOG_LEVEL: 'silent' } });
    assert.match(list.stdout, new RegExp(`${id}\\s+utility-a`));
    assert.ok(!list.stdout.includes(secret!), 'keys list never prints a secret');
    const bad = await run(process.execPath, [BIN, 'kvs', 'keys', 'create', '--tenant', 'Bad Tenant!', '--data', dir]).then(
      () => 0,
      (e: { code: number; stderr: string }) => {
        assert.match(e.stderr, /tenant name/);
        return e.code;
      },
    );
    assert.equal(bad, 2);
    s3.destroy();
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
});
