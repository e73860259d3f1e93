// What an outsider's attack on GET /forward found, each kept fixed: a client that
// goes away stops the run (its calls, its kept connection, its place in
// --forward-max-concurrency), loopback spelled as an IPv4-mapped IPv6 address is
// still loopback, a target's deeply nested answer cannot blow up the answer, and a
// kept connection the target drops as a call goes out is not reported as the target's failure.
import assert from 'node:assert/strict';
import { constants as h2, createServer as createH2Server } from 'node:http2';
import { connect, createServer as createTcpServer } from 'node:net';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { parseAllowList } from '../../src/util/allowlist.ts';
import { EchoClient } from '../grpc-client.ts';
import { httpTarget, startTestServer, waitFor } from '../helpers.ts';

const allow = (...entries: string[]) => ({ forwardAllow: parseAllowList(entries) });

describe('GET /forward against an outsider', () => {
  it('a client gone mid-run stops the calls, closes the kept connection, and frees its place only then', async () => {
    const t = await httpTarget();
    const a = await startTestServer({ ...allow('127.0.0.1'), forwardMaxConcurrency: 1, forwardMaxQps: 10 });
    try {
      // Ten calls at one per second: a run of nine seconds after the first call.
      const client = connect(a.port, '127.0.0.1');
      client.on('error', () => {});
      client.write(
        `GET /forward?url=${encodeURIComponent(`http://127.0.0.1:${t.port}/gone`)}&count=10&qps=1 HTTP/1.1\r\nHost: a\r\n\r\n`,
      );
      await waitFor(() => t.paths.length === 1 && t.open() === 1, 5000, 'the first call, over a kept connection');
      client.destroy();
      await waitFor(() => t.open() === 0, 3000, 'the kept connection closed once the client went away');
      const r = await fetch(`${a.url}/forward?url=${encodeURIComponent(`http://127.0.0.1:${t.port}/after`)}`);
      assert.equal(r.status, 200, 'the place in --forward-max-concurrency is free again');
      await r.text();
      assert.deepEqual(t.paths, ['/gone', '/after'], 'no call of the abandoned run after the client left');
      const gone = () => a.logs.messages('request').filter((e) => String(e['uri']).includes('gone'));
      const lines = await waitFor(() => (gone().length > 0 ? gone() : null), 2000, 'the abandoned forward logged');
      assert.equal(lines.length, 1, 'one access line for the abandoned forward');
      assert.equal(lines[0]!['status'], 499);
    } finally {
      t.close();
      await a.close();
    }
  });

  it('refuses loopback and unspecified spelled as IPv4-mapped IPv6 through a broad entry', async () => {
    const t = await httpTarget();
    const broad = await startTestServer(allow('0.0.0.0/0', '::/0'));
    const narrow = await startTestServer(allow('127.0.0.1'));
    const mappedEntry = await startTestServer(allow('::ffff:127.0.0.1'));
    try {
      const ask = async (from: typeof broad, host: string) => {
        const url = `http://${host}:${t.port}/mapped`;
        const r = await fetch(`${from.url}/forward?url=${encodeURIComponent(url)}`);
        return { status: r.status, text: await r.text() };
      };
      for (const host of ['[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '[0:0:0:0:0:ffff:7f00:1]', '[::ffff:0.0.0.0]']) {
        const r = await ask(broad, host);
        assert.equal(r.status, 403, `${host}: ${r.text}`);
        assert.match(r.text, /loopback, unspecified/);
      }
      assert.deepEqual(t.paths, [], 'no call reached the loopback target');
      // The same address under the entry that names it: the spelling changes nothing,
      // of the URL or of the entry.
      assert.equal((await ask(narrow, '[::ffff:127.0.0.1]')).status, 200);
      assert.equal((await ask(mappedEntry, '127.0.0.1')).status, 200);
      assert.deepEqual(t.paths, ['/mapped', '/mapped']);
    } finally {
      t.close();
      await Promise.all([broad.close(), narrow.close(), mappedEntry.close()]);
    }
  });

  it("a target's deeply nested answer is not kept as its echo: the answer stays the size of what was read", async () => {
    // A few KiB that name a replica like an echo-server's echo: pretty-printed, the
    // nesting alone made tens of MiB of answer; deeper, the stack ran out (500).
    const deep = (depth: number) => `{"server":{"hostname":"deep"},"a":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    const shallow = await httpTarget(deep(3000));
    const deeper = await httpTarget(deep(20_000));
    const a = await startTestServer(allow('127.0.0.1'));
    const client = new EchoClient(`127.0.0.1:${a.port}`);
    try {
      for (const t of [shallow, deeper]) {
        const url = `http://127.0.0.1:${t.port}/deep`;
        const r = await fetch(`${a.url}/forward?url=${encodeURIComponent(url)}&count=2`);
        const text = await r.text();
        assert.equal(r.status, 200, text.slice(0, 200));
        assert.ok(text.length < 64 * 1024, `an answer of ${text.length} characters`);
        const answer = JSON.parse(text) as { calls: { status: number; echo: unknown }[] };
        assert.deepEqual(
          answer.calls.map((c) => [c.status, c.echo]),
          [
            [200, null],
            [200, null],
          ],
        );
        const g = await client.forward({ url });
        assert.equal(g.error, null, g.error?.details);
        assert.deepEqual(
          g.response!.calls.map((c) => [c.status, c.echoJson]),
          [[200, '']],
        );
      }
    } finally {
      client.close();
      shallow.close();
      deeper.close();
      await a.close();
    }
  });

  it('a kept connection the target drops as the next call arrives is dialled again, once', async () => {
    // Each connection gets one answer (keep-alive); the next request on it is met by a
    // close, as when a server's idle timeout ends the connection while a call is under way.
    let connections = 0;
    const target = createTcpServer((s) => {
      connections++;
      let seen = '';
      let answered = 0;
      s.on('error', () => {});
      s.on('data', (c: Buffer) => {
        seen += c.toString('latin1');
        const requests = seen.split('\r\n\r\n').length - 1;
        if (requests > 1) s.destroy();
        else if (requests === 1 && answered++ === 0)
          s.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');
      });
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    const port = (target.address() as { port: number }).port;
    const a = await startTestServer(allow('127.0.0.1'));
    try {
      const url = `http://127.0.0.1:${port}/`;
      const r = await fetch(`${a.url}/forward?url=${encodeURIComponent(url)}&count=3&qps=10`);
      const answer = (await r.json()) as { calls: { status: number; error: string | null }[] };
      assert.deepEqual(
        answer.calls.map((c) => c.error ?? c.status),
        [200, 200, 200],
      );
      assert.equal(connections, 3, 'each dropped connection was replaced by one new one');
    } finally {
      target.close();
      await a.close();
    }
  });

  it('a target answering 101 to a plain GET fails the call at once, not never', async () => {
    // node:http emits neither an answer nor an error for it: the call waited for ever,
    // past --forward-timeout, holding its place in --forward-max-concurrency.
    const target = createTcpServer((s) => {
      s.on('error', () => {});
      s.once('data', () =>
        s.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: other\r\nConnection: Upgrade\r\n\r\n'),
      );
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    const port = (target.address() as { port: number }).port;
    const a = await startTestServer({ ...allow('127.0.0.1'), forwardTimeoutMs: 1000, forwardMaxConcurrency: 1 });
    try {
      const r = await fetch(`${a.url}/forward?url=${encodeURIComponent(`http://127.0.0.1:${port}/`)}&count=2`, {
        signal: AbortSignal.timeout(4000),
      });
      const answer = (await r.json()) as { calls: { error: string | null }[] };
      assert.equal(answer.calls.length, 2);
      for (const c of answer.calls) assert.match(c.error ?? '', /101 Switching Protocols/);
    } finally {
      target.close();
      await a.close();
    }
  });

  it('an h2c target resetting the stream with NO_ERROR before answering fails the call at once', async () => {
    // The stream closes without an 'error': the call waited for ever, as with a 101.
    const target = createH2Server();
    target.on('stream', (st) => {
      st.on('error', () => {});
      st.close(h2.NGHTTP2_NO_ERROR);
    });
    target.listen(0, '127.0.0.1');
    await once(target, 'listening');
    const port = (target.address() as { port: number }).port;
    const a = await startTestServer({ ...allow('127.0.0.1'), forwardTimeoutMs: 1000, forwardMaxConcurrency: 1 });
    try {
      const forward = async () => {
        const r = await fetch(`${a.url}/forward?url=${encodeURIComponent(`h2c://127.0.0.1:${port}/`)}`, {
          signal: AbortSignal.timeout(4000),
        });
        return (await r.json()) as { calls: { error: string | null }[] };
      };
      assert.match((await forward()).calls[0]!.error ?? '', /closed without an answer/);
      assert.equal((await forward()).calls.length, 1, 'the place was given back');
    } finally {
      target.close();
      await a.close();
    }
  });
});
