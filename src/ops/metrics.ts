// Prometheus metrics. The per-request figures live in typed arrays indexed by a
// small, fixed set of labels, so an update costs a few array writes and no object;
// Prometheus text is written only when scraped. The label sets are closed: a
// method outside the list counts as OTHER, and a status outside the short list of
// exact codes counts as its class (1xx..5xx), so no client can grow the number of
// series (3,600 series from `echo_status` across methods were measured before).
// The process_* / nodejs_* metrics come from prom-client on a registry of our own
// (never the global one, so several servers in one process never share anything).
import { Registry, collectDefaultMetrics } from 'prom-client';

type PromMetric = Awaited<ReturnType<Registry['getMetricsAsJSON']>>[number];

export const METHODS = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'PATCH',
  'OPTIONS',
  'TRACE',
  'CONNECT',
  'OTHER',
] as const;
/**
 * Status codes kept exact in the `status` label; every other code is counted under
 * its class, `1xx` to `5xx`. These are the codes the server itself answers with,
 * plus the ones load tests commonly ask for through `echo_status`.
 */
export const EXACT_STATUSES = [
  101, 200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 413, 415, 422, 426,
  429, 431, 499, 500, 501, 502, 503, 504,
] as const;
const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const;
/**
 * What a connection closed before, having sent nothing at all: the shape of a load
 * balancer's TCP health check (connect, close). Counted, not logged above debug.
 */
export const CLOSED_EARLY = ['before_proxy_header', 'before_tls_handshake', 'before_request'] as const;
export type ClosedEarly = (typeof CLOSED_EARLY)[number];
/** How a TCP echo connection ended: the `reason` label of echo_tcp_connections_total. */
export const TCP_ENDS = ['closed', 'reset', 'idle_timeout', 'byte_cap', 'drain'] as const;
export type TcpEnd = (typeof TCP_ENDS)[number];
/** The limit a connection was refused by at accept: the `limit` label of echo_connections_refused_total. */
export const CONNECTION_LIMITS = ['max_connections', 'max_connections_per_client'] as const;
export type ConnectionLimit = (typeof CONNECTION_LIMITS)[number];
/**
 * What node:http2 ended by itself, before the app saw a request: a session it ended
 * with GOAWAY (a field over nghttp2's 64 KiB, a malformed frame). A stream it resets
 * by itself gives JavaScript no event and is not counted. The `kind` label of
 * echo_http2_refused_by_node_total.
 */
export const H2_NODE_REFUSALS = ['session'] as const;
export type H2NodeRefusal = (typeof H2_NODE_REFUSALS)[number];
/** What became of a datagram on the UDP echo: the `result` label of echo_udp_datagrams_total. */
export const UDP_RESULTS = ['answered', 'dropped_source_rate', 'dropped_budget'] as const;
export type UdpResult = (typeof UDP_RESULTS)[number];
/** Label values of `status`, by slot: the exact codes, then the classes. */
const STATUS_LABELS: readonly string[] = [...EXACT_STATUSES.map(String), ...CLASSES];
const STATUS_SLOTS = STATUS_LABELS.length;
/** The most `echo_http_requests_total` series there can ever be. */
export const MAX_REQUEST_SERIES = METHODS.length * STATUS_SLOTS;
export const DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
] as const;
const NB = DURATION_BUCKETS.length + 1; // the last slot is +Inf

const METHOD_INDEX = new Map<string, number>(METHODS.map((m, i) => [m, i]));
const OTHER = METHODS.length - 1;
/** status code (100..599) -> slot; anything outside that range is a 5xx. */
const STATUS_SLOT = new Uint8Array(600).fill(STATUS_SLOTS - 1);
for (let code = 100; code < 600; code++) STATUS_SLOT[code] = EXACT_STATUSES.length + Math.floor(code / 100) - 1;
EXACT_STATUSES.forEach((code, i) => {
  STATUS_SLOT[code] = i;
});

