// One deadline for a connection's front stage: the PROXY header, the TLS handshake
// and the first request (or first HTTP/2 stream) must all arrive within
// --headers-timeout of the connect, on every listener.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { get } from 'node:https';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../helpers.ts';

const HEADERS_TIMEOUT = 1000;

/** Connects and resolves once the server has closed the connection, with what it sent and when. */
async function held(port: number, script: (s: Socket) => void): Promise<{ ms: number; received: string }> {
  const socket = connect({ port, host: '127.0.0.1' });
  await once(socket, 'connect');
  const start = performance.now();
  let received = '';
  socket.on('data', (c: Buffer) => {
    received += c.toString('latin1');
  });
  socket.on('error', () => {});
  const closed = once(socket, 'close');
  const guard = setTimeout(() => socket.destroy(), 10_000); // the test fails on `ms`, never hangs
  script(socket);
  await closed;
  clearTimeout(guard);
  return { ms: performance.now() - start, received };
}

const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

describe('the front deadline', () => {
  let t: TestServer;
  let tlsPort: number;
  let proxied: TestServer;
  before(async () => {
    t = await startTestServer({
      https: true,
      httpsPort: 0,
      headersTimeoutMs: HEADERS_TIMEOUT,
      requestTimeoutMs: 5000,
      maxConnections: 6,
    });
    tlsPort = t.server.listener.httpsAddress!.port;
    proxied = await startTestServer({
      proxyProtocol: ['http'],
      headersTimeoutMs: HEADERS_TIMEOUT,
      requestTimeoutMs: 5000,
    });
  });
  after(async () => {
    await t.close();
    await proxied.close();
  });

  it('closes TCP connections that never start the TLS handshake, so they cannot lock HTTPS out', async () => {
    // As many silent connections as --max-connections allows, less one for the check below.
    const silent = await Promise.all(Array.from({ length: 5 }, () => held(tlsPort, () => {})));
    for (const s of silent) assert.ok(s.ms < HEADERS_TIMEOUT + 1500, `closed after ${s.ms.toFixed(0)} ms`);
    const status = await new Promise<number>((resolve, reject) => {
      get(`https://127.0.0.1:${tlsPort}/after`, { rejectUnauthorized: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject);
    });
    assert.equal(status, 200);
  });

  it('closes a connection that stops in the middle of the TLS handshake', async () => {
    const r = await held(tlsPort, (s) => s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])));
    assert.ok(r.ms < HEADERS_TIMEOUT + 1500, `closed after ${r.ms.toFixed(0)} ms`);
  });

  it('closes an HTTP/2 session that sends the preface and settings but never a stream', async () => {
    const r = await held(t.port, (s) => s.write(Buffer.concat([Buffer.from(PREFACE), EMPTY_SETTINGS])));
    assert.ok(r.ms < HEADERS_TIMEOUT + 1500, `closed after ${r.ms.toFixed(0)} ms`);
  });

  it('counts the PROXY header and the request head against one deadline, answering 408', async () => {
    const r = await held(proxied.port, (s) => {
      // Each stage alone stays under the timeout; together they do not.
      const head = 'GET / HTTP/1.1\r\nHost: h\r\nX-Slow: yes\r\n\r\n';
      let trickle: NodeJS.Timeout | undefined;
      setTimeout(() => {
        s.write('PROXY TCP4 192.0.2.1 192.0.2.2 1000 80\r\n');
        let n = 0;
        trickle = setInterval(() => {
          if (s.destroyed || n >= head.length - 1) clearInterval(trickle);
          else s.write(head[n++]!);
        }, 100);
      }, HEADERS_TIMEOUT * 0.8);
      s.once('close', () => clearInterval(trickle));
    });
    assert.ok(r.ms < HEADERS_TIMEOUT + 600, `closed after ${r.ms.toFixed(0)} ms`);
    assert.match(r.received, /^HTTP\/1\.1 408 /);
  });

  it('lets a prompt client through on every listener', async () => {
    assert.equal((await fetch(`${t.url}/prompt`)).status, 200);
  });
});
