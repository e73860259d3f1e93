// An HTTP/2 answer whose client never opens its flow-control window stays on the
// server, whole, until it is sent or its stream is reset: its exchange must stay
// counted against the in-flight budget for that long, or a client could park any
// number of such answers while the budget reads one in flight.
import assert from 'node:assert/strict';
import { connect as h2connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { requestsInFlight, startTestServer, waitFor, type TestServer } from '../helpers.ts';

const NGHTTP2_REFUSED_STREAM = 7;

describe('HTTP/2 answers stalled on flow control', () => {
  let t: TestServer;
  const BUDGET = 12;
  before(async () => {
    // No per-client share: the one loopback client may take the whole budget, so what
    // is counted is the budget itself.
    t = await startTestServer({ maxInFlight: BUDGET, maxInFlightPerClient: 1000 });
  });
  after(() => t.close());

  it('keeps each stalled stream counted in flight until its answer leaves or the stream is reset', async () => {
    // A raw node:http2 client that grants no stream window: HEADERS get through,
    // no DATA ever does.
    const session = h2connect(t.url, { settings: { initialWindowSize: 0 } });
    session.on('error', () => {});
    const streams: ClientHttp2Stream[] = [];
    const heads: number[] = [];
    const resets: number[] = [];
    const STREAMS = 20;
    for (let i = 0; i < STREAMS; i++) {
      const s = session.request({ ':path': `/stalled/${i}?pad=${'x'.repeat(2000)}` });
      s.on('response', (h) => heads.push(Number(h[':status'])));
      s.on('close', () => {
        if (s.rstCode !== 0) resets.push(s.rstCode);
      });
      s.on('error', () => {});
      s.pause();
      streams.push(s);
    }
    await waitFor(() => heads.length + resets.length === STREAMS, 5000, 'every stream answered or refused');
    // The answers are all held by the server: none of their bodies can leave.
    assert.equal(heads.length, BUDGET, `answers begun (${heads.length}) are as many as the budget allows`);
    assert.ok(heads.every((s) => s === 200));
    assert.deepEqual(
      resets,
      Array<number>(STREAMS - BUDGET).fill(NGHTTP2_REFUSED_STREAM),
      'the rest refused (REFUSED_STREAM)',
    );
    const stalledLines = () =>
      t.logs.lines.filter((l) => typeof l.uri === 'string' && l.uri.startsWith('/stalled/') && l.status === 200);
    assert.equal(stalledLines().length, 0, 'no stalled answer is logged as done while it has not left');
    // A fresh client finds the budget full.
    const refusedFresh = await fetch(new URL('/', t.url)).then((r) => r.status);
    assert.equal(refusedFresh, 503);

    // The client goes away: every stalled answer is recorded once, as aborted, and the budget is free again.
    session.destroy();
    await waitFor(() => stalledLines().length === BUDGET, 5000, 'the stalled answers recorded');
    assert.ok(
      stalledLines().every((l) => l.aborted === true),
      'recorded as aborted',
    );
    await waitFor(async () => (await requestsInFlight(t.url)) === 1, 5000, 'nothing in flight but the scrape');
  });

  it('closes the record when the window opens and the answer leaves', async () => {
    const session = h2connect(t.url, { settings: { initialWindowSize: 0 } });
    session.on('error', () => {});
    const s = session.request({ ':path': '/released', accept: 'application/json' });
    let body = '';
    s.setEncoding('utf8');
    s.on('data', (c: string) => {
      body += c;
    });
    await new Promise((resolve) => s.once('response', resolve));
    await waitFor(
      async () => (await requestsInFlight(t.url)) === 2,
      5000,
      'the stalled answer and the scrape in flight',
    );
    assert.equal(t.logs.lines.filter((l) => l.uri === '/released').length, 0);
    // The window opens: the answer leaves, and then its record closes, not aborted.
    session.settings({ initialWindowSize: 65_535 });
    await new Promise((resolve) => s.once('end', resolve));
    assert.match(body, /"path":\s*"\/released"/);
    const [line] = await waitFor(
      () => {
        const l = t.logs.lines.filter((x) => x.uri === '/released');
        return l.length === 1 ? l : null;
      },
      5000,
      'the access line',
    );
    assert.equal(line!.aborted, undefined, 'not aborted');
    assert.equal(line!.status, 200);
    session.close();
    await waitFor(async () => (await requestsInFlight(t.url)) === 1, 5000, 'nothing in flight but the scrape');
  });
});

describe('gRPC answers stalled on flow control', () => {
  let t: TestServer;
  const SHARE = 4;
  const NGHTTP2_CANCEL = 8;
  before(async () => {
    // A share well under the budget: what is counted is the one client's share.
    t = await startTestServer({ grpc: true, maxInFlight: 100, maxInFlightPerClient: SHARE });
  });
  after(() => t.close());

  /** A unary Echo call (an empty EchoRequest) on `session`, read or not as the test pauses it. */
  const call = (session: ClientHttp2Session) => {
    const s = session.request({
      ':method': 'POST',
      ':path': '/echoserver.v1.Echo/Echo',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    s.on('error', () => {});
    s.end(Buffer.alloc(5));
    return s;
  };
  const echoLines = () => t.logs.lines.filter((l) => l.uri === '/echoserver.v1.Echo/Echo');

  it('keeps each stalled call counted against its client share until its stream is cancelled or reset', async () => {
    // A raw node:http2 client that grants no stream window: the HEADERS of the
    // answers get through, no DATA (and so no trailers) ever does.
    const session = h2connect(t.url, { settings: { initialWindowSize: 0 } });
    session.on('error', () => {});
    const CALLS = 8;
    const heads: number[] = [];
    const resets: number[] = [];
    const streams: ClientHttp2Stream[] = [];
    for (let i = 0; i < CALLS; i++) {
      const s = call(session);
      s.on('response', (h) => heads.push(Number(h[':status'])));
      s.on('close', () => {
        if (s.rstCode !== 0) resets.push(s.rstCode);
      });
      s.pause();
      streams.push(s);
      // One at a time, so which calls are answered and which refused is fixed.
      await waitFor(() => heads.length + resets.length === i + 1, 5000, `call ${i} answered or refused`);
    }
    assert.equal(heads.length, SHARE, `calls answered (${heads.length}) are as many as the share allows`);
    assert.deepEqual(
      resets,
      Array<number>(CALLS - SHARE).fill(NGHTTP2_REFUSED_STREAM),
      'the rest refused (REFUSED_STREAM)',
    );
    const answered = echoLines().filter((l) => l.aborted !== true);
    assert.equal(answered.length, 0, 'no stalled call is logged as done while its answer has not left');

    // The client cancels one stalled call: it is recorded once, aborted, and its share is free again.
    streams[0]!.close(NGHTTP2_CANCEL);
    await waitFor(
      () => echoLines().filter((l) => l.aborted === true && l.grpcStatus === 1).length === 1,
      5000,
      'the cancelled call recorded as CANCELLED, aborted',
    );
    const again = call(session);
    again.pause();
    const head = await new Promise<number>((resolve) => {
      again.once('response', (h) => resolve(Number(h[':status'])));
      again.once('close', () => resolve(-again.rstCode));
    });
    assert.equal(head, 200, 'a call fits in the freed share');

    // The client goes away: every stalled call is recorded once, as aborted.
    session.destroy();
    await waitFor(() => echoLines().length === CALLS + 1, 5000, 'every call recorded');
    assert.ok(
      echoLines().every((l) => l.aborted === true),
      'recorded as aborted',
    );
    await waitFor(async () => (await requestsInFlight(t.url)) === 1, 5000, 'nothing in flight but the scrape');
  });

  it('closes the record, with its status, when the window opens and the answer leaves', async () => {
    const before = echoLines().length;
    const session = h2connect(t.url, { settings: { initialWindowSize: 0 } });
    session.on('error', () => {});
    const s = call(session);
    const chunks: Buffer[] = [];
    let trailers: Record<string, unknown> = {};
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('trailers', (h: Record<string, unknown>) => {
      trailers = h;
    });
    await new Promise((resolve) => s.once('response', resolve));
    await waitFor(async () => (await requestsInFlight(t.url)) === 2, 5000, 'the stalled call and the scrape in flight');
    assert.equal(echoLines().length, before, 'not recorded while its answer is held');
    // The window opens: the answer leaves, and then its record closes, not aborted.
    session.settings({ initialWindowSize: 65_535 });
    await new Promise((resolve) => s.once('end', resolve));
    assert.equal(trailers['grpc-status'], '0');
    assert.ok(Buffer.concat(chunks).length > 5, 'the EchoResponse arrived');
    const [line] = await waitFor(
      () => {
        const l = echoLines().slice(before);
        return l.length === 1 ? l : null;
      },
      5000,
      'the access line',
    );
    assert.equal(line!.aborted, undefined, 'not aborted');
    assert.equal(line!.grpcStatus, 0);
    session.close();
    await waitFor(async () => (await requestsInFlight(t.url)) === 1, 5000, 'nothing in flight but the scrape');
  });
});
