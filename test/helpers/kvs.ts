// Test fixture: a real gateway (HTTPS, self-signed) over real storage nodes, and an official AWS SDK client.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Agent } from 'node:https';
import { localNodeSpecs, startGateway, startNodeServer, type Gateway, type GatewayOptions, type NodeSpec } from '../../src/kvs/index.js';

export interface TestKvs {
  dir: string;
  gw: Gateway;
  s3: S3Client;
  accessKeyId: string;
  secretAccessKey: string;
  tenant: string;
  nodeServers: Array<{ url: string; close(): Promise<void> }>;
  nodeDirs: string[];
  client(tenant?: string): Promise<S3Client>;
  close(): Promise<void>;
}

export function sdkClient(url: string, accessKeyId: string, secretAccessKey: string, ca?: string): S3Client {
  return new S3Client({
    endpoint: url,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler({ httpsAgent: new Agent({ ca, keepAlive: true, maxSockets: 32 }) }),
  });
}

export async function startTestKvs(o: { nodes?: number; remote?: boolean; gateway?: Partial<GatewayOptions> } = {}): Promise<TestKvs> {
  const dir = mkdtempSync(join(tmpdir(), 'sg-test-kvs-'));
  const count = o.nodes ?? 9;
  const nodeServers: TestKvs['nodeServers'] = [];
  let specs: NodeSpec[];
  const nodeDirs = Array.from({ length: count }, (_, i) => join(dir, 'nodes', `node-${i}`));
  if (o.remote) {
    for (const d of nodeDirs) nodeServers.push(await startNodeServer({ dataDir: d, port: 0 }));
    specs = nodeServers.map((n) => ({ kind: 'remote', url: n.url }));
  } else {
    specs = localNodeSpecs(join(dir, 'nodes'), count);
  }
  const gw = await startGateway({ dataDir: join(dir, 'gateway'), nodes: specs, port: 0, scrubIntervalMs: 0, ...o.gateway });
  const k = await gw.accounts.create('tenant-a');
  const clients: S3Client[] = [];
  const s3 = sdkClient(gw.url, k.accessKeyId, k.secretAccessKey, gw.tls?.cert);
  clients.push(s3);
  return {
    dir,
    gw,
    s3,
    accessKeyId: k.accessKeyId,
    secretAccessKey: k.secretAccessKey,
    tenant: 'tenant-a',
    nodeServers,
    nodeDirs,
    async client(tenant = 'tenant-b') {
      const kk = await gw.accounts.create(tenant);
      const c = sdkClient(gw.url, kk.accessKeyId, kk.secretAccessKey, gw.tls?.cert);
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) c.destroy();
      await gw.close();
      await Promise.allSettled(nodeServers.map((n) => n.close()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
