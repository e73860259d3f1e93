// `echo-server healthcheck` against peers that misbehave: a raw TCP server on
// loopback that answers, but one byte at a time.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { main } from '../../src/cli.ts';

async function healthcheck(argv: string[]): Promise<{ code: number; err: string; ms: number }> {
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const start = performance.now();
  const code = await main(['healthcheck', ...argv], { env: {}, stdout: new PassThrough(), stderr, onSignal: () => {} });
  return { code, err, ms: performance.now() - start };
}

describe('healthcheck --healthcheck-timeout', () => {
  let trickler: Server;
  let port = 0;
  const sockets = new Set<Socket>();
  before(async () => {
    // A response head that never ends: a byte every 500 ms, each one enough to reset an idle timer.
    const head = Buffer.from(`HTTP/1.1 200 OK\r\nX-Slow: ${'a'.repeat(10_000)}`);
    trickler = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      let i = 0;
      const timer = setInterval(() => {
        if (i < head.length) socket.write(head.subarray(i, ++i));
      }, 500);
      socket.on('close', () => {
        clearInterval(timer);
        sockets.delete(socket);
      });
    });
    trickler.listen(0, '127.0.0.1');
    await once(trickler, 'listening');
    port = (trickler.address() as { port: number }).port;
  });
  after(() => {
    for (const s of sockets) s.destroy();
    trickler.close();
  });

  it('is a deadline for the whole check: a peer trickling a byte every 500 ms fails it on time', async () => {
    const bound = new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 8000).unref());
    const result = await Promise.race([
      healthcheck(['--port', String(port), '--host', '127.0.0.1', '--healthcheck-timeout', '2s']),
      bound,
    ]);
    if (result === 'still running') assert.fail('the 2 s healthcheck was still running after 8 s');
    assert.equal(result.code, 1);
    assert.match(result.err, /^unhealthy: .*no answer within 2000 ms/);
    assert.ok(result.ms >= 1900, `gave up after ${Math.round(result.ms)} ms, before its timeout`);
  });
});
