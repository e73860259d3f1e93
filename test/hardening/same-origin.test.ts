// The same-origin rule for WebSockets and event streams compares Origin with the host
// the request was really sent to: `:authority` over HTTP/2, and X-Forwarded-Host
// from a trusted proxy (behind nginx, Host is the upstream's name, or lacks the port).
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { NetworkSet } from '../../src/util/addresses.ts';
import { rawRequest, startTestServer, type TestServer } from '../helpers.ts';

const WS =
  'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
const SSE = 'Accept: text/event-stream\r\n';
const statusOf = (res: string) => Number(/^HTTP\/1\.1 (\d{3}) /.exec(res)?.[1] ?? 0);

/** An HTTP/2 event stream request with this Origin; resolves with the status. */
function h2sse(origin: string, pageOrigin: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const session = h2connect(origin);
    session.on('error', reject);
    const req = session.request({ ':path': '/events', accept: 'text/event-stream', origin: pageOrigin });
    req.on('response', (h) => {
      resolve(Number(h[':status']));
      session.destroy();
    });
    req.on('error', () => {});
    req.end();
  });
}

describe('the same-origin rule sees the host the client used', () => {
  let t: TestServer;
  let behindProxy: TestServer;
  before(async () => {
    t = await startTestServer({ sseCount: 1, sseIntervalMs: 10 });
    behindProxy = await startTestServer({
      sseCount: 1,
      sseIntervalMs: 10,
      trustedProxies: new NetworkSet(['loopback']),
    });
  });
  after(async () => {
    await t.close();
    await behindProxy.close();
  });

  it('over HTTP/2 a same-origin event stream is allowed (:authority), another origin is not', async () => {
    const own = `http://127.0.0.1:${t.port}`;
    assert.equal(await h2sse(t.url, own), 200);
    assert.equal(await h2sse(t.url, 'http://evil.example'), 403);
  });

  const rows: [string, string][] = [
    ['WebSocket', WS],
    ['event stream', SSE],
  ];
  for (const [kind, extra] of rows) {
    it(`behind a trusted proxy (Host: its upstream name) the page's own ${kind} is allowed by X-Forwarded-Host`, async () => {
      // What nginx sends with its default `Host $proxy_host` and `X-Forwarded-Host $http_host`.
      const head = (origin: string, xfh = 'echo.example:8443') =>
        `GET /ws HTTP/1.1\r\nHost: backend:8080\r\nX-Forwarded-Host: ${xfh}\r\nOrigin: ${origin}\r\n${extra}Connection: close\r\n\r\n`;
      const until = (r: string) => r.includes('\r\n\r\n');
      const ok = kind === 'WebSocket' ? 101 : 200;
      assert.equal(
        statusOf(await rawRequest(behindProxy.port, head('https://echo.example:8443'), { until })),
        ok,
        'own origin, trusted proxy',
      );
      assert.equal(
        statusOf(await rawRequest(behindProxy.port, head('https://evil.example'), { until })),
        403,
        'another origin',
      );
      assert.equal(
        statusOf(await rawRequest(behindProxy.port, head('https://echo.example', 'echo.example:443'), { until })),
        ok,
        'the default port is the same origin',
      );
      // From a peer that is not a trusted proxy X-Forwarded-Host is the client's own claim.
      assert.equal(
        statusOf(await rawRequest(t.port, head('https://echo.example:8443'), { until })),
        403,
        'untrusted peer',
      );
    });
  }
});
