// The transport's one way into the HTTP stage, declared once, here: the transport
// never imports http/, and http/app.ts's App extends this interface (the one import
// the lint allows from http/ into transport/). The transport calls these with each
// request and the facts of its connection, and nothing flows back but the answers.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ConnectionFacts } from '../core/facts.ts';
import type { ClientErrorAnswer } from './client-error.ts';

export interface Handlers extends ClientErrorAnswer {
  /** A request on HTTP/1.x. */
  handle(req: IncomingMessage, res: ServerResponse, facts: ConnectionFacts): void;
  /**
   * An HTTP/2 stream, as node:http2's stream API gives it: its decoded header object
   * and its header list ([name, value, ...], pseudo-headers included).
   */
  stream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[], facts: ConnectionFacts): void;
  /**
   * Whether an upgrade (a WebSocket, or h2c when `h2c`) may leave HTTP/1.1. False
   * when the request fails admission: node:http then serves it like any request, so
   * it is refused exactly as the same GET would be, with one log line and one count.
   * For h2c also while draining or at the in-flight budget: it is then answered over
   * HTTP/1.1, as a server may ignore Upgrade. Also false for a body declared over
   * --max-body-size (refused 413 as a request) and, for h2c, when the client holds
   * its share of the in-flight budget.
   */
  mayUpgrade(req: IncomingMessage, h2c: boolean, facts: ConnectionFacts): boolean;
  /**
   * The `101 Switching Protocols` bytes for an admitted upgrade the transport
   * switches itself (h2c): HTTP/1.1 answers and their common headers are the
   * HTTP stage's.
   */
  switchingProtocols(protocol: 'h2c'): string;
  /** A WebSocket upgrade. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, facts: ConnectionFacts): void;
  /** A CONNECT (a tunnel request). */
  refuseTunnel(req: IncomingMessage, socket: Duplex, facts: ConnectionFacts): void;
  /** Resolves once no request is in flight. */
  idle(): Promise<void>;
}

/** Where a datagram came from, as node:dgram says. */
export interface DatagramSource {
  address: string;
  port: number;
  family: string;
}

/**
 * The L4 echoes' way in (adapters/l4/), given to the listener by the top level: a
 * TCP connection whose front stage is over (any PROXY header read into its facts),
 * and each datagram of the UDP port with the one way to answer it.
 */
export interface L4Handlers {
  tcp(socket: Socket, facts: ConnectionFacts): void;
  datagram(msg: Buffer, from: DatagramSource, reply: (data: Uint8Array) => void): void;
  /** Open TCP echoes get `drainMs` to finish, then are cut. True when all ended in time. */
  drain(drainMs: number): Promise<boolean>;
}
