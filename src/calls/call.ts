// One outbound call, by scheme: http, https, h2c (HTTP/2 prior knowledge), h2 (HTTP/2
// over TLS), tcp, tls (TCP over TLS) and udp. The answer is read within a size bound
// and a timeout; the replica is read from an echo-server answer when it is one.
import { connect as netConnect, type Socket } from 'node:net';
import { encodeProxyV2 } from '../util/proxy-header.ts';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect as h2Connect, constants as h2 } from 'node:http2';
import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import WebSocket from 'ws';
import { EchoRequestSchema, EchoResponseSchema } from '../adapters/grpc/gen/echoserver/v1/echo_pb.js';
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
} from '../adapters/grpc/gen/grpc/health/v1/health_pb.js';

export const SCHEMES = ['http', 'https', 'h2c', 'h2', 'grpc', 'grpcs', 'ws', 'wss', 'tcp', 'tls', 'udp'] as const;
export type Scheme = (typeof SCHEMES)[number];

export interface CallOptions {
  method: string;
  headers: [string, string][];
  body: Buffer;
  timeoutMs: number;
  /** Most answer bytes read; more ends the call as an error. */
  maxResponseBytes: number;
  proxyProtocol: 'v1' | 'v2' | null;
  tls: { servername?: string; alpn?: string[]; ca?: Buffer; cert?: Buffer; key?: Buffer; insecure: boolean };
  /** The address to connect to, resolved and checked by the caller (an allowlist); else resolved here. */
  address?: string;
  /** HTTP/1.1 connections kept across calls (keep-alive); null or absent: each call its own. */
  pool?: ConnectionPool | null;
  /** The run is over (its client went away): the call ends at once, its connection closed. */
  signal?: AbortSignal;
}

/** A run's kept connections: one keep-alive agent (one socket) per scheme, address and port. */
export type ConnectionPool = Map<string, HttpAgent>;

export interface CallResult {
  url: string;
  protocol: string;
  /** HTTP status, or `ok` for an L4 echo answered. */
  status: number | string | null;
  ok: boolean;
  replica: string | null;
  latencyMs: number;
  error: string | null;
  /** The answer parsed as JSON when it is an echo-server JSON echo (HTTP) or banner/envelope (L4). */
  echo: unknown;
  /** The local port of the connection an HTTP call went over (shows reuse), else null. */
  localPort?: number | null;
}

export class CallError extends Error {}

const DEFAULT_PORT: Record<Scheme, number> = {
  http: 80,
  https: 443,
  h2c: 80,
  h2: 443,
  grpc: 80,
  grpcs: 443,
  ws: 80,
  wss: 443,
  tcp: 0,
  tls: 0,
  udp: 0,
};

/** The URL checked and split; throws CallError naming what is wrong. */
export function parseTarget(text: string): { url: URL; scheme: Scheme; host: string; port: number } {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CallError(`"${text.slice(0, 200)}" is not a URL such as http://host:8080/`);
  }
  const scheme = url.protocol.slice(0, -1) as Scheme;
  if (!(SCHEMES as readonly string[]).includes(scheme))
    throw new CallError(`${url.protocol} is not one of ${SCHEMES.join(', ')}`);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = url.port === '' ? DEFAULT_PORT[scheme] : Number(url.port);
  if (port === 0) throw new CallError(`${scheme}:// needs a port (${text.slice(0, 200)})`);
  return { url, scheme, host, port };
}

