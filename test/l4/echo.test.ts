// The TCP and UDP echoes, driven by Python's sockets (node:net and node:dgram only as
// a second client): the banner, the byte-for-byte echo, a client that never reads,
// many short connections, the PROXY header, the byte cap, the drain, and the UDP
// envelope's size bound, rate limits and budget. Not in test/protocols: the image's
// test stage (npm run test:code) has no Python.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { encodeProxyV2 } from '../../src/transport/proxy-protocol.ts';
import { runTool, startTestServer, waitFor, UUID_V4, type TestServer } from '../helpers.ts';

/** Without python3 the file is skipped, except in CI, where .ci/run installs it and its absence fails. */
const NO_PYTHON =
  spawnSync('python3', ['--version'], { stdio: 'ignore' }).status !== 0 && process.env.CI !== 'true'
    ? 'python3 is not installed'
    : false;

/** Runs a Python program; its last stdout line is JSON. */
async function python<T>(program: string, timeoutMs = 30_000): Promise<T> {
  const r = await runTool('python3', ['-c', program], undefined, timeoutMs);
  assert.equal(r.code, 0, `python3 failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

const portOf = (t: TestServer, name: 'tcp' | 'udp') =>
  t.server.listener.ports.find((p) => p.row.name === name)!.address.port;

async function metric(t: TestServer, line: string): Promise<number> {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  const hit = text.split('\n').find((l) => l.startsWith(`${line} `));
  return hit === undefined ? NaN : Number(hit.slice(line.length + 1));
}

interface Banner {
  protocol: string;
  connectionId: string;
  remoteAddr: string;
  localAddr: string;
  clientIp: string;
  proxy: { sourceAddress: string; sourcePort: number; version: number } | null;
  tls: { sni: string | null; version: string | null } | null;
  identity: { hostname: string; addresses: string[] } | null;
}

// Reads one line, then `n` more bytes, from a socket: the banner and the echo.
const PY_READ = `
import socket, json, sys, os, hashlib
def read_line(s):
    buf = b''
    while not buf.endswith(b'\\n'):
        c = s.recv(1)
        if not c: raise SystemExit('closed before the banner ended')
        buf += c
    return buf
def read_n(s, n):
    buf = b''
    while len(buf) < n:
        c = s.recv(n - len(buf))
        if not c: break
        buf += c
    return buf
`;

describe('TCP echo', { skip: NO_PYTHON }, () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ tcpPort: 0, idleTimeoutMs: 1500, maxDelayMs: 500 });
  });
  after(() => t.close());

  it('begins with a JSON line naming the peer, the port and the replica', async () => {
    const r = await python<{ banner: Banner; me: string }>(`${PY_READ}
s = socket.create_connection(('127.0.0.1', ${portOf(t, 'tcp')}))
me = '%s:%d' % s.getsockname()
print(json.dumps({'banner': json.loads(read_line(s)), 'me': me}))
`);
    assert.equal(r.banner.protocol, 'tcp');
    assert.equal(r.banner.remoteAddr, r.me);
    assert.equal(r.banner.clientIp, '127.0.0.1');
    assert.equal(r.banner.localAddr, `127.0.0.1:${portOf(t, 'tcp')}`);
    assert.equal(r.banner.proxy, null);
    assert.equal(r.banner.tls, null);
    assert.deepEqual(r.banner.identity, { hostname: 'test-host', addresses: ['192.0.2.10'] });
    assert.match(r.banner.connectionId, UUID_V4);
    const line = await waitFor(
      () => t.logs.messages('tcp').find((l) => l.connId === r.banner.connectionId),
      3000,
      'the access line',
    );
    assert.deepEqual([line.clientIp, line.reason, line.bytesIn], ['127.0.0.1', 'closed', 0]);
  });

  it('echoes 16 KiB byte for byte', async () => {
    const r = await python<{ same: boolean; got: number }>(`${PY_READ}
s = socket.create_connection(('127.0.0.1', ${portOf(t, 'tcp')}))
read_line(s)
data = os.urandom(16384)
s.sendall(data)
back = read_n(s, len(data))
print(json.dumps({'same': back == data, 'got': len(back)}))
`);
    assert.deepEqual(r, { same: true, got: 16384 });
    // node:net as a second client: the same bytes back.
    const data = Buffer.alloc(16384, 0).map((_, i) => (i * 7) & 0xff);
    const back = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const s = connect(portOf(t, 'tcp'), '127.0.0.1', () => s.write(data));
      s.on('data', (c: Buffer) => {
        chunks.push(c);
        const all = Buffer.concat(chunks);
        const nl = all.indexOf(10);
        if (nl >= 0 && all.length - nl - 1 >= data.length) {
          s.destroy();
          resolve(all.subarray(nl + 1));
        }
      });
      s.on('error', reject);
    });
    assert.ok(back.equals(data));
  });

  it('stops reading from a client that never reads, until --idle-timeout closes it', async () => {
    // Small client buffers; 256 MiB offered. An echo that kept reading would take it
    // all (and hold what it cannot send); one that pauses takes what the kernel's
    // buffers hold and then nothing, so the send times out long before.
    const r = await python<{ sent: number; closed: boolean; waited: number }>(`
import socket, json, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
s.connect(('127.0.0.1', ${portOf(t, 'tcp')}))
s.settimeout(0.5)
chunk = b'x' * 65536
sent = 0
try:
    while sent < 256 * 1024 * 1024:
        sent += s.send(chunk)
except (socket.timeout, BlockingIOError):
    pass
except (BrokenPipeError, ConnectionResetError):
    pass  # a slow machine: the server had already paused and idled out; the loop below sees it closed
# Now read nothing, and wait for the server to give up on us.
start = time.time()
closed = False
s.settimeout(10)
try:
    while time.time() - start < 10:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        time.sleep(0.1)
        try:
            s.send(b'x')
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        except socket.timeout:
            pass
except Exception:
    closed = True
print(json.dumps({'sent': sent, 'closed': closed, 'waited': time.time() - start}))
`);
    assert.ok(r.sent < 32 * 1024 * 1024, `the server took ${r.sent} bytes from a client that reads none`);
    assert.ok(r.closed, 'the idle connection was closed');
    const line = await waitFor(
      () => t.logs.messages('tcp').find((l) => l.reason === 'idle_timeout'),
      5000,
      'the idle close',
    );
    assert.ok((line.bytesIn as number) <= r.sent);
  });

  it('1,000 short connections: each answered, every one closed, none left open', async () => {
    const before = await metric(t, 'echo_tcp_connections_total{reason="closed"}');
    const r = await python<{ ok: number }>(
      `${PY_READ}
ok = 0
for i in range(1000):
    s = socket.create_connection(('127.0.0.1', ${portOf(t, 'tcp')}))
    read_line(s)
    s.sendall(b'ping')
    if read_n(s, 4) == b'ping': ok += 1
    s.close()
print(json.dumps({'ok': ok}))
`,
      60_000,
    );
    assert.equal(r.ok, 1000);
    await waitFor(
      async () => (await metric(t, 'echo_tcp_connections_total{reason="closed"}')) - before === 1000,
      5000,
      '1000 closes counted',
    );
    // The metrics scrape itself is the one open connection.
    await waitFor(async () => (await metric(t, 'echo_open_connections')) <= 1, 5000, 'open connections back to none');
    assert.ok((await metric(t, 'echo_tcp_bytes_total{direction="received"}')) >= 4000);
  });
});

describe('TCP echo: pure echo, byte cap, drain', { skip: NO_PYTHON }, () => {
  it('--tcp-banner false answers only the bytes sent', async () => {
    const t = await startTestServer({ tcpPort: 0, tcpBanner: false });
    try {
      const r = await python<{ back: string }>(`${PY_READ}
s = socket.create_connection(('127.0.0.1', ${portOf(t, 'tcp')}))
s.sendall(b'first')
s.shutdown(socket.SHUT_WR)
print(json.dumps({'back': read_n(s, 100).decode()}))
`);
      assert.equal(r.back, 'first');
    } finally {
      await t.close();
    }
  });

  it('--tcp-max-rate: echoes at that many bytes a second, byte for byte', async () => {
    // 64 KiB/s: 256 KiB cannot come back in less than (256 - 64) / 64 = 3 s, whatever the
    // first read took in one piece; a slower machine only makes it longer.
    const t = await startTestServer({
      tcpPort: 0,
      tcpBanner: false,
      tcpMaxRate: 65_536,
      idleTimeoutMs: 10_000,
      maxDelayMs: 500,
    });
    try {
      const r = await python<{ same: boolean; seconds: number }>(
        `${PY_READ}
import time, threading
s = socket.create_connection(('127.0.0.1', ${portOf(t, 'tcp')}))
data = os.urandom(262144)
start = time.monotonic()
threading.Thread(target=lambda: s.sendall(data), daemon=True).start()
back = read_n(s, len(data))
print(json.dumps({'same': back == data, 'seconds': time.monotonic() - start}))
`,
        60_000,
      );
      assert.equal(r.same, true);
      assert.ok(r.seconds >= 2.9, `256 KiB at 64 KiB/s came back in ${r.seconds.toFixed(2)} s`);
    } finally {
      await t.close();
    }
  });

  it('--tcp-max-bytes: echoes that many, then closes, counted as byte_cap', async () => {
    const t = await startTestServer({ tcpPort: 0, tcpBanner: false, tcpMaxBytes: 1000 });
    try {
      const r = await python<{ got: number }>(`${PY_READ}
s = socket.create_connection(('127.0.0.1', ${portOf(t, 'tcp')}))
try:
    s.sendall(b'y' * 5000)
except OSError:
    pass
got = 0
try:
    got = len(read_n(s, 10000))
except OSError:
    pass
print(json.dumps({'got': got}))
`);
      assert.equal(r.got, 1000);
      const line = await waitFor(() => t.logs.messages('tcp')[0], 3000, 'the access line');
      assert.deepEqual([line.reason, line.bytesIn, line.bytesOut], ['byte_cap', 1000, 1000]);
    } finally {
      await t.close();
    }
  });

  it('a drain stops accepting and gives open connections --drain-timeout, then closes them', async () => {
    const t = await startTestServer({ tcpPort: 0, drainTimeoutMs: 400 });
    const port = portOf(t, 'tcp');
    const s = connect(port, '127.0.0.1');
    let received = '';
    s.on('data', (c: Buffer) => {
      received += c.toString();
    });
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
    await waitFor(() => received.includes('\n'), 2000, 'the banner');
    const start = performance.now();
    const stopping = t.close();
    s.write('during the drain');
    await waitFor(() => received.endsWith('during the drain'), 2000, 'the echo during the drain');
    await closed;
    await stopping;
    assert.ok(performance.now() - start >= 300, 'kept open for the drain timeout');
    const refused = await new Promise<string>((resolve) => {
      const late = connect(port, '127.0.0.1');
      late.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      late.on('connect', () => {
        late.destroy();
        resolve('connected');
      });
    });
    assert.equal(refused, 'ECONNREFUSED');
    assert.equal(t.logs.messages('tcp')[0]?.reason, 'drain');
  });
});

describe('TCP echo: --max-connections', { skip: NO_PYTHON }, () => {
  it('refuses connections beyond --max-connections at accept, logged; a slot freed is taken again', async () => {
    const t = await startTestServer({ tcpPort: 0, maxConnections: 3 });
    try {
      const r = await python<{ banners: number; fourth: string; after: boolean }>(`${PY_READ}
held = []
for i in range(3):
    s = socket.create_connection(('127.0.0.1', ${portOf(t, 'tcp')}))
    read_line(s)
    held.append(s)
s = socket.create_connection(('127.0.0.1', ${portOf(t, 'tcp')}))
s.settimeout(5)
try:
    fourth = s.recv(1000).decode() or 'closed'
except ConnectionResetError:
    fourth = 'reset'
held.pop().close()
import time
after = False
for i in range(50):
    s = socket.create_connection(('127.0.0.1', ${portOf(t, 'tcp')}))
    s.settimeout(5)
    try:
        if s.recv(1).decode() == '{':
            after = True
            break
    except OSError:
        pass
    time.sleep(0.05)
print(json.dumps({'banners': len(held) + 1, 'fourth': fourth, 'after': after}))
`);
      assert.equal(r.fourth === 'closed' || r.fourth === 'reset', true, `the fourth connection got ${r.fourth}`);
      assert.equal(r.after, true, 'a freed slot is taken again');
      assert.ok(t.logs.messages('connection refused: --max-connections reached').length >= 1);
    } finally {
      await t.close();
    }
  });
});

describe('TCP echo behind the PROXY protocol (--proxy-protocol tcp)', { skip: NO_PYTHON }, () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ tcpPort: 0, proxyProtocol: ['tcp'], headersTimeoutMs: 500, requestTimeoutMs: 1000 });
  });
  after(() => t.close());

  it('v1: the banner shows the original client, and the echo follows', async () => {
    const r = await python<{ banner: Banner; back: string }>(`${PY_READ}
s = socket.create_connection(('127.0.0.1', ${portOf(t, 'tcp')}))
s.sendall(b'PROXY TCP4 203.0.113.9 192.0.2.1 40000 7\\r\\nafter the header')
banner = json.loads(read_line(s))
print(json.dumps({'banner': banner, 'back': read_n(s, 16).decode()}))
`);
    assert.equal(r.banner.clientIp, '203.0.113.9');
    assert.equal(r.banner.proxy?.sourceAddress, '203.0.113.9');
    assert.equal(r.banner.proxy?.sourcePort, 40000);
    assert.match(r.banner.remoteAddr, /^127\.0\.0\.1:\d+$/);
    assert.equal(r.back, 'after the header');
    const line = await waitFor(
      () => t.logs.messages('tcp').find((l) => l.connId === r.banner.connectionId),
      3000,
      'the access line',
    );
    assert.deepEqual([line.clientIp, line.bytesIn], ['203.0.113.9', 16]);
  });

  it('v2 (node:net as the client): the banner shows the original client over IPv6', async () => {
    const header = encodeProxyV2({ source: ['2001:db8::5', 51000], destination: ['2001:db8::1', 7], tlvs: [] });
    const banner = await new Promise<Banner>((resolve, reject) => {
      let got = '';
      const s = connect(portOf(t, 'tcp'), '127.0.0.1', () => s.write(header));
      s.on('data', (c: Buffer) => {
        got += c.toString();
        if (got.includes('\n')) {
          s.destroy();
          resolve(JSON.parse(got.slice(0, got.indexOf('\n'))) as Banner);
        }
      });
      s.on('error', reject);
    });
    assert.equal(banner.clientIp, '2001:db8::5');
    assert.equal(banner.proxy?.version, 2);
  });

  it('a connection without a header gets no banner and is closed', async () => {
    const r = await python<{ got: string }>(`
import socket, json
s = socket.create_connection(('127.0.0.1', ${portOf(t, 'tcp')}))
s.settimeout(5)
s.sendall(b'hello, no header\\n')
got = b''
try:
    while True:
        c = s.recv(1000)
        if not c: break
        got += c
except OSError:
    pass
print(json.dumps({'got': got.decode()}))
`);
    assert.equal(r.got, '');
  });

  it('a connection that sends nothing is closed at the front deadline (--headers-timeout)', async () => {
    const r = await python<{ closedAfter: number }>(`
import socket, json, time
s = socket.create_connection(('127.0.0.1', ${portOf(t, 'tcp')}))
s.settimeout(5)
start = time.time()
try:
    s.recv(1000)
except OSError:
    pass
print(json.dumps({'closedAfter': time.time() - start}))
`);
    assert.ok(r.closedAfter < 3, `closed after ${r.closedAfter} s`);
  });
});

describe('TCP echo over TLS (--tcp-tls-port)', { skip: NO_PYTHON }, () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ tcpTlsPort: 0 });
  });
  after(() => t.close());

  it('the banner carries the TLS facts (SNI, version), then the echo runs inside TLS', async () => {
    const port = t.server.listener.ports.find((p) => p.row.name === 'tcp-tls')!.address.port;
    const r = await python<{ banner: Banner; back: string }>(`${PY_READ}
import ssl
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', ${port})), server_hostname='echo.example')
banner = json.loads(read_line(s))
s.sendall(b'inside tls')
print(json.dumps({'banner': banner, 'back': read_n(s, 10).decode()}))
`);
    assert.equal(r.banner.tls?.sni, 'echo.example');
    assert.match(r.banner.tls?.version ?? '', /^TLSv1\.[23]$/);
    assert.equal(r.banner.identity?.hostname, 'test-host');
    assert.equal(r.back, 'inside tls');
  });
});

describe('UDP echo', { skip: NO_PYTHON }, () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ host: '::', udpPort: 0, udpRatePerSource: 1000, udpMaxPps: 100_000 });
  });
  after(() => t.close());

  const PY_UDP = (family: string, host: string, sizes: string) => `
import socket, json
u = socket.socket(socket.${family}, socket.SOCK_DGRAM)
u.settimeout(3)
u.connect(('${host}', ${portOf(t, 'udp')}))
me = u.getsockname()
out = []
for n in ${sizes}:
    u.send(bytes([0x61 + (i % 26) for i in range(n)]))
    out.append(u.recv(65535).decode('latin1'))
print(json.dumps({'me': list(me[:2]), 'answers': out}))
`;

  it('a 512-byte datagram gets an envelope of at most 1,536 bytes naming peer and replica (IPv4)', async () => {
    const r = await python<{ me: [string, number]; answers: string[] }>(PY_UDP('AF_INET', '127.0.0.1', '[512]'));
    const answer = r.answers[0]!;
    assert.ok(Buffer.byteLength(answer, 'latin1') <= 1536, `${answer.length} bytes`);
    const e = JSON.parse(answer) as {
      protocol: string;
      remoteAddr: string;
      identity: { hostname: string };
      bytes: number;
      encoding: string;
      payload: string;
    };
    assert.equal(e.protocol, 'udp');
    assert.equal(e.remoteAddr, `${r.me[0]}:${r.me[1]}`);
    assert.equal(e.identity.hostname, 'test-host');
    assert.equal(e.bytes, 512);
    assert.equal(e.encoding, 'utf8');
    assert.equal(e.payload.length, 512);
  });

  it('small datagrams never get more than three times their size (IPv6): 1 byte gets at most 3', async () => {
    const sizes = [1, 2, 10, 40, 44, 48, 52, 56, 60, 64, 68, 72, 80, 100, 200];
    const r = await python<{ me: [string, number]; answers: string[] }>(
      PY_UDP('AF_INET6', '::1', JSON.stringify(sizes)),
    );
    r.answers.forEach((answer, i) => {
      const n = sizes[i]!;
      const size = Buffer.byteLength(answer, 'latin1');
      assert.ok(size <= 3 * n, `${n} bytes got ${size}`);
    });
    assert.equal(Buffer.byteLength(r.answers[0]!, 'latin1'), 1, 'the one byte itself');
    // Each answer is the full envelope, the envelope without its payload (too small
    // for it, large enough for the rest: it still names peer and replica), or the
    // exact bytes; from small to large sizes, in that order of preference reversed.
    const kinds = r.answers.map((answer, i) => {
      const sent = Array.from({ length: sizes[i]! }, (_, j) => String.fromCharCode(0x61 + (j % 26))).join('');
      if (answer === sent) return 'raw';
      const e = JSON.parse(answer) as {
        remoteAddr: string;
        identity: { hostname: string };
        truncated?: boolean;
        payload?: string;
      };
      assert.equal(e.remoteAddr, `[${r.me[0]}]:${r.me[1]}`);
      assert.equal(e.identity.hostname, 'test-host');
      if (e.truncated === true) {
        assert.equal(e.payload, undefined);
        return 'bare';
      }
      assert.equal(e.payload, sent);
      return 'full';
    });
    assert.deepEqual([...new Set(kinds)], ['raw', 'bare', 'full'], kinds.join(' '));
  });

  it('a datagram whose envelope would not fit in one datagram gets the envelope without its payload', async () => {
    const r = await python<{ size: number; answer: { bytes: number; truncated?: boolean; payload?: string } }>(`
import socket, json, os
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
u.sendto(os.urandom(60000), ('127.0.0.1', ${portOf(t, 'udp')}))
a = u.recv(65535)
print(json.dumps({'size': len(a), 'answer': json.loads(a)}))
`);
    // Base64 of 60,000 bytes alone is 80,000: over the 65,507 a UDP datagram can carry.
    assert.equal(r.answer.bytes, 60000);
    assert.equal(r.answer.truncated, true);
    assert.ok(r.size < 1000);
  });

  it('binary payloads come back as base64; node:dgram as a second client', async () => {
    const { createSocket } = await import('node:dgram');
    const u = createSocket('udp4');
    const msg = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 31 + 128) & 0xff));
    const answer = await new Promise<Buffer>((resolve) => {
      u.once('message', resolve);
      u.send(msg, portOf(t, 'udp'), '127.0.0.1');
    });
    u.close();
    const e = JSON.parse(answer.toString()) as { encoding: string; payload: string };
    assert.equal(e.encoding, 'base64');
    assert.ok(Buffer.from(e.payload, 'base64').equals(msg));
  });
});

describe('UDP echo: --udp-mode echo, per-source rate, global budget', { skip: NO_PYTHON }, () => {
  it('--udp-mode echo answers the exact bytes', async () => {
    const t = await startTestServer({ udpPort: 0, udpMode: 'echo' });
    try {
      const r = await python<{ same: boolean }>(`
import socket, json, os
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
data = os.urandom(1200)
u.sendto(data, ('127.0.0.1', ${portOf(t, 'udp')}))
print(json.dumps({'same': u.recv(65535) == data}))
`);
      assert.equal(r.same, true);
    } finally {
      await t.close();
    }
  });

  // Sends `n` datagrams from each listed source address as fast as it can, then
  // collects answers until a quiet half second.
  const flood = (port: number, sources: string[], n: number) => `
import socket, json, time
socks = []
for a in ${JSON.stringify(sources)}:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((a, 0))
    u.setblocking(False)
    socks.append(u)
sent = 0
for i in range(${n}):
    for u in socks:
        try:
            u.sendto(b'flood-datagram', ('127.0.0.1', ${port}))
            sent += 1
        except BlockingIOError:
            pass
got = 0
deadline = time.time() + 0.5
while time.time() < deadline:
    for u in socks:
        try:
            while True:
                u.recv(65535); got += 1; deadline = time.time() + 0.5
        except BlockingIOError:
            pass
    time.sleep(0.01)
print(json.dumps({'sent': sent, 'got': got}))
`;

  it('a flood from one source is held to --udp-rate-per-source, and the drops are counted', async () => {
    const t = await startTestServer({ udpPort: 0, udpRatePerSource: 50, accessLog: false });
    try {
      const r = await python<{ sent: number; got: number }>(flood(portOf(t, 'udp'), ['127.0.0.1'], 2000));
      assert.ok(r.got > 0 && r.got <= 100, `${r.got} answers to ${r.sent}`);
      const dropped = await metric(t, 'echo_udp_datagrams_total{result="dropped_source_rate"}');
      const answered = await metric(t, 'echo_udp_datagrams_total{result="answered"}');
      assert.equal(answered, r.got);
      assert.ok(dropped > 0 && dropped + answered <= r.sent);
    } finally {
      await t.close();
    }
  });

  it('a flood from many sources is held to --udp-max-pps in all, and the drops are counted', async () => {
    const t = await startTestServer({ udpPort: 0, udpRatePerSource: 100_000, udpMaxPps: 100 });
    try {
      const sources = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];
      const r = await python<{ sent: number; got: number }>(flood(portOf(t, 'udp'), sources, 1000));
      assert.ok(r.got > 0 && r.got <= 200, `${r.got} answers to ${r.sent}`);
      assert.ok((await metric(t, 'echo_udp_datagrams_total{result="dropped_budget"}')) > 0);
      // One log line per datagram would be a flood of its own: the lines are rate-limited.
      assert.ok(t.logs.messages('udp').length <= 40, `${t.logs.messages('udp').length} udp lines`);
    } finally {
      await t.close();
    }
  });
});
