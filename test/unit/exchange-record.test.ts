// The exchange record is closed once, by its answer port: the ledger counts it out
// of flight, in the metrics and in the access line exactly once, whoever asks again;
// the HTTP port over a real node:http response closes it at the answer's end while
// the handler runs (no listener added), else when the response closes.
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { closeExchange } from '../../src/core/answer-port.ts';
import { Exchange, httpOutcome, type Protocol } from '../../src/core/exchange.ts';
import type { ConnectionFacts } from '../../src/core/facts.ts';
import { Ledger } from '../../src/core/ledger.ts';
import { scanHeaders } from '../../src/core/request-head.ts';
import { HttpExchange } from '../../src/adapters/http1/exchange.ts';
import { sendText } from '../../src/handlers/answer.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { createMetrics } from '../../src/ops/metrics.ts';
import { startTestServer, waitFor } from '../helpers.ts';

const FACTS: ConnectionFacts = { peerAddress: '127.0.0.1', peerPort: 40000, proxy: null, tls: null };

/** A ledger with a real logger (its lines kept) and real metrics. */
function ledgerWith(config = { accessLog: true, maxInFlight: 100 }, share = 0) {
  const lines: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      done();
    },
  });
  const metrics = createMetrics();
  const keys: string[] = [];
  const ledger = new Ledger(createLogger({ level: 'info', format: 'json', destination: dest }), metrics, config, {
    share,
    keyOf: (raw) => {
      const key = raw[1] ?? '';
      keys.push(key);
      return key;
    },
  });
  return { ledger, lines, metrics, keys };
}

const record = (protocol: Protocol = 'http/1.1', raw: string[] = ['Host', 'a']) =>
  new Exchange(protocol, FACTS, 'GET', '/x', scanHeaders(raw), true);

const answered = async (metrics: ReturnType<typeof createMetrics>, status: string) =>
  Number(
    new RegExp(`echo_http_requests_total\\{method="GET",status="${status}"\\} (\\d+)`).exec(
      await metrics.scrape(),
    )?.[1] ?? 0,
  );

describe('the exchange record and the ledger', () => {
  it('closes an exchange once: one access line, one count, one fewer in flight, however often it is closed', async () => {
    const { ledger, lines, metrics } = ledgerWith();
    const x = ledger.begin(record(), ['Host', 'a']);
    const idle = ledger.idle();
    assert.equal(ledger.inFlight, 1);
    x.bytesOut = 3;
    closeExchange(ledger, x, httpOutcome(200), false);
    closeExchange(ledger, x, httpOutcome(500), true);
    await idle;
    assert.equal(ledger.inFlight, 0);
    assert.deepEqual([x.closed, x.outcome, x.aborted], [true, { http: 200 }, false]);
    await waitFor(() => lines.length === 1);
    assert.deepEqual(
      [lines[0]!.msg, lines[0]!.status, lines[0]!.uri, lines[0]!.bytesOut, lines[0]!.aborted],
      ['request', 200, '/x', 3, undefined],
    );
    assert.equal(await answered(metrics, '200'), 1);
    assert.equal(await answered(metrics, '500'), 0);
  });

  it('counts an opened WebSocket as its 101 and logs its close code; a refused one as its status', async () => {
    const { ledger, lines, metrics } = ledgerWith();
    const opened = ledger.begin(record('websocket'), []);
    closeExchange(ledger, opened, { websocket: 1000 }, false, {
      bytesIn: 5,
      messagesIn: 1,
      messagesOut: 2,
      closeCode: 1000,
    });
    const refused = ledger.begin(record('websocket'), []);
    closeExchange(ledger, refused, httpOutcome(403), false, { reason: 'origin' });
    await waitFor(() => lines.length === 2);
    assert.deepEqual(
      lines.map((l) => [l.msg, l.status, l.closeCode ?? l.reason]),
      [
        ['websocket', 101, 1000],
        ['websocket', 403, 'origin'],
      ],
    );
    assert.equal(await answered(metrics, '101'), 1);
  });

  it('keeps each client its share while in flight, and forgets it at close', () => {
    const { ledger, keys } = ledgerWith({ accessLog: false, maxInFlight: 10 }, 1);
    const a = ledger.begin(record(), ['Host', 'a']);
    assert.equal(a.client, 'a');
    assert.equal(ledger.overBudget(a), null);
    assert.equal(ledger.hasRoom(['Host', 'a'], FACTS), false);
    assert.equal(ledger.hasRoom(['Host', 'b'], FACTS), true);
    const again = ledger.begin(record(), ['Host', 'a']);
    assert.equal(ledger.overBudget(again)?.limit, '--max-in-flight-per-client');
    closeExchange(ledger, again, httpOutcome(503), false);
    closeExchange(ledger, a, httpOutcome(200), false);
    assert.equal(ledger.hasRoom(['Host', 'a'], FACTS), true);
    assert.deepEqual(keys, ['a', 'a', 'b', 'a', 'a']);
  });

  it('shares one outcome object per status, so closing allocates none', () => {
    assert.equal(httpOutcome(200), httpOutcome(200));
    assert.deepEqual(httpOutcome(404), { http: 404 });
    assert.ok(Object.isFrozen(httpOutcome(404)));
  });
});

