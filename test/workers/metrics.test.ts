// Bounded metrics and --metrics-port, through a real server and real HTTP clients.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { main } from '../../src/cli.ts';
import { EXACT_STATUSES, MAX_REQUEST_SERIES, METHODS } from '../../src/ops/metrics.ts';
import { freePort, startTestServer, waitFor, type TestServer } from '../helpers.ts';

function send(
  port: number,
  method: string,
  path: string,
  timeoutMs = 10_000,
): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} not answered within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** A TCP connection that sends nothing, open once this resolves; `closed` says whether the server closed it. */
async function idleConnection(port: number): Promise<{ socket: Socket; closed: () => boolean }> {
  const socket = connect({ port, host: '127.0.0.1' });
  let closed = false;
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
  });
  socket.resume(); // read, so that the server's close is seen
  await once(socket, 'connect');
  return { socket, closed: () => closed };
}

const series = (text: string) => text.split('\n').filter((l) => l.startsWith('echo_http_requests_total{'));

describe('bounded metrics', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ accessLog: false });
  });
  after(() => t.close());

  it('keeps echo_http_requests_total within a fixed number of series whatever statuses and methods clients ask for', async () => {
    const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'PROPFIND', 'MKCOL', 'SEARCH'];
    const codes = [200, 201, 203, 204, 226, 299, 301, 305, 399, 404, 418, 420, 451, 499, 500, 503, 507, 599];
    for (const method of methods) {
      await Promise.all(codes.map((code) => send(t.port, method, `/?echo_status=${code}`)));
    }
    const text = (await send(t.port, 'GET', '/metrics')).body;
    const lines = series(text);
    assert.ok(lines.length <= MAX_REQUEST_SERIES, `${lines.length} series`);
    assert.equal(MAX_REQUEST_SERIES, METHODS.length * (EXACT_STATUSES.length + 5));
    // Exact where the code is on the list, its class otherwise; unknown methods are OTHER.
    assert.ok(lines.includes('echo_http_requests_total{method="GET",status="404"} 1'), text);
    assert.ok(lines.includes('echo_http_requests_total{method="GET",status="4xx"} 3'), 'GET 418, 420, 451 share 4xx');
    assert.ok(
      lines.includes('echo_http_requests_total{method="OTHER",status="5xx"} 6'),
      '507 and 599 from PROPFIND, MKCOL, SEARCH',
    );
    assert.ok(!lines.some((l) => /status="(418|420|451|507|599|226)"/.test(l)), 'no series for codes off the list');
    assert.ok(!lines.some((l) => /method="(PROPFIND|MKCOL|SEARCH)"/.test(l)), 'no series for methods off the list');
    // Each of the 9 × 18 requests was counted once.
    const total = lines.reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    assert.equal(total, methods.length * codes.length);
  });

  it('renders the duration histogram, gauges and process metrics in Prometheus text', async () => {
    const res = await send(t.port, 'GET', '/metrics');
    assert.equal(res.status, 200);
    assert.match(res.type, /^text\/plain; version=0\.0\.4/);
    assert.match(res.body, /^# TYPE echo_http_request_duration_seconds histogram$/m);
    assert.match(res.body, /^echo_http_request_duration_seconds_bucket\{le="\+Inf",method="GET"\} \d+$/m);
    assert.match(res.body, /^echo_http_request_duration_seconds_count\{method="GET"\} \d+$/m);
    assert.match(res.body, /^echo_http_requests_in_flight 1$/m, 'the scrape itself is in flight');
    assert.match(res.body, /^echo_open_connections \d+$/m);
    assert.match(res.body, /^echo_requests_refused_total 0$/m);
    assert.match(res.body, /^process_resident_memory_bytes \d+/m);
    assert.match(res.body, /^nodejs_version_info\{/m);
  });
});

describe('--metrics-port', () => {
  let t: TestServer;
  let metricsPort = 0;
  before(async () => {
    metricsPort = await freePort();
    t = await startTestServer({ metricsPort });
  });
  after(() => t.close());

  it('serves /metrics on its own port, and the echo port then echoes /metrics like any path', async () => {
    await send(t.port, 'GET', '/hello');
    assert.equal(t.server.metricsListener?.port, metricsPort);
    const scraped = await send(metricsPort, 'GET', '/metrics');
    assert.equal(scraped.status, 200);
    assert.match(scraped.body, /^echo_http_requests_total\{method="GET",status="200"\} \d+$/m);
    const echoed = await send(t.port, 'GET', '/metrics');
    assert.equal(echoed.status, 200);
    assert.match(echoed.body, /^Method: GET$/m);
    assert.doesNotMatch(echoed.body, /echo_http_requests_total/);
  });

  it('keeps answering scrapes while 100 connections sit on it sending nothing', async () => {
    const idle = await Promise.all(Array.from({ length: 100 }, () => idleConnection(metricsPort)));
    try {
      // Each scrape on a new connection, as a scraper after a restart: room is made for it.
      const statuses: (number | string)[] = [];
      for (let i = 0; i < 45; i++)
        statuses.push(
          await send(metricsPort, 'GET', '/metrics', 2000).then(
            (r) => r.status,
            (err: Error) => err.message,
          ),
        );
      assert.deepEqual(statuses, Array(45).fill(200));
    } finally {
      for (const c of idle) c.socket.destroy();
    }
  });

  it('closes a connection that sends nothing after its headers timeout (5 s), not up to 30 s later', async () => {
    const idle = await Promise.all(Array.from({ length: 10 }, () => idleConnection(metricsPort)));
    try {
      await waitFor(() => idle.every((c) => c.closed()), 10_000, 'every idle connection closed by the server', 100);
    } finally {
      for (const c of idle) c.socket.destroy();
    }
  });

  it('answers 404 on the metrics port for any other path', async () => {
    const res = await send(metricsPort, 'GET', '/');
    assert.equal(res.status, 404);
  });

  it('refuses a metrics port equal to the HTTP port (exit 2)', async () => {
    const stderr = new PassThrough();
    let err = '';
    stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    const code = await main(['--port', '47611', '--metrics-port', '47611'], {
      env: {},
      stdout: new PassThrough(),
      stderr,
      onSignal: () => {},
    });
    assert.equal(code, 2);
    assert.match(err, /--metrics-port/);
  });
});
