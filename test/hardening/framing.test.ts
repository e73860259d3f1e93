// Nothing may be written to a connection whose response has begun except that
// response: errors about later pipelined requests wait for their turn.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { rawRequest, startTestServer, type TestServer } from '../helpers.ts';

/** Splits a byte stream (latin1) into HTTP/1.1 responses framed by Content-Length; throws on anything else. */
function splitResponses(stream: string): { status: number; body: string }[] {
  const out: { status: number; body: string }[] = [];
  let rest = stream;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    assert.ok(end > 0, `an incomplete head: ${JSON.stringify(rest.slice(0, 80))}`);
    const head = rest.slice(0, end);
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(head);
    assert.ok(m, `not a status line: ${JSON.stringify(head.slice(0, 80))}`);
    const length = /\r\ncontent-length: (\d+)/i.exec(head);
    assert.ok(length, 'every answer here has a Content-Length');
    const bodyEnd = end + 4 + Number(length[1]);
    assert.ok(rest.length >= bodyEnd, 'a body cut short');
    out.push({ status: Number(m[1]), body: rest.slice(end + 4, bodyEnd) });
    rest = rest.slice(bodyEnd);
  }
  return out;
}

describe('pipelined errors never corrupt a response', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ maxDelayMs: 2000 });
  });
  after(() => t.close());

  it('answers a malformed request after a 4 MiB generated body, not inside it', async () => {
    const raw = await rawRequest(t.port, 'GET /?echo_size=4MiB HTTP/1.1\r\nHost: h\r\n\r\nHELLO\r\n\r\n', 5000);
    const responses = splitResponses(raw);
    assert.deepEqual(
      responses.map((r) => r.status),
      [200, 400],
    );
    assert.equal(responses[0]!.body.length, 4 * 1024 * 1024);
  });

  it('answers pipelined requests in order, then the malformed one, even when the first is delayed', async () => {
    const raw = await rawRequest(
      t.port,
      'GET /one?echo_delay=300ms HTTP/1.1\r\nHost: h\r\n\r\nGET /two HTTP/1.1\r\nHost: h\r\n\r\nG@T / HTTP/1.1\r\n\r\n',
      3000,
    );
    const responses = splitResponses(raw);
    assert.deepEqual(
      responses.map((r) => r.status),
      [200, 200, 400],
    );
    assert.match(responses[0]!.body, /^RequestURI: \/one\?/m);
    assert.match(responses[1]!.body, /^RequestURI: \/two$/m);
  });

  // An upgrade pipelined behind an unfinished answer is not taken: switching protocols
  // first would put that answer inside the WebSocket or HTTP/2 bytes.
  const upgrades: [string, string][] = [
    [
      'WebSocket',
      'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n',
    ],
    ['h2c', 'Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n'],
  ];
  for (const [name, headers] of upgrades) {
    it(`answers the earlier request whole and closes, instead of taking a ${name} upgrade pipelined behind it`, async () => {
      const started = performance.now();
      const raw = await rawRequest(
        t.port,
        `GET /first?echo_delay=300ms HTTP/1.1\r\nHost: h\r\n\r\nGET /up HTTP/1.1\r\nHost: h\r\n${headers}\r\n`,
        5000,
      );
      const responses = splitResponses(raw); // a 101 (no Content-Length) or any byte after the answer fails here
      assert.deepEqual(
        responses.map((r) => r.status),
        [200],
      );
      assert.match(responses[0]!.body, /^RequestURI: \/first\?/m);
      assert.ok(performance.now() - started < 4000, 'the connection closed after the answer');
    });
  }

  it('sends nothing after the answer to a request with Connection: close', async () => {
    const raw = await rawRequest(
      t.port,
      'GET /first HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /second HTTP/1.1\r\nHost: h\r\n\r\n',
      2000,
    );
    const responses = splitResponses(raw);
    assert.deepEqual(
      responses.map((r) => r.status),
      [200],
    );
  });
});
