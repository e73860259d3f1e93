// Delay and size distributions: weighted choices and a jitter, picked once per
// exchange with the injected random source, and reported back in the answer's head
// (or a gRPC call's metadata) so a test can correlate what it measured.
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { EchoClient } from '../grpc-client.ts';
import { startTestServer, type TestServer } from '../helpers.ts';

/** An HTTP/2 request: the status, the head and the body's length. */
function h2get(
  origin: string,
  path: string,
): Promise<{ status: number; headers: Record<string, unknown>; bytes: number }> {
  return new Promise((resolve, reject) => {
    const session = h2connect(origin);
    session.on('error', reject);
    const req = session.request({ ':path': path });
    let headers: Record<string, unknown> = {};
    let bytes = 0;
    req.on('response', (h) => {
      headers = h;
    });
    req.on('data', (c: Buffer) => {
      bytes += c.length;
    });
    req.on('end', () => {
      session.close();
      resolve({ status: Number(headers[':status']), headers, bytes });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('delay and size distributions', () => {
  let t: TestServer;
  let nextRandom = 0;
  before(async () => {
    t = await startTestServer({ maxDelayMs: 2000, maxGeneratedSize: 64 * 1024 }, { random: () => nextRandom });
  });
  after(() => t.close());

  it('picks a delay by weight and says which in X-Echo-Chosen-Delay', async () => {
    nextRandom = 0.1; // the first choice (weights 1 and 1)
    let res = await fetch(`${t.url}/?echo_delay=0ms:1,300ms:1`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-echo-chosen-delay'), '0');
    await res.text();
    nextRandom = 0.9;
    const start = performance.now();
    res = await fetch(`${t.url}/?echo_delay=0ms:1,300ms:1`);
    await res.text();
    assert.equal(res.headers.get('x-echo-chosen-delay'), '300');
    assert.ok(performance.now() - start >= 290, 'the chosen delay was waited');
  });

  it('spreads a delay by its jitter, either side of the value', async () => {
    for (const [random, chosen] of [
      [0, '50'],
      [0.5, '100'],
      [0.999, '150'],
    ] as const) {
      nextRandom = random;
      const res = await fetch(`${t.url}/`, { headers: { 'X-Echo-Delay': '100ms~50ms' } });
      await res.text();
      assert.equal(res.headers.get('x-echo-chosen-delay'), chosen, `random ${random}`);
    }
  });

  it('reports a single delay too, and no chosen header without the control', async () => {
    let res = await fetch(`${t.url}/?echo_delay=20ms`);
    await res.text();
    assert.equal(res.headers.get('x-echo-chosen-delay'), '20');
    res = await fetch(`${t.url}/`);
    await res.text();
    assert.equal(res.headers.get('x-echo-chosen-delay'), null);
    assert.equal(res.headers.get('x-echo-chosen-size'), null);
  });

  it('picks a generated size by weight, over HTTP/1.1 and HTTP/2', async () => {
    nextRandom = 0.9; // weights 9 and 1: 0.9 * 10 = 9 falls on the second
    const res = await fetch(`${t.url}/?echo_size=1KiB:9,4KiB:1`);
    assert.equal((await res.arrayBuffer()).byteLength, 4096);
    assert.equal(res.headers.get('x-echo-chosen-size'), '4096');
    nextRandom = 0.5;
    const h2 = await h2get(t.url, '/?echo_size=1KiB:9,4KiB:1&echo_delay=5ms:1,10ms:1');
    assert.equal(h2.status, 200);
    assert.equal(h2.bytes, 1024);
    assert.equal(h2.headers['x-echo-chosen-size'], '1024');
    assert.equal(h2.headers['x-echo-chosen-delay'], '10');
  });

  it('refuses distributions it cannot honour, naming the control', async () => {
    for (const [query, message] of [
      ['echo_delay=100ms~200ms', /invalid echo_delay: the jitter of 100ms~200ms is larger than its value/],
      ['echo_delay=1500ms~1s', /invalid echo_delay: 1500ms~1s may exceed the maximum/],
      ['echo_delay=10ms:0', /invalid echo_delay: 0 is out of range 1..1000/],
      ['echo_delay=10ms:1:2', /invalid echo_delay: "10ms:1:2" is not a value or value:weight/],
      ['echo_delay=3s:1,1s:1', /invalid echo_delay: 3s exceeds the maximum of 2s/],
      ['echo_size=1KiB~10', /invalid echo_size: "1KiB~10" is not a single value/],
      ['echo_size=1KiB:1,1MiB:1', /invalid echo_size: 1MiB exceeds the maximum/],
      [`echo_delay=${Array(21).fill('1ms').join(',')}`, /invalid echo_delay: at most 20 choices/],
    ] as const) {
      const res = await fetch(`${t.url}/?${query}`);
      assert.equal(res.status, 400, query);
      assert.match(await res.text(), message);
    }
  });

  it('gRPC: the chosen delay and size travel in the response metadata', async () => {
    const c = new EchoClient(`127.0.0.1:${t.port}`);
    try {
      nextRandom = 0.9;
      const { response, error, headers } = await c.echo(Buffer.from('x'), {
        metadata: { 'x-echo-delay': '1ms:1,30ms:1', 'x-echo-size': '10:1,20:1' },
      });
      assert.equal(error, null);
      assert.equal(response!.payload!.data.length, 20);
      assert.deepEqual(headers!.get('x-echo-chosen-delay'), ['30']);
      assert.deepEqual(headers!.get('x-echo-chosen-size'), ['20']);
    } finally {
      c.close();
    }
  });
});
