// Connection faults on the wire, seen by real clients: curl's exit codes over
// HTTP/1.1 and HTTP/2, node:http2 as a raw client for the stream codes and the
// session living on, and the record each fault leaves (one access line, one count).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect } from 'node:net';
import { EchoClient, grpc } from '../grpc-client.ts';
import { requireTool, runTool, startTestServer, waitFor, type TestServer } from '../helpers.ts';

async function curl(args: string[]): Promise<{ code: number | null; bytes: number; stderr: string }> {
  const r = await runTool('curl', ['-s', '-S', '-o', '-', '--max-time', '10', ...args]);
  return { code: r.code, bytes: Buffer.byteLength(r.stdout, 'latin1'), stderr: r.stderr };
}

/** The access lines for a target, once there are `n` of them. */
async function accessLines(t: TestServer, uri: string, n = 1): Promise<Record<string, unknown>[]> {
  return waitFor(
    () => {
      const lines = t.logs.messages('request').filter((l) => l.uri === uri);
      return lines.length >= n ? lines : null;
    },
    3000,
    `${n} access line(s) for ${uri}`,
  );
}

/** One stream on an open session: its status (0 if none) and, if reset, the RST_STREAM code. */
function stream(
  session: ClientHttp2Session,
  path: string,
): Promise<{ status: number; rstCode: number | null; bytes: number }> {
  return new Promise((resolve) => {
    const req = session.request({ ':path': path });
    let status = 0;
    let bytes = 0;
    req.on('response', (h) => {
      status = Number(h[':status']);
    });
    req.on('data', (c: Buffer) => {
      bytes += c.length;
    });
    req.on('error', () => {});
    req.on('close', () => resolve({ status, rstCode: req.rstCode === 0 && status !== 0 ? null : req.rstCode, bytes }));
    req.end();
  });
}

