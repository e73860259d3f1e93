// GET /forward: off by default (echoed), the allowlist checked on the resolved
// address, the bounds, and trace propagation through a chain of real servers.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { parseAllowList } from '../../src/util/allowlist.ts';
import { freePort, startTestServer, type TestServer } from '../helpers.ts';

const allow = (...entries: string[]) => ({ forwardAllow: parseAllowList(entries) });
const named = (hostname: string) => ({ identity: { hostname, addresses: [] } });

interface TargetEcho {
  path: string;
  requestId: string;
  headers: unknown;
  trace: { traceId: string; parentId: string };
}
interface Forwarded {
  server: { hostname: string };
  traceId: string;
  calls: Call[];
  summary: { ok: number };
}
interface Call {
  status: number;
  replica: string;
  spanId: string;
  echo: TargetEcho & Forwarded;
}

async function forward(
  from: TestServer,
  url: string,
  query = '',
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string; json: Forwarded }> {
  const res = await fetch(`${from.url}/forward?url=${encodeURIComponent(url)}${query}`, { headers });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* a refusal is plain text */
  }
  return { status: res.status, text, json: json as Forwarded };
}

describe('GET /forward', () => {
  it('is echoed like any path when --forward-allow is empty', async () => {
    const t = await startTestServer();
    try {
      const res = await fetch(`${t.url}/forward?url=http://127.0.0.1:1/`, { headers: { accept: 'application/json' } });
      assert.equal(res.status, 200);
      const echo = (await res.json()) as { path: string; server: { hostname: string } };
      assert.equal(echo.path, '/forward');
      assert.equal(echo.server.hostname, 'test-host');
    } finally {
      await t.close();
    }
  });

  it('refuses (403, naming the setting) what is outside the allowlist, and a name resolving to a refused address', async () => {
    const target = await startTestServer();
    const t = await startTestServer(allow('10.0.0.0/8', '127.0.0.1:1'));
    try {
      const outside = await forward(t, `http://127.0.0.1:${target.port}/`);
      assert.equal(outside.status, 403);
      assert.match(outside.text, /--forward-allow/);
      const byName = await forward(t, `http://localhost:${target.port}/`);
      assert.equal(byName.status, 403, 'localhost resolves to loopback, which 10.0.0.0/8 does not hold');
      assert.match(byName.text, /localhost \((127\.0\.0\.1|::1)\).*--forward-allow/);
      assert.equal((await forward(t, 'ftp://127.0.0.1:21/')).status, 400);
      assert.equal((await forward(t, `ws://127.0.0.1:${target.port}/`)).status, 400);
    } finally {
      await t.close();
      await target.close();
    }
  });

  it('refuses loopback through a broad CIDR or a host name, and metadata addresses unless listed exactly', async () => {
    const target = await startTestServer();
    const broad = await startTestServer(allow('0.0.0.0/0', '::/0', 'localhost'));
    const meta = await startTestServer(allow('169.254.0.0/16'));
    try {
      assert.equal(
        (await forward(broad, `http://127.0.0.1:${target.port}/`)).status,
        403,
        '0.0.0.0/0 does not grant loopback',
      );
      assert.equal(
        (await forward(broad, `http://localhost:${target.port}/`)).status,
        403,
        'a name entry never grants loopback',
      );
      const metadata = await forward(broad, 'http://169.254.169.254/latest/meta-data/');
      assert.equal(metadata.status, 403);
      assert.match(metadata.text, /metadata/);
      assert.equal((await forward(broad, 'http://[fd00:ec2::254]/')).status, 403);
      assert.equal((await forward(broad, 'http://100.100.100.200/')).status, 403);
      assert.equal(
        (await forward(meta, 'http://169.254.169.254/')).status,
        403,
        'the link-local block is not the exact address',
      );
    } finally {
      await Promise.all([target.close(), broad.close(), meta.close()]);
    }
  });

  it("refuses the server's own port unless an entry names that port", async () => {
    const port = await freePort();
    const loose = await startTestServer({ port, ...allow('127.0.0.0/8') });
    try {
      const self = await forward(loose, `http://127.0.0.1:${port}/`);
      assert.equal(self.status, 403);
      assert.match(self.text, /own port/);
    } finally {
      await loose.close();
    }
    const exact = await startTestServer({ port, ...allow(`127.0.0.1:${port}`) });
    try {
      const self = await forward(exact, `http://127.0.0.1:${port}/`);
      assert.equal(self.status, 200);
      assert.equal(self.json.calls[0]?.status, 200);
    } finally {
      await exact.close();
    }
  });

  it('refuses its own port when --port 0 let the system pick it, loopback allowed or not', async () => {
    // Port 0 is the server's own port too: the check must know the port the system picked.
    const t = await startTestServer({ port: 0, ...allow('127.0.0.1') });
    try {
      const self = await forward(t, `http://127.0.0.1:${t.port}/`);
      assert.equal(self.status, 403, self.text);
      assert.match(self.text, /own port/);
    } finally {
      await t.close();
    }
  });

  it('refuses count and qps over their settings (400), and requests over --forward-max-concurrency (503)', async () => {
    const target = await startTestServer(
      { ...allow('127.0.0.1'), forwardMaxCount: 3, forwardMaxQps: 5, forwardMaxConcurrency: 1 },
      named('t'),
    );
    // Calls go to another server: a forward to the server's own port is refused.
    const to = await startTestServer({}, named('to'));
    try {
      const url = `http://127.0.0.1:${to.port}/`;
      const count = await forward(target, url, '&count=4');
      assert.equal(count.status, 400);
      assert.match(count.text, /--forward-max-count/);
      const qps = await forward(target, url, '&qps=6');
      assert.equal(qps.status, 400);
      assert.match(qps.text, /--forward-max-qps/);
      assert.equal((await forward(target, url, '&count=abc')).status, 400);
      // Eight digits and more are over the bound, said so; leading zeros are still the number.
      const huge = await forward(target, url, '&count=99999999999');
      assert.equal(huge.status, 400);
      assert.match(huge.text, /count 99999999999 is over --forward-max-count/);
      assert.equal((await forward(target, url, '&count=00000000002')).status, 200);
      // One forward whose call waits (the echo's delay control) holds the only place.
      const slow = forward(target, `${url}?echo_delay=1s`);
      let busy = 0;
      for (let i = 0; i < 50 && busy === 0; i++) {
        const r = await forward(target, url);
        if (r.status === 503) {
          busy++;
          assert.match(r.text, /--forward-max-concurrency/);
        }
      }
      assert.equal(busy, 1);
      assert.equal((await slow).status, 200);
      assert.equal((await forward(target, url)).status, 200, 'the place is given back');
    } finally {
      await Promise.all([target.close(), to.close()]);
    }
  });

  it("makes two calls whose target saw the caller's trace id and request id, and forwards b3 headers", async () => {
    const c = await startTestServer({}, named('c'));
    const a = await startTestServer(allow('127.0.0.1'), named('a'));
    try {
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const r = await forward(a, `http://127.0.0.1:${c.port}/x`, '&count=2', {
        traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
        'x-request-id': 'fwd-test-1',
        'x-b3-sampled': '1',
      });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.traceId, traceId);
      assert.equal(r.json.calls.length, 2);
      assert.equal(r.json.summary.ok, 2);
      const spans = new Set<string>();
      for (const call of r.json.calls) {
        assert.equal(call.status, 200);
        assert.equal(call.replica, 'c');
        assert.equal(call.echo.trace.traceId, traceId);
        assert.notEqual(call.echo.trace.parentId, '00f067aa0ba902b7', 'a new span id per call');
        spans.add(call.echo.trace.parentId);
        assert.equal(call.echo.requestId, 'fwd-test-1');
        assert.ok(JSON.stringify(call.echo.headers).toLowerCase().includes('x-b3-sampled'));
      }
      assert.equal(spans.size, 2);
    } finally {
      await Promise.all([a.close(), c.close()]);
    }
  });

  it('does not follow a redirect and bounds the answer read', async () => {
    const c = await startTestServer({}, named('c'));
    const a = await startTestServer(allow('127.0.0.1'), named('a'));
    const small = await startTestServer({ ...allow('127.0.0.1'), forwardMaxResponse: 100 }, named('small'));
    try {
      // A plain origin that redirects to a path it counts: the hop must not be taken.
      let landed = 0;
      const origin = createServer((req, res) => {
        if (req.url === '/landed') landed++;
        res.writeHead(req.url === '/landed' ? 200 : 302, { location: '/landed' }).end();
      });
      await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
      const { port } = origin.address() as { port: number };
      try {
        const moved = await forward(a, `http://127.0.0.1:${port}/`);
        assert.equal(moved.json.calls[0]?.status, 302, 'the 3xx is the result');
        assert.equal(landed, 0);
      } finally {
        origin.close();
      }
      const big = await forward(small, `http://127.0.0.1:${c.port}/`);
      assert.equal(big.json.calls[0]?.status, null);
      assert.match(String((big.json.calls[0] as unknown as { error: string }).error), /larger than 100 bytes/);
    } finally {
      await Promise.all([a.close(), small.close(), c.close()]);
    }
  });

  it('carries one trace id through a chain A -> B -> C, each hop naming its replica', async () => {
    const c = await startTestServer({}, named('c'));
    const b = await startTestServer(allow('127.0.0.1'), named('b'));
    const a = await startTestServer(allow('127.0.0.1'), named('a'));
    try {
      const viaB = `http://127.0.0.1:${b.port}/forward?url=${encodeURIComponent(`http://127.0.0.1:${c.port}/end`)}`;
      const r = await forward(a, viaB);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.server.hostname, 'a');
      const hopB = r.json.calls[0]!;
      assert.equal(hopB.status, 200);
      assert.equal(hopB.replica, 'b');
      assert.equal(hopB.echo.traceId, r.json.traceId, 'B continued the trace A started');
      const hopC = hopB.echo.calls[0]!;
      assert.equal(hopC.replica, 'c');
      assert.equal(hopC.echo.path, '/end');
      assert.equal(hopC.echo.trace.traceId, r.json.traceId, 'C saw the same trace id');
      assert.equal(hopC.echo.trace.parentId, hopC.spanId);
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });
});
