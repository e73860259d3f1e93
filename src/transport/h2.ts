// The HTTP/2 stage: one node:http2 server for every HTTP/2 connection, whichever
// way it arrived (h2 over TLS by ALPN, h2c by prior knowledge or by upgrade). The
// front stage ends with the session's first stream; a session with nothing open
// is closed after the keep-alive timeout, as an idle HTTP/1.1 connection is.
import type { Http2Server, IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Config } from '../config/settings.ts';
import { limitedLog, type LimitedLog } from '../ops/log-limit.ts';
import type { Logger } from '../ops/logger.ts';
import type { Metrics } from '../ops/metrics.ts';
import { factsOf, frontDone, type FrontState } from './front.ts';
import { PLACEHOLDER_AUTHORITY, placeholderStreamOf } from './h2-authority.ts';
import type { Handlers } from './handlers.ts';
import type { ProgressWatch } from './progress.ts';

export interface H2Stage {
  /** Takes a connection whose front stage chose HTTP/2. */
  handOver(socket: Duplex, front: FrontState | undefined): void;
  /** GOAWAY to every session: running streams finish, no new ones start. */
  closeAll(): void;
  destroyAll(): void;
}

/** No-progress closing (progress.ts), its rate-limited log, and the count of sessions node:http2 ends itself. */
export interface H2Watch {
  progress: ProgressWatch;
  log: LimitedLog;
  metrics: Metrics | null;
}

const NGHTTP2_CANCEL = 8;
const ignore = () => {};

export function createH2Stage(app: Handlers, config: Config, logger: Logger, watch: H2Watch): H2Stage {
  const sessions = new Set<ServerHttp2Session>();
  const server = createH2Server(config);
  // node:http2 creates the session synchronously inside emit('connection'); the
  // front state of the connection being handed over is parked here for that moment.
  let handingOver: FrontState | undefined;
  const log = limitedLog(logger);
  server.on('session', (s: ServerHttp2Session) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
    const front = handingOver;
    let first = true;
    // The connection's facts, read now rather than at the first stream: node:http2
    // emits a stream a tick after its HEADERS, and a session closed in between (HEADERS
    // and GOAWAY in one write) has let its socket go, whose every property then throws,
    // taking the process down. The stream given an `:authority` placeholder is known
    // only once the first header block has passed: read at the first stream, when the
    // socket is still there (a stream of a destroyed session is not answered anyway).
    const facts = factsOf({ socket: s.socket });
    let placeholder: number | undefined;
    const idle = closeWhenIdle(s, config.keepAliveTimeoutMs);
    const refusals = closeWhenRefusedTooOften(s, REFUSAL_ROUNDS * config.h2MaxStreams, log);
    // One 'stream' listener and one 'close' listener per stream for all per-stream
    // bookkeeping: each listener and closure is paid on every stream of every session.
    // The stream is answered on the stream API (app.stream): node:http2's
    // compatibility objects would cost more per stream than the answer itself.
    s.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, raw: string[]) => {
      if (first) {
        first = false;
        frontDone(front);
        if (!s.destroyed) placeholder = placeholderStreamOf(s.socket);
      }
      idle.opened();
      refusals.opened(stream);
      const stopWatching = cancelWhenStalled(stream, watch, config.idleTimeoutMs);
      // A stream's errors (a reset by the peer, a write after it) end it, which its
      // 'close' records; unhandled, an 'error' would take the process down.
      stream.on('error', ignore);
      // 'on', not 'once': a stream closes once, and a once-wrapper per stream is not free.
      stream.on('close', () => {
        idle.closed();
        stopWatching();
        refusals.closed(stream);
      });
      if (placeholder === stream.id) removePlaceholder(headers, raw);
      app.stream(stream, headers, raw, facts);
    });
    destroyWhenClosingStalls(s, log);
    s.on('error', (err: Error & { code?: string }) => {
      // ERR_HTTP2_ERROR is nghttp2 refusing what the peer sent (a header field over its
      // 64 KiB HPACK limit, a header block in more than 8 CONTINUATION frames, more
      // concurrent streams than the SETTINGS it acknowledged, a malformed frame, a
      // flood): it has sent GOAWAY, and the app never saw the request. Other errors
      // are the connection failing (a reset), which the exchanges on it already record.
      if (err.code !== 'ERR_HTTP2_ERROR') {
        logger.debug({ err: err.message }, 'HTTP/2 session error');
        return;
      }
      log(
        'warn',
        { peer: facts.peerAddress, err: err.message },
        'HTTP/2 session ended by node:http2 with GOAWAY: the client broke the protocol (a header field over 64 KiB, a header block in over 9 frames, more streams than SETTINGS allow, a malformed frame)',
      );
      watch.metrics?.h2RefusedByNode('session', 1);
    });
  });
  return {
    handOver(socket, front) {
      handingOver = front;
      try {
        server.emit('connection', socket);
      } finally {
        handingOver = undefined;
      }
    },
    closeAll() {
      for (const s of sessions) s.close();
    },
    destroyAll() {
      for (const s of sessions) s.destroy();
    },
  };
}

