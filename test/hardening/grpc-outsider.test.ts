// gRPC on HTTP/2 attacked from outside with raw frames: what a client's frames do to a
// call's record, whatever node:http2 makes of them on the server's side.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { frame } from '../../src/transport/h2-frames.ts';
import { startTestServer, waitFor } from '../helpers.ts';

const literal = (name: string, value: string) =>
  Buffer.concat([Buffer.from([0, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
/** HEADERS (END_HEADERS, not END_STREAM) of a gRPC call to `path`. */
const callHeaders = (id: number, path: string) =>
  frame(
    0x1,
    0x4,
    id,
    Buffer.concat([
      literal(':method', 'POST'),
      literal(':scheme', 'http'),
      literal(':authority', '127.0.0.1'),
      literal(':path', path),
      literal('content-type', 'application/grpc'),
      literal('te', 'trailers'),
    ]),
  );
const CANCEL = Buffer.from([0, 0, 0, 8]);

describe('gRPC outsider', () => {
  it('records a call the client resets before its END_STREAM as CANCELLED, aborted, not as a half-close', async () => {
    const t = await startTestServer();
    const s = connect({ port: t.port, host: '127.0.0.1' });
    s.on('error', () => {});
    s.on('data', () => {});
    try {
      await once(s, 'connect');
      // A client stream with one whole message, and a unary call inside its message:
      // neither ends its side; each is then reset. node:http2 ends a reset stream's
      // readable side, which read as a half-close answered the first OK and the second
      // INTERNAL ("ended inside a message").
      s.write(
        Buffer.concat([
          Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
          frame(0x4, 0, 0, Buffer.alloc(0)),
          callHeaders(1, '/echoserver.v1.Echo/ClientStream'),
          frame(0x0, 0, 1, Buffer.alloc(5)),
          callHeaders(3, '/echoserver.v1.Echo/Echo'),
          frame(0x0, 0, 3, Buffer.from([0, 0, 0, 0, 16, 1, 2, 3])),
        ]),
      );
      await waitFor(() => t.server.app.inFlight === 2 || null, 5000, 'both calls in flight');
      s.write(Buffer.concat([frame(0x3, 0, 1, CANCEL), frame(0x3, 0, 3, CANCEL)]));
      const lines = () => t.logs.messages('request');
      await waitFor(() => lines().length === 2 || null, 5000, 'two access lines');
      for (const line of lines()) {
        assert.equal(line.grpcStatus, 1, `${String(line.uri)}: ${JSON.stringify(line)}`);
        assert.equal(line.aborted, true, String(line.uri));
      }
      await waitFor(() => t.server.app.inFlight === 0 || null, 5000, 'nothing in flight');
      const metrics = await (await fetch(`${t.url}/metrics`)).text();
      assert.match(metrics, /^echo_grpc_calls_total\{code="CANCELLED"\} 2$/m);
    } finally {
      s.destroy();
      await t.close();
    }
  });

  it('keeps serving when a client sends its first call and GOAWAY in one write, and records each call', async () => {
    // node:http2 emits a stream a tick after its HEADERS; the GOAWAY closed the session
    // in between, and reading the connection's facts from its socket then threw.
    const t = await startTestServer();
    const CONNECTIONS = 6;
    try {
      for (let i = 0; i < CONNECTIONS; i++) {
        const s = connect({ port: t.port, host: '127.0.0.1' });
        s.on('error', () => {});
        s.on('data', () => {});
        await once(s, 'connect');
        const goaway = Buffer.alloc(8);
        goaway.writeUInt32BE(1, 0);
        s.write(
          Buffer.concat([
            Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
            frame(0x4, 0, 0, Buffer.alloc(0)),
            callHeaders(1, '/echoserver.v1.Echo/Echo'),
            frame(0x0, 0x1, 1, Buffer.alloc(5)),
            frame(0x7, 0, 0, goaway),
          ]),
        );
        await waitFor(() => t.logs.messages('request').length === i + 1 || null, 5000, `the line of call ${i}`);
        s.destroy();
      }
      await waitFor(() => t.server.app.inFlight === 0 || null, 5000, 'nothing in flight');
      assert.equal((await fetch(`${t.url}/`)).status, 200, 'the server still answers');
    } finally {
      await t.close();
    }
  });
});
