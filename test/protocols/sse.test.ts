import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Echo } from '../../src/echo/model.ts';
import { startTestServer, waitFor } from '../helpers.ts';

interface Event {
  event: string;
  id: string;
  data: unknown;
}

function parseEvents(text: string): Event[] {
  return text
    .split('\n\n')
    .filter(Boolean)
    .map((block) => {
      const f = Object.fromEntries(
        block.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 2)]),
      );
      return { event: f.event!, id: f.id!, data: JSON.parse(f.data!) as unknown };
    });
}

describe('Server-Sent Events', () => {
  it('sends the echo first, then ticks at the interval for the configured count, then ends', async () => {
    const t = await startTestServer({ sseIntervalMs: 50, sseCount: 3 });
    try {
      const start = performance.now();
      const res = await fetch(`${t.url}/events?x=1`, { headers: { accept: 'text/event-stream' } });
      assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const events = parseEvents(await res.text());
      assert.ok(performance.now() - start >= 140, 'three ticks 50 ms apart');
      assert.deepEqual(
        events.map((e) => e.event),
        ['echo', 'tick', 'tick', 'tick', 'done'],
      );
      assert.deepEqual(
        events.map((e) => e.id),
        ['0', '1', '2', '3', '4'],
      );
      assert.equal((events[0]!.data as Echo).requestURI, '/events?x=1');
      assert.equal((events[2]!.data as { n: number }).n, 2);
    } finally {
      await t.close();
    }
  });

  it('is chosen by echo_format=sse too, and ends cleanly on shutdown', async () => {
    const t = await startTestServer({ sseIntervalMs: 10_000, sseCount: 100 });
    const res = await fetch(`${t.url}/?echo_format=sse`);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    assert.match(first, /^event: echo\n/);
    await waitFor(() => t.server.app.inFlight === 1);
    const stopping = t.server.shutdown();
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    assert.match(rest, /event: shutdown\nid: 1\ndata: \{"ticks":0\}/);
    assert.equal(await stopping, true, 'the stream ended, so the drain finished in time');
  });

  it('can be turned off: text/event-stream then gets the text echo', async () => {
    const t = await startTestServer({ sse: false });
    try {
      const res = await fetch(t.url, { headers: { accept: 'text/event-stream' } });
      assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
      assert.equal((await fetch(`${t.url}/?echo_format=sse`)).status, 400);
    } finally {
      await t.close();
    }
  });
});
