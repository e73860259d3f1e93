// gRPC on the echo's own port, with @grpc/grpc-js as the independent client (and
// node:http2 as a raw one where the wire itself is the point): the record of a call,
// its controls, its limits, health, the streaming kinds, and the access line.
import assert from 'node:assert/strict';
import { request as h1request } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { describe, it } from 'node:test';
import { Code, ConnectError, createClient } from '@connectrpc/connect';
import { createGrpcWebTransport } from '@connectrpc/connect-web';
import { EchoClient, collect, create, EchoRequestSchema, grpc } from '../grpc-client.ts';
import { fromBinary } from '@bufbuild/protobuf';
import { Echo, EchoResponseSchema } from '../../src/adapters/grpc/gen/echoserver/v1/echo_pb.js';
import { HealthCheckResponse_ServingStatus as Serving } from '../../src/adapters/grpc/gen/grpc/health/v1/health_pb.js';
import { startTestServer, waitFor, type TestServer } from '../helpers.ts';

const target = (t: TestServer) => `127.0.0.1:${t.port}`;
const requestLines = (t: TestServer) => t.logs.messages('request');
/** The access lines once there are `n` of them. */
const linesWhen = (t: TestServer, n: number) =>
  waitFor(() => (requestLines(t).length === n ? requestLines(t) : null), 5000, `${n} access lines`);

/** A raw HTTP/2 gRPC call: the response headers, the body bytes and the trailers, as the server sent them. */
function rawCall(
  t: TestServer,
  path: string,
  message: Buffer | null,
  headers: Record<string, string> = {},
): Promise<{ headers: Record<string, unknown>; body: Buffer; trailers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const session = h2connect(t.url);
    session.on('error', reject);
    const req = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...headers,
    });
    let head: Record<string, unknown> = {};
    let trailers: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => {
      head = h;
    });
    req.on('trailers', (h: Record<string, unknown>) => {
      trailers = h;
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('close', () => {
      session.close();
      resolve({ headers: head, body: Buffer.concat(chunks), trailers });
    });
    req.on('error', () => {});
    if (message === null) {
      req.end();
      return;
    }
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(message.length, 1);
    req.end(Buffer.concat([prefix, message]));
  });
}

