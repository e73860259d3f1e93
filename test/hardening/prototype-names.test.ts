// Client-chosen names that are also members of Object.prototype must be echoed
// like any other name, on every protocol and rendering, and never end the process.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import type { Echo } from '../../src/echo/model.ts';
import { h2request, rawRequest, startTestServer, type TestServer } from '../helpers.ts';

const NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf'];

describe('prototype member names from clients', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  for (const name of NAMES) {
    it(`echoes "${name}" as a query key, header name and cookie over HTTP/1.1 (JSON)`, async () => {
      // A raw request: client libraries may drop a header literally named __proto__.
      const raw = await rawRequest(
        t.port,
        `GET /p?${name}=q1 HTTP/1.1\r\nHost: h\r\nAccept: application/json\r\n${name}: h1\r\nCookie: ${name}=c1\r\nConnection: close\r\n\r\n`,
      );
      assert.match(raw, /^HTTP\/1\.1 200 /);
      const echo = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as Echo;
      assert.deepEqual(Object.getOwnPropertyDescriptor(echo.query, name)?.value, ['q1']);
      assert.deepEqual(
        Object.getOwnPropertyDescriptor(echo.headers, name)?.value,
        ['h1'],
        'header names keep their letter case',
      );
      assert.equal(Object.getOwnPropertyDescriptor(echo.cookies, name)?.value, 'c1');
    });

    it(`echoes "${name}" in text, HTML and SSE renderings`, async () => {
      for (const accept of ['text/plain', 'text/html']) {
        const res = await fetch(`${t.url}/p?${name}=1`, { headers: { accept, [name]: 'v' } });
        assert.equal(res.status, 200, accept);
        assert.ok((await res.text()).includes(name), accept);
      }
      // The stream goes on with ticks: read until its first event, the echo, is complete.
      const echoEvent = /\nevent: echo\nid: 0\ndata: (.*)\n\n/;
      const raw = await rawRequest(
        t.port,
        `GET /p?${name}=1&echo_format=sse HTTP/1.1\r\nHost: h\r\n${name}: v\r\nConnection: close\r\n\r\n`,
        { until: (r) => echoEvent.test(r) },
      );
      assert.match(raw, /^HTTP\/1\.1 200 /);
      const sse = JSON.parse(echoEvent.exec(raw)![1]!) as Echo;
      assert.deepEqual(Object.getOwnPropertyDescriptor(sse.query, name)?.value, ['1']);
      assert.deepEqual(Object.getOwnPropertyDescriptor(sse.headers, name)?.value, ['v']);
    });

    it(`echoes "${name}" as a query key and header name over HTTP/2`, async () => {
      const { status, body } = await h2request(t.url, `/p?${name}=1`, { headers: { [name.toLowerCase()]: 'v' } });
      assert.equal(status, 200);
      const echo = JSON.parse(body) as Echo;
      assert.deepEqual(Object.getOwnPropertyDescriptor(echo.query, name)?.value, ['1']);
    });

    it(`answers a WebSocket upgrade to /?${name}=1 and keeps running`, async () => {
      const ws = new WebSocket(`${t.url.replace('http', 'ws')}/?${name}=1`, { headers: { [name]: 'v' } });
      const [first] = (await once(ws, 'message')) as [Buffer];
      const echo = JSON.parse(first.toString()) as Echo;
      assert.deepEqual(Object.getOwnPropertyDescriptor(echo.query, name)?.value, ['1']);
      ws.close();
      await once(ws, 'close');
      assert.equal((await fetch(`${t.url}/after`)).status, 200);
    });
  }
});
