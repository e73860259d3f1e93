// What a client can make the server hold on HTTP/2 without sending anything: the
// operations endpoints never wait for a request body, they have a budget of their
// own, and a session that keeps opening streams against a full budget is sent away.
import assert from 'node:assert/strict';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as h2connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { afterEach, describe, it } from 'node:test';
import { frame } from '../../src/transport/h2-frames.ts';
import {
  rawRequest,
  requestsInFlight,
  responseComplete,
  startTestServer,
  waitFor,
  waitForInFlight,
  type TestServer,
} from '../helpers.ts';

/** Opens a stream and settles with its status, or `rst<code>` when it is reset first. */
function outcome(stream: ClientHttp2Stream): Promise<string> {
  return new Promise((resolve) => {
    let status = '';
    stream.on('response', (h) => {
      status = String(h[':status']);
    });
    stream.on('error', () => {});
    stream.on('close', () => resolve(status !== '' ? status : `rst${stream.rstCode}`));
    stream.resume();
  });
}

const sessions: ClientHttp2Session[] = [];
function session(url: string, settings = {}): Promise<ClientHttp2Session> {
  const s = h2connect(url, { settings });
  s.on('error', () => {});
  sessions.push(s);
  return new Promise((resolve) => s.once('connect', () => resolve(s)));
}