/** The echo_* figures of one process. */
interface Counted {
  requests: ArrayLike<number>;
  buckets: ArrayLike<number>;
  sums: ArrayLike<number>;
  inFlight: number;
  connections: number;
  refused: number;
  refusedPerClient: number;
  droppedLogLines: number;
  wsReceived: number;
  wsSent: number;
  /** By CLOSED_EARLY slot; absent from a worker that predates it. */
  closedEarly?: ArrayLike<number>;
  /** The L4 echo: TCP connections by TCP_ENDS slot, then bytes in and out; datagrams by UDP_RESULTS slot, then bytes in and out. */
  tcp?: ArrayLike<number>;
  udp?: ArrayLike<number>;
  /** gRPC calls by status code (0-16); absent from a worker that predates it. */
  grpcCalls?: ArrayLike<number>;
  /** Connections refused at accept, by CONNECTION_LIMITS slot; absent from a worker that predates it. */
  connectionsRefused?: ArrayLike<number>;
  /** What node:http2 refused itself, by H2_NODE_REFUSALS slot; absent from a worker that predates it. */
  h2NodeRefusals?: ArrayLike<number>;
}

/** The gRPC status codes by number, as the `code` label of echo_grpc_calls_total says them. */
export const GRPC_CODES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;

/** Everything a worker counts, as plain data (it crosses the IPC channel): what the primary adds up. */
export interface MetricsSnapshot extends Counted {
  requests: number[];
  buckets: number[];
  sums: number[];
  closedEarly: number[];
  tcp: number[];
  udp: number[];
  /** prom-client's process_* / nodejs_* metrics, as its JSON. */
  defaults: PromMetric[];
}

export interface Metrics {
  requestStarted(): void;
  requestFinished(method: string, status: number, seconds: number): void;
  websocketMessages(received: number, sent: number): void;
  /** A gRPC call ended with this status code (0-16); it is counted as its HTTP request too. */
  grpcFinished(code: number): void;
  /** A request or stream turned away by the in-flight budget. */
  requestRefused(): void;
  /** A request or stream turned away because its client held its share of the budget. */
  requestRefusedPerClient(): void;
  connectionOpened(): void;
  connectionClosed(): void;
  /** A connection that closed without sending a byte (an L4 health check, most likely). */
  connectionClosedEarly(reason: ClosedEarly): void;
  /** A connection closed at accept because a limit was reached. */
  connectionRefused(limit: ConnectionLimit): void;
  /** `n` sessions that node:http2 ended itself (GOAWAY) before the app saw a request. */
  h2RefusedByNode(kind: H2NodeRefusal, n: number): void;
  /** A TCP echo connection ended, having carried these bytes. */
  tcpConnection(end: TcpEnd, bytesIn: number, bytesOut: number): void;
  /** A datagram reached the UDP echo: answered with `bytesOut` bytes, or dropped. */
  udpDatagram(result: UdpResult, bytesIn: number, bytesOut: number): void;
  /** This process's counters, for aggregation by a --workers primary. */
  snapshot(): Promise<MetricsSnapshot>;
  /**
   * The Prometheus text a scrape gets. Set by a --workers worker to ask the primary
   * for every worker's figures; by default this process's own.
   */
  scrape: () => Promise<string>;
  readonly contentType: string;
}

