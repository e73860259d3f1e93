// Protocol details the RFCs fix: interim responses, Host, header counts, and
// controls on event streams.
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { headComplete, rawRequest, startTestServer, waitFor, type TestServer } from '../helpers.ts';

function h2status(origin: string, headers: Record<string, string>): Promise<number | string> {
  return new Promise((resolve) => {
    const session = h2connect(origin);
    session.on('error', () => resolve('session error'));
    const req = session.request(headers);
    req.on('response', (h) => resolve(Number(h[':status'])));
    req.on('close', () => {
      resolve(`rst ${req.rstCode}`);
      session.close();
    });
    req.on('error', () => {});
    req.resume();
    req.end();
  });
}

describe('protocol details', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ healthControl: false });
  });
  after(() => t.close());

  it('sends 103 Early Hints over HTTP/1.1 before the final answer', async () => {
    const raw = await rawRequest(t.port, 'GET /?echo_status=103 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
    assert.match(raw, /^HTTP\/1\.1 103 Early Hints\r\n[^]*?\r\n\r\nHTTP\/1\.1 200 /);
  });

  for (const code of [100, 102, 103]) {
    it(`sends no ${code} to an HTTP/1.0 client (RFC 9110, section 15.2), only the final answer`, async () => {
      const raw = await rawRequest(t.port, `GET /?echo_status=${code} HTTP/1.0\r\nHost: h\r\n\r\n`);
      assert.match(raw, /^HTTP\/1\.1 200 /);
      assert.equal(raw.match(/HTTP\/1\.1 1\d\d /g), null);
    });
  }

  const badHosts: [string, string][] = [
    ['two Host headers', 'Host: a\r\nHost: b\r\n'],
    ['an invalid Host', 'Host: a/b@c\r\n'],
    ['an empty port list', 'Host: a:b\r\n'],
  ];
  for (const [name, headers] of badHosts) {
    it(`answers ${name} with 400`, async () => {
      assert.match(
        await rawRequest(t.port, `GET / HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`),
        /^HTTP\/1\.1 400 /,
      );
    });
  }
  it('accepts a host with a port, an IPv6 literal, and HTTP/1.0 without Host', async () => {
    for (const head of [
      'GET / HTTP/1.1\r\nHost: example.com:8080\r\n',
      'GET / HTTP/1.1\r\nHost: [::1]:8080\r\n',
      'GET / HTTP/1.0\r\n',
    ]) {
      assert.match(await rawRequest(t.port, `${head}Connection: close\r\n\r\n`), /^HTTP\/1\.1 200 /, head);
    }
  });

  it('answers more than --max-header-count fields with 431 naming that limit, on HTTP/1.1 and HTTP/2, with a log line', async () => {
    const many = Array.from({ length: 250 }, (_, i) => `X-H${i}: v\r\n`).join('');
    const raw = await rawRequest(t.port, `GET / HTTP/1.1\r\nHost: h\r\n${many}Connection: close\r\n\r\n`);
    assert.match(raw, /^HTTP\/1\.1 431 /);
    assert.match(raw, /--max-header-count 200/);
    const fields: Record<string, string> = { ':path': '/' };
    for (let i = 0; i < 250; i++) fields[`x-h${i}`] = 'v';
    assert.equal(await h2status(t.url, fields), 431);
    const fewer: Record<string, string> = { ':path': '/' };
    for (let i = 0; i < 150; i++) fewer[`x-h${i}`] = 'v';
    assert.equal(await h2status(t.url, fewer), 200, '150 fields are within the default of 200');
    await waitFor(() => t.logs.lines.some((l) => l.limit === '--max-header-count'));
  });

  it('refuses a weighted status with an extra colon (200:1:2)', async () => {
    assert.equal((await fetch(`${t.url}/?echo_status=200:1:2`)).status, 400);
  });

  it('applies echo_status and echo_header to an event stream', async () => {
    const raw = await rawRequest(
      t.port,
      'GET /?echo_status=503&echo_header=X-Stream:%20yes HTTP/1.1\r\nHost: h\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n',
      { until: headComplete },
    );
    assert.match(raw, /^HTTP\/1\.1 503 /);
    assert.match(raw, /\r\nX-Stream: yes\r\n/i);
    assert.match(raw, /\r\ncontent-type: text\/event-stream/i);
  });
});
