// The accounting of every exchange, whatever carried it: an HTTP request and its
// answer (HTTP/1.1 or HTTP/2, SSE included), a WebSocket from handshake to close, a
// refused tunnel. Each is begun and closed here, exactly once: in-flight count,
// metrics and the access-log line come from this one place, and the client address
// always comes from the connection's facts (so a client that left early is still
// recorded with its address and a 499, never as a 200 from nobody). Its `close` is
// called from answer-port.ts only: the answer's end, or the peer leaving, closes
// the record, never a handler.
import type { Config } from '../config/settings.ts';
import type { ConnectionFacts } from './facts.ts';
import { LOG_URI_MAX, LOG_USER_AGENT_MAX, createAccessLog, logField, type Logger } from '../ops/logger.ts';
import type { Metrics } from '../ops/metrics.ts';
import type { TcpEnd } from '../ops/metrics.ts';
import { formatHostPort, normalizeIp } from '../util/addresses.ts';
import { statusOf, type Exchange, type Outcome, type WebSocketDetail } from './exchange.ts';

/** Why the in-flight budget refuses an exchange. */
export interface BudgetRefusal {
  limit: '--max-in-flight' | '--max-in-flight-per-client';
  reason: string;
}

/**
 * The per-client share of the budget (--max-in-flight-per-client): how many one
 * client may hold (0: no share kept) and which client a request counts against.
 * Who the client is depends on headers the protocol reads, so its side says.
 */
export interface ClientShare {
  readonly share: number;
  keyOf(rawHeaders: readonly string[], facts: ConnectionFacts): string;
}

/**
 * The client of a connection, on every protocol: the PROXY header's source when it
 * names one, else the peer. The access lines and the connection share both use it,
 * so a line says the client the echo shows as `remoteAddr`.
 */
export function connectionClient(facts: ConnectionFacts): string {
  const { proxy } = facts;
  return proxy !== null && proxy.command === 'PROXY' && proxy.sourceAddress !== null
    ? proxy.sourceAddress
    : facts.peerAddress;
}

export class Ledger {
  #inFlight = 0;
  #idleWaiters: (() => void)[] = [];
  /**
   * Exchanges in flight by client. An entry exists only while its client has one in
   * flight (removed at zero), so its size never exceeds the in-flight count, whatever
   * addresses clients claim.
   */
  readonly #byClient = new Map<string, number>();
  readonly #logger: Logger;
  readonly #metrics: Metrics | null;
  readonly #accessLog: ReturnType<typeof createAccessLog>;
  readonly #logRequests: boolean;
  readonly #maxInFlight: number;
  readonly #clients: ClientShare;
  /** The per-client share; 0 when it is no smaller than the whole budget (no share kept). */
  readonly #share: number;

