import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { SETTINGS } from '../../src/config/settings.ts';
import { ANSWERS, CONTROLS, type Answer } from '../../src/controls/table.ts';
import { headerLinesOf, outOfBound, queryOf } from '../control-cases.ts';
import { h2request, rawRequest, startTestServer, type TestServer } from '../helpers.ts';

describe('response controls', () => {
  let t: TestServer;
  let nextRandom = 0;
  before(async () => {
    t = await startTestServer(
      { maxDelayMs: 2000, maxGeneratedSize: 8 * 1024 * 1024, maxResponseHeaders: 3, healthControl: true },
      { random: () => nextRandom },
    );
  });
  after(() => t.close());

  it('sets the status by query parameter or header, on any path', async () => {
    assert.equal((await fetch(`${t.url}/a/b?echo_status=418`)).status, 418);
    assert.equal((await fetch(`${t.url}/c`, { headers: { 'X-Echo-Status': '503' } })).status, 503);
  });

  it('prefers the query parameter over the header', async () => {
    assert.equal((await fetch(`${t.url}/?echo_status=201`, { headers: { 'X-Echo-Status': '503' } })).status, 201);
  });

  it('picks a weighted random status', async () => {
    nextRandom = 0.1;
    assert.equal((await fetch(`${t.url}/?echo_status=200:3,503:1`)).status, 200);
    nextRandom = 0.9;
    assert.equal((await fetch(`${t.url}/?echo_status=200:3,503:1`)).status, 503);
  });

  it('sends 1xx codes as interim responses before the echo', async () => {
    const res = await fetch(`${t.url}/?echo_status=103`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /^Method: GET$/m);
  });

  it('delays the answer', async () => {
    const start = performance.now();
    const res = await fetch(`${t.url}/?echo_delay=300ms`);
    assert.equal(res.status, 200);
    assert.ok(performance.now() - start >= 290, 'answer came no sooner than asked');
  });

  it('adds response headers, repeatable', async () => {
    const res = await fetch(`${t.url}/?echo_header=X-One:%201&echo_header=X-Tag:%20a`, {
      headers: { 'X-Echo-Header': 'X-Two: 2' },
    });
    assert.equal(res.headers.get('x-one'), '1');
    assert.equal(res.headers.get('x-tag'), 'a');
    assert.equal(res.headers.get('x-two'), null, 'the query set the header control, so the header is not mixed in');
    const h = await fetch(`${t.url}/`, { headers: { 'X-Echo-Header': 'X-Two: 2' } });
    assert.equal(h.headers.get('x-two'), '2');
  });

  it('composes status, delay and headers', async () => {
    const res = await fetch(`${t.url}/x?echo_status=202&echo_delay=10ms&echo_header=X-A:b&echo_format=json`);
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('x-a'), 'b');
    assert.equal(((await res.json()) as { path: string }).path, '/x');
  });

  it('streams a generated body of the asked size', async () => {
    const res = await fetch(`${t.url}/?echo_size=5MiB`);
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    assert.equal(res.headers.get('content-length'), String(5 * 1024 * 1024));
    const buf = new Uint8Array(await res.arrayBuffer());
    assert.equal(buf.length, 5 * 1024 * 1024);
  });

  it('answers out-of-range and malformed controls with 400 naming the parameter', async () => {
    const cases: [string, Record<string, string>, RegExp][] = [
      ['/?echo_status=600', {}, /invalid echo_status: 600 is out of range 100\.\.599/],
      ['/?echo_status=abc', {}, /invalid echo_status/],
      ['/?echo_delay=1h', {}, /invalid echo_delay: 1h exceeds the maximum of 2s/],
      ['/?echo_size=1GiB', {}, /invalid echo_size/],
      ['/', { 'X-Echo-Delay': 'soon' }, /invalid X-Echo-Delay: "soon" is not a duration/],
      ['/?echo_header=Content-Type:text/html', {}, /invalid echo_header: Content-Type cannot be set by a client/],
      ['/?echo_header=A:1&echo_header=B:2&echo_header=C:3&echo_header=D:4', {}, /at most 3 headers/],
      ['/?echo_nope=1', {}, /unknown control echo_nope/],
    ];
    for (const [path, headers, message] of cases) {
      const res = await fetch(t.url + path, { headers });
      assert.equal(res.status, 400, path);
      assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
      assert.match(await res.text(), message);
    }
    assert.equal((await fetch(t.url)).status, 200, 'still serving');
  });

  it('can never make the server reflect content as HTML, script or SVG', async () => {
    const attempts = [
      '/?echo_header=Content-Type:%20text/html',
      '/?echo_header=content-type:image/svg%2Bxml',
      '/?echo_header=X-Content-Type-Options:%20none',
      '/?echo_header=Content-Security-Policy:%20default-src%20*',
      '/?echo_format=html&echo_header=Content-Type:application/javascript',
    ];
    for (const path of attempts) {
      const res = await fetch(t.url + path);
      assert.equal(res.status, 400, path);
      assert.match(res.headers.get('content-type')!, /^text\/plain/);
    }
    const body = '<script>alert(1)</script>';
    const res = await fetch(`${t.url}/?echo_format=html`, {
      method: 'POST',
      body,
      headers: { 'content-type': 'text/html' },
    });
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.ok(!(await res.text()).includes(body));
  });

  it('fails the health endpoints once, or until told otherwise', async () => {
    assert.equal((await fetch(`${t.url}/livez`)).status, 200);
    await fetch(`${t.url}/?echo_health=fail-once`);
    assert.equal((await fetch(`${t.url}/livez`)).status, 503);
    assert.equal((await fetch(`${t.url}/livez`)).status, 200);
    await fetch(`${t.url}/`, { headers: { 'X-Echo-Health': 'fail' } });
    assert.equal((await fetch(`${t.url}/livez`)).status, 503);
    assert.equal((await fetch(`${t.url}/readyz`)).status, 503);
    assert.equal((await fetch(`${t.url}/livez`)).status, 503);
    await fetch(`${t.url}/?echo_health=ok`);
    assert.equal((await fetch(`${t.url}/livez`)).status, 200);
    assert.equal((await fetch(`${t.url}/readyz`)).status, 200);
  });
});

