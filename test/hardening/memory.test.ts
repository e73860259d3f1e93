// Buffers a client fills are bounded: a WebSocket peer that never reads, an h2c
// upgrade whose first frame claims 16 MiB, and the in-flight budget across protocols.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as h2connect } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sleep, startTestServer, waitFor, type TestServer } from '../helpers.ts';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

/** The real binary in a child process, so its memory can be measured apart from the test's. */
async function spawnServer(args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [MAIN, '--port', '0', '--host', '127.0.0.1', '--no-access-log', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  await waitFor(() => out.includes('echo-server started'), 10_000);
  const url = (JSON.parse(out.split('\n')[0]!) as { listeners: string[] }).listeners[0]!;
  return { child, port: Number(new URL(url).port) };
}

/** A WebSocket client on a raw socket: handshake, then frames, and it never reads. */
async function rawWebSocket(port: number): Promise<Socket> {
  const s = connect({ port, host: '127.0.0.1' });
  await once(s, 'connect');
  s.write(
    'GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  const [first] = (await once(s, 'data')) as [Buffer];
  assert.match(first.toString('latin1'), /^HTTP\/1\.1 101 /);
  s.pause(); // from here on nothing is read: the server's echoes pile up on its side
  return s;
}

/** One masked binary frame; a zero masking key leaves the payload as is. */
function binaryFrame(payload: Buffer): Buffer {
  const head = Buffer.alloc(14);
  head[0] = 0x82;
  head[1] = 0x80 | 127;
  head.writeBigUInt64BE(BigInt(payload.length), 2);
  return Buffer.concat([head, payload]); // bytes 10..13: the zero key
}

describe('memory bounds', () => {
  let proc: { child: ChildProcess; port: number };
  before(async () => {
    proc = await spawnServer([]);
  });
  after(async () => {
    proc.child.kill('SIGTERM');
    await once(proc.child, 'exit');
  });

  it('holds a WebSocket peer that sends 1 MB messages and never reads to a bounded buffer', async () => {
    const before = rssMiB(proc.child.pid!);
    const s = await rawWebSocket(proc.port);
    s.on('error', () => {});
    const frame = binaryFrame(Buffer.alloc(1_000_000, 0x61));
    // 50 messages a second (under the default limit of 100) for 4 seconds, writing
    // only when the socket takes more, so the test itself holds nothing.
    let offered = 0;
    const until = performance.now() + 4000;
    while (performance.now() < until && !s.destroyed) {
      if (s.writableLength === 0) {
        s.write(frame);
        offered += frame.length;
      }
      await sleep(20); // pacing: about 50 messages a second
    }
    const grown = rssMiB(proc.child.pid!) - before;
    s.destroy();
    assert.ok(offered >= 4_000_000, `the peer could send ${offered} bytes`);
    assert.ok(
      grown < 48,
      `server RSS grew by ${grown.toFixed(1)} MiB while the peer offered ${(offered / 1e6).toFixed(0)} MB`,
    );
  });

  it('closes an h2c upgrade whose first frame claims 16 MiB instead of buffering it', async () => {
    const s = connect({ port: proc.port, host: '127.0.0.1' });
    await once(s, 'connect');
    s.on('error', () => {});
    s.write(
      'GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n',
    );
    const [head] = (await once(s, 'data')) as [Buffer];
    assert.match(head.toString('latin1'), /^HTTP\/1\.1 101 /);
    const closed = new Promise<void>((resolve) => s.once('close', () => resolve()));
    s.write(
      Buffer.concat([
        Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
        Buffer.from([0xff, 0xff, 0xff, 0x04, 0, 0, 0, 0, 0]),
      ]),
    );
    for (let i = 0; i < 16 && !s.destroyed; i++) s.write(Buffer.alloc(256 * 1024));
    const timeout = sleep(3000).then(() => 'open'); // a bound on waiting for the close, not a pause
    assert.equal(
      await Promise.race([closed.then(() => 'closed'), timeout]),
      'closed',
      'the server must close the connection',
    );
    s.destroy();
  });
});

describe('the in-flight budget', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ maxInFlight: 3, maxDelayMs: 2000 });
  });
  after(() => t.close());

  it('answers 503 with Retry-After over HTTP/1.1 beyond --max-in-flight', async () => {
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        fetch(`${t.url}/held-${i}?echo_delay=600ms`).then(async (r) => ({
          status: r.status,
          retry: r.headers.get('retry-after'),
          body: await r.text(),
        })),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 200, 503, 503]);
    const refused = results.find((r) => r.status === 503)!;
    assert.equal(refused.retry, '1');
    assert.match(refused.body, /--max-in-flight/);
    assert.equal((await fetch(`${t.url}/after`)).status, 200);
  });

  it('refuses HTTP/2 streams beyond --max-in-flight with REFUSED_STREAM', async () => {
    const session = h2connect(t.url);
    const outcomes = await Promise.all(
      Array.from(
        { length: 5 },
        (_, i) =>
          new Promise<string>((resolve) => {
            const req = session.request({ ':path': `/h2-${i}?echo_delay=600ms` });
            req.on('response', (h) => resolve(String(h[':status'])));
            req.on('close', () => resolve(`rst ${req.rstCode}`));
            req.on('error', () => {});
            req.resume();
            req.end();
          }),
      ),
    );
    session.close();
    assert.deepEqual(outcomes.sort(), ['200', '200', '200', 'rst 7', 'rst 7']);
  });

  it('counts WebSocket connections against the same budget', async () => {
    const held = await Promise.all(
      Array.from({ length: 3 }, () => fetch(`${t.url}/?echo_delay=800ms`).then((r) => r.status)),
    );
    assert.deepEqual(held, [200, 200, 200]);
    const blockers = Array.from({ length: 3 }, () => fetch(`${t.url}/?echo_delay=800ms`));
    await waitFor(() => t.server.app.inFlight >= 3);
    const s = connect({ port: t.port, host: '127.0.0.1' });
    s.write(
      'GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    const [answer] = (await once(s, 'data')) as [Buffer];
    assert.match(answer.toString('latin1'), /^HTTP\/1\.1 503 /);
    s.destroy();
    await Promise.all(blockers);
  });
});