/** The replica that answered, from an echo-server record: `server` (HTTP) or `identity` (L4). */
function replicaOf(echo: unknown): string | null {
  if (typeof echo !== 'object' || echo === null) return null;
  const who = (echo as { server?: unknown; identity?: unknown }).server ?? (echo as { identity?: unknown }).identity;
  if (typeof who !== 'object' || who === null) return null;
  const { hostname, worker } = who as { hostname?: unknown; worker?: unknown };
  if (typeof hostname !== 'string') return null;
  return typeof worker === 'number' ? `${hostname}/${worker}` : hostname;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** The address to connect to: the literal, or the first the resolver gives. */
async function resolve(host: string): Promise<string> {
  if (isIP(host) !== 0) return host;
  return (await lookup(host)).address;
}

function proxyHeader(version: 'v1' | 'v2', s: Socket): Buffer {
  const src = s.localAddress ?? '';
  const dst = s.remoteAddress ?? '';
  if (version === 'v1')
    return Buffer.from(
      `PROXY ${isIP(src) === 6 ? 'TCP6' : 'TCP4'} ${src} ${dst} ${s.localPort} ${s.remotePort}\r\n`,
      'latin1',
    );
  return encodeProxyV2({ source: [src, s.localPort ?? 0], destination: [dst, s.remotePort ?? 0] });
}

/** A connected socket to the resolved address: PROXY header first when asked, then TLS when the scheme has it. */
function dial(
  address: string,
  port: number,
  host: string,
  tls: boolean,
  alpn: string[],
  o: CallOptions,
  signal: AbortSignal,
): Promise<Socket | TLSSocket> {
  return new Promise((resolve, reject) => {
    const raw = netConnect({ host: address, port });
    const fail = (err: Error) => {
      raw.destroy();
      reject(err);
    };
    const onAbort = () => fail(new CallError('timeout'));
    signal.addEventListener('abort', onAbort, { once: true });
    // A kept connection outlives the call that dialled it: its timeout must not end it.
    const done = (s: Socket | TLSSocket) => {
      signal.removeEventListener('abort', onAbort);
      resolve(s);
    };
    raw.once('error', fail);
    raw.once('connect', () => {
      if (o.proxyProtocol !== null) raw.write(proxyHeader(o.proxyProtocol, raw));
      if (!tls) {
        raw.off('error', fail);
        done(raw);
        return;
      }
      const servername = o.tls.servername ?? (isIP(host) === 0 ? host : undefined);
      let s: TLSSocket;
      // Options TLS refuses (a key not the certificate's, an ALPN name too long) throw
      // here, in an event handler: caught, they fail this call instead of the process.
      try {
        s = tlsConnect({
          socket: raw,
          ...(servername === undefined ? {} : { servername }),
          ALPNProtocols: o.tls.alpn ?? alpn,
          rejectUnauthorized: !o.tls.insecure,
          ...(o.tls.ca ? { ca: o.tls.ca } : {}),
          ...(o.tls.cert ? { cert: o.tls.cert } : {}),
          ...(o.tls.key ? { key: o.tls.key } : {}),
        });
      } catch (err) {
        fail(err as Error);
        return;
      }
      s.once('error', fail);
      s.once('secureConnect', () => {
        s.off('error', fail);
        raw.off('error', fail);
        done(s);
      });
    });
  });
}

/** Runs one call; never throws: every failure is a result with its error. */
export async function call(text: string, o: CallOptions): Promise<CallResult> {
  const started = performance.now();
  const signal = ended(o, AbortSignal.timeout(o.timeoutMs));
  let protocol = '';
  const result = (r: Partial<CallResult>): CallResult => ({
    url: text,
    protocol,
    status: null,
    ok: false,
    replica: null,
    error: null,
    echo: null,
    ...r,
    latencyMs: Math.round((performance.now() - started) * 100) / 100,
  });
  // However a protocol's code waits, the call ends with its timeout (or its run): an
  // answer that never settles must not hold the run, nor its place in a gate, for ever.
  const givenUp = new Promise<never>((_, reject) => {
    const end = () => reject(new CallError('timeout'));
    if (signal.aborted) end();
    else signal.addEventListener('abort', end, { once: true });
  });
  givenUp.catch(() => {});
  const bounded = <T>(p: Promise<T>): Promise<T> => Promise.race([p, givenUp]);
  try {
    const { scheme, host, port, url } = parseTarget(text);
    protocol = scheme;
    const address = o.address ?? (await resolve(host));
    if (scheme === 'udp') {
      const echo = await bounded(udpCall(address, port, o, signal));
      return result({ status: 'ok', ok: true, echo, replica: replicaOf(echo) });
    }
    if (scheme === 'ws' || scheme === 'wss') {
      // Dialled like every TCP scheme, so the PROXY header and the TLS flags (CA,
      // client certificate, SNI, ALPN) apply to a WebSocket too.
      const socket = await dial(address, port, host, scheme === 'wss', ['http/1.1'], o, signal);
      try {
        const echo = await bounded(wsCall(url, socket, o, signal));
        protocol = 'websocket';
        return result({ status: 101, ok: true, echo, replica: replicaOf(echo) });
      } finally {
        socket.destroy();
      }
    }
    const tls = scheme === 'https' || scheme === 'h2' || scheme === 'tls' || scheme === 'grpcs';
    if ((scheme === 'http' || scheme === 'https') && o.pool) {
      const key = `${scheme} ${address} ${port}`;
      let agent = o.pool.get(key);
      if (agent === undefined) {
        agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
        // Dialled like every call (PROXY header, TLS flags), with a timeout of its own.
        agent.createConnection = ((_opts: unknown, cb: (err: Error | null, s?: Socket) => void) => {
          dial(address, port, host, tls, ['http/1.1'], o, ended(o, AbortSignal.timeout(o.timeoutMs))).then(
            (s) => cb(null, s),
            (err: Error) => cb(err),
          );
          return undefined;
        }) as unknown as HttpAgent['createConnection'];
        o.pool.set(key, agent);
      }
      // A kept connection the target closed as this call went out (its idle timeout) is
      // no answer from it: an idempotent call is made again, once, on a new connection.
      const answer = await bounded(
        h1Call(agent, url, o, signal).catch((err: unknown) => {
          if (!(err instanceof StaleConnection) || signal.aborted) throw err;
          return h1Call(agent, url, o, signal);
        }),
      );
      protocol = answer.protocol;
      const echo = parseJson(answer.body);
      return result({
        status: answer.status,
        ok: answer.status < 400,
        echo,
        replica: replicaOf(echo),
        localPort: answer.localPort,
      });
    }
    const socket = await dial(
      address,
      port,
      host,
      tls,
      scheme === 'h2' || scheme === 'grpcs' ? ['h2'] : scheme === 'https' ? ['http/1.1'] : [],
      o,
      signal,
    );
    try {
      if (scheme === 'tcp' || scheme === 'tls') {
        const echo = await bounded(tcpCall(socket, o, signal));
        return result({ status: 'ok', ok: true, echo, replica: replicaOf(echo) });
      }
      if (scheme === 'grpc' || scheme === 'grpcs') {
        const g = await bounded(grpcCall(socket, url, o, signal));
        protocol = 'grpc';
        return result({ status: g.status, ok: g.ok, echo: g.echo, replica: replicaOf(g.echo) });
      }
      const answer =
        scheme === 'h2' || scheme === 'h2c'
          ? await bounded(h2Call(socket, url, o, signal))
          : await bounded(h1Call(socket, url, o, signal));
      protocol = answer.protocol;
      const echo = parseJson(answer.body);
      return result({
        status: answer.status,
        ok: answer.status < 400,
        echo,
        replica: replicaOf(echo),
        localPort: socket.localPort ?? null,
      });
    } finally {
      socket.destroy();
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return result({ error: o.signal?.aborted ? 'aborted' : signal.aborted ? 'timeout' : (e.code ?? e.message) });
  }
}

/** A call's timeout, or the end of its run when that comes first. */
function ended(o: CallOptions, timeout: AbortSignal): AbortSignal {
  return o.signal === undefined ? timeout : AbortSignal.any([timeout, o.signal]);
}

function withDefaults(o: CallOptions): [string, string][] {
  const has = (n: string) => o.headers.some(([k]) => k.toLowerCase() === n);
  return [...(has('accept') ? [] : [['accept', 'application/json'] as [string, string]]), ...o.headers];
}

/** A request that went out on a reused keep-alive connection and got no answer before it closed. */
class StaleConnection extends Error {
  readonly code: string;
  constructor(err: NodeJS.ErrnoException) {
    super(err.message);
    this.code = err.code ?? 'ECONNRESET';
  }
}

// The methods a client may repeat on its own (RFC 9110, 9.2.2).
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

function h1Call(
  via: Socket | HttpAgent,
  url: URL,
  o: CallOptions,
  signal: AbortSignal,
): Promise<{ status: number; body: string; protocol: string; localPort: number | null }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of withDefaults(o)) headers[k] = k in headers ? [...[headers[k]!].flat(), v] : v;
    const req = httpRequest({
      ...(via instanceof HttpAgent ? { agent: via } : { createConnection: () => via }),
      method: o.method,
      path: url.pathname + url.search,
      host: url.host,
      headers,
      signal,
    });
    req.setHeader('host', url.host);
    let answered = false;
    req.once('error', (err: NodeJS.ErrnoException) => {
      const stale =
        !answered &&
        req.reusedSocket &&
        IDEMPOTENT.has(o.method) &&
        (err.code === 'ECONNRESET' || err.code === 'EPIPE');
      reject(stale ? new StaleConnection(err) : err);
    });
    // A 101 is no answer here (nothing asked to switch): node:http hands the socket to an
    // 'upgrade' listener or closes the request, and emits neither 'response' nor 'error'.
    req.once('upgrade', (_res, socket: Socket) => {
      socket.destroy();
      reject(new CallError('101 Switching Protocols to a request that asked for no upgrade'));
    });
    req.once('close', () => {
      if (!answered) reject(new CallError('closed without an answer'));
    });
    req.once('response', (res) => {
      answered = true;
      // Now: once read, a kept socket goes back to its agent and leaves the response.
      const localPort = res.socket?.localPort ?? null;
      void readBounded(res, o.maxResponseBytes).then(
        (body) =>
          resolve({
            status: res.statusCode ?? 0,
            body,
            protocol: `HTTP/${res.httpVersion}`,
            localPort,
          }),
        reject,
      );
    });
    req.end(o.body.length > 0 ? o.body : undefined);
  });
}

