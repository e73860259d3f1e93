// WebSocket echo on any path, framed by `ws`. The first message describes the
// handshake request (the same JSON as an HTTP echo); after that every text or binary
// message comes back as it came. Message size, message rate and idle time are
// bounded; the server pings (and drops peers that stop answering) and answers
// pings; shutdown closes with 1001.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Config } from '../../config/settings.ts';
import type { Logger } from '../../ops/logger.ts';

export interface WebSocketEvents {
  /** The handshake succeeded; the connection is a WebSocket now. */
  opened(): void;
  /** The WebSocket closed; called once. */
  closed(summary: WebSocketSummary): void;
  /** `ws` refused the handshake; the caller answers and closes the socket. */
  refused(reason: string): void;
}

export interface WebSocketEcho {
  /** Takes over an upgrade request; `describe` renders the handshake as JSON. */
  handleUpgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    describe: () => string,
    events: WebSocketEvents,
  ): void;
  /** Closes every connection with 1001 (going away). */
  closeAll(): void;
  readonly open: number;
}

export interface WebSocketSummary {
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  closeCode: number;
}

/** Close codes `ws` sends for its receive errors (RFC 6455, section 7.4.1). */
const WS_ERROR_CODES: Record<string, number> = {
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 1009,
  WS_ERR_INVALID_UTF8: 1007,
};

export function createWebSocketEcho(config: Config, logger: Logger): WebSocketEcho {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: config.wsMaxMessage,
    perMessageDeflate: false,
    clientTracking: true,
  });
  wss.on('error', (err) => logger.warn({ err: err.message }, 'websocket server error'));
  // With a listener for this event `ws` leaves the answer to us, so a refused
  // handshake is answered, logged and counted like every other request.
  const pending = new WeakMap<Duplex, WebSocketEvents>();
  wss.on('wsClientError', (err: Error, socket: Duplex) => {
    const events = pending.get(socket);
    if (events === undefined) socket.destroy();
    else events.refused(err.message);
  });
  return {
    handleUpgrade(req, socket, head, describe, events) {
      pending.set(socket, events);
      wss.handleUpgrade(req, socket, head, (ws) => {
        pending.delete(socket);
        events.opened();
        serveEcho(ws, config, logger, describe, (summary) => events.closed(summary));
      });
    },
    closeAll() {
      for (const ws of wss.clients) ws.close(1001, 'server shutting down');
    },
    get open() {
      return wss.clients.size;
    },
  };
}

/**
 * One WebSocket: the handshake's description first, then every message echoed.
 * Echoes wait in the send buffer while the peer does not read; past
 * --ws-max-message bytes the connection stops reading the peer's messages until the
 * buffer drains, so a client that sends without reading holds that much, not more.
 */
function serveEcho(
  ws: WebSocket,
  config: Config,
  logger: Logger,
  describe: () => string,
  done: (s: WebSocketSummary) => void,
): void {
  const sendBufferLimit = config.wsMaxMessage;
  const summary: WebSocketSummary = { messagesIn: 0, messagesOut: 0, bytesIn: 0, closeCode: 0 };
  // A token bucket: wsMaxRate messages a second, bursts up to the same number.
  let tokens = config.wsMaxRate;
  let last = performance.now();
  let idle: NodeJS.Timeout | undefined;
  const touch = () => {
    clearTimeout(idle);
    if (config.wsIdleTimeoutMs > 0) idle = setTimeout(() => ws.close(1000, 'idle timeout'), config.wsIdleTimeoutMs);
  };
  // Heartbeat: a peer that has not answered the previous ping is gone.
  let alive = true;
  const pinger = setInterval(() => {
    if (!alive) {
      ws.terminate();
      return;
    }
    alive = false;
    ws.ping();
  }, 30_000);
  pinger.unref();
  touch();
  let paused = false;
  const sent = () => {
    if (paused && ws.bufferedAmount <= sendBufferLimit / 2) {
      paused = false;
      ws.resume();
    }
  };
  const send = (data: Buffer | string, binary: boolean) => {
    ws.send(data, { binary }, sent);
    summary.messagesOut++;
    if (!paused && ws.bufferedAmount > sendBufferLimit) {
      paused = true;
      ws.pause();
    }
  };
  try {
    send(describe(), false);
  } catch (err) {
    logger.error({ err: (err as Error).message }, 'websocket echo failed');
    ws.close(1011, 'internal error');
  }
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    const now = performance.now();
    tokens = Math.min(config.wsMaxRate, tokens + ((now - last) / 1000) * config.wsMaxRate);
    last = now;
    if (tokens < 1) {
      ws.close(1008, `more than ${config.wsMaxRate} messages per second`);
      return;
    }
    tokens--;
    touch();
    summary.messagesIn++;
    summary.bytesIn += data.length;
    send(data, isBinary);
  });
  ws.on('pong', () => {
    alive = true;
  });
  // When the server ends a connection over a protocol error (a message above
  // --ws-max-message: 1009), `ws` closes the socket itself and reports 1006 to
  // 'close'; the code the server sent is the one worth recording.
  let sentCode = 0;
  ws.on('error', (err: Error & { code?: string }) => {
    sentCode = WS_ERROR_CODES[err.code ?? ''] ?? 1002;
    logger.debug({ err: err.message }, 'websocket error');
  });
  ws.on('close', (code) => {
    clearTimeout(idle);
    clearInterval(pinger);
    summary.closeCode = sentCode !== 0 && code === 1006 ? sentCode : code;
    done(summary);
  });
}
