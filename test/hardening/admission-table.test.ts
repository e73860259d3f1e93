// One admission for every protocol path: each rule (draining, the in-flight budget,
// the per-client share, header count and size, the Host rules, Expect, a foreign
// Origin, a declared body over the limit) is sent down each path (HTTP/1.1, h2c by
// prior knowledge, an h2c Upgrade, HTTPS h2, a WebSocket upgrade, an event stream,
// an operations endpoint, PROXY mode, a gRPC call on h2c, a gRPC-Web call on
// HTTP/1.1) with real clients. Every cell names what the
// path must answer: a refusal status (never a 101), REFUSED_STREAM, or why the rule
// does not apply there and what is answered instead. Each probe must leave exactly
// one access-log line and one count.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { after, describe, it } from 'node:test';
import type { Config } from '../../src/config/settings.ts';
import { rawRequest, startTestServer, waitFor, type TestServer } from '../helpers.ts';

const WEBSOCKET =
  'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
const H2C = 'Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n';
const PROXY_V1 = 'PROXY TCP4 198.51.100.7 127.0.0.1 40000 80\r\n';
const FOREIGN = 'https://elsewhere.example';

type Path =
  | 'HTTP/1.1'
  | 'h2c prior knowledge'
  | 'h2c Upgrade'
  | 'HTTPS h2'
  | 'WebSocket'
  | 'SSE'
  | 'operations'
  | 'PROXY'
  | 'gRPC'
  | 'gRPC-Web';
const PATHS: Path[] = [
  'HTTP/1.1',
  'h2c prior knowledge',
  'h2c Upgrade',
  'HTTPS h2',
  'WebSocket',
  'SSE',
  'operations',
  'PROXY',
  'gRPC',
  'gRPC-Web',
];
const H2_PATHS = new Set<Path>(['h2c prior knowledge', 'HTTPS h2', 'gRPC']);
/** A gRPC call's path; `grpc N` in a cell is the gRPC status its trailers carry. */
const GRPC_METHOD = '/echoserver.v1.Echo/Echo';
/** One empty request message: its 5-byte prefix. */
const EMPTY_MESSAGE = Buffer.alloc(5);

/** What a server holds while a rule is probed. */
type State = 'none' | 'budget' | 'per-client' | 'draining';

interface Rule {
  name: string;
  /** The request's header lines on HTTP/1.1 (Host included). */
  h1: string;
  /** The same on HTTP/2; null when HTTP/2 has no such request (the Host rules: it names :authority). */
  h2: Record<string, string> | null;
  state: State;
  /** What every path answers, unless `paths` says otherwise. */
  expect: string;
  /** Per-path answers, each with why it differs. */
  paths?: Partial<Record<Path, string>>;
}