export interface MetricsSources {
  /** Log lines dropped because the log destination was slow, gone or full. */
  droppedLogLines(): number;
}

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export function createMetrics(sources: MetricsSources = { droppedLogLines: () => 0 }): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Float64Array(METHODS.length * STATUS_SLOTS);
  const buckets = new Float64Array(METHODS.length * NB);
  const sums = new Float64Array(METHODS.length);
  let inFlight = 0;
  let connections = 0;
  let refused = 0;
  let refusedPerClient = 0;
  let wsReceived = 0;
  let wsSent = 0;
  const closedEarly = new Float64Array(CLOSED_EARLY.length);
  const tcp = new Float64Array(TCP_ENDS.length + 2);
  const udp = new Float64Array(UDP_RESULTS.length + 2);
  const grpcCalls = new Float64Array(GRPC_CODES.length);
  const connectionsRefused = new Float64Array(CONNECTION_LIMITS.length);
  const h2NodeRefusals = new Float64Array(H2_NODE_REFUSALS.length);

  const snapshot = async (): Promise<MetricsSnapshot> => ({
    requests: Array.from(requests),
    buckets: Array.from(buckets),
    sums: Array.from(sums),
    inFlight,
    connections,
    refused,
    refusedPerClient,
    droppedLogLines: sources.droppedLogLines(),
    wsReceived,
    wsSent,
    closedEarly: Array.from(closedEarly),
    tcp: Array.from(tcp),
    udp: Array.from(udp),
    grpcCalls: Array.from(grpcCalls),
    connectionsRefused: Array.from(connectionsRefused),
    h2NodeRefusals: Array.from(h2NodeRefusals),
    defaults: await registry.getMetricsAsJSON(),
  });
  const metrics: Metrics = {
    requestStarted: () => {
      inFlight++;
    },
    requestFinished(method, status, seconds) {
      inFlight--;
      const m = METHOD_INDEX.get(method) ?? OTHER;
      requests[m * STATUS_SLOTS + (status >= 100 && status < 600 ? STATUS_SLOT[status]! : STATUS_SLOTS - 1)]!++;
      let b = 0;
      while (b < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[b]!) b++;
      buckets[m * NB + b]!++;
      sums[m]! += seconds;
    },
    websocketMessages(received, sent) {
      wsReceived += received;
      wsSent += sent;
    },
    grpcFinished: (code) => {
      grpcCalls[code >= 0 && code < GRPC_CODES.length ? code : 2 /* UNKNOWN */]!++;
    },
    requestRefused: () => {
      refused++;
    },
    requestRefusedPerClient: () => {
      refusedPerClient++;
    },
    connectionOpened: () => {
      connections++;
    },
    connectionClosed: () => {
      connections--;
    },
    connectionClosedEarly: (reason) => {
      closedEarly[CLOSED_EARLY.indexOf(reason)]!++;
    },
    connectionRefused: (limit) => {
      connectionsRefused[CONNECTION_LIMITS.indexOf(limit)]!++;
    },
    h2RefusedByNode: (kind, n) => {
      h2NodeRefusals[H2_NODE_REFUSALS.indexOf(kind)]! += n;
    },
    tcpConnection(end, bytesIn, bytesOut) {
      tcp[TCP_ENDS.indexOf(end)]!++;
      tcp[TCP_ENDS.length]! += bytesIn;
      tcp[TCP_ENDS.length + 1]! += bytesOut;
    },
    udpDatagram(result, bytesIn, bytesOut) {
      udp[UDP_RESULTS.indexOf(result)]!++;
      udp[UDP_RESULTS.length]! += bytesIn;
      udp[UDP_RESULTS.length + 1]! += bytesOut;
    },
    snapshot,
    // One process: its own counters straight from the arrays, no copy.
    scrape: async () =>
      renderCounters([
        {
          requests,
          buckets,
          sums,
          inFlight,
          connections,
          refused,
          refusedPerClient,
          droppedLogLines: sources.droppedLogLines(),
          wsReceived,
          wsSent,
          closedEarly,
          tcp,
          udp,
          grpcCalls,
          connectionsRefused,
          h2NodeRefusals,
        },
      ]) + (await registry.metrics()),
    contentType: CONTENT_TYPE,
  };
  return metrics;
}

/** Extra lines a --workers primary adds about the workers themselves. */
export interface WorkerFigures {
  workers: number;
  restarts: number;
}

