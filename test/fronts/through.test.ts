// What echo-server reports behind each real front, configured as users configure
// them: the client IP with a forged X-Forwarded-For (ignored: only the front's own
// address is trusted), PROXY v1 from nginx's stream module and v2 with TLVs from
// HAProxy, WebSocket and SSE through each, and a 413 that reaches nginx's client.
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import {
  CLIENT_ADDRESS,
  HAPROXY_DEFAULTS,
  NGINX_STREAM_MODULE,
  caddyGlobals,
  freePort,
  nginxConfig,
  requireFront,
  scratch,
  selfSigned,
  send,
  startBackend,
  startFront,
  type Backend,
  type Front,
  type FrontName,
} from './fronts.ts';

const FORGED = '203.0.113.66';

interface Echo {
  headers: Record<string, string[]>;
  rawHeaders: [string, string][];
  client: { ip: string; source: string; peer: string; peerTrusted: boolean };
  proxy: null | { version: number; sourceAddress: string; tlvs: Record<string, unknown> };
}

const echoOf = async (url: string, headers: Record<string, string> = {}): Promise<Echo> => {
  const a = await send(url, { headers: { accept: 'application/json', ...headers }, localAddress: CLIENT_ADDRESS });
  assert.equal(a.status, 200, a.body);
  return JSON.parse(a.body) as Echo;
};

/** The HTTP front configs users write: forwarding headers set, WebSocket upgrades passed, keep-alive to the backend. */
function httpConfig(front: FrontName, dir: string, port: number, backend: number): string {
  if (front === 'nginx') {
    return nginxConfig(
      dir,
      `
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream echo { server 127.0.0.1:${backend}; keepalive 16; keepalive_timeout 4s; }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 64m;
    location / {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_buffering off;
    }
  }`,
    );
  }
  if (front === 'haproxy') {
    return `${HAPROXY_DEFAULTS}
    option forwardfor
    option http-server-close
frontend echo
    bind 127.0.0.1:${port}
    default_backend echo
backend echo
    server a 127.0.0.1:${backend}
`;
  }
  return `${caddyGlobals(dir)}
http://127.0.0.1:${port} {
  bind 127.0.0.1
  reverse_proxy 127.0.0.1:${backend}
}
`;
}

for (const front of ['nginx', 'haproxy', 'caddy'] as const) {
  describe(`behind ${front}`, { timeout: 60_000 }, () => {
    let dir = '';
    let cleanup = () => {};
    let backend: Backend | undefined;
    let f: Front | undefined;
    let url = '';
    let ready = false;
    before(async () => {
      ({ dir, cleanup } = scratch());
      if (!requireFront({ skip: () => {} }, front)) return;
      const bport = await freePort();
      // Only the front's address is trusted: never the whole of loopback.
      backend = await startBackend(bport, [
        '--trusted-proxies',
        '127.0.0.1/32',
        '--max-body-size',
        '1MiB',
        '--sse-interval',
        '50ms',
        '--sse-count',
        '2',
      ]);
      const port = await freePort();
      f = await startFront(front, dir, httpConfig(front, dir, port, bport), port);
      url = `http://127.0.0.1:${port}`;
      ready = true;
    });
    after(async () => {
      await f?.stop();
      await backend?.stop();
      cleanup();
    });

    it('shows the true client IP; a forged X-Forwarded-For is not believed', async (t) => {
      if (!requireFront(t, front) || !ready) return;
      const e = await echoOf(`${url}/`, { 'x-forwarded-for': FORGED });
      assert.equal(e.client.ip, CLIENT_ADDRESS, JSON.stringify(e.client));
      assert.equal(e.client.source, 'x-forwarded-for');
      assert.equal(e.client.peer, '127.0.0.1');
      assert.equal(e.client.peerTrusted, true);
    });

    it('"headers in the order received" is the front\'s order', async (t) => {
      if (!requireFront(t, front) || !ready) return;
      // The client sends X-Zeta before X-Alpha.
      const e = await echoOf(`${url}/`, { 'X-Zeta': '1', 'X-Alpha': '2' });
      const names = e.rawHeaders.map(([n]) => n);
      const at = (n: string) => names.findIndex((m) => m.toLowerCase() === n);
      if (front === 'nginx') {
        // nginx's own headers first (Host, then its proxy_set_header lines), then the client's in the client's order.
        assert.equal(names[0], 'Host', names.join(' '));
        assert.ok(at('x-forwarded-for') < at('x-zeta') && at('x-zeta') < at('x-alpha'), names.join(' '));
      } else if (front === 'haproxy') {
        // Lowercased, the client's order kept, HAProxy's X-Forwarded-For appended.
        assert.ok(
          names.every((n) => n === n.toLowerCase()),
          names.join(' '),
        );
        assert.ok(at('x-zeta') < at('x-alpha') && at('x-alpha') < at('x-forwarded-for'), names.join(' '));
      } else {
        // Canonicalised and sorted by name (Go's net/http), after Host; Go's transport
        // appends its own Accept-Encoding.
        assert.ok(names.includes('X-Alpha') && names.includes('X-Zeta'), names.join(' '));
        assert.equal(names[0], 'Host');
        const rest = names.slice(1).filter((n) => n !== 'Accept-Encoding');
        assert.deepEqual(rest, [...rest].sort(), names.join(' '));
      }
    });

    it('echoes a WebSocket message (HTTP/1.1 upgrade through the front)', async (t) => {
      if (!requireFront(t, front) || !ready) return;
      const ws = new WebSocket(`${url.replace('http', 'ws')}/chat`);
      const got = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no echo within 5 s')), 5000);
        ws.addEventListener('open', () => ws.send('hello through the front'));
        // The first message describes the connection; then each message comes back.
        ws.addEventListener('message', (m) => {
          if (String(m.data) !== 'hello through the front') return;
          clearTimeout(timer);
          resolve(String(m.data));
        });
        ws.addEventListener('error', () => {
          clearTimeout(timer);
          reject(new Error('WebSocket error'));
        });
      });
      ws.close();
      assert.match(got, /hello through the front/);
    });

    it('streams Server-Sent Events through the front', async (t) => {
      if (!requireFront(t, front) || !ready) return;
      const a = await send(`${url}/`, { headers: { accept: 'text/event-stream' }, localAddress: CLIENT_ADDRESS });
      assert.equal(a.status, 200);
      assert.match(String(a.headers['content-type']), /^text\/event-stream/);
      assert.match(a.body, /^event: echo$/m);
      assert.match(a.body, /^event: tick$/m);
      assert.match(a.body, /^event: done$/m);
    });

    if (front === 'nginx') {
      it('delivers a 413 for a 12 MiB body to the client, 10 times of 10', async (t) => {
        if (!requireFront(t, front) || !ready) return;
        const body = Buffer.alloc(12 * 1024 * 1024, 'x');
        const statuses: number[] = [];
        for (let i = 0; i < 10; i++)
          statuses.push((await send(`${url}/`, { method: 'POST', body, localAddress: CLIENT_ADDRESS })).status);
        assert.deepEqual(
          statuses,
          Array(10).fill(413),
          `statuses ${statuses.join(' ')}; nginx said: ${f?.output().slice(-600)}`,
        );
      });
    }
  });
}

