// `securegrid kvs node --data DIR --port P`: serves a LocalFragmentStore over HTTP (fastify), with /metrics.

export interface NodeServerOptions {
  dataDir: string;
  port: number; // 0 = pick a free port
  host?: string; // default 127.0.0.1
  token?: string; // when set, every request but /metrics and /health needs `Authorization: Bearer <token>`
  id?: string;
}

export interface NodeServer {
  url: string; // e.g. http://127.0.0.1:9101
  close(): Promise<void>;
}

export declare function startNodeServer(opts: NodeServerOptions): Promise<NodeServer>;