describe('controls switched off', () => {
  it('ignores controls when the operator disables them, but still echoes them', async () => {
    const t = await startTestServer({ controls: false });
    try {
      const res = await fetch(`${t.url}/?echo_status=503&echo_delay=abc`, { headers: { 'X-Echo-Status': '500' } });
      assert.equal(res.status, 200);
      const text = await res.text();
      assert.match(text, /echo_status/);
      assert.match(text, /"X-Echo-Status":\["500"\]/);
      assert.equal(
        (await fetch(`${t.url}/?echo_format=json`)).headers.get('content-type'),
        'application/json; charset=utf-8',
        'format is not a control',
      );
    } finally {
      await t.close();
    }
  });

  it('refuses the health control unless the operator enables it', async () => {
    const t = await startTestServer();
    try {
      const res = await fetch(`${t.url}/?echo_health=fail`);
      assert.equal(res.status, 403);
      assert.match(await res.text(), /--health-control/);
      assert.equal((await fetch(`${t.url}/livez`)).status, 200);
    } finally {
      await t.close();
    }
  });
});

describe('unexpected errors', () => {
  it('answer 500, are logged, and never take the server down, on every path', async () => {
    // The weighted status choice calls the injected random source; make it fail.
    const t = await startTestServer(
      {},
      {
        random: () => {
          throw new Error('boom');
        },
      },
    );
    try {
      const cases: [string, RequestInit][] = [
        ['/?echo_status=200:1,503:1', {}],
        ['/?echo_status=200:1,503:1&echo_delay=10ms', {}],
        ['/?echo_status=200:1,503:1', { method: 'POST', body: 'with a body' }],
      ];
      for (const [path, init] of cases) {
        const res = await fetch(t.url + path, init);
        assert.equal(res.status, 500, path);
        assert.equal(await res.text(), 'internal error\n');
      }
      assert.equal(t.logs.messages('request failed').length, 3);
      assert.equal((await fetch(t.url)).status, 200, 'still serving');
      assert.equal(t.server.app.inFlight, 0, 'nothing left in flight');
    } finally {
      await t.close();
    }
  });
});

// The controls table (src/controls/table.ts) against the running server: each row's
// bound, where it applies, --no-controls and its gate, from the declaration alone.
const TABLE_LIMITS = { maxDelayMs: 2000, maxGeneratedSize: 64 * 1024, maxResponseHeaders: 3 };

/** The status a request with this query gets: the echo (each rendering, HTTP/1.1 and HTTP/2), a WebSocket upgrade, a probe. */
function answerStatus(t: TestServer, answer: Answer, query: string): Promise<number> {
  const viaFetch = async (path: string, accept: string) => {
    const res = await fetch(`${t.url}${path}?${query}`, { headers: { accept } });
    await res.arrayBuffer();
    return res.status;
  };
  switch (answer) {
    case 'HTTP/1.1':
      return viaFetch('/t', 'text/plain');
    case 'HTTP/2':
      return h2request(t.url, `/t?${query}`).then((r) => r.status);
    case 'HTML':
      return viaFetch('/t', 'text/html');
    case 'SSE':
      return viaFetch('/t', 'text/event-stream');
    case 'probes':
      return viaFetch('/livez', '*/*');
    case 'WebSocket':
      return upgradeStatus(`${t.url.replace('http', 'ws')}/t?${query}`);
  }
}

