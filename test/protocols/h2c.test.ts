import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as h2connect } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import type { Echo } from '../../src/echo/model.ts';
import {
  h2request,
  headComplete,
  rawRequest,
  requireTool,
  responseComplete,
  runTool,
  startTestServer,
  type TestServer,
} from '../helpers.ts';

describe('h2c on the plain port', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ maxBodySize: 1024 });
  });
  after(() => t.close());

  it('serves HTTP/2 with prior knowledge next to HTTP/1.1', async () => {
    const { status, body } = await h2request(t.url, '/h2?x=1');
    assert.equal(status, 200);
    const e = JSON.parse(body) as Echo;
    assert.equal(e.proto, 'HTTP/2.0');
    assert.equal(e.pseudoHeaders[':scheme'], 'http');
    assert.equal(e.path, '/h2');
    assert.equal(e.tls, null);
    assert.match(await (await fetch(t.url)).text(), /^Proto: HTTP\/1\.1$/m);
  });

  it('reads bodies and applies limits on HTTP/2 streams', async () => {
    const ok = JSON.parse((await h2request(t.url, '/', { method: 'POST', body: 'hello' })).body) as Echo;
    assert.equal(ok.body.data, 'hello');
    assert.equal((await h2request(t.url, '/', { method: 'POST', body: 'x'.repeat(2000) })).status, 413);
  });

  it('answers Expect: 100-continue with 100 before the body, then echoes the body', async () => {
    const session = h2connect(t.url);
    try {
      const req = session.request({
        ':path': '/continue',
        ':method': 'POST',
        expect: '100-continue',
        accept: 'application/json',
      });
      const seen: number[] = [];
      req.on('headers', (h) => seen.push(Number(h[':status'])));
      // The body is sent only once the server said continue, as a careful client does.
      req.once('continue', () => req.end('after continue'));
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      const deadline = new Promise<never>((_, reject) => {
        setTimeout(() => reject(new Error('no 100 and no answer within 5 s')), 5000).unref();
      });
      const [head] = (await Promise.race([once(req, 'response'), deadline])) as [Record<string, string | number>];
      await once(req, 'end');
      assert.deepEqual(seen, [100]);
      assert.equal(head[':status'], 200);
      assert.equal((JSON.parse(body) as Echo).body.data, 'after continue');
    } finally {
      session.close();
    }
  });

  it('sends 1xx controls as HTTP/2 informational responses', async () => {
    for (const code of [100, 102, 103]) {
      const informational = await new Promise<number[]>((resolve, reject) => {
        const session = h2connect(t.url);
        const seen: number[] = [];
        const req = session.request({ ':path': `/?echo_status=${code}` });
        req.on('headers', (h) => seen.push(Number(h[':status'])));
        req.on('response', (h) => seen.push(Number(h[':status'])));
        req.on('end', () => {
          session.close();
          resolve(seen);
        });
        req.on('error', reject);
        req.resume();
        req.end();
      });
      assert.deepEqual(informational, [code, 200], `status ${code}`);
    }
    assert.equal((await h2request(t.url, '/')).status, 200, 'still serving');
  });

  it('answers 204 and 304 without a body over HTTP/2 and HTTP/1.1', async () => {
    for (const code of [204, 304]) {
      const h2 = await h2request(t.url, `/?echo_status=${code}&echo_header=X-A:1`);
      assert.deepEqual([h2.status, h2.body], [code, '']);
      const h1 = await rawRequest(t.port, `GET /?echo_status=${code} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`);
      assert.match(h1, new RegExp(`^HTTP/1\\.1 ${code} `));
      assert.doesNotMatch(h1, /Content-Length/i);
    }
  });

  it('answers curl --http2-prior-knowledge and upgrades curl --http2 (Upgrade: h2c)', async (ctx) => {
    if (!requireTool(ctx, 'curl')) return;
    const prior = await runTool('curl', ['-s', '-D', '-', '--http2-prior-knowledge', `${t.url}/prior`]);
    assert.match(prior.stdout, /^HTTP\/2 200/m);
    const pseudo = JSON.parse(/^PseudoHeaders: (.*)$/m.exec(prior.stdout)![1]!) as Record<string, string>;
    assert.deepEqual(pseudo, {
      ':method': 'GET',
      ':path': '/prior',
      ':scheme': 'http',
      ':authority': new URL(t.url).host,
    });
    const up = await runTool('curl', ['-s', '-D', '-', '--http2', `${t.url}/upgraded?q=1`, '-H', 'X-Custom: yes']);
    assert.match(up.stdout, /^HTTP\/1\.1 101 Switching Protocols/m);
    assert.match(up.stdout, /^HTTP\/2 200/m);
    assert.match(up.stdout, /^Proto: HTTP\/2\.0$/m);
    assert.match(up.stdout, /^RequestURI: \/upgraded\?q=1$/m);
    // The connection's facts reach the upgraded request (through node:http2's wrapper of the bridge).
    assert.match(up.stdout, /^RemoteAddr: 127\.0\.0\.1:\d+$/m);
    assert.match(up.stdout, /"x-custom":\["yes"\]/);
    assert.doesNotMatch(
      up.stdout,
      /"http2-settings"|"upgrade"/,
      'connection headers of the upgrade are not part of the request',
    );
    // The next request on the same upgraded connection goes out as stream 3.
    const two = await runTool('curl', ['-s', '--http2', `${t.url}/a`, `${t.url}/b`]);
    assert.match(two.stdout, /RequestURI: \/a[\s\S]*RequestURI: \/b/);
    assert.equal(two.stdout.match(/^RemoteAddr: 127\.0\.0\.1:\d+$/gm)?.length, 2, 'stream 3 knows its peer too');
  });

  it('switches to h2c with a 101 that carries the common headers and no body framing', async () => {
    // HTTP2-Settings: a SETTINGS payload in base64url (the one curl sends).
    const head = await rawRequest(
      t.port,
      'GET /switched HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n' +
        'Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n',
      { until: headComplete },
    );
    const lines = head.slice(0, head.indexOf('\r\n\r\n')).split('\r\n');
    assert.equal(lines[0], 'HTTP/1.1 101 Switching Protocols');
    assert.deepEqual(lines.slice(1).sort(), [
      'Cache-Control: no-store',
      'Connection: Upgrade',
      'Upgrade: h2c',
      'X-Content-Type-Options: nosniff',
    ]);
  });

  it('serves nghttp with prior knowledge and with Upgrade', async (ctx) => {
    if (!requireTool(ctx, 'nghttp')) return;
    const prior = await runTool('nghttp', ['-v', `${t.url}/nghttp`]);
    assert.equal(prior.code, 0, prior.stderr);
    assert.match(prior.stdout, /Proto: HTTP\/2\.0/);
    assert.match(prior.stdout, /:status: 200/);
    const up = await runTool('nghttp', ['-u', '-v', `${t.url}/nghttp-upgrade`]);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /HTTP Upgrade response/);
    assert.match(up.stdout, /RequestURI: \/nghttp-upgrade/);
  });

  it('holds up under h2load, every stream answered', async (ctx) => {
    if (!requireTool(ctx, 'h2load')) return;
    const r = await runTool('h2load', ['-n', '400', '-c', '4', '-m', '10', `${t.url}/load`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /requests: 400 total, 400 started, 400 done, 400 succeeded, 0 failed, 0 errored/);
    assert.match(r.stdout, /status codes: 400 2xx/);
  });

  it('can be turned off: the preface is then just a bad HTTP/1 request', async () => {
    const off = await startTestServer({ h2c: false });
    try {
      const res = await rawRequest(off.port, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      assert.match(res, /^HTTP\/1\.1 (400|505) /);
      const up = await rawRequest(
        off.port,
        'GET /x HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n',
        { until: responseComplete },
      );
      assert.match(up, /^HTTP\/1\.1 200 OK/, 'the Upgrade header is ignored and the request echoed');
    } finally {
      await off.close();
    }
  });
});
