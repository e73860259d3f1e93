import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { describe, it } from 'node:test';
import { startTestServer, waitFor } from '../helpers.ts';

describe('graceful shutdown across protocols', () => {
  it('lets an HTTP/2 stream in flight finish, then refuses new connections', async () => {
    const t = await startTestServer({ drainTimeoutMs: 5000 });
    const session = h2connect(t.url);
    let goaway = false;
    session.on('goaway', () => { goaway = true; });
    const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = session.request({ ':path': '/?echo_delay=400ms' });
      let status = 0;
      let body = '';
      req.on('response', (h) => { status = Number(h[':status']); });
      req.on('data', (c: Buffer) => { body += c.toString(); });
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
      req.end();
    });
    await waitFor(() => t.server.app.inFlight === 1);
    const stopping = t.server.shutdown();
    const { status, body } = await answer;
    assert.equal(status, 200);
    assert.match(body, /^Proto: HTTP\/2\.0$/m);
    assert.equal(await stopping, true);
    assert.ok(goaway, 'the session was told to go away');
    session.destroy();
    await assert.rejects(fetch(t.url));
  });
});