/**
 * A session with no open stream is closed (GOAWAY, then close) after `ms`, as an
 * idle HTTP/1.1 keep-alive connection is: otherwise each idle session would hold a
 * --max-connections slot for the whole --idle-timeout.
 */
function closeWhenIdle(session: ServerHttp2Session, ms: number): { opened(): void; closed(): void } {
  let open = 0;
  // One timer per session, re-armed (refresh) each time the last stream closes: a
  // new timer per idle moment, and clearing it on every stream, would be paid on
  // every stream of a busy session. Firing while streams are open does nothing.
  let timer: NodeJS.Timeout | undefined;
  session.once('close', () => clearTimeout(timer));
  return {
    opened() {
      open++;
    },
    closed() {
      if (--open !== 0) return;
      if (timer === undefined)
        timer = setTimeout(() => {
          if (open === 0 && !session.closed) session.close();
        }, ms);
      else timer.refresh();
    },
  };
}

/**
 * A stream whose answer does not move for --idle-timeout (the peer grants no
 * flow-control window) is cancelled, whatever else the session sends: PINGs and
 * window updates for other streams keep a session's idle timer going, not this.
 * Progress is the stream's queue shrinking, or draining after back-pressure.
 */
function cancelWhenStalled(stream: ServerHttp2Stream, watch: H2Watch, idleMs: number): () => void {
  let drains = 0;
  stream.on('drain', () => {
    drains++;
  });
  return watch.progress.watch(
    () => ({ pending: stream.writableLength, sent: drains }),
    () => {
      if (stream.destroyed) return;
      watch.log(
        'info',
        { peer: stream.session?.socket?.remoteAddress, limitMs: idleMs },
        'HTTP/2 stream cancelled: no progress sending its answer within --idle-timeout',
      );
      stream.close(NGHTTP2_CANCEL);
    },
  );
}

/**
 * node:http2 destroys a session that moves nothing for --idle-timeout, but not once
 * it is closing (after GOAWAY): then it waits for its streams however long they take.
 * A stream whose peer stopped reading cannot even get its RST_STREAM out, so such a
 * session, its socket, its --max-connections slot and its exchanges (in flight,
 * never logged) would stay forever. The same idle rule holds for a closing session:
 * destroyed, its streams' exchanges recorded as aborted.
 */
function destroyWhenClosingStalls(session: ServerHttp2Session, log: LimitedLog): void {
  session.on('timeout', () => {
    if (!session.closed || session.destroyed) return;
    log(
      'info',
      { peer: session.socket?.remoteAddress },
      'HTTP/2 session destroyed: closing, and no progress within --idle-timeout',
    );
    session.destroy();
  });
}

const NGHTTP2_REFUSED_STREAM = 7;
const NGHTTP2_ENHANCE_YOUR_CALM = 11;
/** Refusals a session may provoke per window, in rounds of its --h2-max-streams: a few rounds of retries, then GOAWAY. */
const REFUSAL_ROUNDS = 4;
const REFUSAL_WINDOW_MS = 10_000;

