// The L4 echoes behind real L4 fronts: HAProxy in `mode tcp` with `send-proxy-v2`
// (the banner names the original client, not HAProxy), and nginx's stream module
// relaying TCP and UDP on one port number (the UDP answer comes back through it).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runTool, startTestServer, waitFor, type TestServer } from '../helpers.ts';
import {
  CLIENT_ADDRESS,
  NGINX_STREAM_MODULE,
  freePort,
  nginxConfig,
  requireFront,
  scratch,
  startFront,
  type Front,
} from './fronts.ts';

async function python<T>(program: string): Promise<T> {
  const r = await runTool('python3', ['-c', program], undefined, 20_000);
  assert.equal(r.code, 0, `python3 failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

/** From CLIENT_ADDRESS: the banner, then `payload` echoed through the front. */
const tcpThrough = (port: number, payload: string) => `
import socket, json
s = socket.socket()
s.bind(('${CLIENT_ADDRESS}', 0))
s.connect(('127.0.0.1', ${port}))
s.settimeout(5)
buf = b''
while b'\\n' not in buf:
    c = s.recv(4096)
    if not c: break
    buf += c
line, rest = buf.split(b'\\n', 1)
s.sendall(b'${payload}')
while len(rest) < ${payload.length}:
    c = s.recv(4096)
    if not c: break
    rest += c
print(json.dumps({'banner': json.loads(line), 'back': rest.decode(), 'me': s.getsockname()[1]}))
`;

interface Through {
  banner: {
    clientIp: string;
    remoteAddr: string;
    proxy: { version: number; sourceAddress: string; sourcePort: number } | null;
  };
  back: string;
  me: number;
}

describe('HAProxy mode tcp with send-proxy-v2 in front of the TCP echo', () => {
  let t: TestServer;
  let haproxy: Front | null = null;
  const { dir, cleanup } = scratch();
  let port = 0;
  before(async () => {
    t = await startTestServer({ tcpPort: 0, proxyProtocol: ['tcp'] });
  });
  after(async () => {
    await haproxy?.stop();
    await t.close();
    cleanup();
  });

  it('the banner names the original client; the bytes come back through HAProxy', async (ctx) => {
    if (!requireFront(ctx, 'haproxy')) return;
    port = await freePort();
    const tcp = t.server.listener.ports.find((p) => p.row.name === 'tcp')!.address.port;
    haproxy = await startFront(
      'haproxy',
      dir,
      [
        'global',
        '    maxconn 64',
        'defaults',
        '    mode tcp',
        '    timeout connect 2s',
        '    timeout client 10s',
        '    timeout server 10s',
        'frontend l4',
        `    bind 127.0.0.1:${port}`,
        '    default_backend echo',
        'backend echo',
        `    server e1 127.0.0.1:${tcp} send-proxy-v2`,
        '',
      ].join('\n'),
      port,
    );
    const r = await python<Through>(tcpThrough(port, 'through haproxy'));
    assert.equal(r.back, 'through haproxy');
    assert.equal(r.banner.clientIp, CLIENT_ADDRESS);
    assert.deepEqual(
      [r.banner.proxy?.version, r.banner.proxy?.sourceAddress, r.banner.proxy?.sourcePort],
      [2, CLIENT_ADDRESS, r.me],
    );
    assert.match(r.banner.remoteAddr, /^127\.0\.0\.1:\d+$/, 'the TCP peer is HAProxy');
    const line = await waitFor(
      () => t.logs.messages('tcp').find((l) => l.clientIp === CLIENT_ADDRESS),
      5000,
      'the access line',
    );
    assert.equal(line.bytesIn, 'through haproxy'.length);
  });
});

describe("nginx's stream module relaying TCP and UDP to the L4 echoes", () => {
  let t: TestServer;
  let nginx: Front | null = null;
  const { dir, cleanup } = scratch();
  before(async () => {
    // One port number for both echoes, so one nginx server block relays both.
    const echoPort = await freePort();
    t = await startTestServer({ tcpPort: echoPort, udpPort: echoPort });
  });
  after(async () => {
    await nginx?.stop();
    await t.close();
    cleanup();
  });

  it('a datagram through nginx gets its envelope back, within three times its size', async (ctx) => {
    if (!requireFront(ctx, 'nginx', [NGINX_STREAM_MODULE])) return;
    const port = await freePort();
    const echo = t.server.config.udpPort!;
    nginx = await startFront(
      'nginx',
      dir,
      nginxConfig(dir, '', `load_module ${NGINX_STREAM_MODULE};`) +
        `
stream {
  server {
    listen 127.0.0.1:${port};
    listen 127.0.0.1:${port} udp;
    proxy_pass 127.0.0.1:${echo};
    proxy_responses 1;
    proxy_timeout 5s;
  }
}
`,
      port,
    );
    const tcp = await python<Through>(tcpThrough(port, 'through nginx'));
    assert.equal(tcp.back, 'through nginx');
    const r = await python<{ answer: string }>(`
import socket, json
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
u.sendto(b'z' * 512, ('127.0.0.1', ${port}))
print(json.dumps({'answer': u.recv(65535).decode()}))
`);
    assert.ok(r.answer.length <= 1536);
    const e = JSON.parse(r.answer) as {
      protocol: string;
      bytes: number;
      remoteAddr: string;
      identity: { hostname: string };
    };
    assert.deepEqual([e.protocol, e.bytes, e.identity.hostname], ['udp', 512, 'test-host']);
    assert.match(e.remoteAddr, /^127\.0\.0\.1:\d+$/, 'the peer is nginx');
  });
});
