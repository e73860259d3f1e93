// The raw TCP echo: a JSON line naming the connection (unless --tcp-banner false),
// then every byte the client sends, back unchanged. The connection is one exchange,
// begun when its front stage is over and closed here, by its port, when the socket
// closes: one count, one access line. Reading pauses while the write side is full,
// so a client that sends and never reads holds a bounded amount of memory (a read
// chunk and the socket's write buffer) until --idle-timeout closes it.
import type { Socket } from 'node:net';
import type { Config } from '../../config/settings.ts';
import { closeExchange } from '../../core/answer-port.ts';
import { Exchange, type Outcome } from '../../core/exchange.ts';
import type { ConnectionFacts } from '../../core/facts.ts';
import { connectionClient, type Ledger } from '../../core/ledger.ts';
import { scanHeaders } from '../../core/request-head.ts';
import type { Identity } from '../../echo/identity.ts';
import { TCP_ENDS, type TcpEnd } from '../../ops/metrics.ts';
import { formatHostPort, normalizeIp } from '../../util/addresses.ts';

const OUTCOMES = Object.fromEntries(TCP_ENDS.map((end) => [end, Object.freeze({ l4: end })])) as Record<
  TcpEnd,
  Outcome
>;
const NO_HEADERS = scanHeaders([]);

export interface TcpEcho {
  take(socket: Socket, facts: ConnectionFacts): void;
  /** Open connections get `drainMs` to end; the rest are cut. True when none had to be. */
  drain(drainMs: number): Promise<boolean>;
  readonly open: number;
}

export function createTcpEcho(config: Config, ledger: Ledger, identity: Identity | null): TcpEcho {
  /** Open connections, and how to cut each one. */
  const open = new Map<Socket, (why: TcpEnd) => void>();
  let emptied: (() => void) | null = null;
  const cap = config.tcpMaxBytes;

  function take(socket: Socket, facts: ConnectionFacts): void {
    const x = ledger.begin(new Exchange('tcp', facts, 'TCP', 'tcp', NO_HEADERS, true), []);
    let end: TcpEnd = 'closed';
    /** The first reason the connection is ending wins; a close after it changes nothing. */
    const ending = (why: TcpEnd) => {
      if (end === 'closed') end = why;
    };
    open.set(socket, (why) => {
      ending(why);
      socket.destroy();
    });
    socket.once('close', (hadError) => {
      if (hadError) ending('reset');
      open.delete(socket);
      closeExchange(ledger, x, OUTCOMES[end], end !== 'closed' && end !== 'byte_cap');
      if (open.size === 0) emptied?.();
    });
    socket.on('error', () => ending('reset'));
    if (config.idleTimeoutMs > 0) {
      socket.setTimeout(config.idleTimeoutMs, () => {
        ending('idle_timeout');
        socket.destroy();
      });
    }
    if (config.tcpBanner) {
      const banner = `${JSON.stringify(bannerOf(socket, facts, x.requestId, identity))}\n`;
      x.bytesOut += Buffer.byteLength(banner);
      socket.write(banner);
    }
    let capped = false;
    const pace = paceOf(socket, config.tcpMaxRate);
    socket.on('data', (chunk: Buffer) => {
      if (capped) return;
      let piece = chunk;
      if (cap > 0 && x.bytesIn + chunk.length >= cap) {
        piece = chunk.subarray(0, cap - x.bytesIn);
        capped = true;
      }
      x.bytesIn += piece.length;
      x.bytesOut += piece.length;
      const more = socket.write(piece);
      if (capped) {
        // What was allowed is echoed, then the connection ends; bytes the client still
        // sends are not read, so the close that follows the flush may be a reset.
        ending('byte_cap');
        socket.pause();
        socket.end(() => socket.destroy());
      } else {
        pace.sent(piece.length, more);
      }
    });
    socket.on('drain', () => {
      if (!capped) pace.drained();
    });
    // The front stage may have left the socket paused (after a PROXY header).
    socket.resume();
  }

  async function drain(drainMs: number): Promise<boolean> {
    if (open.size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      new Promise<boolean>((resolve) => {
        emptied = () => resolve(true);
      }),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), drainMs);
      }),
    ]);
    clearTimeout(timer);
    for (const cut of [...open.values()]) cut('drain');
    return ended;
  }

  return {
    take,
    drain,
    get open() {
      return open.size;
    },
  };
}

/** The first line of a connection: who it is from (as the PROXY rules say), where to, and which replica took it. */
function bannerOf(socket: Socket, facts: ConnectionFacts, connectionId: string, identity: Identity | null) {
  return {
    protocol: 'tcp',
    connectionId,
    remoteAddr: formatHostPort(normalizeIp(facts.peerAddress), facts.peerPort),
    localAddr: formatHostPort(normalizeIp(socket.localAddress ?? ''), socket.localPort),
    clientIp: normalizeIp(connectionClient(facts)),
    proxy: facts.proxy,
    tls: facts.tls,
    identity,
  };
}

/**
 * Reading paused while the write side is full, and, with --tcp-max-rate, while the
 * connection is ahead of its rate: each echoed piece moves the time its next bytes
 * are due by its size over the rate, and reading resumes then. One timer per
 * connection at most, cleared when it closes.
 */
function paceOf(socket: Socket, rate: number): { sent(bytes: number, writable: boolean): void; drained(): void } {
  let due = performance.now();
  let full = false;
  let timer: NodeJS.Timeout | null = null;
  const resumeIfFree = () => {
    if (!full && timer === null) socket.resume();
  };
  const wait = () => {
    const ahead = due - performance.now();
    if (ahead <= 0) {
      timer = null;
      resumeIfFree();
      return;
    }
    timer = setTimeout(wait, ahead);
  };
  socket.once('close', () => {
    if (timer !== null) clearTimeout(timer);
  });
  return {
    sent(bytes, writable) {
      full = !writable;
      if (rate > 0) {
        due = Math.max(due, performance.now()) + (bytes / rate) * 1000;
        if (timer === null) wait();
      }
      if (full || timer !== null) socket.pause();
    },
    drained() {
      full = false;
      resumeIfFree();
    },
  };
}