describe('gRPC message decoding', () => {
  /** Peak resident memory of a process so far (VmHWM), in MiB. */
  function peakMiB(pid: number): number {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m![1]) / 1024;
  }

  it('a message of millions of unknown fields is skipped without keeping them', async () => {
    const { child, port } = await spawnServer([]);
    try {
      // 9 MB of two-byte unknown varint fields (field 15, value 0): kept, each is an object.
      const message = Buffer.alloc(9_000_000);
      for (let i = 0; i < message.length; i += 2) message[i] = 0x78;
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(message.length, 1);
      const before = peakMiB(child.pid!);
      const session = h2connect(`http://127.0.0.1:${port}`);
      const req = session.request({
        ':method': 'POST',
        ':path': '/echoserver.v1.Echo/Echo',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      let status: unknown;
      req.on('trailers', (h: Record<string, unknown>) => {
        status = h['grpc-status'];
      });
      req.resume();
      req.end(Buffer.concat([prefix, message]));
      await once(req, 'close');
      session.close();
      assert.equal(status, '0');
      // The body itself is buffered once (9 MB, twice while framed); kept unknown fields cost ~900 MB.
      const grew = peakMiB(child.pid!) - before;
      assert.ok(grew < 200, `peak RSS grew by ${grew.toFixed(0)} MiB decoding one message`);
    } finally {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
  });
});

describe('gRPC messages buffered by all calls', () => {
  it('refuses a message with RESOURCE_EXHAUSTED once held calls would buffer more than the budget', async () => {
    const t = await startTestServer();
    const session = h2connect(t.url);
    try {
      // Each call announces a 9 MB message and sends a byte of it, then holds: without a shared
      // bound every call may buffer up to --max-body-size (100 such calls took 1 GB of RSS).
      const prefix = Buffer.alloc(6);
      prefix.writeUInt32BE(9_000_000, 1);
      const statuses: Promise<unknown>[] = [];
      for (let i = 0; i < 5; i++) {
        const req = session.request({
          ':method': 'POST',
          ':path': '/echoserver.v1.Echo/Echo',
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        req.resume();
        req.on('error', () => {});
        statuses.push(
          new Promise((resolve) => {
            req.on('response', (h) => {
              if (h['grpc-status'] !== undefined) resolve(h['grpc-status']);
            });
            req.on('trailers', (h: Record<string, unknown>) => {
              resolve(h['grpc-status']);
            });
            req.on('close', () => resolve('closed'));
          }),
        );
        req.write(prefix);
      }
      // The default budget (32 MiB, twice --max-body-size at least) holds three of them.
      const refused = await Promise.race([
        statuses[3]!,
        new Promise((resolve) => setTimeout(() => resolve('still held'), 5000)),
      ]);
      assert.equal(refused, '8');
      assert.equal(await statuses[4], '8');
    } finally {
      session.destroy();
      await t.close();
    }
  });
});