describe('connection faults', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ maxGeneratedSize: 8 * 1024 * 1024, h2c: true });
  });
  after(() => t.close());

  it('HTTP/1.1: reset is an RST before any byte (curl 56), close an empty reply (curl 52)', async (ctx) => {
    if (!requireTool(ctx, 'curl')) return;
    const reset = await curl([`${t.url}/r?echo_fault=reset`]);
    assert.equal(reset.code, 56, reset.stderr);
    assert.equal(reset.bytes, 0);
    const close = await curl([`${t.url}/c?echo_fault=close`]);
    assert.equal(close.code, 52, close.stderr);
    const [r] = await accessLines(t, '/r?echo_fault=reset');
    assert.equal(r!.fault, 'reset');
    assert.equal(r!.aborted, true);
    assert.equal(r!.status, 0, 'nothing was sent');
    const [c] = await accessLines(t, '/c?echo_fault=close');
    assert.equal(c!.fault, 'close');
  });

  it('HTTP/1.1: truncate sends the head and SIZE bytes then closes (curl 18); reset-after ends in RST (curl 56)', async (ctx) => {
    if (!requireTool(ctx, 'curl')) return;
    const truncated = await curl([`${t.url}/t?echo_size=1MiB&echo_fault=truncate:4KiB`]);
    assert.equal(truncated.code, 18, truncated.stderr);
    assert.equal(truncated.bytes, 4096);
    const resetAfter = await curl([`${t.url}/ra?echo_size=1MiB&echo_fault=reset-after:4KiB`]);
    assert.equal(resetAfter.code, 56, resetAfter.stderr);
    assert.ok(resetAfter.bytes <= 4096, `${resetAfter.bytes} bytes`);
    const [line] = await accessLines(t, '/t?echo_size=1MiB&echo_fault=truncate:4KiB');
    assert.equal(line!.status, 200);
    assert.equal(line!.bytesOut, 4096);
    assert.equal(line!.fault, 'truncate:4096');
    assert.equal(line!.aborted, true);
  });

  it('HTTP/1.1: a cut past the first write, and a body shorter than SIZE cut after its last byte', async (ctx) => {
    if (!requireTool(ctx, 'curl')) return;
    // A generated body goes in 1 MiB writes: the first passes whole, the second is cut.
    const past = `/p?echo_size=3MiB&echo_fault=truncate:${1536 * 1024}`;
    const cut = await curl([`${t.url}${past}`]);
    assert.equal(cut.code, 18, cut.stderr);
    assert.equal(cut.bytes, 1536 * 1024);
    // Two writes pass whole and the end carries nothing: the cut follows the last byte.
    // (truncate: its FIN lets every byte arrive, where reset-after's RST may discard some.)
    const short = '/s?echo_size=2MiB&echo_fault=truncate:4MiB';
    const whole = await curl([`${t.url}${short}`]);
    assert.equal(whole.code, 0, 'the whole declared body came, then the close');
    assert.equal(whole.bytes, 2 * 1024 * 1024, whole.stderr);
    const [p] = await accessLines(t, past);
    assert.equal(p!.bytesOut, 1536 * 1024);
    assert.equal(p!.aborted, true);
    const [s] = await accessLines(t, short);
    assert.equal(s!.status, 200);
    assert.equal(s!.bytesOut, 2 * 1024 * 1024);
    assert.equal(s!.fault, `truncate:${4 * 1024 * 1024}`);
    assert.equal(s!.aborted, true);
  });

  it('truncates the echo itself, not only generated bodies', async () => {
    const got = await new Promise<string>((resolve) => {
      let text = '';
      const s = connect(t.port, '127.0.0.1', () =>
        s.write('GET /e?echo_fault=truncate:10 HTTP/1.1\r\nHost: h\r\n\r\n'),
      );
      s.on('data', (c: Buffer) => {
        text += c.toString('latin1');
      });
      s.on('close', () => resolve(text));
      s.on('error', () => {});
    });
    const [head, body] = got.split('\r\n\r\n');
    assert.match(head!, /^HTTP\/1\.1 200 /);
    assert.ok(Number(/content-length: (\d+)/i.exec(head!)![1]) > 10, 'the head announces the whole echo');
    assert.equal(body!.length, 10);
  });

  it('HTTP/2: reset is a stream error (curl 92) with a selectable code, and the connection lives on', async (ctx) => {
    if (!requireTool(ctx, 'curl')) return;
    const r = await curl(['--http2-prior-knowledge', `${t.url}/h2r?echo_fault=reset`]);
    assert.equal(r.code, 92, r.stderr);
    const session = h2connect(t.url);
    session.on('error', () => {});
    try {
      const reset = await stream(session, '/?echo_fault=reset:ENHANCE_YOUR_CALM');
      assert.equal(reset.status, 0);
      assert.equal(reset.rstCode, 11);
      const internal = await stream(session, '/?echo_fault=reset');
      assert.equal(internal.rstCode, 2, 'INTERNAL_ERROR by default');
      const next = await stream(session, '/?after=reset');
      assert.equal(next.status, 200, 'the next stream on the same connection is answered');
      assert.equal(session.destroyed, false);
    } finally {
      session.close();
    }
  });

  it('nghttp: one stream reset with CANCEL, the next on the same connection 200', async (ctx) => {
    if (!requireTool(ctx, 'nghttp')) return;
    const r = await runTool('nghttp', ['-nv', `${t.url}/?echo_fault=reset:CANCEL`, `${t.url}/next`]);
    assert.match(r.stdout, /recv RST_STREAM frame[^\n]*\n\s*\(error_code=CANCEL\(0x08\)\)/, r.stdout);
    assert.match(r.stdout, /recv \(stream_id=\d+\) :status: 200/, r.stdout);
    assert.equal((r.stdout.match(/send HEADERS frame/g) ?? []).length, 2, 'both requests on one connection');
  });

  it('HTTP/2: truncate sends SIZE bytes then resets the stream; goaway answers then closes the session gracefully', async () => {
    const session = h2connect(t.url);
    session.on('error', () => {});
    let goaway = -1;
    session.on('goaway', (code: number) => {
      goaway = code;
    });
    try {
      const cut = await stream(session, '/?echo_size=1MiB&echo_fault=truncate:4KiB');
      assert.equal(cut.status, 200);
      assert.ok(cut.bytes <= 4096, `${cut.bytes}`);
      assert.equal(cut.rstCode, 2);
      const last = await stream(session, '/?echo_fault=goaway');
      assert.equal(last.status, 200, 'the stream that asked for the GOAWAY is answered');
      await waitFor(() => goaway === 0, 3000, 'GOAWAY with NO_ERROR');
      await waitFor(() => session.closed || session.destroyed, 3000, 'the session closed');
    } finally {
      session.destroy();
    }
  });

  it('HTTP/2: a cut past the first write, and a body shorter than SIZE reset after its last byte', async () => {
    const session = h2connect(t.url);
    session.on('error', () => {});
    try {
      const past = `/p2?echo_size=3MiB&echo_fault=truncate:${1536 * 1024}`;
      const cut = await stream(session, past);
      assert.equal(cut.status, 200);
      assert.ok(cut.bytes <= 1536 * 1024, `${cut.bytes}`);
      assert.equal(cut.rstCode, 2);
      const short = '/s2?echo_size=2MiB&echo_fault=reset-after:4MiB';
      const whole = await stream(session, short);
      assert.equal(whole.status, 200);
      assert.ok(whole.bytes <= 2 * 1024 * 1024, `${whole.bytes}`);
      assert.equal(whole.rstCode, 2, 'no END_STREAM: the stream is reset after the whole body');
      const [p] = await accessLines(t, past);
      assert.equal(p!.bytesOut, 1536 * 1024);
      assert.equal(p!.aborted, true);
      const [s] = await accessLines(t, short);
      assert.equal(s!.bytesOut, 2 * 1024 * 1024);
      assert.equal(s!.aborted, true);
    } finally {
      session.close();
    }
  });

  it('weighted: reset:1,none:1 gives both outcomes', async () => {
    const session = h2connect(t.url);
    session.on('error', () => {});
    try {
      // The server's random choice cannot be steered from here: both outcomes occur over enough tries.
      const seen = new Set<string>();
      for (let i = 0; i < 200 && seen.size < 2; i++) {
        const s = await stream(session, `/?echo_fault=reset:1,none:1&i=${i}`);
        seen.add(s.status === 200 ? 'ok' : 'reset');
      }
      assert.deepEqual([...seen].sort(), ['ok', 'reset']);
    } finally {
      session.close();
    }
  });

  it('refuses a fault on an event stream and goaway over HTTP/1.1 with 400 naming the control', async () => {
    const sse = await startTestServer({ sse: true });
    try {
      const res = await fetch(`${sse.url}/?echo_format=sse&echo_fault=reset`);
      assert.equal(res.status, 400);
      assert.match(await res.text(), /echo_fault .*event stream/);
    } finally {
      await sse.close();
    }
    const res = await fetch(`${t.url}/?echo_fault=goaway`);
    assert.equal(res.status, 400);
    assert.match(await res.text(), /echo_fault=goaway needs HTTP\/2/);
    for (const bad of ['bogus', 'reset:NOPE', 'truncate', 'truncate:9GiB', 'close:1:2', 'reset:CANCEL:0']) {
      const r = await fetch(`${t.url}/?echo_fault=${encodeURIComponent(bad)}`);
      assert.equal(r.status, 400, bad);
      assert.match(await r.text(), /^invalid echo_fault: /, bad);
    }
  });

  it('counts every fault once in the metrics', async () => {
    const m = await startTestServer({ h2c: true });
    try {
      for (let i = 0; i < 3; i++) {
        await fetch(`${m.url}/?echo_fault=reset`).catch(() => {});
      }
      await accessLines(m, '/?echo_fault=reset', 3);
      const text = await (await fetch(`${m.url}/metrics`)).text();
      const faulted = /echo_http_requests_total\{method="GET",status="([^"]+)"\} (\d+)/g;
      let total = 0;
      for (const [, status, n] of text.matchAll(faulted)) if (status !== '200') total += Number(n);
      assert.equal(total, 3, text);
      assert.equal(m.logs.messages('request').filter((l) => l.fault === 'reset').length, 3);
    } finally {
      await m.close();
    }
  });
});