function h2Call(
  socket: Socket,
  url: URL,
  o: CallOptions,
  signal: AbortSignal,
): Promise<{ status: number; body: string; protocol: string }> {
  return new Promise((resolve, reject) => {
    const session = h2Connect(`${url.protocol === 'h2:' ? 'https' : 'http'}://${url.host}`, {
      createConnection: () => socket,
    });
    session.once('error', reject);
    const headers: Record<string, string | string[]> = {
      [h2.HTTP2_HEADER_METHOD]: o.method,
      [h2.HTTP2_HEADER_PATH]: url.pathname + url.search,
    };
    for (const [k, v] of withDefaults(o)) headers[k.toLowerCase()] = v;
    const stream = session.request(headers, { signal });
    stream.once('error', (err: Error) => {
      session.destroy();
      reject(err);
    });
    // A reset with NO_ERROR before any answer closes the stream with no 'error'. Once
    // the head is in, the body's reading settles the call: an answer whose END_STREAM
    // rides on its last DATA frame closes the stream before that reading resolves.
    let answered = false;
    stream.once('close', () => {
      if (!answered) reject(new CallError('stream closed without an answer'));
    });
    stream.once('response', (h: IncomingHttpHeaders) => {
      answered = true;
      void readBounded(stream, o.maxResponseBytes).then(
        (body) => {
          session.close();
          resolve({ status: Number(h[h2.HTTP2_HEADER_STATUS]), body, protocol: 'HTTP/2.0' });
        },
        (err: Error) => {
          session.destroy();
          reject(err);
        },
      );
    });
    stream.end(o.body.length > 0 ? o.body : undefined);
  });
}

