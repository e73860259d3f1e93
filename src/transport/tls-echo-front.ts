// The TLS part of the TCP echo over TLS (--tcp-tls-port): the handshake with the
// HTTPS certificate settings (certificate, reload, client certificates), within the
// front deadline, then the TLS socket goes to the TCP echo with the TLS facts in its
// ConnectionFacts. No ALPN is offered: what runs inside is the client's business.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Config } from '../config/settings.ts';
import type { LimitedLog } from '../ops/log-limit.ts';
import type { Logger } from '../ops/logger.ts';
import { frontDone, frontOf } from './front.ts';
import type { L4Handlers } from './handlers.ts';
import { describeTls, type TlsMaterial } from './tls.ts';

export interface TlsEchoFrontDeps {
  logger: Logger;
  log: LimitedLog;
  l4: L4Handlers;
}

export function createTlsEchoFront(
  material: TlsMaterial,
  config: Config,
  deps: TlsEchoFrontDeps,
): { take(socket: Socket): void; stopWatching: () => void } {
  const { log, l4 } = deps;
  const server = process.getBuiltinModule('node:tls').createServer({
    ...material.context,
    requestCert: config.tlsClientAuth !== 'none',
    rejectUnauthorized: config.tlsClientAuth === 'require',
    handshakeTimeout: config.headersTimeoutMs,
  });
  server.on('secureConnection', (s: TLSSocket) => {
    const raw = (s as TLSSocket & { _parent?: Socket })._parent;
    const front = raw === undefined ? undefined : frontOf(raw);
    if (front === undefined) {
      s.destroy();
      return;
    }
    try {
      // an event handler: nothing a client sends may escape it
      frontDone(front);
      front.facts.tls = describeTls(s);
      l4.tcp(s, front.facts);
    } catch (err) {
      log('warn', { peer: s.remoteAddress, reason: (err as Error).message }, 'connection closed: TLS hand-over failed');
      s.destroy();
    }
  });
  server.on('tlsClientError', (err: Error, s: TLSSocket) => {
    const raw = (s as TLSSocket & { _parent?: Socket })._parent;
    if (raw?.bytesRead !== 0)
      log('info', { listener: 'tcp-tls', peer: s.remoteAddress, reason: err.message }, 'TLS handshake failed');
    s.destroy();
  });
  const stopWatching = material.watch((context) => server.setSecureContext(context), deps.logger);
  return {
    take: (socket) => {
      server.emit('connection', socket);
    },
    stopWatching,
  };
}
