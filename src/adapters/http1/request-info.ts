// What the transport told the HTTP stage about a request, whatever carried it, put
// together with the request itself as the echo model's input. Nothing here reads a
// socket: the connection's facts (peer, PROXY header, TLS) arrive as data.
import { connectionClient } from '../../echo/client-ip.ts';
import type { ConnectionFacts } from '../../core/facts.ts';
import type { BodyResult, RequestInfo } from '../../echo/model.ts';

/** What the echo reads of a request itself: node:http's request, or an HTTP/2 stream's exchange. */
export interface RequestLine {
  readonly method?: string | undefined;
  /** '1.0', '1.1', '2.0'. */
  readonly httpVersion: string;
  readonly rawHeaders: readonly string[];
}

/** The echo model's input: the request, its body as read, and its connection's facts. */
export function requestInfo(
  req: RequestLine,
  facts: ConnectionFacts,
  uri: string,
  declared: number,
  body: BodyResult,
  requestId: string,
): RequestInfo {
  const client = connectionClient(facts);
  return {
    remoteAddress: client.address,
    remotePort: client.port,
    method: req.method ?? '',
    uri,
    proto: `HTTP/${req.httpVersion}`,
    rawHeaders: req.rawHeaders,
    contentLength: declared,
    body,
    requestId,
    tls: facts.tls,
    proxy: facts.proxy,
    peerAddress: facts.peerAddress,
    peerPort: facts.peerPort,
  };
}
