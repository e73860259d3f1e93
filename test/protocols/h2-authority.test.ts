// HTTP/2 requests without :authority and Host (HAProxy's h2 health check sends one)
// are answered, logged and counted, on h2c and TLS, whether the client sends its
// first request at once or waits for the server's SETTINGS first; nghttp2 used to
// reset them (PROTOCOL_ERROR) before the app saw them.
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import type { Echo } from '../../src/echo/model.ts';
import { huffmanEncode } from '../../src/transport/h2-authority.ts';
import { startTestServer, waitFor, type TestServer } from '../helpers.ts';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK literal without indexing, new name, neither string Huffman-coded. */
const literal = (name: string, value: string) =>
  Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);

interface Answer {
  status: number | null;
  reset: number | null;
  body: string;
}

/**
 * One request on stream 1 of a fresh connection, from raw frames: sent with the
 * preface, or (`waitForSettings`) only once the server's SETTINGS arrived, as
 * HAProxy does. The status is read from the static-table index of `:status`.
 */
function rawH2(socket: Socket, block: Buffer, waitForSettings: boolean | 'silent'): Promise<Answer> {
  return new Promise((resolve) => {
    const request = frame(0x1, 0x5, 1, block);
    const answer: Answer = { status: null, reset: null, body: '' };
    let buf = Buffer.alloc(0);
    let sent = !waitForSettings;
    const STATUS: Record<number, number> = { 0x88: 200, 0x8c: 400, 0x8d: 404, 0x8e: 500 };
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
        const length = buf.readUIntBE(0, 3);
        const [type, flags] = [buf[3]!, buf[4]!];
        const payload = buf.subarray(9, 9 + length);
        buf = buf.subarray(9 + length);
        if (type === 0x4 && (flags & 1) === 0) {
          const ack = frame(0x4, 0x1, 0, Buffer.alloc(0));
          if (waitForSettings === 'silent' && !sent)
            socket.write(Buffer.concat([PREFACE, frame(0x4, 0, 0, Buffer.alloc(0)), ack, request]));
          else socket.write(sent ? ack : Buffer.concat([ack, request]));
          sent = true;
        } else if (type === 0x1) {
          answer.status = STATUS[payload[0]!] ?? -1;
        } else if (type === 0x0) {
          answer.body += payload.toString();
          if ((flags & 1) !== 0) socket.destroy();
        } else if (type === 0x3) {
          answer.reset = payload.readUInt32BE(0);
          socket.destroy();
        }
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve(answer));
    if (waitForSettings !== 'silent')
      socket.write(Buffer.concat([PREFACE, frame(0x4, 0, 0, Buffer.alloc(0)), ...(waitForSettings ? [] : [request])]));
    setTimeout(() => socket.destroy(), 3000);
  });
}

const NO_AUTHORITY = (path: string, scheme: string, extra: Buffer[] = []) =>
  Buffer.concat([
    literal(':method', 'GET'),
    literal(':scheme', scheme),
    literal(':path', path),
    literal('accept', 'application/json'),
    ...extra,
  ]);

describe('HTTP/2 requests without :authority and Host', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ https: true, httpsPort: 0, logOpsRequests: true });
  });
  after(() => t.close());

  const plain = () => connect({ port: t.port, host: '127.0.0.1' });
  const tls = () =>
    tlsConnect({
      port: t.server.listener.httpsAddress!.port,
      host: '127.0.0.1',
      ALPNProtocols: ['h2'],
      rejectUnauthorized: false,
    });
  const rows = [
    ['h2c, request with the preface', plain, 'http', false],
    ['h2c, request after the server SETTINGS (HAProxy)', plain, 'http', true],
    ['TLS h2, request with the preface', tls, 'https', false],
    ['TLS h2, request after the server SETTINGS', tls, 'https', true],
    ['TLS h2, silent until the server SETTINGS', tls, 'https', 'silent'],
  ] as const;

  for (const [name, open, scheme, wait] of rows) {
    it(`${name}: the health check gets 200 and the echo shows no :authority, each logged and counted`, async () => {
      const logged = () => t.logs.lines.filter((l) => l.msg === 'request').length;
      const before = logged();
      const probe = await rawH2(open(), NO_AUTHORITY('/readyz', scheme), wait);
      assert.deepEqual([probe.status, probe.reset, probe.body], [200, null, 'ready\n']);
      const echo = await rawH2(open(), NO_AUTHORITY('/echo', scheme), wait);
      assert.equal(echo.status, 200);
      const e = JSON.parse(echo.body) as Echo;
      assert.deepEqual(
        e.pseudoHeaders,
        { ':method': 'GET', ':scheme': scheme, ':path': '/echo' },
        'exactly what was sent',
      );
      assert.equal(e.headers.host, undefined);
      await waitFor(() => logged() === before + 2, 2000, 'one access line each');
      await waitFor(() => t.server.app.inFlight === 0);
    });
  }

  it('leaves a request that names its host alone (a Huffman-coded literal `host` included)', async () => {
    const host = huffmanEncode('host');
    const block = NO_AUTHORITY('/with-host', 'http', [
      Buffer.concat([Buffer.from([0x00, 0x80 | host.length]), host, Buffer.from([9]), Buffer.from('echo.test')]),
    ]);
    const answer = await rawH2(plain(), block, false);
    assert.equal(answer.status, 200);
    const e = JSON.parse(answer.body) as Echo;
    assert.equal(e.pseudoHeaders[':authority'], undefined);
    assert.deepEqual(e.headers.host, ['echo.test']);
  });

  it('encodes the names it looks for as nghttp2 does (RFC 7541 Huffman codes)', async () => {
    // node:http2's client (nghttp2) Huffman-codes these values, being shorter that way.
    const seen: Buffer[] = [];
    const server = (await import('node:net')).createServer((s) => s.on('data', (d: Buffer) => seen.push(d)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as { port: number };
    const session = h2connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    session
      .request({ 'x-a': ':authority', 'x-b': 'host' })
      .on('error', () => {})
      .end();
    await waitFor(() => Buffer.concat(seen).length > 60);
    session.destroy();
    server.close();
    const wire = Buffer.concat(seen);
    for (const text of [':authority', 'host']) {
      const coded = huffmanEncode(text);
      assert.ok(
        wire.includes(Buffer.concat([Buffer.from([0x80 | coded.length]), coded])),
        `${text} as nghttp2 codes it`,
      );
    }
  });

  it('still answers a request with :authority on the first and later streams', async () => {
    const s = h2connect(t.url);
    for (let i = 0; i < 3; i++) {
      const status = await new Promise<number>((resolve) => {
        const r = s.request({ ':path': '/' });
        r.on('response', (h) => resolve(Number(h[':status'])));
        r.resume();
      });
      assert.equal(status, 200);
    }
    s.close();
  });
});
