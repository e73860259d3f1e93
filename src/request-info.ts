// What the transport knows about a request, whatever carried it: the peer (or the
// original client named by a PROXY header), TLS details, and whether a body follows.
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { connectionSocket, proxyInfoOf } from './connection.ts';
import type { BodyResult, RequestInfo } from './model.ts';
import { describeTls } from './tls.ts';

/** An HTTP/2 request has a body unless its HEADERS frame ended the stream; no header says so. */
export function mayHaveBody(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 2 && (req as IncomingMessage & { stream?: { endAfterHeaders?: boolean } }).stream?.endAfterHeaders === false;
}

/** What the transport knows about a request: peer, TLS, PROXY header. */
export function requestInfo(req: IncomingMessage, uri: string, declared: number, body: BodyResult, requestId: string): RequestInfo {
  const socket = connectionSocket(req);
  const proxy = proxyInfoOf(socket);
  // Only an IP source names the original client; a UNIX socket path (AF_UNIX) is
  // shown in the PROXY section, never taken as the remote address.
  const relayed = proxy !== null && proxy.command === 'PROXY' && proxy.sourceAddress !== null && isIP(proxy.sourceAddress) !== 0;
  const tls = (socket as Partial<TLSSocket>).encrypted === true ? describeTls(socket as TLSSocket) : null;
  return {
    remoteAddress: relayed ? proxy.sourceAddress! : socket.remoteAddress ?? '',
    remotePort: relayed ? proxy.sourcePort ?? undefined : socket.remotePort,
    method: req.method ?? '', uri, proto: `HTTP/${req.httpVersion}`, rawHeaders: req.rawHeaders,
    contentLength: declared, body, requestId, tls, proxy,
    peerAddress: socket.remoteAddress ?? '', peerPort: socket.remotePort,
  };
}
