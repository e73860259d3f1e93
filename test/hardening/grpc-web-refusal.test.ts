// A gRPC-Web call over HTTP/1.1 refused while its body is still arriving: the
// answer must close the connection, or the unread rest of the body would be parsed
// as the connection's next request (and the client keeps a connection it cannot use).
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer } from '../helpers.ts';

/** Sends `payload`, and resolves with what came back once the server ends the connection (or `ms` pass). */
function sendAndWatch(port: number, payload: Buffer, ms: number): Promise<{ received: string; serverEnded: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    const done = (serverEnded: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ received: Buffer.concat(chunks).toString('latin1'), serverEnded });
    };
    const timer = setTimeout(() => done(false), ms);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('end', () => done(true));
    socket.once('error', reject);
    socket.write(payload);
  });
}

describe('gRPC-Web over HTTP/1.1 refused mid-body', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer({ maxBodySize: 1000 });
  });
  after(() => srv.close());

  it('answers RESOURCE_EXHAUSTED with Connection: close and closes the connection', async () => {
    const head =
      'POST /echoserver.v1.Echo/Echo HTTP/1.1\r\nHost: test\r\n' +
      'Content-Type: application/grpc-web+proto\r\nTransfer-Encoding: chunked\r\n\r\n';
    // A message prefix announcing 5,000 bytes (over the limit), and only part of it sent.
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0x13, 0x88]), Buffer.alloc(2000, 0x61)]);
    const chunk = Buffer.concat([Buffer.from(`${frame.length.toString(16)}\r\n`), frame, Buffer.from('\r\n')]);
    const { received, serverEnded } = await sendAndWatch(srv.port, Buffer.concat([Buffer.from(head), chunk]), 2000);
    assert.match(received, /grpc-status:8/, 'the call was refused with RESOURCE_EXHAUSTED');
    assert.match(received, /\r\nConnection: close\r\n/i, 'the answer says the connection closes');
    assert.ok(serverEnded, 'the server ended the connection instead of holding it');
  });
});
