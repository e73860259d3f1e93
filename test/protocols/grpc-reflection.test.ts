// Server reflection with a reflection-only client (grpc-js-reflection-client, on
// @grpc/grpc-js): it finds the services with no .proto at hand, builds its stubs from
// the descriptors served, and calls the echo through them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { GrpcReflection } from 'grpc-js-reflection-client';
import { startTestServer } from '../helpers.ts';

type Stub = grpc.Client &
  Record<
    string,
    (req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void) => void
  >;

describe('gRPC server reflection', () => {
  it('the calls of docs/grpc.md, by reflection: payload, status, weighted status, trailer, server stream', async () => {
    const t = await startTestServer({ sseCount: 5 });
    const target = `127.0.0.1:${t.port}`;
    const reflection = new GrpcReflection(target, grpc.credentials.createInsecure(), {}, 'v1');
    const pkg = (await reflection.getDescriptorBySymbol('echoserver.v1.Echo')).getPackageObject({
      keepCase: true,
      longs: String,
      defaults: true,
    });
    const Echo = ((pkg.echoserver as grpc.GrpcObject).v1 as grpc.GrpcObject).Echo as grpc.ServiceClientConstructor;
    const stub = new Echo(target, grpc.credentials.createInsecure()) as unknown as grpc.Client &
      Record<string, (...args: unknown[]) => grpc.ClientUnaryCall & grpc.ClientReadableStream<Record<string, unknown>>>;
    const unary = (req: object, metadata: Record<string, string>) =>
      new Promise<{ err: grpc.ServiceError | null; res: Record<string, unknown> | undefined; trailers: grpc.Metadata }>(
        (resolve) => {
          const md = new grpc.Metadata();
          for (const [k, v] of Object.entries(metadata)) md.add(k, v);
          let out: { err: grpc.ServiceError | null; res: Record<string, unknown> | undefined } | null = null;
          let trailers: grpc.Metadata | null = null;
          const done = () => {
            if (out !== null && trailers !== null) resolve({ ...out, trailers });
          };
          const call = stub.Echo!(req, md, (err: grpc.ServiceError | null, res?: Record<string, unknown>) => {
            out = { err, res };
            done();
          });
          call.on('status', (st: grpc.StatusObject) => {
            trailers = st.metadata;
            done();
          });
        },
      );
    try {
      // -H 'x-trace: 1' -d '{"payload":"aGk="}'
      const hi = await unary({ payload: Buffer.from('aGk=', 'base64') }, { 'x-trace': '1' });
      assert.equal((hi.res!.payload as { data: Buffer }).data.toString(), 'hi');
      assert.ok(
        (hi.res!.metadata as { name: string; value: string }[]).some((m) => m.name === 'x-trace' && m.value === '1'),
      );
      // -H 'x-echo-status: 14'
      assert.equal((await unary({}, { 'x-echo-status': '14' })).err?.code, grpc.status.UNAVAILABLE);
      // -H 'x-echo-status: 0:3,14:1': only those two codes.
      for (let i = 0; i < 8; i++)
        assert.ok(
          [undefined, grpc.status.UNAVAILABLE].includes((await unary({}, { 'x-echo-status': '0:3,14:1' })).err?.code),
        );
      // -H 'x-echo-trailer: X-Shard: 7'
      assert.deepEqual((await unary({}, { 'x-echo-trailer': 'X-Shard: 7' })).trailers.get('x-shard'), ['7']);
      // -d '{"count":3,"interval_ms":100}' ServerStream
      const seq: string[] = [];
      const stream = stub.ServerStream!({ count: 3, interval_ms: 100 }, new grpc.Metadata());
      for await (const m of stream) seq.push(String((m as Record<string, unknown>).sequence));
      assert.deepEqual(seq, ['1', '2', '3']);
    } finally {
      stub.close();
      await t.close();
    }
  });

  for (const version of ['v1', 'v1alpha']) {
    it(`${version}: a reflection-only client lists the services and calls the echo from the served descriptors`, async () => {
      const t = await startTestServer();
      const target = `127.0.0.1:${t.port}`;
      const reflection = new GrpcReflection(target, grpc.credentials.createInsecure(), {}, version);
      let stub: Stub | undefined;
      try {
        const services = await reflection.listServices();
        for (const name of [
          'echoserver.v1.Echo',
          'grpc.health.v1.Health',
          `grpc.reflection.${version}.ServerReflection`,
        ]) {
          assert.ok(services.includes(name), `${name} in ${services.join(', ')}`);
        }
        const methods = (await reflection.listMethods('echoserver.v1.Echo')).map((m) => m.name).sort();
        assert.deepEqual(methods, ['Bidi', 'ClientStream', 'Echo', 'Forward', 'ServerStream']);
        const pkg = (await reflection.getDescriptorBySymbol('echoserver.v1.Echo.Echo')).getPackageObject({
          keepCase: true,
          longs: String,
          defaults: true,
        });
        const Echo = ((pkg.echoserver as grpc.GrpcObject).v1 as grpc.GrpcObject).Echo as grpc.ServiceClientConstructor;
        stub = new Echo(target, grpc.credentials.createInsecure()) as unknown as Stub;
        const md = new grpc.Metadata();
        md.add('x-from-reflection', 'yes');
        const res = await new Promise<Record<string, unknown>>((resolve, reject) => {
          stub!.Echo!({ payload: Buffer.from('r') }, md, (err, r) => (err === null ? resolve(r) : reject(err)));
        });
        assert.match(res.remote_addr as string, /^127\.0\.0\.1:\d+$/);
        assert.deepEqual(
          (res.metadata as { name: string; value: string }[]).find((m) => m.name === 'x-from-reflection'),
          { name: 'x-from-reflection', value: 'yes' },
        );
        assert.equal((res.server as { hostname: string }).hostname, 'test-host');
        // Health, from its own descriptor.
        const healthPkg = (await reflection.getDescriptorBySymbol('grpc.health.v1.Health')).getPackageObject({
          keepCase: true,
          enums: String,
        });
        const Health = (((healthPkg.grpc as grpc.GrpcObject).health as grpc.GrpcObject).v1 as grpc.GrpcObject)
          .Health as grpc.ServiceClientConstructor;
        const health = new Health(target, grpc.credentials.createInsecure()) as unknown as Stub;
        const status = await new Promise<Record<string, unknown>>((resolve, reject) => {
          health.Check!({ service: '' }, new grpc.Metadata(), (err, r) => (err === null ? resolve(r) : reject(err)));
        });
        health.close();
        assert.equal(status.status, 'SERVING');
        await assert.rejects(reflection.getDescriptorBySymbol('no.such.Symbol'));
      } finally {
        stub?.close();
        await t.close();
      }
    });
  }
});
