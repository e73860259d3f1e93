// The TLS part of a TLS port's front stage: the handshake (with the port's protocols
// offered by ALPN, and client certificates as --tls-client-auth says), then the
// connection goes to the stage ALPN chose. The TCP front accepts; this takes over.
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Config } from '../config/settings.ts';
import type { PortRow } from '../core/ports.ts';
import type { LimitedLog } from '../ops/log-limit.ts';
import type { Logger } from '../ops/logger.ts';
import { frontOf, shareFront, type FrontState } from './front.ts';
import type { Http1Stage } from './http1.ts';
import { describeTls, type TlsMaterial } from './tls.ts';

export interface TlsFront {
  /** Takes a TCP connection accepted on the port (its PROXY header, if any, read). */
  take(socket: Socket): void;
  /** Stops following certificate changes on disk. */
  readonly stopWatching: () => void;
}

export interface TlsFrontDeps {
  logger: Logger;
  log: LimitedLog;
  http1: Http1Stage;
  /** Hands an `h2` connection to the HTTP/2 stage (by way of its first request). */
  toH2(socket: TLSSocket, front: FrontState | undefined): Promise<void>;
}

export function createTlsFront(row: PortRow, material: TlsMaterial, config: Config, deps: TlsFrontDeps): TlsFront {
  const { log, http1 } = deps;
  const server = process.getBuiltinModule('node:tls').createServer({
    ...material.context,
    ALPNProtocols: [...row.protocols],
    requestCert: config.tlsClientAuth !== 'none',
    rejectUnauthorized: config.tlsClientAuth === 'require',
    handshakeTimeout: config.headersTimeoutMs,
  });
  const closeFailed = (s: TLSSocket, err: Error) => {
    log('warn', { peer: s.remoteAddress, reason: err.message }, 'connection closed: TLS hand-over failed');
    s.destroy();
  };
  server.on('secureConnection', (s: TLSSocket) => {
    const raw = tcpSocketOf(s);
    const state = raw === undefined ? undefined : frontOf(raw);
    try {
      // an event handler: nothing a client sends may escape it and end the process
      if (state !== undefined) {
        shareFront(state, s);
        state.facts.tls = describeTls(s);
      }
      if (s.alpnProtocol === 'h2') deps.toH2(s, state).catch((err: Error) => closeFailed(s, err));
      else if (raw !== undefined) http1.take(raw, s);
      else http1.server.emit('connection', s);
    } catch (err) {
      closeFailed(s, err as Error);
    }
  });
  server.on('tlsClientError', (err: Error, s: TLSSocket) => {
    // Nothing received: the front counts and logs it as a connection closed early.
    const silent = tcpSocketOf(s)?.bytesRead === 0;
    if (!silent) log('info', { peer: s.remoteAddress, reason: err.message }, 'TLS handshake failed');
    s.destroy(); // a listener for this event owns the socket: without this it stays open
  });
  const stopWatching = material.watch((context) => server.setSecureContext(context), deps.logger);
  return {
    take: (socket: Duplex) => {
      server.emit('connection', socket);
    },
    stopWatching,
  };
}

/** node:tls keeps the TCP socket it wraps as `_parent`; it is the only way back to it. */
function tcpSocketOf(s: TLSSocket): Socket | undefined {
  return (s as TLSSocket & { _parent?: Socket })._parent;
}
