// gRPC through real fronts from Debian: nginx `grpc_pass` (h2c to the backend) and
// HAProxy `proto h2`, with @grpc/grpc-js as the client. The call reaches the echo
// through the proxy (its peer is the proxy, the forwarding header names the client),
// the status a control asks for comes back through it, and so does health.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NetworkSet } from '../../src/util/addresses.ts';
import { HealthCheckResponse_ServingStatus as Serving } from '../../src/adapters/grpc/gen/grpc/health/v1/health_pb.js';
import { EchoClient, grpc } from '../grpc-client.ts';
import { startTestServer, type TestServer } from '../helpers.ts';
import { HAPROXY_DEFAULTS, freePort, nginxConfig, requireFront, scratch, startFront, type Front } from './fronts.ts';

describe('gRPC through real fronts', () => {
  let t: TestServer;
  const work = scratch();
  const fronts: Front[] = [];
  before(async () => {
    t = await startTestServer({ trustedProxies: new NetworkSet(['loopback']) });
  });
  after(async () => {
    for (const f of fronts) await f.stop();
    await t.close();
    work.cleanup();
  });

  /** What a front must carry: the record of the call, a controlled status, health. */
  async function callsThrough(port: number, front: Front): Promise<void> {
    const c = new EchoClient(`127.0.0.1:${port}`);
    try {
      const { response, error } = await c.echo(Buffer.from('via front'), { metadata: { 'x-sent-by': 'client' } });
      assert.equal(error, null, front.output());
      const r = response!;
      assert.ok(r.metadata.some((m) => m.name === 'x-sent-by' && m.value === 'client'));
      assert.ok(
        r.metadata.some((m) => m.name.toLowerCase() === 'x-forwarded-for' && m.value === '127.0.0.1'),
        JSON.stringify(r.metadata),
      );
      assert.equal(r.client!.peerTrusted, true);
      assert.equal(r.client!.ip, '127.0.0.1');
      assert.equal(Buffer.from(r.payload!.data).toString(), 'via front');
      const unavailable = await c.echo(undefined, { metadata: { 'x-echo-status': '14' } });
      assert.equal(unavailable.error?.code, grpc.status.UNAVAILABLE);
      assert.equal((await c.check()).response?.status, Serving.SERVING);
    } finally {
      c.close();
    }
  }

  it('nginx grpc_pass', async (ctx) => {
    if (!requireFront(ctx, 'nginx')) return;
    const port = await freePort();
    const config = nginxConfig(
      work.dir,
      `  server {
    listen 127.0.0.1:${port} http2;
    location / {
      grpc_pass grpc://127.0.0.1:${t.port};
      grpc_set_header X-Forwarded-For $remote_addr;
    }
  }`,
    );
    const nginx = await startFront('nginx', work.dir, config, port);
    fronts.push(nginx);
    await callsThrough(port, nginx);
  });

  it('HAProxy proto h2', async (ctx) => {
    if (!requireFront(ctx, 'haproxy')) return;
    const port = await freePort();
    const config = `${HAPROXY_DEFAULTS}
frontend grpc
    bind 127.0.0.1:${port} proto h2
    option forwardfor
    default_backend echo
backend echo
    server echo 127.0.0.1:${t.port} proto h2
`;
    const haproxy = await startFront('haproxy', work.dir, config, port);
    fronts.push(haproxy);
    await callsThrough(port, haproxy);
  });
});