describe('the HTTP answer port', () => {
  const { ledger, lines } = ledgerWith();
  const seen: { closedAtEnd: boolean; closeListenersAdded: number }[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const x = ledger.begin(
      new HttpExchange(ledger, req, res, FACTS, scanHeaders(req.rawHeaders), true),
      req.rawHeaders,
    );
    const listeners = res.listenerCount('close');
    if (req.url === '/now') {
      sendText(x, 200, 'now\n');
      seen.push({ closedAtEnd: x.closed, closeListenersAdded: res.listenerCount('close') - listeners });
      x.handlerReturned();
      return;
    }
    // Answered later: the record waits for the response to close.
    x.handlerReturned();
    if (req.url === '/later') {
      setTimeout(() => sendText(x, 201, 'later\n'), 20);
      return;
    }
    if (req.url === '/reset') setTimeout(() => x.abort('reset'), 20);
  });
  after(() => server.close());

  const get = async (path: string) => {
    if (!server.listening) await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return new Promise<string>((resolve) => {
      const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(String(res.statusCode)));
      });
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      req.end();
    });
  };

  it('closes a record answered while the handler runs at its end, adding no close listener', async () => {
    assert.equal(await get('/now'), '200');
    assert.deepEqual(seen, [{ closedAtEnd: true, closeListenersAdded: 0 }]);
    await waitFor(() => lines.length === 1);
    assert.deepEqual([lines[0]!.status, lines[0]!.bytesOut, lines[0]!.aborted], [200, 4, undefined]);
  });

  it('closes a record answered later when its response closes, and a reset one as aborted (499)', async () => {
    assert.equal(await get('/later'), '201');
    assert.equal(await get('/reset'), 'ECONNRESET');
    await waitFor(() => lines.length === 3 && ledger.inFlight === 0);
    assert.deepEqual(
      lines.slice(1).map((l) => [l.uri, l.status, l.aborted]),
      [
        ['/later', 201, undefined],
        ['/reset', 499, true],
      ],
    );
  });
});

describe('the server closing its records', () => {
  it('answers a small GET with its record closed at the end and no close listener added; a delayed one waits for the close', async () => {
    const t = await startTestServer();
    /** 'close' listeners on each response: when node:http hands it to the app, and when it has finished. */
    const before = new Map<ServerResponse, number>();
    const added: Record<string, number> = {};
    const onStart = (m: unknown) => {
      const { response } = m as { response: ServerResponse };
      before.set(response, response.listenerCount('close'));
    };
    const onFinish = (m: unknown) => {
      const { request: req, response } = m as { request: IncomingMessage; response: ServerResponse };
      added[req.url!] = response.listenerCount('close') - before.get(response)!;
    };
    subscribe('http.server.request.start', onStart);
    subscribe('http.server.response.finish', onFinish);
    try {
      for (const path of ['/small', '/later?echo_delay=5ms']) {
        const res = await fetch(`${t.url}${path}`);
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
      await waitFor(() => Object.keys(added).length === 2 && t.logs.messages('request').length === 2);
      assert.deepEqual(added, { '/small': 0, '/later?echo_delay=5ms': 1 });
      assert.deepEqual(
        t.logs.messages('request').map((l) => [l.uri, l.status, l.aborted]),
        [
          ['/small', 200, undefined],
          ['/later?echo_delay=5ms', 200, undefined],
        ],
      );
    } finally {
      unsubscribe('http.server.request.start', onStart);
      unsubscribe('http.server.response.finish', onFinish);
      await t.close();
    }
  });
});