/**
 * A refused stream is cheap, but not free (a request and response object, garbage
 * for the collector): a session that keeps opening streams against a full budget
 * would keep the server busy refusing them. After more than a few rounds of
 * refusals within a window the session gets GOAWAY (ENHANCE_YOUR_CALM) and is
 * closed; its running streams finish, and a polite client simply reconnects.
 */
function closeWhenRefusedTooOften(
  session: ServerHttp2Session,
  allowed: number,
  log: LimitedLog,
): { opened(stream: ServerHttp2Stream): void; closed(stream: ServerHttp2Stream): void } {
  let refused = 0;
  let windowStart = performance.now();
  let lastStream = 0;
  return {
    opened(stream) {
      lastStream = Math.max(lastStream, stream.id ?? 0);
    },
    closed(stream) {
      if (stream.rstCode !== NGHTTP2_REFUSED_STREAM || session.closed || session.destroyed) return;
      const now = performance.now();
      if (now - windowStart > REFUSAL_WINDOW_MS) {
        windowStart = now;
        refused = 0;
      }
      if (++refused <= allowed) return;
      log(
        'warn',
        { peer: session.socket?.remoteAddress, refused, windowMs: REFUSAL_WINDOW_MS },
        'HTTP/2 session closed: too many streams refused (GOAWAY ENHANCE_YOUR_CALM)',
      );
      // The last stream taken, not node's default of 0: with 0, nghttp2 drops the
      // streams still being answered without telling node:http2, which then never closes them.
      session.goaway(NGHTTP2_ENHANCE_YOUR_CALM, lastStream);
      session.close();
    },
  };
}

/** :method, :scheme, :authority, :path (and :protocol). */
const PSEUDO_HEADERS = 5;

/**
 * Takes the front stage's `:authority` placeholder out of the request it was added
 * to (see h2-authority.ts), so the app sees the request as it was sent: without
 * :authority and Host.
 */
function removePlaceholder(headers: IncomingHttpHeaders, raw: string[]): void {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i] === ':authority' && raw[i + 1] === PLACEHOLDER_AUTHORITY) {
      raw.splice(i, 2);
      delete (headers as Record<string, unknown>)[':authority'];
      return;
    }
  }
}

function createH2Server(config: Config): Http2Server {
  const { createServer: createHttp2Server } = process.getBuiltinModule('node:http2');
  // node:http2 resets a stream (ENHANCE_YOUR_CALM, unlogged, uncounted) whose header
  // list exceeds the size it advertises, counting 32 bytes more per field than the app
  // does, or has more fields than maxHeaderListPairs. Both are set well above the
  // app's limits (twice --max-header-size, plus that per-field allowance for every
  // field --max-header-count permits, and as many fields as fit in it), so the app
  // sees such a request and answers 431 with a log line and a count, as on HTTP/1.1.
  // A list beyond those, or a malformed field, is still reset by nghttp2 with no event
  // to JavaScript; a gap in the client's stream ids is no evidence of one (nghttp
  // starts at stream 13), so such a stream is left uncounted rather than guessed at.
  // No request listener: node:http2 then builds no compatibility objects, and an
  // Expect it does not know (answered 417 by the app, logged) reaches the app as well.
  const listSize = 2 * config.maxHeaderSize + 32 * (config.maxHeaderCount + PSEUDO_HEADERS);
  const h2 = createHttp2Server({
    settings: { maxConcurrentStreams: config.h2MaxStreams, maxHeaderListSize: listSize },
    maxHeaderListPairs: Math.ceil(listSize / 32) + 1,
    maxSessionMemory: 32,
    // One PING per refused stream in flight (see adapters/http2/stream.ts): the reset waits for its answer.
    maxOutstandingPings: Math.max(100, config.h2MaxStreams),
  });
  h2.setTimeout(config.idleTimeoutMs);
  return h2;
}
