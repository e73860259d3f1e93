// The incoming trace context in the echo of every protocol that carries headers
// (HTTP/1.1, HTTP/2, WebSocket, gRPC): traceparent, b3 and x-b3-* parsed and
// validated; malformed or repeated headers give no trace at all.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { h2request, startTestServer, type TestServer } from '../helpers.ts';
import { EchoClient } from '../grpc-client.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

async function traceOver(t: TestServer, headers: Record<string, string>): Promise<unknown> {
  const res = await fetch(t.url, { headers: { accept: 'application/json', ...headers } });
  return ((await res.json()) as { trace: unknown }).trace;
}

describe('trace context in the echo', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(() => t.close());

  const cases: [string, Record<string, string>, unknown][] = [
    [
      'W3C traceparent',
      { traceparent: `00-${TRACE}-${SPAN}-01` },
      { traceId: TRACE, parentId: SPAN, sampled: true, source: 'traceparent' },
    ],
    [
      'traceparent not sampled',
      { traceparent: `00-${TRACE}-${SPAN}-00` },
      { traceId: TRACE, parentId: SPAN, sampled: false, source: 'traceparent' },
    ],
    [
      'a future traceparent version with more fields',
      { traceparent: `01-${TRACE}-${SPAN}-01-extra` },
      { traceId: TRACE, parentId: SPAN, sampled: true, source: 'traceparent' },
    ],
    ['b3 single', { b3: `${TRACE}-${SPAN}-1` }, { traceId: TRACE, parentId: SPAN, sampled: true, source: 'b3' }],
    [
      'b3 single, 64-bit id, no sampling',
      { b3: `a3ce929d0e0e4736-${SPAN}` },
      { traceId: 'a3ce929d0e0e4736', parentId: SPAN, sampled: null, source: 'b3' },
    ],
    [
      'x-b3-*',
      { 'X-B3-TraceId': TRACE, 'X-B3-SpanId': SPAN, 'X-B3-Sampled': '0' },
      { traceId: TRACE, parentId: SPAN, sampled: false, source: 'x-b3' },
    ],
    [
      'traceparent wins over b3',
      { traceparent: `00-${TRACE}-${SPAN}-01`, b3: `a3ce929d0e0e4736-${SPAN}-0` },
      { traceId: TRACE, parentId: SPAN, sampled: true, source: 'traceparent' },
    ],
    ['no trace headers', {}, null],
    ['a malformed traceparent', { traceparent: `00-${TRACE}-${SPAN}-01-extra` }, null],
    ['an upper-case traceparent', { traceparent: `00-${TRACE.toUpperCase()}-${SPAN}-01` }, null],
    ['an all-zero trace id', { traceparent: `00-${'0'.repeat(32)}-${SPAN}-01` }, null],
    ['version ff', { traceparent: `ff-${TRACE}-${SPAN}-01` }, null],
    ['markup in b3', { b3: `<script>alert(1)</script>-${SPAN}` }, null],
    ['b3 with a bad sampling flag', { b3: `${TRACE}-${SPAN}-x` }, null],
    ['x-b3 without a span id', { 'X-B3-TraceId': TRACE }, null],
    ['an overlong traceparent', { traceparent: `01-${TRACE}-${SPAN}-01-${'a'.repeat(400)}` }, null],
  ];
  for (const [name, headers, want] of cases) {
    it(`HTTP/1.1: ${name}`, async () => {
      assert.deepEqual(await traceOver(t, headers), want);
    });
  }

  it('a repeated traceparent is ambiguous: no trace', async () => {
    const res = await new Promise<string>((resolve, reject) => {
      void import('node:http').then(({ request }) => {
        const req = request(
          t.url,
          {
            headers: { accept: 'application/json', traceparent: [`00-${TRACE}-${SPAN}-01`, `00-${TRACE}-${SPAN}-00`] },
          },
          (r) => {
            let b = '';
            r.on('data', (c: Buffer) => {
              b += c.toString();
            });
            r.on('end', () => resolve(b));
          },
        );
        req.on('error', reject);
        req.end();
      });
    });
    assert.equal((JSON.parse(res) as { trace: unknown }).trace, null);
  });

  it('HTTP/2 (h2c)', async () => {
    const { body } = await h2request(t.url, '/', {
      headers: { accept: 'application/json', traceparent: `00-${TRACE}-${SPAN}-01` },
    });
    assert.deepEqual((JSON.parse(body) as { trace: unknown }).trace, {
      traceId: TRACE,
      parentId: SPAN,
      sampled: true,
      source: 'traceparent',
    });
  });

  it("WebSocket: the handshake's echo", async () => {
    const ws = new WebSocket(t.url.replace('http', 'ws'), { headers: { b3: `${TRACE}-${SPAN}-d` } });
    const [first] = await new Promise<[string]>((resolve, reject) => {
      ws.once('message', (m: Buffer) => resolve([m.toString()]));
      ws.once('error', reject);
    });
    ws.close();
    assert.deepEqual((JSON.parse(first) as { trace: unknown }).trace, {
      traceId: TRACE,
      parentId: SPAN,
      sampled: true,
      source: 'b3',
    });
  });

  it('gRPC: the EchoResponse trace field', async () => {
    const c = new EchoClient(`127.0.0.1:${t.port}`);
    try {
      const { response, error } = await c.echo(new Uint8Array(), {
        metadata: { traceparent: `00-${TRACE}-${SPAN}-01` },
      });
      assert.equal(error, null);
      assert.equal(response?.trace?.traceId, TRACE);
      assert.equal(response?.trace?.parentId, SPAN);
      assert.equal(response?.trace?.sampled, true);
      const bad = await c.echo(new Uint8Array(), { metadata: { traceparent: 'garbage' } });
      assert.equal(bad.response?.trace, undefined);
    } finally {
      c.close();
    }
  });
});