async function readBounded(stream: AsyncIterable<Buffer>, max: number): Promise<string>;
async function readBounded(stream: AsyncIterable<Buffer>, max: number, raw: true): Promise<Buffer>;
async function readBounded(stream: AsyncIterable<Buffer>, max: number, raw = false): Promise<string | Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream) {
    n += chunk.length;
    if (n > max) throw new CallError(`answer larger than ${max} bytes`);
    parts.push(chunk);
  }
  return raw ? Buffer.concat(parts) : Buffer.concat(parts).toString('utf8');
}

/** The TCP echo: its banner line (when it sends one), then the body sent and read back. */
function tcpCall(socket: Socket, o: CallOptions, signal: AbortSignal): Promise<unknown> {
  const payload = o.body.length > 0 ? o.body : Buffer.from('ping\n');
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    let banner: unknown = null;
    let sent = false;
    const abort = () => reject(new CallError('timeout'));
    signal.addEventListener('abort', abort, { once: true });
    socket.once('error', reject);
    socket.once('close', () => reject(new CallError('closed before the echo came back')));
    socket.on('data', (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (got.length > o.maxResponseBytes + payload.length) {
        reject(new CallError('answer too large'));
        return;
      }
      if (!sent && got[0] === 0x7b /* { */) {
        const nl = got.indexOf(0x0a);
        if (nl < 0) return;
        banner = parseJson(got.subarray(0, nl).toString('utf8'));
        got = got.subarray(nl + 1);
        sent = true;
        socket.write(payload);
      }
      if (sent && got.length >= payload.length) {
        if (!got.subarray(0, payload.length).equals(payload)) reject(new CallError('echo differs from what was sent'));
        else resolve(banner);
      }
    });
    // A pure echo (--tcp-banner false) sends nothing first: the payload goes once the line stays quiet.
    socket.setTimeout(200, () => {
      if (!sent && got.length === 0) {
        sent = true;
        socket.write(payload);
      }
    });
  });
}

