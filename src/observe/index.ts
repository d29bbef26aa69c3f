// observe/: logs (pino) and metrics (prom-client) for every service.
// Logs never carry a key, a secret, an object body or a reading: the redaction list below is a safety net,
// not a licence to log such fields.
import { pino, destination, type Logger } from 'pino';
import client from 'prom-client';

export type { Logger } from 'pino';

const REDACT = [
  'secret', '*.secret', 'secretAccessKey', '*.secretAccessKey', 'key', '*.masterKey', 'masterKey',
  'password', '*.password', 'authorization', '*.authorization', 'headers.authorization', 'req.headers.authorization',
  'body', '*.body', 'value', '*.value',
];

let root: Logger | undefined;
const children: Logger[] = [];

/** The process logger: JSON to stderr; level from SECUREGRID_LOG_LEVEL (default info; 'silent' in tests). */
export function logger(name?: string): Logger {
  if (!root) {
    const level = process.env.SECUREGRID_LOG_LEVEL ?? (process.env.NODE_TEST_CONTEXT ? 'silent' : 'info');
    root = pino({ level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } }, destination(2));
  }
  if (!name) return root;
  const child = root.child({ svc: name });
  children.push(child);
  return child;
}

/** Changes the level of the process logger and of every child made from it afterwards (e.g. the demo quiets it). */
export function setLogLevel(level: string): void {
  logger().level = level;
  for (const c of children) c.level = level;
}

/** A metrics registry per service instance (several services may share a process in the demo and tests). */
export class Metrics {
  readonly registry = new client.Registry();
  constructor(readonly service: string, withProcessMetrics = false) {
    this.registry.setDefaultLabels({ service });
    if (withProcessMetrics) client.collectDefaultMetrics({ register: this.registry });
  }
  counter(name: string, help: string, labelNames: string[] = []): client.Counter<string> {
    return new client.Counter({ name, help, labelNames, registers: [this.registry] });
  }
  gauge(name: string, help: string, labelNames: string[] = []): client.Gauge<string> {
    return new client.Gauge({ name, help, labelNames, registers: [this.registry] });
  }
  histogram(name: string, help: string, labelNames: string[] = [], buckets?: number[]): client.Histogram<string> {
    return new client.Histogram({ name, help, labelNames, registers: [this.registry], ...(buckets ? { buckets } : {}) });
  }
  /** Prometheus text exposition, for a GET /metrics handler. */
  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
