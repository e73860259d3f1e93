// WebSocket upgrades: the handshake is checked here (so every refusal is answered,
// logged and counted), then `ws` takes the socket and echoes messages (websocket.ts).
// Every upgrade is one exchange, counted in flight from arrival and closed exactly
// once, by this path's own answer end (core/answer-port.ts closeExchange): refused,
// failed, aborted before the handshake (499), or closed (its close code).
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ConnectionFacts } from '../../core/facts.ts';
import { EMPTY_BODY, buildEcho } from '../../echo/model.ts';
import { clip } from '../../util/parse.ts';
import type { HttpContext } from '../../handlers/context.ts';
import { closeExchange } from '../../core/answer-port.ts';
import { Exchange, httpOutcome, type Outcome, type WebSocketDetail } from '../../core/exchange.ts';
import { requestOriginAllowed } from '../../handlers/origin.ts';
import { scanHeaders } from '../../core/request-head.ts';
import { requestInfo } from '../http1/request-info.ts';
import { rawAnswer } from '../http1/respond.ts';
import { websocketHandshakeProblem, type WebSocketEcho } from './handshake.ts';

export interface Upgrades {
  upgrade(this: void, req: IncomingMessage, socket: Duplex, head: Buffer, facts: ConnectionFacts): void;
  /** Closes every WebSocket with 1001 (going away). */
  closeAll(): void;
}

/** The extra header each refusal carries: what to do differently. */
const REFUSAL_HEADERS: Record<number, readonly string[]> = {
  405: ['Allow', 'GET'],
  426: ['Sec-WebSocket-Version', '13'],
  503: ['Retry-After', '1'],
};

export function createUpgrades(ctx: HttpContext): Upgrades {
  const { config, ledger, health } = ctx;
  const { logger, metrics } = ctx.deps;
  // Loaded on the first upgrade: `ws` and what it pulls in cost about 10 MB of
  // resident memory that a server nobody opens a WebSocket to should not carry.
  let websockets: Promise<WebSocketEcho> | null = null;
  const websocketEcho = () => (websockets ??= import('./echo.ts').then((m) => m.createWebSocketEcho(config, logger)));

  function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, facts: ConnectionFacts): void {
    const x = ledger.begin(
      new Exchange('websocket', facts, req.method ?? 'OTHER', req.url ?? '/', scanHeaders(req.rawHeaders), true),
      req.rawHeaders,
    );
    const close = (outcome: Outcome, aborted: boolean, detail: WebSocketDetail) => {
      socket.off('close', onEarlyClose);
      closeExchange(ledger, x, outcome, aborted, detail);
    };
    /** The client left before the handshake was answered (nginx's 499). */
    const onEarlyClose = () => close(httpOutcome(499), true, { aborted: true });
    socket.once('close', onEarlyClose);
    const reject = (status: number, reason: string) => {
      if (socket.writable) socket.end(rawAnswer(status, `${reason}\n`, REFUSAL_HEADERS[status]));
      else socket.destroy();
      close(httpOutcome(status), false, { reason });
    };
    try {
      const busy = health.draining ? null : ledger.overBudget(x);
      if (busy?.limit === '--max-in-flight-per-client')
        ctx.log(
          'warn',
          { client: x.client, limit: busy.limit },
          'websocket refused: the client holds its share of the in-flight budget',
        );
      const problem = health.draining
        ? ([503, 'server shutting down'] as const)
        : busy !== null
          ? ([503, busy.reason] as const)
          : !requestOriginAllowed(x, config)
            ? ([403, `origin ${clip(x.scan.origin ?? '')} may not open WebSockets here (--allowed-origins)`] as const)
            : websocketHandshakeProblem(req);
      if (problem !== null) {
        reject(problem[0], problem[1]);
        return;
      }
    } catch (err) {
      logger.error({ err: (err as Error).message, reqId: x.requestId }, 'websocket upgrade failed');
      reject(500, 'internal error');
      return;
    }
    const describe = () =>
      JSON.stringify(buildEcho(requestInfo(req, facts, x.target, 0, EMPTY_BODY, x.requestId), ctx.echoContext));
    const accepted = (echo: WebSocketEcho) => {
      if (x.closed) return; // the client left while the module loaded
      echo.handleUpgrade(req, socket, head, describe, {
        opened: () => socket.off('close', onEarlyClose),
        closed: (summary) => {
          metrics?.websocketMessages(summary.messagesIn, summary.messagesOut);
          close({ websocket: summary.closeCode }, false, {
            bytesIn: summary.bytesIn,
            messagesIn: summary.messagesIn,
            messagesOut: summary.messagesOut,
            closeCode: summary.closeCode,
          });
        },
        refused: (reason) => reject(400, `bad WebSocket handshake: ${reason}`),
      });
    };
    websocketEcho()
      .then(accepted)
      .catch((err: unknown) => {
        logger.error({ err: (err as Error).message, reqId: x.requestId }, 'websocket upgrade failed');
        if (!x.closed) reject(500, 'internal error');
      });
  }

  return {
    upgrade,
    closeAll() {
      void websockets?.then((echo) => echo.closeAll());
    },
  };
}
