// The compress control on the wire: curl decodes gzip and br to the echo over
// HTTP/1.1 and HTTP/2, node:zlib decodes zstd and deflate, auto follows the
// client's q-values, a coding the client refuses is a 406, an event stream and
// the pieces/rate controls are refused, and --compress auto negotiates by default.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { inflateSync, zstdDecompressSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { requireTool, runTool, startTestServer, type TestServer } from '../helpers.ts';

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('compressed echoes', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  for (const [coding, http2] of [
    ['gzip', false],
    ['br', false],
    ['gzip', true],
    ['br', true],
  ] as const) {
    it(`curl --compressed decodes ${coding} to the echo over ${http2 ? 'HTTP/2' : 'HTTP/1.1'}`, async (ctx) => {
      if (!requireTool(ctx, 'curl')) return;
      const r = await runTool('curl', [
        '-sS',
        '--compressed',
        ...(http2 ? ['--http2-prior-knowledge'] : []),
        '-D',
        '-',
        '-H',
        'Accept: application/json',
        `${t.url}/hello?echo_compress=${coding}`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const [head, body] = r.stdout.split(/\r\n\r\n/, 2) as [string, string];
      assert.match(head, new RegExp(`content-encoding: ${coding}`, 'i'));
      assert.match(head, /vary: Accept-Encoding/i);
      assert.equal((JSON.parse(body) as { path: string }).path, '/hello');
    });
  }

  it('zstd and deflate decode with node:zlib; Content-Length is the compressed size', async () => {
    for (const [coding, decode] of [
      ['zstd', zstdDecompressSync],
      ['deflate', inflateSync],
    ] as const) {
      const r = await get(t.port, `/z?echo_compress=${coding}`, {
        Accept: 'application/json',
        'Accept-Encoding': coding,
      });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-encoding'], coding);
      assert.equal(Number(r.headers['content-length']), r.body.length);
      assert.equal((JSON.parse(decode(r.body).toString()) as { path: string }).path, '/z');
    }
  });

  it('auto takes the highest q-value, skips q=0, honours * and identity', async () => {
    const coding = async (ae: string) =>
      (await get(t.port, '/?echo_compress=auto', { 'Accept-Encoding': ae })).headers['content-encoding'];
    assert.equal(await coding('gzip;q=0.5, br;q=0.9'), 'br');
    assert.equal(await coding('br;q=0, gzip'), 'gzip');
    assert.equal(await coding('*;q=0.1, zstd;q=0, br;q=0'), 'gzip');
    assert.equal(await coding('identity, gzip;q=0.5'), undefined);
    assert.equal(await coding('identity;q=1, gzip;q=0'), undefined);
    const plain = await get(t.port, '/?echo_compress=auto', { 'Accept-Encoding': 'gzip;q=0' });
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.vary, 'Accept-Encoding');
  });

  it('a named coding the client does not accept is a 406', async () => {
    const r = await get(t.port, '/?echo_compress=br', { 'Accept-Encoding': 'gzip, br;q=0' });
    assert.equal(r.status, 406);
    assert.match(r.body.toString(), /does not accept br/);
  });

  it('HEAD gets the compressed head without a body', async () => {
    const r = await get(t.port, '/?echo_compress=gzip', { 'Accept-Encoding': 'gzip' }, 'HEAD');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.equal(r.body.length, 0);
  });

  it('refused with 400 on an event stream, with echo_chunks, echo_rate and echo_size', async () => {
    const sse = await get(t.port, '/?echo_compress=gzip', { Accept: 'text/event-stream' });
    assert.equal(sse.status, 400);
    assert.match(sse.body.toString(), /echo_compress.*event stream/);
    for (const extra of ['echo_chunks=2', 'echo_rate=1MiB', 'echo_size=1KiB']) {
      const r = await get(t.port, `/?echo_compress=gzip&${extra}`);
      assert.equal(r.status, 400, extra);
      assert.match(r.body.toString(), /echo_compress/);
    }
    const bad = await get(t.port, '/?echo_compress=lzma');
    assert.equal(bad.status, 400);
  });
});

describe('--compress auto', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ compress: 'auto' });
  });
  after(() => t.close());

  it('compresses an echo as Accept-Encoding prefers without the control, and not otherwise', async () => {
    const r = await get(t.port, '/', { Accept: 'application/json', 'Accept-Encoding': 'deflate' });
    assert.equal(r.headers['content-encoding'], 'deflate');
    assert.equal((JSON.parse(inflateSync(r.body).toString()) as { method: string }).method, 'GET');
    const plain = await get(t.port, '/');
    assert.equal(plain.headers['content-encoding'], undefined);
    const chunked = await get(t.port, '/?echo_chunks=2', { 'Accept-Encoding': 'gzip' });
    assert.equal(chunked.status, 200);
    assert.equal(chunked.headers['content-encoding'], undefined);
  });
});
