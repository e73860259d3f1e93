// The HTTP/2 stage: one node:http2 server for every HTTP/2 connection, whichever
// way it arrived (h2 over TLS by ALPN, h2c by prior knowledge or by upgrade). The
// front stage ends with the session's first stream; a session with nothing open
// is closed after the keep-alive timeout, as an idle HTTP/1.1 connection is.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2Server, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Config } from '../config/settings.ts';
import type { LimitedLog } from '../ops/log-limit.ts';
import type { Logger } from '../ops/logger.ts';
import { factsOf, frontDone, type FrontState } from './front.ts';
import type { Handlers } from './handlers.ts';
import type { ProgressWatch } from './progress.ts';

export interface H2Stage {
  /** Takes a connection whose front stage chose HTTP/2. */
  handOver(socket: Duplex, front: FrontState | undefined): void;
  /** GOAWAY to every session: running streams finish, no new ones start. */
  closeAll(): void;
  destroyAll(): void;
}

/** No-progress closing (progress.ts) and its rate-limited log. */
export interface H2Watch {
  progress: ProgressWatch;
  log: LimitedLog;
}

const NGHTTP2_CANCEL = 8;

export function createH2Stage(app: Handlers, config: Config, logger: Logger, watch: H2Watch): H2Stage {
  const sessions = new Set<ServerHttp2Session>();
  const server = createH2Server(app, config, logger);
  // node:http2 creates the session synchronously inside emit('connection'); the
  // front state of the connection being handed over is parked here for that moment.
  let handingOver: FrontState | undefined;
  server.on('session', (s: ServerHttp2Session) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
    const front = handingOver;
    s.once('stream', () => frontDone(front));
    closeWhenIdle(s, config.keepAliveTimeoutMs);
    s.on('stream', (stream: ServerHttp2Stream) => cancelWhenStalled(stream, watch, config.idleTimeoutMs));
    s.on('error', (err: Error) => logger.debug({ err: err.message }, 'HTTP/2 session error'));
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
function closeWhenIdle(session: ServerHttp2Session, ms: number): void {
  let open = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => { if (open === 0 && !session.closed) session.close(); }, ms);
  };
  session.on('stream', (stream: ServerHttp2Stream) => {
    open++;
    clearTimeout(timer);
    stream.once('close', () => {
      if (--open === 0) arm();
    });
  });
  session.once('close', () => clearTimeout(timer));
}

/**
 * A stream whose answer does not move for --idle-timeout (the peer grants no
 * flow-control window) is cancelled, whatever else the session sends: PINGs and
 * window updates for other streams keep a session's idle timer going, not this.
 * Progress is the stream's queue shrinking, or draining after back-pressure.
 */
function cancelWhenStalled(stream: ServerHttp2Stream, watch: H2Watch, idleMs: number): void {
  let drains = 0;
  stream.on('drain', () => { drains++; });
  const stop = watch.progress.watch(() => ({ pending: stream.writableLength, sent: drains }), () => {
    if (stream.destroyed) return;
    watch.log('info', { peer: stream.session?.socket?.remoteAddress, limitMs: idleMs }, 'HTTP/2 stream cancelled: no progress sending its answer within --idle-timeout');
    stream.close(NGHTTP2_CANCEL);
  });
  stream.once('close', stop);
}

function createH2Server(app: Handlers, config: Config, logger: Logger): Http2Server {
  const { createServer: createHttp2Server } = process.getBuiltinModule('node:http2');
  const h2 = createHttp2Server({
    // Advertised so well-behaved peers stay under it; node:http2 does not enforce
    // it, so the app answers 431 above --max-header-size, as on HTTP/1.1.
    settings: { maxConcurrentStreams: 100, maxHeaderListSize: config.maxHeaderSize },
    // Room above --max-header-count, so the app sees such a request and answers 431
    // with a log line; node:http2 would otherwise reset the stream silently.
    maxHeaderListPairs: 2 * config.maxHeaderCount + 8,
    maxSessionMemory: 32,
  }, (req, res) => app.handle(req as unknown as IncomingMessage, res as unknown as ServerResponse, factsOf(req)));
  h2.setTimeout(config.idleTimeoutMs);
  h2.on('sessionError', (err: Error) => logger.debug({ err: err.message }, 'HTTP/2 session error'));
  return h2;
}