/** One HTTP/1.1 request by node:http (which, unlike fetch, sends Origin as given): status, headers, body. */
function h1(
  t: TestServer,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: Buffer,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = h1request({ host: '127.0.0.1', port: t.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('gRPC', () => {
  it('unary Echo returns the record of the call: peer, :authority, :path, metadata as sent, request id, deadline, replica', async () => {
    const t = await startTestServer();
    const c = new EchoClient(target(t));
    try {
      const { response, error, headers } = await c.echo(Buffer.from('hello'), {
        metadata: { 'x-trace': ['one', 'two'], 'x-request-id': 'grpc-req-1', 'token-bin': Buffer.from([0, 1, 2, 255]) },
        deadlineMs: 30_000,
      });
      assert.equal(error, null);
      const r = response!;
      assert.match(r.remoteAddr, /^127\.0\.0\.1:\d+$/);
      assert.equal(r.client!.ip, '127.0.0.1');
      assert.equal(r.method, 'POST');
      assert.equal(r.requestUri, '/echoserver.v1.Echo/Echo');
      assert.equal(r.path, '/echoserver.v1.Echo/Echo');
      assert.equal(r.proto, 'HTTP/2.0');
      assert.equal(r.authority, `127.0.0.1:${t.port}`);
      assert.equal(r.pseudoHeaders[':path'], '/echoserver.v1.Echo/Echo');
      assert.equal(r.requestId, 'grpc-req-1');
      assert.equal(headers!.get('x-request-id')[0], 'grpc-req-1');
      // In the order sent; a -bin value as base64, as it travels.
      const md = r.metadata.filter((m) => m.name.startsWith('x-') || m.name.endsWith('-bin'));
      assert.deepEqual(
        md.map((m) => [m.name, m.value]),
        [
          ['x-trace', 'one'],
          ['x-trace', 'two'],
          ['x-request-id', 'grpc-req-1'],
          ['token-bin', Buffer.from([0, 1, 2, 255]).toString('base64')],
        ],
      );
      assert.ok(r.metadata.some((m) => m.name === 'content-type' && m.value === 'application/grpc'));
      assert.match(r.grpcTimeout, /^\d+[HMSmun]$/);
      assert.ok(r.deadlineMs > 20_000n && r.deadlineMs <= 30_000n, `deadline ${r.deadlineMs}`);
      assert.equal(r.server!.hostname, 'test-host');
      assert.deepEqual(r.server!.addresses, ['192.0.2.10']);
      assert.equal(Buffer.from(r.payload!.data).toString(), 'hello');
      assert.equal(r.payload!.bytes, 5n);
      // One access line, with the gRPC status beside the HTTP status that carried it.
      const lines = await linesWhen(t, 1);
      assert.equal(lines[0]!.uri, '/echoserver.v1.Echo/Echo');
      assert.equal(lines[0]!.status, 200);
      assert.equal(lines[0]!.grpcStatus, 0);
      assert.equal(lines[0]!.reqId, 'grpc-req-1');
      const metrics = await (await fetch(`${t.url}/metrics`)).text();
      assert.match(metrics, /^echo_grpc_calls_total\{code="OK"\} 1$/m);
    } finally {
      c.close();
      await t.close();
    }
  });

  it('x-echo-status 14 ends the call UNAVAILABLE; a malformed control is INVALID_ARGUMENT naming it', async () => {
    const t = await startTestServer();
    const c = new EchoClient(target(t));
    try {
      const unavailable = await c.echo(undefined, { metadata: { 'x-echo-status': '14' } });
      assert.equal(unavailable.error?.code, grpc.status.UNAVAILABLE);
      assert.match(unavailable.error?.details ?? '', /x-echo-status asked for UNAVAILABLE/);
      const bad = await c.echo(undefined, { metadata: { 'x-echo-status': '99' } });
      assert.equal(bad.error?.code, grpc.status.INVALID_ARGUMENT);
      assert.match(bad.error?.details ?? '', /x-echo-status/);
      const badDelay = await c.echo(undefined, { metadata: { 'x-echo-delay': 'soon' } });
      assert.equal(badDelay.error?.code, grpc.status.INVALID_ARGUMENT);
      assert.match(badDelay.error?.details ?? '', /X-Echo-Delay/);
      const lines = await linesWhen(t, 3);
      assert.deepEqual(
        lines.map((l) => l.grpcStatus),
        [14, 3, 3],
      );
      assert.match(await (await fetch(`${t.url}/metrics`)).text(), /^echo_grpc_calls_total\{code="UNAVAILABLE"\} 1$/m);
    } finally {
      c.close();
      await t.close();
    }
  });

  it('x-echo-size sets the response payload, x-echo-header a response metadata entry, x-echo-delay waits', async () => {
    const t = await startTestServer();
    const c = new EchoClient(target(t));
    try {
      const start = performance.now();
      const { response, error, headers } = await c.echo(undefined, {
        metadata: { 'x-echo-size': '1KiB', 'x-echo-header': 'X-Shard: 7', 'x-echo-delay': '100ms' },
      });
      assert.equal(error, null);
      assert.ok(performance.now() - start >= 95);
      assert.equal(response!.payload!.data.length, 1024);
      assert.equal(headers!.get('x-shard')[0], '7');
    } finally {
      c.close();
      await t.close();
    }
  });

  it('x-echo-trailer adds trailing metadata, whatever the status, by the x-echo-header allowlist', async () => {
    const t = await startTestServer();
    const c = new EchoClient(target(t));
    try {
      const ok = await c.echo(undefined, {
        metadata: { 'x-echo-trailer': ['X-Shard: 7', 'x-cost: 3', 'X-Shard: 8'], 'x-echo-header': 'X-Head: h' },
      });
      assert.equal(ok.error, null);
      // Two fields on the wire; Node's HTTP/2 client (under grpc-js) joins a repeated field with ', '.
      assert.deepEqual(ok.trailers!.get('x-shard'), ['7, 8']);
      assert.deepEqual(ok.trailers!.get('x-cost'), ['3']);
      assert.deepEqual(ok.trailers!.get('x-head'), []);
      assert.deepEqual(ok.headers!.get('x-shard'), []);
      // A retry policy reads the trailers of the failed attempt.
      const failed = await c.echo(undefined, {
        metadata: { 'x-echo-status': '14', 'x-echo-trailer': 'X-Retry-Hint: later' },
      });
      assert.equal(failed.error?.code, grpc.status.UNAVAILABLE);
      assert.deepEqual(failed.trailers!.get('x-retry-hint'), ['later']);
      // The same allowlist as x-echo-header: gRPC's own trailers and browser-facing headers are refused.
      for (const bad of ['grpc-status: 0', 'Set-Cookie: a=b', 'X-Echo-Status: 14', 'no colon']) {
        const r = await c.echo(undefined, { metadata: { 'x-echo-trailer': bad } });
        assert.equal(r.error?.code, grpc.status.INVALID_ARGUMENT, bad);
        assert.match(r.error?.details ?? '', /X-Echo-Trailer/, bad);
      }
      const tooMany = await c.echo(undefined, {
        metadata: { 'x-echo-trailer': Array.from({ length: 33 }, (_, i) => `X-T${i}: v`) },
      });
      assert.equal(tooMany.error?.code, grpc.status.INVALID_ARGUMENT);
      assert.match(tooMany.error?.details ?? '', /at most \d+ trailers/);
      // gRPC-Web: in the trailer frame.
      const res = await fetch(`${t.url}/echoserver.v1.Echo/Echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/grpc-web', 'x-grpc-web': '1', 'x-echo-trailer': 'X-Shard: 9' },
        body: Buffer.alloc(5),
      });
      const body = Buffer.from(await res.arrayBuffer());
      let at = 0;
      let trailerText = '';
      while (at + 5 <= body.length) {
        const length = body.readUInt32BE(at + 1);
        if (body[at] === 0x80) trailerText = body.subarray(at + 5, at + 5 + length).toString('latin1');
        at += 5 + length;
      }
      assert.equal(trailerText, 'x-shard:9\r\ngrpc-status:0\r\n');
    } finally {
      c.close();
      await t.close();
    }
  });

  it('x-echo-trailer is ignored under --no-controls', async () => {
    const t = await startTestServer({ controls: false });
    const c = new EchoClient(target(t));
    try {
      const r = await c.echo(undefined, { metadata: { 'x-echo-trailer': 'X-Shard: 7' } });
      assert.equal(r.error, null);
      assert.deepEqual(r.trailers!.get('x-shard'), []);
    } finally {
      c.close();
      await t.close();
    }
  });

  it('a message over --max-body-size is RESOURCE_EXHAUSTED, and the server keeps serving', async () => {
    const t = await startTestServer({ maxBodySize: 1024 });
    const c = new EchoClient(target(t));
    try {
      const big = await c.echo(Buffer.alloc(4096, 1));
      assert.equal(big.error?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(big.error?.details ?? '', /--max-body-size/);
      const ok = await c.echo(Buffer.alloc(100, 1));
      assert.equal(ok.error, null);
      const lines = await linesWhen(t, 2);
      assert.deepEqual(
        lines.map((l) => l.grpcStatus),
        [8, 0],
      );
    } finally {
      c.close();
      await t.close();
    }
  });

  it('the response head: content type, encoding, request id, date, x-echo-header names lower-cased and repeatable', async () => {
    const t = await startTestServer();
    try {
      const session = h2connect(t.url);
      const head = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const req = session.request({
          ':method': 'POST',
          ':path': '/echoserver.v1.Echo/Echo',
          'content-type': 'application/grpc',
          te: 'trailers',
          'x-request-id': 'head-1',
          'x-echo-header': ['X-Shard: 7', 'X-Shard: 8', 'X-Other: o'],
        });
        req.on('response', resolve);
        req.on('error', reject);
        req.resume();
        req.end(Buffer.from([0, 0, 0, 0, 0]));
      });
      session.close();
      assert.equal(head[':status'], 200);
      assert.equal(head['content-type'], 'application/grpc');
      assert.equal(head['grpc-accept-encoding'], 'identity');
      assert.equal(head['x-request-id'], 'head-1');
      assert.ok(!Number.isNaN(Date.parse(String(head.date))), `date ${String(head.date)}`);
      assert.equal(head['x-shard'], '7, 8');
      assert.equal(head['x-other'], 'o');
    } finally {
      await t.close();
    }
  });

  it('an EchoRequest in any valid encoding is echoed; a malformed one is INVALID_ARGUMENT', async () => {
    const t = await startTestServer();
    const bytes = (...parts: (number[] | string)[]) =>
      Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
    const valid: [string, Buffer, string][] = [
      ['empty', Buffer.alloc(0), ''],
      ['the usual form', bytes([0x0a, 3], 'abc'), 'abc'],
      ['an unknown field first', bytes([0x10, 5], [0x0a, 2], 'hi'), 'hi'],
      ['an unknown field after', bytes([0x0a, 2], 'hi', [0x1a, 1], 'z'), 'hi'],
      ['the payload twice: the last counts', bytes([0x0a, 1], 'a', [0x0a, 1], 'b'), 'b'],
      ['a padded length', bytes([0x0a, 0x82, 0x00], 'hi'), 'hi'],
      ['a two-byte length', bytes([0x0a, 0xc8, 0x01], 'x'.repeat(200)), 'x'.repeat(200)],
    ];
    const malformed: [string, Buffer][] = [
      ['a length past the end', bytes([0x0a, 5], 'ab')],
      ['a length cut off', bytes([0x0a, 0x80])],
      ['a tag cut off', bytes([0x0a, 1], 'a', [0x80])],
    ];
    try {
      for (const [label, message, payload] of valid) {
        const r = await rawCall(t, '/echoserver.v1.Echo/Echo', message);
        assert.equal(r.trailers['grpc-status'], '0', label);
        const echo = fromBinary(EchoResponseSchema, r.body.subarray(5));
        assert.equal(Buffer.from(echo.payload!.data).toString(), payload, label);
        assert.equal(echo.payload!.bytes, BigInt(payload.length), label);
      }
      for (const [label, message] of malformed) {
        const r = await rawCall(t, '/echoserver.v1.Echo/Echo', message);
        assert.equal(r.trailers['grpc-status'], String(grpc.status.INVALID_ARGUMENT), label);
        assert.match(String(r.trailers['grpc-message']), /^malformed echoserver\.v1\.EchoRequest/, label);
      }
    } finally {
      await t.close();
    }
  });

  it('--request-timeout ends a call whose request side is not complete in time, and no call whose request is', async () => {
    const t = await startTestServer({ requestTimeoutMs: 300, headersTimeoutMs: 300 });
    try {
      // Half a message, and the stream left open: the request side never completes.
      const session = h2connect(t.url);
      const started = Date.now();
      const trailers = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const req = session.request({
          ':method': 'POST',
          ':path': '/echoserver.v1.Echo/Echo',
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        req.on('trailers', resolve);
        req.on('error', reject);
        req.resume();
        req.write(Buffer.from([0, 0, 0, 0, 10, 0x0a]));
      });
      session.close();
      assert.equal(trailers['grpc-status'], String(grpc.status.DEADLINE_EXCEEDED));
      assert.match(String(trailers['grpc-message']), /request not received within --request-timeout \(300 ms\)/);
      assert.ok(Date.now() - started >= 250, `ended after ${Date.now() - started} ms`);
      // A complete request whose answer waits past the request timeout is answered.
      const delayed = await rawCall(t, '/echoserver.v1.Echo/Echo', Buffer.alloc(0), { 'x-echo-delay': '600ms' });
      assert.equal(delayed.trailers['grpc-status'], '0');
      const lines = await linesWhen(t, 2);
      assert.deepEqual(
        lines.map((l) => l.grpcStatus),
        [grpc.status.DEADLINE_EXCEEDED, 0],
      );
      await waitFor(() => t.server.app.inFlight === 0 || null, 5000, 'nothing in flight');
    } finally {
      await t.close();
    }
  });

  it('honours the deadline: the server ends a call that outlives grpc-timeout with DEADLINE_EXCEEDED', async () => {
    const t = await startTestServer();
    const c = new EchoClient(target(t));
    try {
      const viaClient = await c.echo(undefined, { metadata: { 'x-echo-delay': '5s' }, deadlineMs: 200 });
      assert.equal(viaClient.error?.code, grpc.status.DEADLINE_EXCEEDED);
      // A client that does not cancel on its own deadline: the server's trailers say it.
      const raw = await rawCall(t, '/echoserver.v1.Echo/Echo', Buffer.alloc(0), {
        'grpc-timeout': '150m',
        'x-echo-delay': '5s',
      });
      assert.equal(raw.trailers['grpc-status'], '4');
      const lines = await linesWhen(t, 2);
      assert.equal(lines[1]!.grpcStatus, 4);
      assert.ok(
        [1, 4].includes(lines[0]!.grpcStatus as number),
        `the first call ended ${String(lines[0]!.grpcStatus)}`,
      );
      assert.equal(t.server.app.inFlight, 0);
    } finally {
      c.close();
      await t.close();
    }
  });

  it('a grpc-timeout longer than a timer holds (over 24.8 days) is a far deadline, not one already passed', async () => {
    const t = await startTestServer();
    try {
      // 30 days as @grpc/grpc-js writes it, and the largest grpc-timeout there is; a delay
      // lets a deadline that wrongly fires at once be seen.
      for (const timeout of ['2592000S', '99999999H']) {
        const raw = await rawCall(t, '/echoserver.v1.Echo/Echo', Buffer.alloc(0), {
          'grpc-timeout': timeout,
          'x-echo-delay': '50ms',
        });
        assert.equal(
          raw.trailers['grpc-status'],
          '0',
          `grpc-timeout ${timeout}: ${String(raw.trailers['grpc-message'])}`,
        );
        const r = fromBinary(EchoResponseSchema, raw.body.subarray(5));
        assert.equal(r.grpcTimeout, timeout);
      }
      const lines = await linesWhen(t, 2);
      assert.deepEqual(
        lines.map((l) => l.grpcStatus),
        [0, 0],
      );
      assert.equal(t.server.app.inFlight, 0);
    } finally {
      await t.close();
    }
  });

  it('health Check follows readiness: echo_health=unready makes it NOT_SERVING; unknown services are NOT_FOUND', async () => {
    const t = await startTestServer({ healthControl: true });
    const c = new EchoClient(target(t));
    try {
      assert.equal((await c.check()).response?.status, Serving.SERVING);
      assert.equal((await c.check('echoserver.v1.Echo')).response?.status, Serving.SERVING);
      assert.equal((await c.check('no.such.Service')).error?.code, grpc.status.NOT_FOUND);
      assert.equal((await fetch(`${t.url}/?echo_health=unready`)).status, 200);
      assert.equal((await c.check()).response?.status, Serving.NOT_SERVING);
      // Liveness is still fine while unready.
      assert.equal((await c.check('liveness')).response?.status, Serving.SERVING);
      // The same control as metadata.
      await c.echo(undefined, { metadata: { 'x-echo-health': 'ok' } });
      assert.equal((await c.check()).response?.status, Serving.SERVING);
    } finally {
      c.close();
      await t.close();
    }
  });

  it('health Watch sends the state, then each change', async () => {
    const t = await startTestServer({ healthControl: true });
    const c = new EchoClient(target(t));
    try {
      const watch = c.watch();
      const seen: number[] = [];
      watch.on('data', (m: { status: number }) => seen.push(m.status));
      watch.on('error', () => {});
      await waitFor(() => seen.length === 1);
      await fetch(`${t.url}/?echo_health=unready`);
      await waitFor(() => seen.length === 2, 5000);
      assert.deepEqual(seen, [Serving.SERVING, Serving.NOT_SERVING]);
      watch.cancel();
      const lines = await waitFor(() => requestLines(t).find((l) => l.uri === '/grpc.health.v1.Health/Watch'), 5000);
      assert.equal(lines.grpcStatus, 1);
      assert.equal(lines.aborted, true);
    } finally {
      c.close();
      await t.close();
    }
  });

  it('server streaming sends count messages at the interval, bounded by --sse-count', async () => {
    const t = await startTestServer({ sseCount: 3 });
    const c = new EchoClient(target(t));
    try {
      const asked = await collect(c.serverStream({ count: 2, intervalMs: 20, payload: Buffer.from('s') }));
      assert.equal(asked.status?.code, grpc.status.OK);
      assert.deepEqual(
        asked.messages.map((m) => m.sequence),
        [1n, 2n],
      );
      const capped = await collect(c.serverStream({ count: 1000, intervalMs: 10 }));
      assert.deepEqual(
        capped.messages.map((m) => m.sequence),
        [1n, 2n, 3n],
      );
    } finally {
      c.close();
      await t.close();
    }
  });

  it('client streaming answers with the record of the whole stream: messages and bytes', async () => {
    const t = await startTestServer();
    const c = new EchoClient(target(t));
    try {
      const { response, error } = await c.clientStream([Buffer.from('ab'), Buffer.from('cde'), Buffer.from('last')]);
      assert.equal(error, null);
      assert.equal(response!.messagesReceived, 3n);
      // Each EchoRequest is the payload's tag, its length and the bytes: 2 + n.
      assert.equal(response!.bytesReceived, BigInt(4 + 5 + 6));
      assert.equal(Buffer.from(response!.payload!.data).toString(), 'last');
    } finally {
      c.close();
      await t.close();
    }
  });

  it('a request stream is bounded by --max-body-size on the wire: empty messages count their prefix', async () => {
    const t = await startTestServer({ maxBodySize: 1024 });
    const c = new EchoClient(target(t));
    try {
      // 300 empty messages: no payload byte, 1,500 bytes of message prefixes.
      const { error } = await c.clientStream(Array.from({ length: 300 }, () => new Uint8Array()));
      assert.equal(error?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(error?.details ?? '', /--max-body-size/);
      const small = await c.clientStream(Array.from({ length: 10 }, () => new Uint8Array()));
      assert.equal(small.error, null);
      assert.equal(small.response!.messagesReceived, 10n);
    } finally {
      c.close();
      await t.close();
    }
  });

  it('bidi echoes each message as it arrives', async () => {
    const t = await startTestServer();
    const c = new EchoClient(target(t));
    try {
      const call = c.bidi();
      const got: string[] = [];
      const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
      call.on('data', (m: { payload?: { data: Uint8Array }; sequence: bigint }) =>
        got.push(`${m.sequence}:${Buffer.from(m.payload!.data).toString()}`),
      );
      call.write(create(EchoRequestSchema, { payload: Buffer.from('one') }));
      await waitFor(() => got.length === 1);
      call.write(create(EchoRequestSchema, { payload: Buffer.from('two') }));
      await waitFor(() => got.length === 2);
      call.end();
      assert.equal((await ended).code, grpc.status.OK);
      assert.deepEqual(got, ['1:one', '2:two']);
    } finally {
      c.close();
      await t.close();
    }
  });

  it('bidi with x-echo-delay echoes every message, in order, then ends OK', async () => {
    const t = await startTestServer();
    const c = new EchoClient(target(t));
    try {
      const call = c.bidi({ metadata: { 'x-echo-delay': '30ms' } });
      const got: bigint[] = [];
      const ended = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
      call.on('data', (m: { sequence: bigint }) => got.push(m.sequence));
      for (let i = 0; i < 5; i++) call.write(create(EchoRequestSchema, { payload: Buffer.from(String(i)) }));
      call.end();
      assert.equal((await ended).code, grpc.status.OK);
      assert.deepEqual(got, [1n, 2n, 3n, 4n, 5n]);
    } finally {
      c.close();
      await t.close();
    }
  });

  it('an unknown method is UNIMPLEMENTED; plain HTTP and HTTP/2 on the same port keep working', async () => {
    const t = await startTestServer();
    const c = new EchoClient(target(t));
    try {
      const unknown = await c.raw('/no.such.Service/Call', Buffer.alloc(0));
      assert.equal(unknown.error?.code, grpc.status.UNIMPLEMENTED);
      const http = await fetch(`${t.url}/plain`, { headers: { accept: 'application/json' } });
      assert.equal(http.status, 200);
      assert.equal(((await http.json()) as { path: string }).path, '/plain');
      const h2 = await rawCall(t, '/h2-plain', null, { 'content-type': 'text/plain', accept: 'application/json' });
      assert.equal(h2.headers[':status'], 200);
      assert.match(h2.body.toString(), /"proto":"HTTP\/2.0"/);
    } finally {
      c.close();
      await t.close();
    }
  });

  it('over HTTPS (ALPN h2) the record carries the TLS session', async () => {
    const t = await startTestServer({ https: true, httpsPort: 0 });
    const httpsPort = Number(new URL(t.server.listener.httpsUrl!).port);
    // The server's own (self-signed) certificate, trusted for this one client.
    const pem = await new Promise<string>((resolve, reject) => {
      const s = tlsConnect(
        { host: '127.0.0.1', port: httpsPort, rejectUnauthorized: false, ALPNProtocols: ['h2'] },
        () => {
          const der = s.getPeerCertificate().raw;
          s.end();
          resolve(
            `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`,
          );
        },
      );
      s.on('error', reject);
    });
    const c = new EchoClient(
      `127.0.0.1:${httpsPort}`,
      grpc.credentials.createSsl(Buffer.from(pem), null, null, { checkServerIdentity: () => undefined }),
    );
    try {
      const { response, error } = await c.echo(Buffer.from('tls'));
      assert.equal(error, null);
      assert.equal(response!.tls?.alpn, 'h2');
      assert.match(response!.tls?.version ?? '', /^TLSv1\.[23]$/);
      assert.equal(response!.authority, `127.0.0.1:${httpsPort}`);
    } finally {
      c.close();
      await t.close();
    }
  });

  it('over the in-flight budget a call is refused with REFUSED_STREAM, recorded as UNAVAILABLE', async () => {
    const t = await startTestServer({ maxInFlight: 1 });
    const c = new EchoClient(target(t));
    try {
      const held = c.echo(undefined, { metadata: { 'x-echo-delay': '1s' } });
      await waitFor(() => t.server.app.inFlight === 1);
      const refused = await new Promise<number>((resolve) => {
        const session = h2connect(t.url);
        session.on('error', () => {});
        const req = session.request({
          ':method': 'POST',
          ':path': '/echoserver.v1.Echo/Echo',
          'content-type': 'application/grpc',
          te: 'trailers',
        });
        req.on('error', () => {});
        req.on('close', () => {
          session.close();
          resolve(req.rstCode);
        });
        req.end(Buffer.alloc(5));
      });
      assert.equal(refused, 7); // REFUSED_STREAM: nothing processed, a client may retry it
      assert.equal((await held).error, null);
      const lines = await linesWhen(t, 2);
      assert.deepEqual(
        lines.map((l) => [l.grpcStatus, l.aborted ?? false]),
        [
          [14, true],
          [0, false],
        ],
      );
    } finally {
      c.close();
      await t.close();
    }
  });

  it('shutdown ends a server stream UNAVAILABLE, and its record is closed', async () => {
    const t = await startTestServer({ sseCount: 100, sseIntervalMs: 10_000 });
    const c = new EchoClient(target(t));
    try {
      const stream = c.serverStream({});
      const done = collect(stream);
      await waitFor(() => t.server.app.inFlight === 1);
      const closing = t.close();
      const { messages, status } = await done;
      await closing;
      assert.equal(messages.length, 1);
      assert.equal(status?.code, grpc.status.UNAVAILABLE);
      assert.match(status?.details ?? '', /shutting down/);
      const lines = requestLines(t);
      assert.deepEqual(
        lines.map((l) => l.grpcStatus),
        [14],
      );
    } finally {
      c.close();
    }
  });

  it('gRPC-Web over HTTP/1.1: unary and server streaming with a gRPC-Web client (Connect), controls included', async () => {
    const t = await startTestServer({ sseCount: 3 });
    try {
      const client = createClient(Echo, createGrpcWebTransport({ baseUrl: t.url, useBinaryFormat: true }));
      const r = await client.echo({ payload: Buffer.from('web') }, { headers: { 'x-web': 'yes' } });
      assert.equal(r.proto, 'HTTP/1.1');
      assert.equal(Buffer.from(r.payload!.data).toString(), 'web');
      assert.ok(r.metadata.some((m) => m.name === 'x-web' && m.value === 'yes'));
      const seq: bigint[] = [];
      for await (const m of client.serverStream({ count: 2, intervalMs: 10 })) seq.push(m.sequence);
      assert.deepEqual(seq, [1n, 2n]);
      await assert.rejects(
        client.echo({}, { headers: { 'x-echo-status': '14' } }),
        (err: unknown) => err instanceof ConnectError && err.code === Code.Unavailable,
      );
      const lines = await linesWhen(t, 3);
      assert.deepEqual(
        lines.map((l) => l.grpcStatus),
        [0, 0, 14],
      );
    } finally {
      await t.close();
    }
  });

  it("gRPC-Web CORS: an allowed origin's preflight gets 204 with what gRPC-Web sends, its calls expose the status and the echo's headers", async () => {
    const t = await startTestServer({ allowedOrigins: ['https://app.example'] });
    const path = '/echoserver.v1.Echo/Echo';
    try {
      const pre = await h1(t, 'OPTIONS', path, {
        origin: 'https://app.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,x-grpc-web,x-echo-status',
      });
      assert.equal(pre.status, 204);
      assert.equal(pre.headers['access-control-allow-origin'], 'https://app.example');
      assert.equal(pre.headers['access-control-allow-methods'], 'POST');
      const allowed = String(pre.headers['access-control-allow-headers']).split(', ');
      for (const h of [
        'content-type',
        'x-grpc-web',
        'x-user-agent',
        'grpc-timeout',
        'x-echo-status',
        'x-echo-delay',
        'x-echo-header',
        'x-echo-trailer',
        'x-echo-fail-first',
      ])
        assert.ok(allowed.includes(h), h);
      assert.match(String(pre.headers.vary), /Origin/);
      assert.ok(Number(pre.headers['access-control-max-age']) > 0);
      // Another origin's preflight is refused, so the browser never sends the call.
      const evil = await h1(t, 'OPTIONS', path, {
        origin: 'https://evil.example',
        'access-control-request-method': 'POST',
      });
      assert.equal(evil.status, 403);
      assert.equal(evil.headers['access-control-allow-origin'], undefined);
      assert.match(evil.body.toString(), /--allowed-origins/);
      const notPost = await h1(t, 'OPTIONS', path, {
        origin: 'https://app.example',
        'access-control-request-method': 'GET',
      });
      assert.equal(notPost.status, 403);
      // OPTIONS elsewhere is still the HTTP echo.
      const other = await h1(t, 'OPTIONS', '/not-grpc', {
        origin: 'https://app.example',
        'access-control-request-method': 'POST',
        accept: 'application/json',
      });
      assert.equal(other.status, 200);
      assert.equal(other.headers['access-control-allow-origin'], undefined);
      // The call: the origin, and the status, message and the echo's headers exposed.
      const call = await h1(
        t,
        'POST',
        path,
        {
          origin: 'https://app.example',
          'content-type': 'application/grpc-web',
          'x-grpc-web': '1',
          'x-echo-header': 'X-Shard: 7',
        },
        Buffer.alloc(5),
      );
      assert.equal(call.status, 200);
      assert.equal(call.headers['x-shard'], '7');
      assert.equal(call.headers['access-control-allow-origin'], 'https://app.example');
      const exposed = String(call.headers['access-control-expose-headers']).split(', ');
      for (const h of ['grpc-status', 'grpc-message', 'x-request-id', 'x-shard']) assert.ok(exposed.includes(h), h);
      // A refusal is readable too.
      const refused = await h1(
        t,
        'POST',
        path,
        { origin: 'https://app.example', 'content-type': 'application/grpc-web', 'x-echo-status': '99' },
        Buffer.alloc(5),
      );
      assert.equal(refused.headers['access-control-allow-origin'], 'https://app.example');
      assert.match(refused.body.toString('latin1'), /grpc-status:3/);
      const foreign = await h1(
        t,
        'POST',
        path,
        { origin: 'https://evil.example', 'content-type': 'application/grpc-web' },
        Buffer.alloc(5),
      );
      assert.equal(foreign.headers['access-control-allow-origin'], undefined);
      // One access line each: three preflights, the echo, three calls.
      const lines = await linesWhen(t, 7);
      assert.deepEqual(
        lines.map((l) => l.status),
        [204, 403, 403, 200, 200, 200, 200],
      );
    } finally {
      await t.close();
    }
  });

  it('gRPC-Web CORS over HTTP/2: the preflight and the call, by node:http2', async () => {
    const t = await startTestServer({ allowedOrigins: ['*'] });
    const session = h2connect(t.url);
    const ask = (headers: Record<string, string>, body?: Buffer) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const req = session.request(headers);
        req.on('response', resolve);
        req.on('error', reject);
        req.resume();
        req.end(body);
      });
    try {
      const pre = await ask({
        ':method': 'OPTIONS',
        ':path': '/grpc.health.v1.Health/Check',
        origin: 'https://any.example',
        'access-control-request-method': 'POST',
      });
      assert.equal(pre[':status'], 204);
      assert.equal(pre['access-control-allow-origin'], 'https://any.example');
      const call = await ask(
        {
          ':method': 'POST',
          ':path': '/grpc.health.v1.Health/Check',
          origin: 'https://any.example',
          'content-type': 'application/grpc-web+proto',
        },
        Buffer.alloc(5),
      );
      assert.equal(call[':status'], 200);
      assert.equal(call['access-control-allow-origin'], 'https://any.example');
      assert.match(String(call['access-control-expose-headers']), /grpc-status/);
      // gRPC proper (not -web) is no browser's: no CORS headers.
      const native = await ask(
        {
          ':method': 'POST',
          ':path': '/grpc.health.v1.Health/Check',
          origin: 'https://any.example',
          'content-type': 'application/grpc',
          te: 'trailers',
        },
        Buffer.alloc(5),
      );
      assert.equal(native['access-control-allow-origin'], undefined);
    } finally {
      session.close();
      await t.close();
    }
  });

  it('gRPC-Web over HTTP/1.1 over the in-flight budget is answered UNAVAILABLE (there is no REFUSED_STREAM)', async () => {
    const t = await startTestServer({ maxInFlight: 1 });
    const c = new EchoClient(target(t));
    try {
      const held = c.echo(undefined, { metadata: { 'x-echo-delay': '1s' } });
      await waitFor(() => t.server.app.inFlight === 1);
      const client = createClient(Echo, createGrpcWebTransport({ baseUrl: t.url, useBinaryFormat: true }));
      await assert.rejects(
        client.echo({}, { timeoutMs: 5000 }),
        (err: unknown) =>
          err instanceof ConnectError && err.code === Code.Unavailable && /--max-in-flight/.test(err.message),
      );
      assert.equal((await held).error, null);
    } finally {
      c.close();
      await t.close();
    }
  });

  it('gRPC-Web text: a request sent as several padded base64 runs is decoded whole', async () => {
    const t = await startTestServer();
    try {
      const message = Buffer.from([0x0a, 2, 0x68, 0x69]); // EchoRequest { payload: "hi" }
      // The prefix and the message each as their own padded run, as streaming clients send them.
      const body = Buffer.from([0, 0, 0, 0, message.length]).toString('base64') + message.toString('base64');
      assert.match(body, /=.+=$/);
      const res = await fetch(`${t.url}/echoserver.v1.Echo/Echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/grpc-web-text', 'x-grpc-web': '1' },
        body,
      });
      const text = Buffer.from(await res.text(), 'base64').toString('latin1');
      assert.match(text, /grpc-status:0\r\n/);
      assert.ok(text.includes('hi'));
    } finally {
      await t.close();
    }
  });

  it('gRPC-Web text: malformed base64 is INVALID_ARGUMENT, not an empty message', async () => {
    const t = await startTestServer();
    try {
      for (const body of ['!!!!', 'AAAAAAA', 'AA=A', 'A===', 'AAAAAA==AA!A']) {
        const res = await fetch(`${t.url}/echoserver.v1.Echo/Echo`, {
          method: 'POST',
          headers: { 'content-type': 'application/grpc-web-text', 'x-grpc-web': '1' },
          body,
        });
        const text =
          Buffer.from(await res.text(), 'base64').toString('latin1') + (res.headers.get('grpc-status') ?? '');
        assert.match(text, /grpc-status:3\r\n|^3$/, `body ${JSON.stringify(body)}: ${text}`);
      }
      await fetch(t.url); // the server still answers
    } finally {
      await t.close();
    }
  });

  it('gRPC-Web text: a base64 request gets base64 frames, the trailers in the last', async () => {
    const t = await startTestServer();
    try {
      const message = Buffer.from([0x0a, 2, 0x68, 0x69]); // EchoRequest { payload: "hi" }
      const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
      const res = await fetch(`${t.url}/echoserver.v1.Echo/Echo`, {
        method: 'POST',
        headers: { 'content-type': 'application/grpc-web-text', 'x-grpc-web': '1' },
        body: framed.toString('base64'),
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/grpc-web-text+proto');
      const body = await res.text();
      // Each frame is its own padded base64 run: its prefix says how long the run is.
      const frames: Buffer[] = [];
      for (let at = 0; at < body.length;) {
        const length = Buffer.from(body.slice(at, at + 8), 'base64').readUInt32BE(1);
        const run = Math.ceil((5 + length) / 3) * 4;
        frames.push(Buffer.from(body.slice(at, at + run), 'base64'));
        at += run;
      }
      assert.equal(frames.length, 2);
      assert.equal(frames[0]![0], 0);
      assert.ok(frames[0]!.includes(Buffer.from('hi')));
      assert.equal(frames[1]![0], 0x80);
      assert.match(frames[1]!.subarray(5).toString(), /^grpc-status:0\r\n/);
    } finally {
      await t.close();
    }
  });

  it('--no-grpc: a gRPC request gets the HTTP echo', async () => {
    const t = await startTestServer({ grpc: false });
    try {
      const raw = await rawCall(t, '/echoserver.v1.Echo/Echo', Buffer.alloc(0), { accept: 'application/json' });
      assert.equal(raw.headers[':status'], 200);
      assert.notEqual(raw.headers['content-type'], 'application/grpc');
      assert.equal(raw.trailers['grpc-status'], undefined);
    } finally {
      await t.close();
    }
  });
});
