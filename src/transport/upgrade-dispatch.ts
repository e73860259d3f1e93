// Where an admitted HTTP/1.1 upgrade goes: h2c into the HTTP/2 stage (the upgrading
// request becomes stream 1), a WebSocket to the app. Admission ran before node:http
// emitted the upgrade (Handlers.mayUpgrade); what is left here is the switch itself.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Config } from '../config/settings.ts';
import type { LimitedLog } from '../ops/log-limit.ts';
import type { Logger } from '../ops/logger.ts';
import { responseInProgress } from './client-error.ts';
import { factsOf, frontDone, frontOf, reopenFront, shareFront, type FrontState } from './front.ts';
import { bridgeWithInjection, requestAsHeadersFrames, wantsH2cUpgrade } from './h2c-upgrade.ts';
import type { Handlers } from './handlers.ts';
import type { Http1Stage } from './http1.ts';

export interface UpgradeDeps {
  logger: Logger;
  log: LimitedLog;
  http1: Http1Stage;
  /** Hands a connection to the HTTP/2 stage. */
  toH2(socket: Duplex, front: FrontState | undefined): void;
}

/** The listener of node:http's 'upgrade' event. */
export function dispatchUpgrades(
  app: Handlers,
  config: Config,
  deps: UpgradeDeps,
): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const { logger, log, http1 } = deps;
  return (req, socket, head) => {
    const front = frontOf(req.socket);
    try {
      if (refusePipelinedUpgrade(req.socket, log)) return;
      // No longer HTTP/1.1: the new protocol, not the drain's idle check, ends it.
      http1.release(req.socket);
      if (wantsH2cUpgrade(req)) {
        switchToH2c(app, req, socket as Socket, head, front, config, deps);
      } else {
        frontDone(front);
        app.upgrade(req, socket, head, factsOf(req));
      }
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'upgrade failed');
      socket.destroy();
    }
  };
}

/** Upgrade: h2c. The 101 is the HTTP stage's; the upgrading request goes on as stream 1. */
function switchToH2c(
  app: Handlers,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  front: FrontState | undefined,
  config: Config,
  deps: UpgradeDeps,
): void {
  // The front stage goes on until the client's HTTP/2 preface arrives (the upgrading
  // request becomes stream 1 only then), and an expiry now closes the connection: it
  // is no longer HTTP/1.1, so no 408 is written.
  if (front !== undefined) {
    reopenFront(front, config.headersTimeoutMs, () => {
      deps.log(
        'info',
        { listener: 'http', peer: req.socket.remoteAddress, limitMs: config.headersTimeoutMs },
        'connection closed: no HTTP/2 stream within --headers-timeout of the h2c upgrade',
      );
      socket.destroy();
    });
  }
  socket.write(app.switchingProtocols('h2c'));
  const bridge = bridgeWithInjection(socket, head, requestAsHeadersFrames(req));
  if (front !== undefined) shareFront(front, bridge);
  deps.toH2(bridge, front);
}

/**
 * An upgrade that arrived pipelined behind an answer still being written: switching
 * protocols now would put that answer inside the new protocol's bytes. It is not
 * taken; the connection closes once the earlier answer is complete (a client that
 * wants to upgrade waits for its earlier answers, as RFC 9110 section 7.8 expects).
 */
function refusePipelinedUpgrade(socket: Socket, log: LimitedLog): boolean {
  const current = responseInProgress(socket);
  if (current === null) return false;
  log(
    'warn',
    { peer: socket.remoteAddress },
    'upgrade refused: pipelined behind an unfinished response; the connection closes after it',
  );
  if (!current.headersSent) current.shouldKeepAlive = false;
  if (current.writableFinished) socket.end();
  else {
    current.once('finish', () => socket.end());
    current.once('close', () => {
      if (!current.writableFinished) socket.destroy();
    });
  }
  return true;
}
