// What the transport told the HTTP stage about a request, whatever carried it, put
// together with the request itself as the echo model's input. Nothing here reads a
// socket: the connection's facts (peer, PROXY header, TLS) arrive as data.
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { ConnectionFacts } from '../core/facts.ts';
import type { BodyResult, RequestInfo } from '../echo/model.ts';

/** The original client's address: the PROXY header's source when it names one, else the TCP peer. */
export function clientAddress(facts: ConnectionFacts): string {
  const { proxy } = facts;
  // Only an IP source names the original client; a UNIX socket path (AF_UNIX) is
  // shown in the PROXY section, never taken as the remote address.
  return proxy !== null && proxy.command === 'PROXY' && proxy.sourceAddress !== null && isIP(proxy.sourceAddress) !== 0 ? proxy.sourceAddress : facts.peerAddress;
}

/** The echo model's input: the request, its body as read, and its connection's facts. */
export function requestInfo(req: IncomingMessage, facts: ConnectionFacts, uri: string, declared: number, body: BodyResult, requestId: string): RequestInfo {
  const { proxy } = facts;
  // Only an IP source names the original client; a UNIX socket path (AF_UNIX) is
  // shown in the PROXY section, never taken as the remote address.
  const relayed = proxy !== null && proxy.command === 'PROXY' && proxy.sourceAddress !== null && isIP(proxy.sourceAddress) !== 0;
  return {
    remoteAddress: relayed ? proxy.sourceAddress! : facts.peerAddress,
    remotePort: relayed ? proxy.sourcePort ?? undefined : facts.peerPort,
    method: req.method ?? '', uri, proto: `HTTP/${req.httpVersion}`, rawHeaders: req.rawHeaders,
    contentLength: declared, body, requestId, tls: facts.tls, proxy,
    peerAddress: facts.peerAddress, peerPort: facts.peerPort,
  };
}
