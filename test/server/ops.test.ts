import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestServer, waitFor, type TestServer } from '../helpers.ts';

describe('operations endpoints', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  it('serves liveness and readiness as plain text, not echoed', async () => {
    const live = await fetch(`${t.url}/livez`);
    assert.equal(live.status, 200);
    assert.equal(await live.text(), 'ok\n');
    const ready = await fetch(`${t.url}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal(await ready.text(), 'ready\n');
  });

  it('serves version and build info', async () => {
    const res = await fetch(`${t.url}/version`);
    const info = (await res.json()) as Record<string, unknown>;
    assert.equal(info.name, 'echo-server');
    assert.match(info.version as string, /^\d+\.\d+\.\d+/);
    assert.equal(info.node, process.version);
  });

  it('serves Prometheus metrics: requests by method and status, durations, in-flight, connections, process', async () => {
    await fetch(`${t.url}/m?echo_status=404`, { method: 'POST', body: 'x' });
    await fetch(`${t.url}/m`);
    const res = await fetch(`${t.url}/metrics`);
    assert.match(res.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.match(text, /^echo_http_requests_total\{method="POST",status="404"\} 1$/m);
    assert.match(text, /^echo_http_requests_total\{method="GET",status="200"\} \d+$/m);
    assert.match(text, /^echo_http_request_duration_seconds_bucket\{le="0\.005",method="GET"\} \d+$/m);
    assert.match(text, /^echo_http_requests_in_flight 1$/m, 'the metrics request itself is in flight');
    assert.match(text, /^echo_open_connections [1-9]\d*$/m);
    assert.match(text, /^process_resident_memory_bytes \d+/m);
    assert.match(text, /^nodejs_eventloop_lag_seconds /m);
  });

  it('does not access-log operations requests by default, but logs echoes', async () => {
    const before = t.logs.messages('request').length;
    await fetch(`${t.url}/livez`);
    await fetch(`${t.url}/readyz`);
    await fetch(`${t.url}/metrics`);
    await fetch(`${t.url}/logged`);
    // The access line is written before the answer goes out, so once the last fetch
    // is answered every line that will ever exist for these requests is there.
    await waitFor(() => t.logs.messages('request').length > before);
    const lines = t.logs.messages('request').slice(before);
    assert.deepEqual(
      lines.map((l) => l.uri),
      ['/logged'],
    );
  });

  it('moves endpoints to configured paths and disables empty ones', async () => {
    const moved = await startTestServer({ livenessPath: '/health/live', metricsPath: '', versionPath: '' });
    try {
      assert.equal(await (await fetch(`${moved.url}/health/live`)).text(), 'ok\n');
      assert.match(await (await fetch(`${moved.url}/livez`)).text(), /^RequestURI: \/livez$/m, 'old path now echoes');
      assert.match(await (await fetch(`${moved.url}/metrics`)).text(), /^RequestURI: \/metrics$/m);
      assert.match(await (await fetch(`${moved.url}/version`)).text(), /^RequestURI: \/version$/m);
    } finally {
      await moved.close();
    }
  });

  it('turns metrics off', async () => {
    const off = await startTestServer({ metrics: false });
    try {
      assert.match(await (await fetch(`${off.url}/metrics`)).text(), /^RequestURI: \/metrics$/m);
    } finally {
      await off.close();
    }
  });
});

describe('access log', () => {
  it('writes one JSON line per request with the documented fields, and never the body', async () => {
    const t = await startTestServer();
    try {
      const answer = await (
        await fetch(`${t.url}/x?y=1`, {
          method: 'POST',
          body: 'secret-body',
          headers: { 'user-agent': 'ua/1', 'x-request-id': 'rid-1' },
        })
      ).text();
      await waitFor(() => t.logs.messages('request').length === 1);
      const line = t.logs.messages('request')[0]!;
      assert.deepEqual(
        Object.keys(line).sort(),
        [
          'bytesIn',
          'bytesOut',
          'clientIp',
          'durationMs',
          'level',
          'method',
          'msg',
          'reqId',
          'status',
          'time',
          'uri',
          'userAgent',
        ].sort(),
      );
      assert.equal(line.level, 'info');
      assert.equal(line.reqId, 'rid-1');
      assert.equal(line.method, 'POST');
      assert.equal(line.uri, '/x?y=1');
      assert.equal(line.status, 200);
      assert.equal(line.bytesIn, 11);
      assert.equal(line.bytesOut, Buffer.byteLength(answer), 'the body bytes sent');
      assert.equal(line.clientIp, '127.0.0.1');
      assert.equal(line.userAgent, 'ua/1');
      assert.match(line.time as string, /^\d{4}-\d\d-\d\dT/);
      assert.ok(!JSON.stringify(t.logs.lines).includes('secret-body'));
    } finally {
      await t.close();
    }
  });

  it('escapes client text in the access line, which stays one valid JSON object', async () => {
    const t = await startTestServer();
    try {
      const ua = 'evil "agent" \\ \u00e9';
      await fetch(`${t.url}/p%22q?x="y"`, { headers: { 'user-agent': ua } });
      await waitFor(() => t.logs.messages('request').length === 1);
      const line = t.logs.messages('request')[0]!;
      assert.equal(line.userAgent, ua);
      assert.equal(line.uri, '/p%22q?x=%22y%22');
    } finally {
      await t.close();
    }
  });

  it('obeys the log level', async () => {
    const t = await startTestServer();
    try {
      t.server.logger.level = 'warn';
      await (await fetch(t.url)).text(); // answered: its line would already be written
      assert.equal(t.logs.messages('request').length, 0);
    } finally {
      await t.close();
    }
  });

  it('can be turned off', async () => {
    const t = await startTestServer({ accessLog: false });
    try {
      await (await fetch(t.url)).text(); // answered: its line would already be written
      assert.equal(t.logs.messages('request').length, 0);
    } finally {
      await t.close();
    }
  });
});

describe('graceful shutdown', () => {
  it('fails readiness at once, finishes the request in flight, refuses new connections', async () => {
    const t = await startTestServer({ drainTimeoutMs: 5000 });
    const inflight = fetch(`${t.url}/?echo_delay=400ms`);
    await waitFor(() => t.server.app.inFlight === 1);
    const stopping = t.server.shutdown();
    assert.equal(t.server.app.health.checkReady(), false, 'readiness fails the moment shutdown begins');
    const res = await inflight;
    assert.equal(res.status, 200);
    assert.match(await res.text(), /^RequestURI: \/\?echo_delay=400ms$/m);
    assert.equal(await stopping, true, 'drained in time');
    await assert.rejects(fetch(t.url), 'no new connections after shutdown');
  });

  it('gives up on requests that outlast the drain timeout', async () => {
    const t = await startTestServer({ drainTimeoutMs: 100 });
    const inflight = fetch(`${t.url}/?echo_delay=3s`).catch((err: unknown) => err);
    await waitFor(() => t.server.app.inFlight === 1);
    const start = performance.now();
    assert.equal(await t.server.shutdown(), false);
    assert.ok(performance.now() - start < 1000);
    assert.ok((await inflight) instanceof Error, 'the connection was closed');
  });
});
