// Prometheus metrics on a registry of our own (not prom-client's global one), so
// several servers in one process (the tests) never share counters.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  requestStarted(): void;
  requestFinished(method: string, status: number, seconds: number): void;
  websocketMessages(received: number, sent: number): void;
  /** A request or stream turned away by the in-flight budget. */
  requestRefused(): void;
  connectionOpened(): void;
  connectionClosed(): void;
}

/** Methods outside this set are counted as OTHER, keeping label cardinality bounded. */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'CONNECT']);

export interface MetricsSources {
  /** Log lines dropped because the log destination was slow, gone or full. */
  droppedLogLines(): number;
}

export function createMetrics(sources: MetricsSources = { droppedLogLines: () => 0 }): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'echo_http_requests_total', help: 'HTTP requests answered, by method and status code.',
    labelNames: ['method', 'status'] as const, registers: [registry],
  });
  const duration = new Histogram({
    name: 'echo_http_request_duration_seconds', help: 'Time from request start to the end of the response, by method.',
    labelNames: ['method'] as const, buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  // The two gauges are plain counters read at scrape time: cheaper per request
  // than updating a prom-client gauge twice.
  let inFlight = 0;
  let connections = 0;
  new Gauge({
    name: 'echo_http_requests_in_flight', help: 'Requests being handled now.', registers: [registry],
    collect() { this.set(inFlight); },
  });
  new Gauge({
    name: 'echo_open_connections', help: 'Open client connections.', registers: [registry],
    collect() { this.set(connections); },
  });

  new Counter({
    name: 'echo_log_lines_dropped_total', help: 'Log lines dropped because the log destination was slow, gone or full.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(sources.droppedLogLines());
    },
  });
  let refused = 0;
  new Counter({
    name: 'echo_requests_refused_total', help: 'Requests and streams refused because --max-in-flight was reached.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(refused);
    },
  });

  const wsMessages = new Counter({
    name: 'echo_websocket_messages_total', help: 'WebSocket messages, by direction.',
    labelNames: ['direction'] as const, registers: [registry],
  });
  // Labelled children are looked up once per method/status pair, not per request.
  const counterChildren = new Map<string, Counter.Internal>();
  const histogramChildren = new Map<string, Histogram.Internal<'method'>>();
  return {
    registry,
    requestStarted: () => { inFlight++; },
    requestFinished(method, status, seconds) {
      inFlight--;
      const m = METHODS.has(method) ? method : 'OTHER';
      const key = m + status;
      let c = counterChildren.get(key);
      if (c === undefined) counterChildren.set(key, (c = requests.labels(m, String(status))));
      c.inc();
      let h = histogramChildren.get(m);
      if (h === undefined) histogramChildren.set(m, (h = duration.labels(m)));
      h.observe(seconds);
    },
    websocketMessages(received, sent) {
      wsMessages.inc({ direction: 'received' }, received);
      wsMessages.inc({ direction: 'sent' }, sent);
    },
    requestRefused: () => { refused++; },
    connectionOpened: () => { connections++; },
    connectionClosed: () => { connections--; },
  };
}