function udpCall(address: string, port: number, o: CallOptions, signal: AbortSignal): Promise<unknown> {
  // The envelope answer is at most three times the datagram: the default leaves it room to name the replica.
  const payload = o.body.length > 0 ? o.body : Buffer.from('ping'.padEnd(256, '.'));
  return new Promise((resolve, reject) => {
    const s = createSocket(isIP(address) === 6 ? 'udp6' : 'udp4');
    // Once: the call's timeout still fires after an answer, and a second close throws.
    let over = false;
    const done = (f: () => void) => {
      if (over) return;
      over = true;
      signal.removeEventListener('abort', onAbort);
      s.close();
      f();
    };
    const onAbort = () => done(() => reject(new CallError('timeout')));
    signal.addEventListener('abort', onAbort, { once: true });
    s.once('error', (err) => done(() => reject(err)));
    s.once('message', (m: Buffer) => done(() => resolve(parseJson(m.toString('utf8')))));
    // A send that fails (a datagram over 65507 bytes) says so only to a callback.
    s.send(payload, port, address, (err) => {
      if (err) done(() => reject(err));
    });
  });
}

/**
 * A unary gRPC call over HTTP/2: the echo service's Echo by default (the URL's path
 * names another method), or grpc.health.v1.Health/Check; the status is grpc-status
 * (a health check's: its serving status).
 */