const fields = (n: number) => Array.from({ length: n }, (_, i) => `X-Field-${i}: v\r\n`).join('');
const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-field-${i}`, 'v']));

// 'n/a <answer>' marks a rule that does not apply to a path: the request is served
// and the cell says how, so the table shows it rather than skipping it.
const RULES: Rule[] = [
  {
    name: 'header count over --max-header-count',
    h1: `Host: h\r\n${fields(35)}`,
    h2: many(35),
    state: 'none',
    expect: '431',
    paths: { gRPC: 'grpc 8', 'gRPC-Web': 'grpc 8' },
  },
  {
    name: 'header size over --max-header-size',
    h1: `Host: h\r\nX-Big: ${'a'.repeat(3000)}\r\n`,
    h2: { 'x-big': 'a'.repeat(3000) },
    state: 'none',
    expect: '431',
    // node:http's parser refuses an HTTP/1.1 head that large before any handler sees it: a gRPC-Web call too.
    paths: { gRPC: 'grpc 8' },
  },
  {
    name: 'two Host headers',
    h1: 'Host: h\r\nHost: g\r\n',
    h2: null,
    state: 'none',
    expect: '400',
    paths: { 'gRPC-Web': 'grpc 3' },
  },
  { name: 'no Host', h1: '', h2: null, state: 'none', expect: '400', paths: { 'gRPC-Web': 'grpc 3' } },
  {
    name: 'an invalid Host',
    h1: 'Host: a b\r\n',
    h2: null,
    state: 'none',
    expect: '400',
    paths: { 'gRPC-Web': 'grpc 3' },
  },
  {
    name: 'Expect: foo',
    h1: 'Host: h\r\nExpect: foo\r\n',
    h2: { expect: 'foo' },
    state: 'none',
    expect: '417',
    paths: { gRPC: 'grpc 9', 'gRPC-Web': 'grpc 9' },
  },
  {
    name: 'a foreign Origin',
    h1: `Host: h\r\nOrigin: ${FOREIGN}\r\n`,
    h2: { origin: FOREIGN },
    state: 'none',
    expect: 'n/a 200',
    // The origin rule guards what a browser page could read across sites: WebSockets and event streams.
    // An h2c upgrade is not a browser's: it switches and is answered over HTTP/2.
    // A gRPC-Web call from another origin is answered without CORS headers: the browser keeps the page from reading it.
    paths: { WebSocket: '403', SSE: '403', 'h2c Upgrade': 'n/a 101', gRPC: 'n/a grpc 0', 'gRPC-Web': 'n/a grpc 0' },
  },
  {
    name: 'a declared body over --max-body-size',
    h1: 'Host: h\r\nContent-Length: 2000\r\n',
    h2: { 'content-length': '2000' },
    state: 'none',
    expect: '413',
    // Refused before the body arrives; on HTTP/1.1 the connection closes, its body unread.
    paths: { gRPC: 'grpc 8', 'gRPC-Web': 'grpc 8 close' },
  },
  {
    name: 'the in-flight budget full',
    h1: 'Host: h\r\n',
    h2: {},
    state: 'budget',
    expect: '503',
    paths: {
      'h2c prior knowledge': 'REFUSED_STREAM',
      'HTTPS h2': 'REFUSED_STREAM',
      operations: 'n/a 200',
      gRPC: 'REFUSED_STREAM',
      'gRPC-Web': 'grpc 14',
    },
  },
  {
    name: "the client's in-flight share full",
    h1: 'Host: h\r\n',
    h2: {},
    state: 'per-client',
    expect: '503',
    paths: {
      'h2c prior knowledge': 'REFUSED_STREAM',
      'HTTPS h2': 'REFUSED_STREAM',
      operations: 'n/a 200',
      gRPC: 'REFUSED_STREAM',
      'gRPC-Web': 'grpc 14',
    },
  },
  {
    // Draining answers requests (with Connection: close, GOAWAY on HTTP/2) so nothing
    // sent in time is lost; only what would outlive the drain is refused.
    name: 'draining',
    h1: 'Host: h\r\n',
    h2: {},
    state: 'draining',
    expect: 'n/a 200 close',
    paths: {
      WebSocket: '503',
      'h2c Upgrade': 'n/a 200 close',
      SSE: 'n/a 200 close',
      'h2c prior knowledge': 'n/a 200',
      'HTTPS h2': 'n/a 200',
      gRPC: 'n/a grpc 0',
      'gRPC-Web': 'n/a grpc 0 close',
    },
  },
];

const BASE: Partial<Config> = {
  maxHeaderCount: 10,
  maxHeaderSize: 2048,
  maxBodySize: 1024,
  https: true,
  httpsPort: 0,
  logOpsRequests: true,
  sseCount: 0,
  shutdownDelayMs: 0,
  drainTimeoutMs: 0,
};
const STATE_CONFIG: Record<State, Partial<Config>> = {
  none: {},
  budget: { maxInFlight: 2, maxInFlightPerClient: 2 },
  'per-client': { maxInFlight: 50, maxInFlightPerClient: 1 },
  draining: { shutdownDelayMs: 3000 },
};

/**
 * A probe's one line: its access line, or for a head node:http's parser refused
 * before the app saw it (over --max-header-size on HTTP/1.1), the refusal's warning.
 */
const accessLines = (t: TestServer) =>
  t.logs.lines.filter(
    (l) =>
      l.msg === 'request' || l.msg === 'websocket' || (l.code !== undefined && String(l.msg).startsWith('bad request')),
  ).length;

/** Access-log lines, and requests counted by /metrics (the scrape itself is logged and counted too). */
async function records(t: TestServer, proxied: boolean): Promise<{ lines: number; counted: number }> {
  const lines = accessLines(t);
  const text = await rawRequest(
    t.port,
    `${proxied ? PROXY_V1 : ''}GET /metrics HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`,
    3000,
  );
  let counted = 0;
  for (const m of text.matchAll(/^echo_http_requests_total\{[^}]*\} (\d+)$/gm)) counted += Number(m[1]);
  return { lines, counted };
}

async function h2session(origin: string): Promise<ClientHttp2Session> {
  const s = h2connect(origin, { rejectUnauthorized: false, maxSendHeaderBlockLength: 4 << 20 });
  s.on('error', () => {});
  await once(s, 'remoteSettings');
  return s;
}

/** One HTTP/2 request: its status, or how its stream ended. */
async function h2probe(origin: string, headers: Record<string, string>): Promise<string> {
  const s = await h2session(origin);
  try {
    return await new Promise<string>((resolve) => {
      const req = s.request(
        { ':path': '/admission', ...headers },
        { endStream: headers['content-length'] === undefined },
      );
      req.on('response', (h) => resolve(String(h[':status'])));
      req.on('close', () => resolve(req.rstCode === 7 ? 'REFUSED_STREAM' : `reset ${req.rstCode}`));
      req.on('error', () => {});
      req.resume();
    });
  } finally {
    s.destroy();
  }
}

/** A gRPC call over h2c: `grpc N` (the status of its trailers, or of a trailers-only answer), REFUSED_STREAM, or the HTTP status. */
async function grpcProbe(origin: string, headers: Record<string, string>): Promise<string> {
  const s = await h2session(origin);
  try {
    return await new Promise<string>((resolve) => {
      const req = s.request({
        ':method': 'POST',
        ':path': GRPC_METHOD,
        'content-type': 'application/grpc',
        te: 'trailers',
        ...headers,
      });
      let status = '';
      req.on('response', (h) => {
        status = String(h[':status']);
        if (h['grpc-status'] !== undefined) status = `grpc ${String(h['grpc-status'])}`;
      });
      req.on('trailers', (h: Record<string, string | undefined>) => {
        if (h['grpc-status'] !== undefined) status = `grpc ${String(h['grpc-status'])}`;
      });
      req.on('close', () =>
        resolve(status !== '' ? status : req.rstCode === 7 ? 'REFUSED_STREAM' : `reset ${req.rstCode}`),
      );
      req.on('error', () => {});
      req.resume();
      // A declared body over the limit is refused before it is read: send none, and keep the stream open.
      if (headers['content-length'] === undefined) req.end(EMPTY_MESSAGE);
    });
  } finally {
    s.destroy();
  }
}

/** A gRPC-Web call over HTTP/1.1 on a raw socket: `grpc N` from its trailer frame (with ` close`), else the HTTP status. */
async function grpcWebProbe(port: number, h1: string): Promise<string> {
  const declared = /content-length/i.test(h1);
  const head = `POST ${GRPC_METHOD} HTTP/1.1\r\n${h1}Content-Type: application/grpc-web\r\n${declared ? '' : 'Content-Length: 5\r\n'}\r\n`;
  const res = await rawRequest(
    port,
    Buffer.concat([Buffer.from(head, 'latin1'), declared ? Buffer.alloc(0) : EMPTY_MESSAGE]),
    {
      timeoutMs: 3000,
      until: (r) => /grpc-status:\d+\r\n/.test(r) || (/^HTTP\/1\.1 (?!200)/.test(r) && r.includes('\r\n\r\n')),
    },
  );
  const http = /^HTTP\/1\.1 (\d{3}) /.exec(res)?.[1] ?? `no answer: ${JSON.stringify(res.slice(0, 60))}`;
  const grpc = /grpc-status:(\d+)\r\n/.exec(res)?.[1];
  const status = http === '200' && grpc !== undefined ? `grpc ${grpc}` : http;
  return /\r\nConnection: close\r\n/i.test(res) ? `${status} close` : status;
}

/** One HTTP/1.1 request on a raw socket: its status, and ` close` when the answer closes the connection. */
async function h1probe(port: number, payload: string): Promise<string> {
  const res = await rawRequest(port, payload, { timeoutMs: 3000, until: (r) => r.includes('\r\n\r\n') });
  const status = /^HTTP\/1\.1 (\d{3}) /.exec(res)?.[1] ?? `no answer: ${JSON.stringify(res.slice(0, 60))}`;
  return /\r\nConnection: close\r\n/i.test(res) ? `${status} close` : status;
}

/** The connection preface and an empty SETTINGS frame: what a client sends once switched. */
const H2_PREFACE = Buffer.concat([
  Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
  Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
]);

/**
 * An h2c upgrade: its HTTP/1.1 status, and when switched the client's preface is
 * sent so the request is answered (on stream 1) and recorded.
 */
function h2cUpgradeProbe(port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ port, host: '127.0.0.1' });
    let received = '';
    let status = '';
    const timer = setTimeout(() => socket.destroy(), 3000);
    socket.on('data', (c: Buffer) => {
      received += c.toString('latin1');
      if (status !== '' || !received.includes('\r\n\r\n')) return;
      status = /^HTTP\/1\.1 (\d{3}) /.exec(received)?.[1] ?? `no answer: ${JSON.stringify(received.slice(0, 60))}`;
      if (/\r\nConnection: close\r\n/i.test(received)) status += ' close';
      if (status === '101') {
        socket.write(H2_PREFACE);
        // Stream 1's answer (a HEADERS frame, type 1, then its DATA) is what gets it recorded.
        setTimeout(() => socket.destroy(), 300);
      } else {
        socket.destroy();
      }
    });
    socket.on('error', (err) => {
      if (received === '') reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(status || `no answer: ${JSON.stringify(received.slice(0, 60))}`);
    });
    socket.write(payload);
  });
}

function probe(t: TestServer, proxied: TestServer, path: Path, rule: Rule): Promise<string> {
  const h1 = rule.h1;
  switch (path) {
    case 'HTTP/1.1':
      return h1probe(t.port, `GET /admission HTTP/1.1\r\n${h1}\r\n`);
    case 'h2c Upgrade':
      return h2cUpgradeProbe(t.port, `GET /admission HTTP/1.1\r\n${h1}${H2C}\r\n`);
    case 'WebSocket':
      return h1probe(t.port, `GET /admission HTTP/1.1\r\n${h1}${WEBSOCKET}\r\n`);
    case 'SSE':
      return h1probe(t.port, `GET /admission HTTP/1.1\r\n${h1}Accept: text/event-stream\r\n\r\n`);
    case 'operations':
      return h1probe(t.port, `GET /livez HTTP/1.1\r\n${h1}\r\n`);
    case 'PROXY':
      return h1probe(proxied.port, `${PROXY_V1}GET /admission HTTP/1.1\r\n${h1}\r\n`);
    case 'h2c prior knowledge':
      return h2probe(t.url, rule.h2!);
    case 'HTTPS h2':
      return h2probe(t.server.listener.httpsUrl!, rule.h2!);
    case 'gRPC':
      return grpcProbe(t.url, rule.h2!);
    case 'gRPC-Web':
      return grpcWebProbe(t.port, h1);
  }
}

/** Fills the budget or the client's share with requests held by a delay; returns their release. */
async function hold(t: TestServer, state: State, proxied: boolean): Promise<() => void> {
  if (state !== 'budget' && state !== 'per-client') return () => {};
  const n = state === 'budget' ? 2 : 1;
  const base = t.server.app.inFlight;
  const held = Array.from({ length: n }, () =>
    rawRequest(t.port, `${proxied ? PROXY_V1 : ''}GET /?echo_delay=20s HTTP/1.1\r\nHost: h\r\n\r\n`, 25_000),
  );
  await waitFor(() => t.server.app.inFlight === base + n, 3000, 'held requests in flight');
  // The held sockets end with the server (their requests are answered or cut at shutdown).
  return () => {
    void Promise.allSettled(held);
  };
}

describe('one admission on every protocol path', () => {
  const servers: TestServer[] = [];
  after(async () => {
    for (const s of servers) await s.close();
  });

  for (const state of ['none', 'budget', 'per-client', 'draining'] as const) {
    for (const rule of RULES.filter((r) => r.state === state)) {
      it(`${rule.name}: ${PATHS.map((p) => `${p} ${rule.paths?.[p] ?? rule.expect}`).join(', ')}`, async () => {
        const failures: string[] = [];
        let shared: [TestServer, TestServer] | null = null;
        for (const path of PATHS) {
          const want = rule.paths?.[path] ?? rule.expect;
          if (H2_PATHS.has(path) && rule.h2 === null) continue; // HTTP/2 names the authority in :authority: no Host rules
          // A held budget or a drain is this cell's alone: it gets its own servers.
          const fresh = state !== 'none' || shared === null;
          if (fresh) {
            const config = { ...BASE, ...STATE_CONFIG[state] };
            shared = [await startTestServer(config), await startTestServer({ ...config, proxyProtocol: ['http'] })];
            servers.push(...shared);
          }
          const [t, proxied] = shared!;
          const target = path === 'PROXY' ? proxied : t;
          const release = await hold(target, state, path === 'PROXY');
          const baseline = target.server.app.inFlight;
          const before = await records(target, path === 'PROXY');
          if (state === 'draining') {
            void target.server.shutdown();
            await waitFor(() => target.server.app.health.draining);
          }
          const got = await probe(t, proxied, path, rule);
          const status = want.replace(/^n\/a /, '');
          // A refusal may close the connection; ` close` is asserted only where the cell names it.
          if ((status.endsWith(' close') ? got : got.replace(/ close$/, '')) !== status)
            failures.push(`${path}: ${got}, expected ${status}`);
          if (got.startsWith('101') && status !== '101') failures.push(`${path}: switched protocols`);
          await waitFor(() => target.server.app.inFlight === baseline, 3000, 'nothing left in flight').catch(() =>
            failures.push(`${path}: left in flight`),
          );
          // The probe's line may follow its answer (a WebSocket's is written when it closes).
          await waitFor(() => accessLines(target) - before.lines >= 2, 3000, 'the line').catch(() => {});
          const now = await records(target, path === 'PROXY');
          // Each scrape is logged and counted too: the first one besides the probe.
          if (now.lines - before.lines !== 2) failures.push(`${path}: ${now.lines - before.lines - 1} access lines`);
          if (now.counted - before.counted !== 2) failures.push(`${path}: ${now.counted - before.counted - 1} counts`);
          release();
          if (state !== 'none') {
            await t.close();
            await proxied.close();
          }
        }
        assert.deepEqual(failures, []);
      });
    }
  }
});