describe('connection faults on gRPC', () => {
  it("x-echo-fault reset resets the call's stream: grpc-js sees the status of its code, and the next call succeeds", async () => {
    const t = await startTestServer();
    const c = new EchoClient(t.url.replace('http://', ''));
    try {
      const internal = await c.echo(undefined, { metadata: { 'x-echo-fault': 'reset' } });
      assert.equal(internal.error?.code, grpc.status.INTERNAL, internal.error?.details);
      const calm = await c.echo(undefined, { metadata: { 'x-echo-fault': 'reset:ENHANCE_YOUR_CALM' } });
      assert.equal(calm.error?.code, grpc.status.RESOURCE_EXHAUSTED, calm.error?.details);
      const ok = await c.echo(undefined, {});
      assert.equal(ok.error, null);
      const bad = await c.echo(undefined, { metadata: { 'x-echo-fault': 'truncate:10' } });
      assert.equal(bad.error?.code, grpc.status.INVALID_ARGUMENT);
      assert.match(bad.error?.details ?? '', /x-echo-fault/);
      const lines = await waitFor(
        () => {
          const l = t.logs.messages('request').filter((e) => e.fault !== undefined);
          return l.length >= 2 ? l : null;
        },
        3000,
        'two faulted calls logged',
      );
      assert.deepEqual(
        lines.map((l) => [l.fault, l.grpcStatus, l.aborted]),
        [
          ['reset', 13, true],
          ['reset:ENHANCE_YOUR_CALM', 8, true],
        ],
      );
    } finally {
      c.close();
      await t.close();
    }
  });
});