/** 101 when the upgrade is accepted (the socket is then closed), else the refusal's status. */
function upgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => {
      ws.once('close', () => resolve(101));
      ws.close();
    });
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    ws.once('error', reject);
  });
}

function describeValues(values: readonly string[]): string {
  return values.length > 1 ? `${values.length} values` : `"${values[0]}"`;
}

describe('the controls table, through a real server', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ ...TABLE_LIMITS, healthControl: true, sseCount: 0 });
  });
  after(() => t.close());

  for (const spec of CONTROLS) {
    for (const values of outOfBound(spec, TABLE_LIMITS)) {
      it(`${spec.query} and ${spec.header}: ${describeValues(values)} is refused with 400 naming the control`, async () => {
        const res = await fetch(`${t.url}/?${queryOf(spec, values)}`);
        assert.equal(res.status, 400);
        assert.ok((await res.text()).startsWith(`invalid ${spec.query}: `));
        const raw = await rawRequest(
          t.port,
          `GET / HTTP/1.1\r\nHost: h\r\n${headerLinesOf(spec, values)}Connection: close\r\n\r\n`,
        );
        assert.match(raw, /^HTTP\/1\.1 400 /);
        assert.ok(raw.includes(`\r\n\r\ninvalid ${spec.header}: `), raw);
      });
    }

    it(`${spec.query}: the example is taken`, async () => {
      const res = await fetch(`${t.url}/?${queryOf(spec, [spec.example])}`);
      await res.arrayBuffer();
      assert.notEqual(res.status, 400);
      if (spec.gate !== null) assert.notEqual(res.status, 403);
      await fetch(`${t.url}/?echo_health=ok`); // the health example must not leave the server unready
    });

    it(`${spec.query} is read on ${spec.appliesTo.join(', ')}, and on nothing else`, async () => {
      const [bad] = outOfBound(spec, TABLE_LIMITS);
      for (const answer of ANSWERS) {
        const status = await answerStatus(t, answer, queryOf(spec, bad!));
        if (spec.appliesTo.includes(answer)) assert.equal(status, 400, `${answer} reads ${spec.query}`);
        else assert.ok(status === 200 || status === 101, `${answer} ignores ${spec.query}, got ${status}`);
      }
    });
  }
});

describe('with --no-controls', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ ...TABLE_LIMITS, controls: false, healthControl: true });
  });
  after(() => t.close());

  for (const spec of CONTROLS) {
    it(`${spec.query} is ${spec.withControlsOff ? 'still read' : 'ignored'}, in both forms`, async () => {
      const expected = spec.withControlsOff ? 400 : 200;
      for (const values of outOfBound(spec, TABLE_LIMITS)) {
        const res = await fetch(`${t.url}/?${queryOf(spec, values)}`);
        await res.arrayBuffer();
        assert.equal(res.status, expected, describeValues(values));
        const raw = await rawRequest(
          t.port,
          `GET / HTTP/1.1\r\nHost: h\r\n${headerLinesOf(spec, values)}Connection: close\r\n\r\n`,
        );
        assert.ok(raw.startsWith(`HTTP/1.1 ${expected} `), raw.slice(0, 200));
      }
    });
  }

  it('leaves the health state alone on the echo paths', async () => {
    await (await fetch(`${t.url}/?echo_health=unready`)).arrayBuffer();
    assert.equal((await fetch(`${t.url}/readyz`)).status, 200);
  });
});

describe('a gated control', () => {
  for (const spec of CONTROLS.filter((c) => c.gate !== null)) {
    const flag = `--${SETTINGS.find((s) => s.key === spec.gate)!.flag}`;
    it(`${spec.query} answers 403 naming ${flag} while it is off, wherever it applies`, async () => {
      const t = await startTestServer();
      try {
        for (const path of spec.appliesTo.includes('probes') ? ['/', '/livez', '/readyz'] : ['/']) {
          const res = await fetch(`${t.url}${path}?${queryOf(spec, [spec.example])}`);
          assert.equal(res.status, 403, path);
          assert.ok((await res.text()).includes(`(${flag})`), path);
        }
        assert.equal((await fetch(`${t.url}/readyz`)).status, 200, 'the state did not change');
      } finally {
        await t.close();
      }
    });
  }
});
