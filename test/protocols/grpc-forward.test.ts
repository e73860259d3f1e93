// The gRPC Forward method: GET /forward's calls from a gRPC client (@grpc/grpc-js),
// with the same allowlist and bounds, refusals as gRPC statuses, and the caller's
// trace carried to the target.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EchoClient, grpc } from '../grpc-client.ts';
import { parseAllowList } from '../../src/util/allowlist.ts';
import { httpTarget, startTestServer, waitFor, type TestServer } from '../helpers.ts';

const allow = (...entries: string[]) => ({ forwardAllow: parseAllowList(entries) });
const named = (hostname: string) => ({ identity: { hostname, addresses: [] } });
const clientOf = (t: TestServer) => new EchoClient(`127.0.0.1:${t.port}`);

describe('gRPC Forward', () => {
  it('is FAILED_PRECONDITION naming --forward-allow while it is empty', async () => {
    const a = await startTestServer();
    const client = clientOf(a);
    try {
      const r = await client.forward({ url: `http://127.0.0.1:${a.port}/` });
      assert.equal(r.error?.code, grpc.status.FAILED_PRECONDITION);
      assert.match(r.error?.details ?? '', /--forward-allow/);
    } finally {
      client.close();
      await a.close();
    }
  });

  it('calls HTTP on another server, which sees the caller trace id; one access line for the call', async () => {
    const b = await startTestServer({}, named('b'));
    const a = await startTestServer(allow('127.0.0.1'), named('a'));
    const client = clientOf(a);
    try {
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const r = await client.forward(
        { url: `http://127.0.0.1:${b.port}/hop`, count: 2 },
        { metadata: { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, 'x-request-id': 'grpc-fwd-1' } },
      );
      assert.equal(r.error, null, r.error?.details);
      const answer = r.response!;
      assert.equal(answer.server, 'a');
      assert.equal(answer.traceId, traceId);
      assert.equal(answer.requestId, 'grpc-fwd-1');
      assert.equal(answer.ok, 2);
      assert.equal(answer.calls.length, 2);
      for (const c of answer.calls) {
        assert.equal(c.status, 200);
        assert.equal(c.replica, 'b');
        assert.equal(c.trace?.traceId, traceId, 'the target saw the caller trace id');
        assert.equal(c.trace?.parentId, c.spanId, 'each call is a new span');
        assert.notEqual(c.spanId, '00f067aa0ba902b7');
        const echo = JSON.parse(c.echoJson) as { path: string; requestId: string };
        assert.equal(echo.path, '/hop');
        assert.equal(echo.requestId, 'grpc-fwd-1');
      }
      const lines = await waitFor(
        () => {
          const l = a.logs.messages('request').filter((e) => e['uri'] === '/echoserver.v1.Echo/Forward');
          return l.length > 0 ? l : null;
        },
        5000,
        'the Forward access line',
      );
      assert.equal(lines.length, 1);
    } finally {
      client.close();
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('refuses outside the allowlist, loopback through a broad entry, and its own port (PERMISSION_DENIED)', async () => {
    const b = await startTestServer();
    const broad = await startTestServer(allow('0.0.0.0/0'));
    const exact = await startTestServer(allow('127.0.0.1'));
    const cb = clientOf(broad);
    const ce = clientOf(exact);
    try {
      const outside = await ce.forward({ url: 'http://192.0.2.1/' });
      assert.equal(outside.error?.code, grpc.status.PERMISSION_DENIED);
      assert.match(outside.error?.details ?? '', /--forward-allow/);
      const loop = await cb.forward({ url: `http://127.0.0.1:${b.port}/` });
      assert.equal(loop.error?.code, grpc.status.PERMISSION_DENIED);
      assert.match(loop.error?.details ?? '', /loopback/);
      const meta = await cb.forward({ url: 'http://169.254.169.254/latest/meta-data/' });
      assert.equal(meta.error?.code, grpc.status.PERMISSION_DENIED);
      const self = await ce.forward({ url: `http://127.0.0.1:${exact.port}/` });
      assert.equal(self.error?.code, grpc.status.PERMISSION_DENIED);
      assert.match(self.error?.details ?? '', /own port/);
    } finally {
      cb.close();
      ce.close();
      await Promise.all([b.close(), broad.close(), exact.close()]);
    }
  });

  it('refuses count over --forward-max-count, a bad url and another scheme (INVALID_ARGUMENT)', async () => {
    const a = await startTestServer({ ...allow('127.0.0.1'), forwardMaxCount: 3 });
    const client = clientOf(a);
    try {
      const count = await client.forward({ url: 'http://127.0.0.1:1/', count: 4 });
      assert.equal(count.error?.code, grpc.status.INVALID_ARGUMENT);
      assert.match(count.error?.details ?? '', /--forward-max-count/);
      // The largest uint32s are over the bounds too, and said so (not "not a whole number").
      const huge = await client.forward({ url: 'http://127.0.0.1:1/', count: 4294967295 });
      assert.equal(huge.error?.code, grpc.status.INVALID_ARGUMENT);
      assert.match(huge.error?.details ?? '', /count 4294967295 is over --forward-max-count/);
      const fast = await client.forward({ url: 'http://127.0.0.1:1/', qps: 4294967295 });
      assert.match(fast.error?.details ?? '', /qps 4294967295 is over --forward-max-qps/);
      assert.equal((await client.forward({ url: '' })).error?.code, grpc.status.INVALID_ARGUMENT);
      const ws = await client.forward({ url: 'ws://127.0.0.1:1/' });
      assert.equal(ws.error?.code, grpc.status.INVALID_ARGUMENT);
    } finally {
      client.close();
      await a.close();
    }
  });

  it('shares --forward-max-concurrency with GET /forward: a full gate is RESOURCE_EXHAUSTED, and 503', async () => {
    const to = await startTestServer({}, named('to'));
    const a = await startTestServer({ ...allow('127.0.0.1'), forwardMaxConcurrency: 1 });
    const client = clientOf(a);
    try {
      const url = `http://127.0.0.1:${to.port}/`;
      // One forward whose call waits (the echo's delay control) holds the only place.
      const slow = client.forward({ url: `${url}?echo_delay=1s` });
      let busy: Awaited<ReturnType<EchoClient['forward']>> | null = null;
      for (let i = 0; i < 50 && busy === null; i++) {
        const r = await client.forward({ url });
        if (r.error !== null) busy = r;
      }
      assert.equal(busy?.error?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(busy?.error?.details ?? '', /--forward-max-concurrency/);
      const http = await fetch(`${a.url}/forward?url=${encodeURIComponent(url)}`);
      assert.equal(http.status, 503, 'the HTTP side counts the gRPC forward in progress');
      assert.equal((await slow).error, null);
      assert.equal((await client.forward({ url })).error, null, 'the place is given back');
    } finally {
      client.close();
      await Promise.all([a.close(), to.close()]);
    }
  });

  it('a Forward cancelled or past its deadline stops its calls and its kept connection, then frees its place', async () => {
    const t = await httpTarget();
    const a = await startTestServer({ ...allow('127.0.0.1'), forwardMaxConcurrency: 1 });
    const client = clientOf(a);
    try {
      for (const how of ['cancel', 'deadline'] as const) {
        const before = t.paths.length;
        const stop = new AbortController();
        // Ten calls at one per second: nine seconds after the first call.
        const pending = client.forward(
          { url: `http://127.0.0.1:${t.port}/${how}`, count: 10, qps: 1 },
          how === 'cancel' ? { signal: stop.signal } : { deadlineMs: 500 },
        );
        await waitFor(() => t.paths.length === before + 1 && t.open() === 1, 5000, `${how}: the first call`);
        stop.abort();
        const r = await pending;
        assert.equal(r.error?.code, how === 'cancel' ? grpc.status.CANCELLED : grpc.status.DEADLINE_EXCEEDED);
        await waitFor(() => t.open() === 0, 3000, `${how}: the kept connection closed when the call ended`);
        const next = await client.forward({ url: `http://127.0.0.1:${t.port}/after-${how}` });
        assert.equal(next.error, null, `${how}: the place is free again`);
        assert.deepEqual(t.paths.slice(before), [`/${how}`, `/after-${how}`], `${how}: no call after the end`);
      }
      const lines = await waitFor(
        () => {
          const l = a.logs.messages('request').filter((e) => e['uri'] === '/echoserver.v1.Echo/Forward');
          return l.length >= 4 ? l : null;
        },
        5000,
        'the access lines',
      );
      assert.equal(lines.length, 4, 'one access line per call');
      const [cancelled, , late] = lines.map((e) => e['grpcStatus']);
      assert.equal(cancelled, grpc.status.CANCELLED);
      // The server's own deadline, or the client's reset when that came first.
      assert.ok(late === grpc.status.DEADLINE_EXCEEDED || late === grpc.status.CANCELLED, String(late));
      assert.deepEqual([lines[1]!['grpcStatus'], lines[3]!['grpcStatus']], [0, 0]);
    } finally {
      client.close();
      t.close();
      await a.close();
    }
  });
});