function grpcCall(
  socket: Socket,
  url: URL,
  o: CallOptions,
  signal: AbortSignal,
): Promise<{ status: string; ok: boolean; echo: unknown }> {
  const path = url.pathname === '/' || url.pathname === '' ? '/echoserver.v1.Echo/Echo' : url.pathname;
  const health = path === '/grpc.health.v1.Health/Check';
  const message = health
    ? toBinary(
        HealthCheckRequestSchema,
        create(HealthCheckRequestSchema, { service: url.searchParams.get('service') ?? '' }),
      )
    : toBinary(EchoRequestSchema, create(EchoRequestSchema, { payload: o.body }));
  const framed = Buffer.alloc(5 + message.length);
  framed.writeUInt32BE(message.length, 1);
  framed.set(message, 5);
  return new Promise((resolve, reject) => {
    const session = h2Connect(`${url.protocol === 'grpcs:' ? 'https' : 'http'}://${url.host}`, {
      createConnection: () => socket,
    });
    session.once('error', reject);
    const headers: Record<string, string> = {
      [h2.HTTP2_HEADER_METHOD]: 'POST',
      [h2.HTTP2_HEADER_PATH]: path,
      'content-type': 'application/grpc',
      te: 'trailers',
    };
    for (const [k, v] of o.headers) headers[k.toLowerCase()] = v;
    const stream = session.request(headers, { signal });
    let trailers: IncomingHttpHeaders = {};
    let head: IncomingHttpHeaders = {};
    stream.once('response', (h: IncomingHttpHeaders) => {
      head = h;
    });
    stream.once('trailers', (h: IncomingHttpHeaders) => {
      trailers = h;
    });
    stream.once('error', (err: Error) => {
      session.destroy();
      reject(err);
    });
    readBounded(stream, o.maxResponseBytes, true).then(
      (body) => {
        session.close();
        // The target's bytes decoded here, in a promise callback: what they cannot be
        // decoded into fails the call (a throw here would be an unhandled rejection).
        try {
          const code = String(trailers['grpc-status'] ?? head['grpc-status'] ?? 'no grpc-status');
          const bytes = body.length >= 5 ? body.subarray(5, 5 + body.readUInt32BE(1)) : null;
          if (code !== '0' || bytes === null) {
            resolve({ status: `grpc-status ${code}`, ok: false, echo: null });
            return;
          }
          if (bytes.length !== body.readUInt32BE(1)) throw new Error('message shorter than its frame');
          if (body[0] !== 0) throw new Error('compressed message (no grpc-encoding was offered)');
          if (health) {
            const serving = fromBinary(HealthCheckResponseSchema, bytes).status;
            resolve({
              status: HealthCheckResponse_ServingStatus[serving],
              ok: serving === HealthCheckResponse_ServingStatus.SERVING,
              echo: null,
            });
            return;
          }
          const r = fromBinary(EchoResponseSchema, bytes);
          resolve({
            status: 'OK',
            ok: true,
            echo: {
              method: r.method,
              path: r.path,
              requestId: r.requestId,
              trace: r.trace ?? null,
              server: r.server ?? null,
            },
          });
        } catch (err) {
          reject(new CallError(`malformed gRPC answer: ${(err as Error).message}`));
        }
      },
      (err: Error) => {
        session.destroy();
        reject(err);
      },
    );
    stream.end(framed);
  });
}

/** The WebSocket echo: its first message (the handshake's echo), then the body sent and read back. */
function wsCall(url: URL, socket: Socket, o: CallOptions, signal: AbortSignal): Promise<unknown> {
  const payload = o.body.length > 0 ? o.body.toString('utf8') : 'ping';
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    for (const [k, v] of o.headers) headers[k] = v;
    const ws = new WebSocket(url, {
      headers,
      maxPayload: o.maxResponseBytes,
      // The socket dialled (and verified, for wss) already: the handshake goes over it.
      createConnection: () => socket,
    });
    let first: unknown;
    let n = 0;
    const fail = (err: Error) => {
      ws.terminate();
      reject(err);
    };
    signal.addEventListener('abort', () => fail(new CallError('timeout')), { once: true });
    ws.once('error', fail);
    ws.on('message', (m: Buffer) => {
      if (n++ === 0) {
        first = parseJson(m.toString('utf8'));
        ws.send(payload);
        return;
      }
      ws.close();
      if (m.toString('utf8') === payload) resolve(first);
      else reject(new CallError('echo differs from what was sent'));
    });
  });
}
