// Shutdown: stop accepting without resetting connections whose requests are already
// sent, let answers under way finish within --drain-timeout, close the rest.
import type { Server as TcpServer, Socket } from 'node:net';
import type { Config } from '../config/settings.ts';
import type { Accepted } from './accept.ts';
import { responseInProgress } from './client-error.ts';
import type { H2Stage } from './h2.ts';
import type { Handlers } from './handlers.ts';
import type { Http1Stage } from './http1.ts';
import type { ProgressWatch } from './progress.ts';

export interface DrainParts {
  fronts: readonly TcpServer[];
  accepted: Accepted;
  http1: Http1Stage;
  /** Null while no connection has spoken HTTP/2. */
  h2: () => H2Stage | null;
  progress: ProgressWatch;
  stopWatching: () => void;
}

/** Stops accepting, lets in-flight requests finish within `drainMs`, closes the rest. True when drained in time. */
export async function drain(app: Handlers, config: Config, parts: DrainParts, drainMs: number): Promise<boolean> {
  const { http1, accepted } = parts;
  await acceptQueued(accepted);
  for (const front of parts.fronts) front.close();
  parts.stopWatching();
  // No keep-alive connection is cut here: one that looks idle may hold a request
  // the client has already sent and node:http has not read yet. Each answers its
  // next request with `Connection: close`; one that stays idle for a grace period
  // is closed (see closeIdleDuringDrain).
  for (const s of http1.sockets) endAfterAnswer(s);
  parts.h2()?.closeAll();
  const idleWatch = closeIdleDuringDrain(
    http1.sockets,
    () => accepted.inFront.size,
    Math.min(config.drainIdleGraceMs, drainMs),
  );
  let timer: NodeJS.Timeout | undefined;
  const drained = await Promise.race([
    app
      .idle()
      .then(() => idleWatch.done)
      .then(() => app.idle())
      .then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), drainMs);
    }),
  ]);
  clearTimeout(timer);
  idleWatch.stop();
  http1.server.closeAllConnections();
  parts.h2()?.destroyAll();
  http1.server.close(); // stops node:http's connection checker
  parts.progress.stop();
  return drained;
}

/**
 * Closing a listening socket resets the connections still in its accept queue,
 * whose clients have already sent their requests. Each two turns of the event loop
 * include a poll, which accepts some of them: the ports close after a poll that
 * accepted none (at most 20 rounds). They are answered like any other.
 */
async function acceptQueued(accepted: Accepted): Promise<void> {
  for (let round = 0, before = -1; round < 20 && before !== accepted.count; round++) {
    before = accepted.count;
    await new Promise((resolve) => setImmediate(() => setImmediate(resolve)));
  }
}

/**
 * The answer being prepared on an HTTP/1.1 connection goes out with `Connection: close`,
 * so the client does not reuse a connection that the drain is about to cut. (Requests
 * that arrive during the drain get it from the app, which sees readiness failed.)
 */
function endAfterAnswer(socket: Socket): void {
  const res = responseInProgress(socket);
  if (res !== null && !res.headersSent) res.shouldKeepAlive = false;
}

/**
 * During a drain, closes each HTTP/1.1 connection once it has been idle (no answer
 * under way, not one byte read) for a whole `graceMs` (--drain-idle-grace); `done`
 * resolves when none is left and none is still in the front stage (`inFront`). A
 * connection that is answering closes by itself after that answer. The first look
 * waits at least two turns of the event loop, so bytes already in the kernel's
 * buffers are read first: a request sent just before the drain began is answered
 * even with no grace at all.
 */
function closeIdleDuringDrain(
  sockets: ReadonlySet<Socket>,
  inFront: () => number,
  graceMs: number,
): { done: Promise<void>; stop(): void } {
  const seen = new Map<Socket, number>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let finish = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const look = () => {
    if (stopped) return;
    for (const s of sockets) {
      const read = s.bytesRead;
      const idle = responseInProgress(s) === null;
      if (idle && seen.get(s) === read) s.destroy();
      else seen.set(s, idle ? read : -1);
    }
    if (sockets.size === 0 && inFront() === 0) finish();
    else timer = setTimeout(look, Math.max(graceMs, 50));
  };
  for (const s of sockets) seen.set(s, responseInProgress(s) === null ? s.bytesRead : -1);
  if (sockets.size === 0 && inFront() === 0) finish();
  else {
    const afterTwoTurns = (then: () => void) => setImmediate(() => setImmediate(then));
    if (graceMs === 0) afterTwoTurns(look);
    else timer = setTimeout(() => afterTwoTurns(look), graceMs);
  }
  return {
    done,
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