/** The echo_* metrics as Prometheus text: one snapshot's, or the sum of several. */
export function renderCounters(snapshots: readonly Counted[], workers?: WorkerFigures): string {
  const requests = new Float64Array(MAX_REQUEST_SERIES);
  const buckets = new Float64Array(METHODS.length * NB);
  const sums = new Float64Array(METHODS.length);
  let inFlight = 0;
  let connections = 0;
  let refused = 0;
  let refusedPerClient = 0;
  let dropped = 0;
  let wsReceived = 0;
  let wsSent = 0;
  const closedEarly = new Float64Array(CLOSED_EARLY.length);
  const tcp = new Float64Array(TCP_ENDS.length + 2);
  const udp = new Float64Array(UDP_RESULTS.length + 2);
  const grpcCalls = new Float64Array(GRPC_CODES.length);
  const connectionsRefused = new Float64Array(CONNECTION_LIMITS.length);
  const h2NodeRefusals = new Float64Array(H2_NODE_REFUSALS.length);
  for (const s of snapshots) {
    if (s.connectionsRefused !== undefined) addInto(connectionsRefused, s.connectionsRefused);
    if (s.h2NodeRefusals !== undefined) addInto(h2NodeRefusals, s.h2NodeRefusals);
    if (s.closedEarly !== undefined) addInto(closedEarly, s.closedEarly);
    if (s.tcp !== undefined) addInto(tcp, s.tcp);
    if (s.udp !== undefined) addInto(udp, s.udp);
    if (s.grpcCalls !== undefined) addInto(grpcCalls, s.grpcCalls);
    addInto(requests, s.requests);
    addInto(buckets, s.buckets);
    addInto(sums, s.sums);
    inFlight += s.inFlight;
    connections += s.connections;
    refused += s.refused;
    refusedPerClient += s.refusedPerClient;
    dropped += s.droppedLogLines;
    wsReceived += s.wsReceived;
    wsSent += s.wsSent;
  }
  let out = '';
  const head = (name: string, help: string, type: string) => {
    out += `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
  };

  head(
    'echo_http_requests_total',
    'HTTP requests answered, by method and status (exact for common codes, else the class such as 4xx).',
    'counter',
  );
  for (let m = 0; m < METHODS.length; m++) {
    for (let s = 0; s < STATUS_SLOTS; s++) {
      const n = requests[m * STATUS_SLOTS + s]!;
      if (n > 0) out += `echo_http_requests_total{method="${METHODS[m]}",status="${STATUS_LABELS[s]}"} ${n}\n`;
    }
  }
  head(
    'echo_http_request_duration_seconds',
    'Time from request start to the end of the response, by method.',
    'histogram',
  );
  for (let m = 0; m < METHODS.length; m++) {
    let total = 0;
    for (let b = 0; b < NB; b++) total += buckets[m * NB + b]!;
    if (total === 0) continue;
    let cumulative = 0;
    for (let b = 0; b < NB; b++) {
      cumulative += buckets[m * NB + b]!;
      const le = b < DURATION_BUCKETS.length ? String(DURATION_BUCKETS[b]) : '+Inf';
      out += `echo_http_request_duration_seconds_bucket{le="${le}",method="${METHODS[m]}"} ${cumulative}\n`;
    }
    out += `echo_http_request_duration_seconds_sum{method="${METHODS[m]}"} ${sums[m]}\n`;
    out += `echo_http_request_duration_seconds_count{method="${METHODS[m]}"} ${total}\n`;
  }
  head('echo_http_requests_in_flight', 'Requests being handled now.', 'gauge');
  out += `echo_http_requests_in_flight ${inFlight}\n`;
  head('echo_open_connections', 'Open client connections.', 'gauge');
  out += `echo_open_connections ${connections}\n`;
  head(
    'echo_log_lines_dropped_total',
    'Log lines dropped because the log destination was slow, gone or full.',
    'counter',
  );
  out += `echo_log_lines_dropped_total ${dropped}\n`;
  head('echo_requests_refused_total', 'Requests and streams refused because --max-in-flight was reached.', 'counter');
  out += `echo_requests_refused_total ${refused}\n`;
  head(
    'echo_connections_closed_early_total',
    'Connections closed before sending a byte (TCP health checks), by what the port was waiting for.',
    'counter',
  );
  CLOSED_EARLY.forEach((reason, i) => {
    out += `echo_connections_closed_early_total{reason="${reason}"} ${closedEarly[i]}\n`;
  });
  head(
    'echo_connections_refused_total',
    'Connections closed at accept because --max-connections or --max-connections-per-client was reached, by limit.',
    'counter',
  );
  CONNECTION_LIMITS.forEach((limit, i) => {
    out += `echo_connections_refused_total{limit="${limit}"} ${connectionsRefused[i]}\n`;
  });
  head(
    'echo_http2_refused_by_node_total',
    'HTTP/2 sessions node:http2 ended itself with GOAWAY (the client broke the protocol), by kind.',
    'counter',
  );
  H2_NODE_REFUSALS.forEach((kind, i) => {
    out += `echo_http2_refused_by_node_total{kind="${kind}"} ${h2NodeRefusals[i]}\n`;
  });
  head(
    'echo_requests_refused_per_client_total',
    'Requests and streams refused because their client held --max-in-flight-per-client.',
    'counter',
  );
  out += `echo_requests_refused_per_client_total ${refusedPerClient}\n`;
  head('echo_websocket_messages_total', 'WebSocket messages, by direction.', 'counter');
  out += `echo_websocket_messages_total{direction="received"} ${wsReceived}\n`;
  out += `echo_websocket_messages_total{direction="sent"} ${wsSent}\n`;
  head('echo_tcp_connections_total', 'TCP echo connections ended, by how they ended.', 'counter');
  TCP_ENDS.forEach((reason, i) => {
    out += `echo_tcp_connections_total{reason="${reason}"} ${tcp[i]}\n`;
  });
  head('echo_tcp_bytes_total', 'Bytes through the TCP echo, by direction.', 'counter');
  out += `echo_tcp_bytes_total{direction="received"} ${tcp[TCP_ENDS.length]}\n`;
  out += `echo_tcp_bytes_total{direction="sent"} ${tcp[TCP_ENDS.length + 1]}\n`;
  head(
    'echo_udp_datagrams_total',
    'Datagrams that reached the UDP echo: answered, or dropped by the per-source rate or the global budget.',
    'counter',
  );
  UDP_RESULTS.forEach((result, i) => {
    out += `echo_udp_datagrams_total{result="${result}"} ${udp[i]}\n`;
  });
  head('echo_udp_bytes_total', 'Bytes through the UDP echo, by direction.', 'counter');
  out += `echo_udp_bytes_total{direction="received"} ${udp[UDP_RESULTS.length]}\n`;
  out += `echo_udp_bytes_total{direction="sent"} ${udp[UDP_RESULTS.length + 1]}\n`;
  head(
    'echo_grpc_calls_total',
    'gRPC calls answered, by gRPC status code (each is also counted as its HTTP request).',
    'counter',
  );
  GRPC_CODES.forEach((code, i) => {
    if (grpcCalls[i]! > 0) out += `echo_grpc_calls_total{code="${code}"} ${grpcCalls[i]}\n`;
  });
  if (workers !== undefined) {
    head('echo_workers', 'Worker processes serving now (--workers).', 'gauge');
    out += `echo_workers ${workers.workers}\n`;
    head('echo_worker_restarts_total', 'Workers that died and were replaced.', 'counter');
    out += `echo_worker_restarts_total ${workers.restarts}\n`;
  }
  return out;
}

/** Prometheus text for the sum of several snapshots (one per worker), process metrics included. */
export function renderMetrics(snapshots: readonly MetricsSnapshot[], workers?: WorkerFigures): Promise<string> {
  return Promise.resolve(renderCounters(snapshots, workers) + aggregateDefaults(snapshots.map((s) => s.defaults)));
}

/**
 * process_* and nodejs_* across workers, by each metric's own aggregation rule
 * (prom-client sets it: CPU, memory and handles add up; versions and start times
 * take the first worker's; event-loop lag averages). Written here rather than with
 * prom-client's cluster module, which the bundle leaves out (it loads node:cluster
 * and costs memory in every single-process server).
 */
function aggregateDefaults(perWorker: readonly PromMetric[][]): string {
  const byName = new Map<string, PromMetric[]>();
  for (const list of perWorker) {
    for (const m of list) {
      const group = byName.get(m.name);
      if (group === undefined) byName.set(m.name, [m]);
      else group.push(m);
    }
  }
  let out = '';
  for (const [name, group] of byName) {
    const rule = (group[0] as { aggregator?: string }).aggregator ?? 'sum';
    if (rule === 'omit') continue;
    const series = new Map<string, { line: string; values: number[] }>();
    for (const m of group) {
      for (const v of m.values as { metricName?: string; labels: Record<string, string | number>; value: number }[]) {
        const labels = Object.entries(v.labels)
          .map(([k, l]) => `${k}="${String(l).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
          .join(',');
        const line = `${v.metricName ?? name}${labels === '' ? '' : `{${labels}}`}`;
        const entry = series.get(line);
        if (entry === undefined) series.set(line, { line, values: [v.value] });
        else entry.values.push(v.value);
      }
    }
    out += `# HELP ${name} ${group[0]!.help}\n# TYPE ${name} ${group[0]!.type}\n`;
    for (const { line, values } of series.values()) {
      const value =
        rule === 'first'
          ? values[0]!
          : rule === 'min'
            ? Math.min(...values)
            : rule === 'max'
              ? Math.max(...values)
              : rule === 'average'
                ? values.reduce((a, b) => a + b, 0) / values.length
                : values.reduce((a, b) => a + b, 0);
      out += `${line} ${value}\n`;
    }
  }
  return out;
}

function addInto(target: Float64Array, values: ArrayLike<number>): void {
  const n = Math.min(target.length, values.length);
  for (let i = 0; i < n; i++) target[i]! += values[i]!;
}