  constructor(
    logger: Logger,
    metrics: Metrics | null,
    config: Pick<Config, 'accessLog' | 'maxInFlight'>,
    clients: ClientShare,
  ) {
    this.#logger = logger;
    this.#metrics = metrics;
    this.#accessLog = createAccessLog(logger);
    this.#logRequests = config.accessLog;
    this.#maxInFlight = config.maxInFlight;
    this.#clients = clients;
    this.#share = clients.share < config.maxInFlight ? clients.share : 0;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Whether the budget is full: `others` exchanges in flight that do not count (the one asking). */
  saturated(others = 0): boolean {
    return this.#inFlight - others >= this.#maxInFlight;
  }

  /**
   * Whether one more exchange of this client would fit the budget and its share,
   * asked before it is begun (an h2c upgrade, before its 101). Nothing is counted.
   */
  hasRoom(rawHeaders: readonly string[], facts: ConnectionFacts): boolean {
    if (this.#inFlight >= this.#maxInFlight) return false;
    return this.#share === 0 || (this.#byClient.get(this.#clients.keyOf(rawHeaders, facts)) ?? 0) < this.#share;
  }

  /**
   * Null when the in-flight budget has room for `x` (already counted by begin);
   * else why not, counted as refused (echo_requests_refused_total, or
   * echo_requests_refused_per_client_total for the client's share).
   */
  overBudget(x: Exchange): BudgetRefusal | null {
    const maxInFlight = this.#maxInFlight;
    if (this.#inFlight > maxInFlight) {
      this.#metrics?.requestRefused();
      return { limit: '--max-in-flight', reason: `server busy: --max-in-flight (${maxInFlight}) requests in progress` };
    }
    if (this.#share > 0 && this.#byClient.get(x.client)! > this.#share) {
      this.#metrics?.requestRefusedPerClient();
      return {
        limit: '--max-in-flight-per-client',
        reason: `server busy: this client has --max-in-flight-per-client (${this.#share}) requests in progress`,
      };
    }
    return null;
  }

  /** Refused by a budget of its own (the operations endpoints'): counted with the in-flight refusals. */
  refused(): void {
    this.#metrics?.requestRefused();
  }

  /** Counts `x` in flight from now (its client's share too). `rawHeaders` name its client. */
  begin<X extends Exchange>(x: X, rawHeaders: readonly string[]): X {
    this.#inFlight++;
    // An L4 connection is no HTTP request: it has its own counts (closeL4).
    if (x.protocol !== 'tcp') this.#metrics?.requestStarted();
    if (this.#share > 0) {
      const client = this.#clients.keyOf(rawHeaders, x.facts);
      x.client = client;
      this.#byClient.set(client, (this.#byClient.get(client) ?? 0) + 1);
    }
    if (!this.#logRequests) x.logged = false;
    return x;
  }

  /**
   * The exchange is over: metrics, the access-log line, one fewer in flight. Only the
   * first call counts. A WebSocket passes its detail and gets its own line shape.
   * Called from answer-port.ts only.
   */
  close(x: Exchange, outcome: Outcome, aborted: boolean, websocket?: WebSocketDetail): void {
    if (x.closed) return;
    x.closed = true;
    x.outcome = outcome;
    x.aborted = aborted;
    const status = statusOf(outcome);
    const seconds = (performance.now() - x.start) / 1000;
    const { method } = x;
    if ('l4' in outcome) this.#closeL4(x, outcome.l4, seconds);
    else this.#metrics?.requestFinished(method, status, seconds);
    const grpcStatus = 'grpc' in outcome ? outcome.grpc : undefined;
    if (grpcStatus !== undefined) this.#metrics?.grpcFinished(grpcStatus);
    if (x.logged && !('l4' in outcome)) {
      const durationMs = Math.round(seconds * 1e6) / 1000;
      const clientIp = normalizeIp(connectionClient(x.facts));
      if (websocket === undefined) {
        this.#accessLog({
          reqId: x.requestId,
          method,
          uri: x.target,
          status,
          bytesIn: x.bytesIn,
          bytesOut: x.bytesOut,
          durationMs,
          clientIp,
          userAgent: x.scan.userAgent,
          aborted,
          grpcStatus,
          fault: x.faultLabel,
        });
      } else {
        this.#logger.info(
          {
            reqId: x.requestId,
            method,
            uri: logField(x.target, LOG_URI_MAX),
            status,
            ...websocket,
            durationMs,
            clientIp,
            userAgent: logField(x.scan.userAgent, LOG_USER_AGENT_MAX),
          },
          'websocket',
        );
      }
    }
    this.#inFlight--;
    if (this.#share > 0) {
      const n = this.#byClient.get(x.client)! - 1;
      if (n === 0) this.#byClient.delete(x.client);
      else this.#byClient.set(x.client, n);
    }
    if (this.#inFlight === 0 && this.#idleWaiters.length > 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** An L4 connection's counts and its one access line. */
  #closeL4(x: Exchange, end: TcpEnd, seconds: number): void {
    this.#metrics?.tcpConnection(end, x.bytesIn, x.bytesOut);
    if (!x.logged) return;
    const { proxy } = x.facts;
    this.#logger.info(
      {
        connId: x.requestId,
        protocol: x.protocol,
        listener: x.target,
        clientIp: normalizeIp(connectionClient(x.facts)),
        peer: formatHostPort(normalizeIp(x.facts.peerAddress), x.facts.peerPort),
        ...(proxy === null ? {} : { proxied: true }),
        bytesIn: x.bytesIn,
        bytesOut: x.bytesOut,
        durationMs: Math.round(seconds * 1e6) / 1000,
        reason: end,
      },
      x.protocol,
    );
  }

  /** A request the parser refused before the app saw it: counted (started and finished), not logged as access. */
  refusedByParser(status: number): void {
    this.#metrics?.requestStarted();
    this.#metrics?.requestFinished('OTHER', status, 0);
  }

  /** Resolves once nothing is in flight. */
  idle(): Promise<void> {
    return this.#inFlight === 0 ? Promise.resolve() : new Promise((resolve) => this.#idleWaiters.push(resolve));
  }
}
