// The rate control on the wire: a generated body and the echo sent at a byte rate
// over HTTP/1.1 (curl, a raw socket) and HTTP/2 (node:http2 as the client), refused
// when it would take past --max-delay or on an event stream, and a client leaving
// mid-body recorded once with nothing left in flight. Lower bounds on time only:
// the machine is shared, so no upper bound is asserted.
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { EchoClient, grpc } from '../grpc-client.ts';
import { requireTool, runTool, startTestServer, waitFor, type TestServer } from '../helpers.ts';

describe('bodies sent at a rate', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ maxDelayMs: 10_000, maxGeneratedSize: 1024 * 1024 });
  });
  after(() => t.close());

  it('curl: 300 KiB at 100 KiB/s takes about 3 s and arrives whole', async (ctx) => {
    if (!requireTool(ctx, 'curl')) return;
    const r = await runTool('curl', [
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{size_download} %{time_total}',
      `${t.url}/?echo_size=300KiB&echo_rate=100KiB`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const [code, size, seconds] = r.stdout.split(' ');
    assert.equal(code, '200');
    assert.equal(size, String(300 * 1024));
    assert.ok(Number(seconds) >= 2, `took ${seconds} s`);
  });

  it('a raw socket sees the echo arrive in slices over time, not at once', async () => {
    const body = 'b'.repeat(1500);
    const sock = connect(t.port, '127.0.0.1');
    const arrivals: { at: number; bytes: number }[] = [];
    const start = performance.now();
    let text = '';
    sock.on('data', (d: Buffer) => {
      arrivals.push({ at: performance.now() - start, bytes: d.length });
      text += d.toString('latin1');
    });
    sock.write(
      `POST /?echo_rate=1000&echo_format=json HTTP/1.1\r\nHost: h\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    await new Promise((resolve) => sock.once('close', resolve));
    assert.match(text, /^HTTP\/1\.1 200 /);
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(text)![1]);
    assert.equal(text.length - text.indexOf('\r\n\r\n') - 4, length, 'the whole echo');
    assert.ok(text.includes('bbbbbbbb'), 'the body is echoed');
    assert.ok(arrivals.length >= 5, `${arrivals.length} reads`);
    // At 1000 bytes/s an echo of more than 1500 bytes takes over 1.5 s.
    assert.ok(arrivals.at(-1)!.at >= 1400, `last byte after ${arrivals.at(-1)!.at} ms`);
  });

  it('HTTP/2: the generated body is paced on its stream', async () => {
    const session = h2connect(t.url);
    try {
      const start = performance.now();
      const { status, bytes } = await new Promise<{ status: number; bytes: number }>((resolve, reject) => {
        const req = session.request({ ':path': '/?echo_size=20KiB&echo_rate=10KiB' });
        let status = 0;
        let bytes = 0;
        req.on('response', (h) => {
          status = Number(h[':status']);
        });
        req.on('data', (c: Buffer) => {
          bytes += c.length;
        });
        req.on('end', () => resolve({ status, bytes }));
        req.on('error', reject);
        req.end();
      });
      assert.equal(status, 200);
      assert.equal(bytes, 20 * 1024);
      assert.ok(performance.now() - start >= 1500, 'about 2 s');
    } finally {
      session.close();
    }
  });

  it('refuses a rate that would take past --max-delay, with any delay, naming the control', async () => {
    for (const [path, headers, pattern] of [
      [
        '/?echo_size=1MiB&echo_rate=1KiB',
        {},
        /^invalid echo_rate: 1024 bytes per second takes .* over the maximum of 10s \(--max-delay\)/,
      ],
      ['/?echo_size=10KiB&echo_delay=9s', { 'X-Echo-Rate': '2KiB' }, /^invalid X-Echo-Rate: .* after a delay of 9s/],
      ['/?echo_format=json&echo_rate=10', {}, /^invalid echo_rate: 10 bytes per second takes/],
      ['/?echo_rate=0', {}, /^invalid echo_rate: 0 is below the minimum of 1/],
    ] as const) {
      const res = await fetch(t.url + path, { headers });
      assert.equal(res.status, 400, path);
      assert.match(await res.text(), pattern);
    }
  });

  it('refuses a rate on an event stream', async () => {
    const s = await startTestServer({ sse: true });
    try {
      const res = await fetch(`${s.url}/?echo_format=sse&echo_rate=1KiB`);
      assert.equal(res.status, 400);
      assert.match(await res.text(), /^invalid echo_rate: an event stream is not sent at a rate/);
    } finally {
      await s.close();
    }
  });

  it('a client that leaves mid-body is recorded once, as aborted, and nothing is left in flight', async () => {
    const before = t.logs.messages('request').length;
    const sock = connect(t.port, '127.0.0.1');
    sock.write('GET /?echo_size=100KiB&echo_rate=10KiB HTTP/1.1\r\nHost: h\r\n\r\n');
    await new Promise((resolve) => sock.once('data', resolve));
    sock.destroy();
    await waitFor(() => t.logs.messages('request').length > before, 5000, 'the access line');
    await waitFor(() => t.server.app.inFlight === 0, 5000, 'nothing in flight');
    const lines = t.logs.lines.filter((l) => l.msg === 'request').slice(before);
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.aborted, true);
  });

  it('gRPC refuses x-echo-rate with INVALID_ARGUMENT: a call is paced by its method', async () => {
    const c = new EchoClient(`127.0.0.1:${t.port}`);
    try {
      const { error } = await c.echo(Buffer.from('x'), { metadata: { 'x-echo-rate': '1KiB' } });
      assert.equal(error?.code, grpc.status.INVALID_ARGUMENT);
      assert.match(error.details, /x-echo-rate does not apply to gRPC calls/);
    } finally {
      c.close();
    }
  });

  it('HTTP/1.1: echo_chunks sends the body as that many chunks, the pauses between them on the socket', async () => {
    const sock = connect(t.port, '127.0.0.1');
    const arrivals: { at: number; text: string }[] = [];
    const start = performance.now();
    sock.on('data', (d: Buffer) => arrivals.push({ at: performance.now() - start, text: d.toString('latin1') }));
    sock.write(
      'GET /?echo_size=3000&echo_chunks=3&echo_chunk_delay=300ms HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    );
    await new Promise((resolve) => sock.once('close', resolve));
    const text = arrivals.map((a) => a.text).join('');
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.match(text, /\r\ntransfer-encoding: chunked\r\n/i);
    assert.doesNotMatch(text, /\r\ncontent-length:/i);
    assert.equal(text.split('\r\n3e8\r\n').length - 1, 3, 'three chunks of 1000 bytes');
    // Each piece in a read of its own, the pauses between them.
    const withData = arrivals.filter((a) => a.text.includes('3e8\r\n'));
    assert.equal(withData.length, 3, 'three reads carry a piece');
    assert.ok(
      withData[1]!.at - withData[0]!.at >= 250 && withData[2]!.at - withData[1]!.at >= 250,
      withData.map((a) => a.at).join(', '),
    );
  });

  it('HTTP/2: echo_chunks with X-Echo-Chunk-Delay arrives as separate DATA, apart', async () => {
    const session = h2connect(t.url);
    try {
      const times = await new Promise<number[]>((resolve, reject) => {
        const start = performance.now();
        const req = session.request({ ':path': '/?echo_format=json&echo_chunks=3', 'x-echo-chunk-delay': '300ms' });
        const at: number[] = [];
        req.on('data', () => at.push(performance.now() - start));
        req.on('end', () => resolve(at));
        req.on('error', reject);
        req.end();
      });
      assert.equal(times.length, 3, times.join(', '));
      assert.ok(times[2]! - times[0]! >= 500, times.join(', '));
    } finally {
      session.close();
    }
  });

  it('refuses chunks with a rate, on an event stream, or past --max-delay', async () => {
    for (const [path, pattern] of [
      ['/?echo_chunks=2&echo_rate=1KiB', /^invalid echo_chunks: a body is sent at a rate or in pieces, not both/],
      [
        '/?echo_chunks=100&echo_chunk_delay=200ms',
        /^invalid echo_chunks: 100 pieces 200ms apart take over the maximum of 10s \(--max-delay\)/,
      ],
      ['/?echo_chunks=3&echo_chunk_delay=2s&echo_delay=7s', /after a delay of 7s take over the maximum/],
      ['/?echo_chunks=1001', /^invalid echo_chunks: 1001 is out of range 1..1000/],
    ] as const) {
      const res = await fetch(t.url + path);
      assert.equal(res.status, 400, path);
      assert.match(await res.text(), pattern);
    }
    const s = await startTestServer({ sse: true });
    try {
      const res = await fetch(`${s.url}/?echo_format=sse&echo_chunks=2`);
      assert.equal(res.status, 400);
      assert.match(await res.text(), /^invalid echo_chunks: an event stream is sent in pieces already/);
    } finally {
      await s.close();
    }
  });
});