describe('PROXY protocol from real fronts', { timeout: 60_000 }, () => {
  let dir = '';
  let cleanup = () => {};
  before(() => ({ dir, cleanup } = scratch()));
  const running: { stop(): Promise<unknown> }[] = [];
  after(async () => {
    for (const r of running.reverse()) await r.stop();
    cleanup();
  });

  it('nginx stream module, PROXY v1: the client address from the header', async (t) => {
    if (!requireFront(t, 'nginx', [NGINX_STREAM_MODULE])) return;
    const bport = await freePort();
    const b = await startBackend(bport, ['--proxy-protocol', 'http', '--trusted-proxies', '127.0.0.1/32']);
    running.push(b);
    const port = await freePort();
    running.push(
      await startFront(
        'nginx',
        dir,
        nginxConfig(
          dir,
          '',
          `load_module ${NGINX_STREAM_MODULE};\nstream { server { listen 127.0.0.1:${port}; proxy_pass 127.0.0.1:${bport}; proxy_protocol on; } }`,
        ),
        port,
      ),
    );
    const e = await echoOf(`http://127.0.0.1:${port}/`, { 'x-forwarded-for': FORGED });
    assert.equal(e.proxy?.version, 1);
    assert.equal(e.proxy?.sourceAddress, CLIENT_ADDRESS);
    assert.equal(e.client.ip, CLIENT_ADDRESS, JSON.stringify(e.client));
  });

  it('HAProxy send-proxy-v2 with proxy-v2-options: authority, unique id, SSL and CRC32C TLVs', async (t) => {
    if (!requireFront(t, 'haproxy', ['openssl'])) return;
    const bport = await freePort();
    const b = await startBackend(bport, ['--proxy-protocol', 'http', '--trusted-proxies', '127.0.0.1/32']);
    running.push(b);
    const port = await freePort();
    const pem = selfSigned(dir, 'echo.test');
    running.push(
      await startFront(
        'haproxy',
        dir,
        `${HAPROXY_DEFAULTS}
frontend tls
    bind 127.0.0.1:${port} ssl crt ${pem.both} alpn http/1.1
    unique-id-format front-%rt
    default_backend echo
backend echo
    server a 127.0.0.1:${bport} send-proxy-v2 proxy-v2-options authority,unique-id,ssl,ssl-cipher,cert-sig,cert-key,crc32c
`,
        port,
      ),
    );
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          path: '/',
          servername: 'echo.test',
          rejectUnauthorized: false,
          localAddress: CLIENT_ADDRESS,
          headers: { accept: 'application/json' },
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString();
          });
          res.on('end', () => resolve(text));
        },
      );
      req.on('error', reject);
      req.end();
    });
    const e = JSON.parse(body) as Echo;
    assert.equal(e.proxy?.version, 2);
    assert.equal(e.proxy?.sourceAddress, CLIENT_ADDRESS);
    const tlvs = e.proxy.tlvs as {
      authority?: string;
      uniqueId?: string;
      crc32c?: string;
      ssl?: Record<string, unknown>;
    };
    assert.equal(tlvs.authority, 'echo.test');
    assert.ok(
      tlvs.uniqueId === undefined ? false : /^front-\d+$|^66726f6e742d/.test(tlvs.uniqueId),
      `unique id: ${tlvs.uniqueId}`,
    );
    assert.match(String(tlvs.crc32c), /^[0-9a-f]{8}$/);
    assert.match(String(tlvs.ssl?.version), /^TLSv1\.[23]$/);
    assert.match(String(tlvs.ssl?.cipher), /^TLS_|ECDHE/);
  });
});
