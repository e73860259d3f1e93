import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import type { Echo } from '../../src/echo/model.ts';
import { startTestServer, waitFor, type TestServer } from '../helpers.ts';

/** Opens a client and collects what it receives. */
async function open(url: string, opts: WebSocket.ClientOptions = {}) {
  const ws = new WebSocket(url, opts);
  const messages: { data: Buffer; binary: boolean }[] = [];
  ws.on('message', (data: Buffer, binary: boolean) => messages.push({ data, binary }));
  const closed = once(ws, 'close') as Promise<[number, Buffer]>;
  await once(ws, 'open');
  await waitFor(() => messages.length >= 1);
  return { ws, messages, closed };
}

describe('WebSocket echo', () => {
  let t: TestServer;
  let wsUrl: string;
  before(async () => {
    t = await startTestServer({ wsMaxMessage: 1024, wsMaxRate: 20, wsIdleTimeoutMs: 1500 });
    wsUrl = t.url.replace('http', 'ws');
  });
  after(() => t.close());

  it('describes the handshake in its first message, on any path', async () => {
    const c = await open(`${wsUrl}/any/path?room=1`, { headers: { 'X-Trace': 'abc' } });
    const e = JSON.parse(c.messages[0]!.data.toString()) as Echo;
    assert.equal(e.method, 'GET');
    assert.equal(e.requestURI, '/any/path?room=1');
    assert.deepEqual(e.headers['X-Trace'], ['abc']);
    assert.deepEqual(e.headers.Upgrade, ['websocket'], 'as the ws client sends it, letter case kept');
    assert.equal(e.proto, 'HTTP/1.1');
    c.ws.close();
    await c.closed;
  });

  it('echoes text as text and binary as binary', async () => {
    const c = await open(`${wsUrl}/`);
    c.ws.send('hello');
    c.ws.send(Buffer.from([0, 1, 2, 255]));
    await waitFor(() => c.messages.length >= 3);
    assert.deepEqual([c.messages[1]!.data.toString(), c.messages[1]!.binary], ['hello', false]);
    assert.deepEqual([[...c.messages[2]!.data], c.messages[2]!.binary], [[0, 1, 2, 255], true]);
    c.ws.close(1000);
    assert.equal((await c.closed)[0], 1000);
  });

  it('answers pings with pongs', async () => {
    const c = await open(`${wsUrl}/`);
    c.ws.ping(Buffer.from('p1'));
    const [payload] = (await once(c.ws, 'pong')) as [Buffer];
    assert.equal(payload.toString(), 'p1');
    c.ws.close();
  });

  it('closes with 1009 on a message above the size limit', async () => {
    const c = await open(`${wsUrl}/`);
    c.ws.send('x'.repeat(2000));
    assert.equal((await c.closed)[0], 1009);
  });

  it('closes with 1008 when the client sends faster than the rate limit', async () => {
    const c = await open(`${wsUrl}/`);
    for (let i = 0; i < 60; i++) c.ws.send(`m${i}`);
    const [code, reason] = await c.closed;
    assert.equal(code, 1008);
    assert.match(reason.toString(), /more than 20 messages per second/);
  });

  it('closes an idle connection', async () => {
    const c = await open(`${wsUrl}/`);
    const start = performance.now();
    const [code, reason] = await c.closed;
    assert.equal(code, 1000);
    assert.equal(reason.toString(), 'idle timeout');
    // --ws-idle-timeout is 1500 ms here; the server's timer started a moment before `start`.
    const idleMs = performance.now() - start;
    assert.ok(idleMs >= 1400 && idleMs < 2500, `closed after ${idleMs.toFixed(0)} ms idle`);
  });

  it('counts messages in metrics and logs one line per connection', async () => {
    const counter = (text: string, series: string) =>
      Number(
        text
          .split('\n')
          .find((l) => l.startsWith(`${series} `))
          ?.slice(series.length + 1) ?? 0,
      );
    const RECEIVED = 'echo_websocket_messages_total{direction="received"}';
    const SENT = 'echo_websocket_messages_total{direction="sent"}';
    const UPGRADES = 'echo_http_requests_total{method="GET",status="101"}';
    const scrape = async () => (await fetch(`${t.url}/metrics`)).text();
    const prior = await scrape();
    const c = await open(`${wsUrl}/metered`);
    c.ws.send('a');
    await waitFor(() => c.messages.length >= 2);
    c.ws.close();
    await c.closed;
    await waitFor(() => t.logs.messages('websocket').some((l) => l.uri === '/metered'));
    const line = t.logs.messages('websocket').find((l) => l.uri === '/metered')!;
    assert.equal(line.status, 101);
    assert.equal(line.messagesIn, 1);
    assert.equal(line.messagesOut, 2);
    const metrics = await scrape();
    // This connection's share of the counters the file's other tests also move.
    assert.equal(counter(metrics, RECEIVED) - counter(prior, RECEIVED), 1);
    assert.equal(counter(metrics, SENT) - counter(prior, SENT), 2, 'the handshake echo and the echo of "a"');
    assert.equal(counter(metrics, UPGRADES) - counter(prior, UPGRADES), 1);
  });

  it('closes with 1001 when the server shuts down', async () => {
    const own = await startTestServer();
    const c = await open(`${own.url.replace('http', 'ws')}/`);
    const stopping = own.close();
    assert.equal((await c.closed)[0], 1001);
    await stopping;
  });

  it('can be turned off: the upgrade is then echoed as plain HTTP', async () => {
    const off = await startTestServer({ websocket: false });
    try {
      const ws = new WebSocket(`${off.url.replace('http', 'ws')}/`);
      const [err] = (await once(ws, 'error')) as [Error];
      assert.match(err.message, /Unexpected server response: 200/);
    } finally {
      await off.close();
    }
  });
});