/** HPACK literals without indexing: enough for a raw client's request headers. */
const literal = (name: string, value: string) =>
  Buffer.concat([Buffer.from([0, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
const request = (path: string) =>
  Buffer.concat([
    literal(':method', 'GET'),
    literal(':scheme', 'http'),
    literal(':authority', 'x'),
    literal(':path', path),
  ]);

/**
 * A raw h2c client (node:http2 gives up at GOAWAY; this one does not): it opens
 * `first` with no flow-control window, then a stream for every stream reset
 * (retrying against a full budget) until the server's GOAWAY. Then it grants
 * `first` the largest window and stops reading, its socket left open: once the
 * socket buffers are full the server can send nothing more, not even a reset.
 * Resolves with the socket and the GOAWAY's code.
 */
function provokeGoawayThenStopReading(port: number, first: string): Promise<{ socket: Socket; code: number }> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1');
    let next = 3;
    // Frames are skipped as they come (the answer's DATA is large): header bytes, then payload.
    let head = Buffer.alloc(0);
    let skip = 0;
    let keep: Buffer | null = null;
    let type = 0;
    const settings = Buffer.alloc(6);
    settings.writeUInt16BE(4, 0); // SETTINGS_INITIAL_WINDOW_SIZE
    settings.writeUInt32BE(0, 2);
    // The largest windows allowed: the connection's starts at 65,535, the stream's at 0.
    const connectionIncrement = Buffer.alloc(4);
    connectionIncrement.writeUInt32BE(2 ** 31 - 1 - 65_535);
    const streamIncrement = Buffer.alloc(4);
    streamIncrement.writeUInt32BE(2 ** 31 - 1);
    socket.on('error', reject);
    socket.on('connect', () => {
      socket.write(
        Buffer.concat([
          Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
          frame(4, 0, 0, settings),
          frame(8, 0, 0, connectionIncrement),
          frame(1, 0x5, 1, request(first)),
        ]),
      );
      // As many more as the server's limit allows: each is refused at once, the first holds the budget.
      for (let i = 0; i < 9; i++, next += 2) socket.write(frame(1, 0x5, next, request(`/?more=${next}`)));
    });
    const onFrame = (payload: Buffer) => {
      if (type === 3) {
        socket.write(frame(1, 0x5, next, request(`/?more=${next}`)));
        next += 2;
      } else if (type === 7) {
        socket.write(frame(8, 0, 1, streamIncrement));
        socket.pause();
        socket.removeAllListeners('data');
        resolve({ socket, code: payload.readUInt32BE(4) });
      }
    };
    socket.on('data', (chunk: Buffer) => {
      let at = 0;
      while (at < chunk.length) {
        if (skip > 0 || keep !== null) {
          const n = Math.min(skip, chunk.length - at);
          if (keep !== null) keep = Buffer.concat([keep, chunk.subarray(at, at + n)]);
          skip -= n;
          at += n;
          if (skip === 0 && keep !== null) {
            const payload = keep;
            keep = null;
            onFrame(payload);
            if (socket.isPaused()) return;
          }
          continue;
        }
        const n = Math.min(9 - head.length, chunk.length - at);
        head = Buffer.concat([head, chunk.subarray(at, at + n)]);
        at += n;
        if (head.length < 9) continue;
        skip = head.readUIntBE(0, 3);
        type = head[3]!;
        head = Buffer.alloc(0);
        keep = type === 3 || type === 7 ? Buffer.alloc(0) : null;
        if (skip === 0 && keep !== null) {
          keep = null;
          onFrame(Buffer.alloc(8));
          if (socket.isPaused()) return;
        }
      }
    });
  });
}

const count = (list: string[]) => list.reduce<Record<string, number>>((m, k) => ({ ...m, [k]: (m[k] ?? 0) + 1 }), {});

describe('HTTP/2 streams that send nothing', () => {
  let t: TestServer | null = null;
  const start = async (overrides: Parameters<typeof startTestServer>[0]) => {
    t = await startTestServer(overrides);
    return t;
  };
  afterEach(async () => {
    for (const s of sessions.splice(0)) s.destroy();
    await t?.close();
    t = null;
  });

  it('answers POST /livez streams that never send their body at once, and holds none of them', async () => {
    // A request timeout far beyond the test's patience: an answer that waited for the body could not come in time.
    const t = await start({ requestTimeoutMs: 60_000, maxOpsInFlight: 1000 });
    const clients = await Promise.all(Array.from({ length: 5 }, () => session(t.url)));
    const streams = clients.flatMap((s) =>
      Array.from({ length: 100 }, () =>
        outcome(s.request({ ':method': 'POST', ':path': '/livez' }, { endStream: false })),
      ),
    );
    const outcomes = await waitFor(
      async () => {
        const settled = await Promise.race([
          Promise.all(streams),
          new Promise<null>((r) => setTimeout(() => r(null), 100)),
        ]);
        return settled;
      },
      10_000,
      '500 POST /livez streams answered',
    );
    assert.deepEqual(count(outcomes), { 200: 500 });
    await waitForInFlight(t.url, 0);
    // The sessions are still open and usable: only the streams ended.
    assert.equal(await outcome(clients[0]!.request({ ':path': '/livez' })), '200');
  });

  it('answers an HTTP/1.1 health check whose declared body never comes at once, and closes it by --headers-timeout', async () => {
    const t = await start({ requestTimeoutMs: 60_000, headersTimeoutMs: 1000 });
    const started = performance.now();
    // Everything the server sends until it closes the connection (or 5 s pass).
    const answer = await rawRequest(t.port, 'POST /readyz HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n', 5000);
    const elapsed = performance.now() - started;
    assert.match(answer, /^HTTP\/1\.1 200 /);
    assert.ok(elapsed < 4000, `closed after ${Math.round(elapsed)} ms, --headers-timeout is 1 s`);
    assert.equal(t.logs.messages('connection closed: operations request body not needed').length, 1);
    // Over --max-body-size it is refused, still without reading it.
    const large = await rawRequest(t.port, 'POST /livez HTTP/1.1\r\nHost: h\r\nContent-Length: 999999999\r\n\r\n', {
      timeoutMs: 5000,
      until: responseComplete,
    });
    assert.match(large, /^HTTP\/1\.1 413 /);
    await waitForInFlight(t.url, 0);
  });

  it('refuses operations requests over --max-ops-in-flight: REFUSED_STREAM on HTTP/2, 503 on HTTP/1.1', async () => {
    const t = await start({ maxOpsInFlight: 3 });
    // A zero flow-control window: the answers' bodies cannot be sent, so their streams stay open.
    const stuck = await session(t.url, { initialWindowSize: 0 });
    const held = Array.from({ length: 3 }, () => outcome(stuck.request({ ':path': '/version' })));
    // (Scraping /metrics would take a place in the budget itself: a health check is the probe.)
    const http1 = await waitFor(
      async () => {
        const answer = await rawRequest(t.port, 'GET /livez HTTP/1.1\r\nHost: h\r\n\r\n', {
          timeoutMs: 5000,
          until: responseComplete,
        });
        return answer.startsWith('HTTP/1.1 503 ') ? answer : null;
      },
      5000,
      'the budget full of held /version streams',
      20,
    );
    const refused = await outcome(stuck.request({ ':path': '/livez' }));
    assert.equal(refused, 'rst7');
    assert.match(http1, /^HTTP\/1\.1 503 /);
    assert.match(http1, /\r\nRetry-After: 1\r\n/i);
    assert.match(http1, /--max-ops-in-flight \(3\)/);
    assert.ok(t.logs.messages('operations request refused: --max-ops-in-flight reached').length >= 1);
    // The echo itself is not refused by the operations budget.
    assert.equal((await fetch(t.url)).status, 200);
    stuck.destroy();
    await Promise.all(held);
    await waitFor(
      async () => (await fetch(new URL('/livez', t.url))).status === 200,
      5000,
      'the held streams released',
    );
    await waitForInFlight(t.url, 0);
  });

  it('sends GOAWAY to a session that keeps provoking REFUSED_STREAM', async () => {
    const t = await start({ maxInFlight: 1 });
    const holder = await session(t.url);
    const delayed = outcome(holder.request({ ':path': '/?echo_delay=10s' }));
    await waitForInFlight(t.url, 1);
    const abuser = await session(t.url);
    let goaway: number | null = null;
    abuser.on('goaway', (code: number) => {
      goaway = code;
    });
    const outcomes: string[] = [];
    // Rounds of 100 streams (the advertised limit), each refused, until the server stops taking them.
    for (let round = 0; round < 10 && goaway === null && !abuser.closed && !abuser.destroyed; round++) {
      const batch: Promise<string>[] = [];
      for (let i = 0; i < 100; i++) {
        try {
          batch.push(outcome(abuser.request({ ':path': `/?r=${round}&i=${i}` })));
        } catch {
          break; // the session is going away
        }
      }
      outcomes.push(...(await Promise.all(batch)));
    }
    assert.equal(
      goaway,
      11,
      `GOAWAY ENHANCE_YOUR_CALM after ${outcomes.length} streams: ${JSON.stringify(count(outcomes))}`,
    );
    assert.ok(outcomes.length <= 600, `${outcomes.length} streams taken`);
    assert.ok(
      t.logs.messages('HTTP/2 session closed: too many streams refused (GOAWAY ENHANCE_YOUR_CALM)').length === 1,
    );
    // Other sessions are untouched: the held stream is still running.
    holder.request({ ':path': '/livez' }).close();
    holder.destroy();
    await delayed;
  });

  it('destroys a session sent away by GOAWAY whose client stopped reading, ending its exchange within --idle-timeout', async () => {
    const t = await start({ maxInFlight: 1, h2MaxStreams: 10, idleTimeoutMs: 1000, maxDelayMs: 500 });
    // An answer far larger than the socket buffers: it stalls once the client stops reading.
    const { socket, code } = await provokeGoawayThenStopReading(t.port, '/?echo_size=67108864');
    try {
      assert.equal(code, 11, 'GOAWAY ENHANCE_YOUR_CALM');
      // The stalled answer is cancelled after the idle timeout, but its RST_STREAM
      // cannot leave either: only destroying the closing session ends the exchange.
      await waitFor(async () => (await requestsInFlight(t.url)) === 1, 6000, 'nothing in flight but the scrape');
      assert.equal(
        t.logs.messages('HTTP/2 session destroyed: closing, and no progress within --idle-timeout').length,
        1,
      );
      const line = t.logs.lines.find((l) => l.msg === 'request' && l.uri === '/?echo_size=67108864');
      assert.equal(line?.aborted, true, JSON.stringify(line));
    } finally {
      socket.destroy();
    }
  });
});
