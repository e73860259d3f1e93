// Server-Sent Events: the echo as the first event, then ticks at --sse-interval up
// to --sse-count, then a `done` event. Shutdown ends every open stream with a
// `shutdown` event, so clients know it was not the end of the test. Written through
// the exchange's answer port, whose end (or the peer leaving) closes the record.
import type { HttpContext } from '../../handlers/context.ts';
import { controlledStatus } from '../../handlers/controlled-status.ts';
import { answerHeaders, beginBody } from '../../handlers/answer.ts';
import type { EventStreams } from '../../handlers/echo.ts';

export function createEventStreams(ctx: HttpContext): EventStreams {
  const { config } = ctx;
  /** Open streams, each with the function that ends it cleanly. */
  const streams = new Set<() => void>();
  return {
    send(x, echo, controls) {
      const headers = answerHeaders('text/event-stream; charset=utf-8', null, x.requestId);
      headers.push('X-Accel-Buffering', 'no'); // nginx would otherwise buffer the stream
      // The controls apply to a stream as to any answer: extra headers, interim and final status.
      if (!beginBody(x, controlledStatus(x, controls, headers, ctx.deps.random), headers)) return;
      x.protocol = 'sse'; // what the record says carried it: an event stream, not one answer
      const write = (event: string, id: number, data: unknown) => {
        const chunk = `event: ${event}\nid: ${id}\ndata: ${JSON.stringify(data)}\n\n`;
        x.bytesOut += Buffer.byteLength(chunk);
        x.write(chunk);
      };
      write('echo', 0, echo);
      let n = 0;
      let ended = false;
      const end = (reason: 'done' | 'shutdown') => {
        clearInterval(timer);
        streams.delete(stop);
        if (ended) return;
        ended = true;
        write(reason, n + 1, { ticks: n });
        x.end();
      };
      const stop = () => end('shutdown');
      const timer = setInterval(() => {
        n++;
        write('tick', n, { n, time: new Date().toISOString() });
        if (n >= config.sseCount) end('done');
      }, config.sseIntervalMs);
      streams.add(stop);
      x.onPeerGone(() => {
        clearInterval(timer);
        streams.delete(stop);
      });
      if (config.sseCount === 0) end('done');
    },
    endAll() {
      for (const stop of [...streams]) stop();
    },
  };
}
