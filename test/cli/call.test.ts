// `echo-server call`: every scheme against the server's own listeners, the flags a
// caller needs (headers, method, body, PROXY header, TLS), trace propagation per call,
// the summary and the exit codes (0 all succeeded, 1 one failed, 2 bad arguments).
import assert from 'node:assert/strict';
import { createServer as createH2Server } from 'node:http2';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { main } from '../../src/cli.ts';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call as callOnce } from '../../src/calls/call.ts';
import { runCalls } from '../../src/calls/run.ts';
import { continueTrace } from '../../src/calls/trace.ts';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { selfSigned } from '../../src/transport/self-signed.ts';
import { requireTool, runTool, startTestServer, type TestServer } from '../helpers.ts';

async function call(argv: string[]) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const code = await main(['call', ...argv], { env: {}, stdout, stderr, onSignal: () => {} });
  return { code, out, err, lines: out.split('\n').filter((l) => l !== '') };
}

type JsonLine = {
  n: number;
  ok: boolean;
  status: unknown;
  replica: string | null;
  protocol: string;
  requestId: string;
  spanId: string;
  target: {
    method: string;
    path: string;
    requestId: string;
    trace: { traceId: string; parentId: string } | null;
    proxy: unknown;
    body: { data: string };
  } | null;
};
const jsonLines = (out: string) =>
  out
    .split('\n')
    .filter((l) => l.startsWith('{"n"'))
    .map((l) => JSON.parse(l) as JsonLine);

describe('echo-server call', () => {
  let t: TestServer;
  const url = (name: string) => t.server.listener.ports.find((p) => p.row.name === name)!.url;
  before(async () => {
    t = await startTestServer({ https: true, httpsPort: 0, tcpPort: 0, tcpTlsPort: 0, udpPort: 0 });
  });
  after(() => t.close());

  const schemes: [string, (u: (n: string) => string) => string, string, string[]][] = [
    ['http', (u) => `${u('http')}/`, 'HTTP/1.1', []],
    ['h2c', (u) => `${u('http').replace('http:', 'h2c:')}/`, 'HTTP/2.0', []],
    ['https', (u) => `${u('https')}/`, 'HTTP/1.1', ['--insecure']],
    ['h2 (HTTP/2 over TLS)', (u) => `${u('https').replace('https:', 'h2:')}/`, 'HTTP/2.0', ['--insecure']],
    ['grpc (the echo service)', (u) => `${u('http').replace('http:', 'grpc:')}/`, 'grpc', []],
    ['grpcs (gRPC over TLS)', (u) => `${u('https').replace('https:', 'grpcs:')}/`, 'grpc', ['--insecure']],
    ['ws', (u) => `${u('http').replace('http:', 'ws:')}/`, 'websocket', []],
    ['wss', (u) => `${u('https').replace('https:', 'wss:')}/`, 'websocket', ['--insecure']],
    ['tcp', (u) => u('tcp'), 'tcp', []],
    ['tls (the TCP echo over TLS)', (u) => u('tcp-tls').replace(/^[a-z-]+:/, 'tls:'), 'tls', ['--insecure']],
    ['udp', (u) => u('udp'), 'udp', []],
  ];
  for (const [name, target, protocol, extra] of schemes) {
    it(`${name}: three lines naming the replica, a summary, exit 0`, async () => {
      const r = await call([target(url), '--count', '3', ...extra]);
      assert.equal(r.code, 0, r.out + r.err);
      const lines = r.lines.filter((l) => / replica=test-host /.test(l) && l.includes(`protocol=${protocol} `));
      assert.equal(lines.length, 3, r.out);
      assert.match(r.out, /^summary: 3 calls, 3 ok, 0 failed; statuses \S+×3; replicas test-host×3; latency p50 /m);
    });
  }

  it('grpc health: the serving status, exit 0', async () => {
    const r = await call([`${url('http').replace('http:', 'grpc:')}/grpc.health.v1.Health/Check`, '--count', '2']);
    assert.equal(r.code, 0, r.out + r.err);
    assert.equal(r.lines.filter((l) => / SERVING replica=- protocol=grpc /.test(l)).length, 2, r.out);
  });

  it('grpc: the call carries the trace, the target echoes it', async () => {
    const r = await call([`${url('http').replace('http:', 'grpc:')}/`, '--json']);
    const [c] = jsonLines(r.out);
    const { traceId } = JSON.parse(r.lines.at(-1)!) as { traceId: string };
    assert.equal(c!.target?.trace?.traceId, traceId);
    assert.equal(c!.target?.trace?.parentId, c!.spanId);
  });

  it('https without --insecure: the self-signed certificate is refused, exit 1', async () => {
    const r = await call([`${url('https')}/`]);
    assert.equal(r.code, 1);
    assert.match(
      r.out,
      /error=(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)/,
    );
  });

  it('sends the method, headers and body asked for, a request id and a new span of one trace per call', async () => {
    const r = await call([
      `${url('http')}/path?q=1`,
      '--count',
      '3',
      '--method',
      'POST',
      '--header',
      'X-Test: yes',
      '--body',
      'hello',
      '--json',
    ]);
    assert.equal(r.code, 0, r.out + r.err);
    const calls = jsonLines(r.out);
    assert.equal(calls.length, 3);
    const summary = JSON.parse(r.lines.at(-1)!) as { traceId: string; summary: { ok: number } };
    assert.equal(summary.summary.ok, 3);
    for (const c of calls) {
      assert.equal(c.target?.method, 'POST');
      assert.equal(c.target?.path, '/path');
      assert.equal(c.target?.body.data, 'hello');
      assert.equal(c.target?.requestId, c.requestId);
      assert.equal(c.target?.trace?.traceId, summary.traceId);
      assert.equal(c.target?.trace?.parentId, c.spanId);
    }
    assert.equal(new Set(calls.map((c) => c.spanId)).size, 3);
    assert.equal(new Set(calls.map((c) => c.requestId)).size, 3);
  });

  for (const version of ['v1', 'v2'] as const) {
    it(`--proxy-protocol ${version}: the PROXY header reaches a listener that requires one`, async () => {
      const p = await startTestServer({ proxyProtocol: ['http'] });
      try {
        const r = await call([`${p.url}/`, '--proxy-protocol', version, '--json']);
        assert.equal(r.code, 0, r.out + r.err);
        const [c] = jsonLines(r.out);
        assert.equal((c!.target!.proxy as { version: number }).version, version === 'v1' ? 1 : 2);
        const without = await call([`${p.url}/`, '--timeout', '2s']);
        assert.equal(without.code, 1, 'a listener that requires the header refuses a call without it');
      } finally {
        await p.close();
      }
    });

    it(`--proxy-protocol ${version} over ws: the WebSocket handshake follows the PROXY header`, async () => {
      const p = await startTestServer({ proxyProtocol: ['http'] });
      try {
        const ws = `${p.url.replace('http:', 'ws:')}/`;
        const r = await call([ws, '--proxy-protocol', version, '--json', '--timeout', '2s']);
        assert.equal(r.code, 0, r.out + r.err);
        const [c] = jsonLines(r.out);
        assert.equal(c!.protocol, 'websocket');
        assert.equal((c!.target!.proxy as { version: number }).version, version === 'v1' ? 1 : 2);
      } finally {
        await p.close();
      }
    });
  }

  it('wss with --cert/--key: the client certificate reaches a listener that requires one', async (ctx) => {
    if (!requireTool(ctx, 'openssl')) return;
    const dir = await mkdtemp(join(tmpdir(), 'echo-call-mtls-'));
    const run = async (cmd: string) => {
      const r = await runTool('sh', ['-c', `cd ${dir} && ${cmd}`]);
      assert.equal(r.code, 0, r.stderr);
    };
    const ec = '-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes';
    await run(`openssl req -x509 ${ec} -keyout ca.key -out ca.crt -subj "/CN=Call Test CA" -days 2`);
    await run(`openssl req ${ec} -keyout client.key -out client.csr -subj "/CN=call-client"`);
    await writeFile(join(dir, 'ext.cnf'), 'extendedKeyUsage=clientAuth\n');
    await run(
      'openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2 -extfile ext.cnf',
    );
    const m = await startTestServer({
      https: true,
      httpsPort: 0,
      tlsClientAuth: 'require',
      tlsClientCa: join(dir, 'ca.crt'),
    });
    try {
      const wss = `${m.server.listener.httpsUrl!.replace('https:', 'wss:')}/`;
      const cert = ['--cert', join(dir, 'client.crt'), '--key', join(dir, 'client.key')];
      const r = await call([wss, '--insecure', ...cert, '--json', '--timeout', '2s']);
      assert.equal(r.code, 0, r.out + r.err);
      const [c] = jsonLines(r.out);
      assert.equal(c!.protocol, 'websocket');
      const tls = (c!.target as unknown as { tls: { clientCertificate: { subject: string } } }).tls;
      assert.match(tls.clientCertificate.subject, /CN=call-client/);
      const without = await call([wss, '--insecure', '--timeout', '2s']);
      assert.equal(without.code, 1, 'without the certificate the handshake fails');
    } finally {
      await m.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  for (const scheme of ['http', 'https'] as const) {
    it(`${scheme}: --count calls share one kept-alive connection, --new-connection opens one per call`, async () => {
      const ports = async (extra: string[]) => {
        const r = await call([`${url(scheme)}/`, '--count', '3', '--insecure', '--json', ...extra]);
        assert.equal(r.code, 0, r.out + r.err);
        return r.out
          .split('\n')
          .filter((l) => l.startsWith('{"n"'))
          .map((l) => (JSON.parse(l) as { localPort: number }).localPort);
      };
      const kept = await ports([]);
      assert.equal(kept.length, 3);
      assert.ok(
        kept.every((p) => typeof p === 'number' && p > 0),
        String(kept),
      );
      assert.equal(new Set(kept).size, 1, `one connection: ${kept.join(',')}`);
      const fresh = await ports(['--new-connection']);
      assert.equal(new Set(fresh).size, 3, `a connection per call: ${fresh.join(',')}`);
    });
  }

  it('exit 1 when any call fails: a refused connection, a 5xx answer', async () => {
    const refused = await call(['http://127.0.0.1:1/']);
    assert.equal(refused.code, 1);
    assert.match(refused.out, /error=ECONNREFUSED/);
    const failing = await call([`${url('http')}/?echo_status=503`, `${url('http')}/`]);
    assert.equal(failing.code, 1);
    assert.match(failing.out, /^summary: 2 calls, 1 ok, 1 failed; statuses 200×1 503×1/m);
  });

  it('udp: a run longer than --timeout outlives the timeouts of the calls already answered', async () => {
    // Each answered call's timeout fired later and closed its socket a second time: a throw.
    const r = await call([url('udp'), '--count', '3', '--qps', '4', '--timeout', '150ms']);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /summary: 3 calls, 3 ok/);
  });

  it('udp: a datagram too large to send fails the call at once, not by its timeout', async () => {
    const r = await call(['udp://127.0.0.1:9/', '--body', 'x'.repeat(70_000), '--timeout', '3s']);
    assert.equal(r.code, 1);
    assert.match(r.out, /error=EMSGSIZE/);
  });

  it('--timeout ends a call that gets no answer', async () => {
    const r = await call([`${url('http')}/?echo_delay=2s`, '--timeout', '200ms']);
    assert.equal(r.code, 1);
    assert.match(r.out, /error=timeout/);
  });

  const bad: [string, string[], RegExp][] = [
    ['no URL', [], /at least one URL/],
    ['an unknown scheme', ['gopher://127.0.0.1:70/'], /gopher: is not one of/],
    ['not a URL', ['nonsense'], /is not a URL/],
    ['a tcp URL without a port', ['tcp://127.0.0.1'], /needs a port/],
    ['a bad --count', ['http://127.0.0.1:1/', '--count', '0'], /--count/],
    ['a bad --timeout', ['http://127.0.0.1:1/', '--timeout', 'soon'], /--timeout/],
    ['a bad --header', ['http://127.0.0.1:1/', '--header', 'no colon'], /--header/],
    ['a bad --proxy-protocol', ['http://127.0.0.1:1/', '--proxy-protocol', 'v3'], /v1 or v2/],
    ['an unknown flag', ['http://127.0.0.1:1/', '--bogus'], /bogus/],
    ['an unreadable --ca', ['https://127.0.0.1:1/', '--ca', '/nonexistent/ca.pem'], /--ca/],
  ];
  for (const [name, argv, message] of bad) {
    it(`exit 2 on ${name}`, async () => {
      const r = await call(argv);
      assert.equal(r.code, 2, r.out);
      assert.match(r.err, message);
      assert.equal(r.out, '', 'no call was made');
    });
  }
});

describe('echo-server call: TLS flags checked before any call', () => {
  let dir = '';
  const path = (name: string) => join(dir, name);
  before(async () => {
    const [a, b] = [await selfSigned(['a']), await selfSigned(['b'])];
    dir = await mkdtemp(join(tmpdir(), 'echo-call-tls-flags-'));
    await writeFile(path('a.crt'), a.cert);
    await writeFile(path('a.key'), a.key);
    await writeFile(path('b.key'), b.key);
    await writeFile(path('not.pem'), 'not a certificate\n');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  // Each of these once threw from inside the TLS handshake: a stack trace and exit 1.
  const bad: [string, () => string[], RegExp][] = [
    [
      'a --cert that is not PEM',
      () => ['--cert', path('not.pem'), '--key', path('a.key')],
      /--cert\/--key: .*no start line/,
    ],
    [
      "a --key that is not the certificate's",
      () => ['--cert', path('a.crt'), '--key', path('b.key')],
      /--cert\/--key: .*mismatch/,
    ],
    ['--cert without --key', () => ['--cert', path('a.crt')], /--cert and --key go together/],
    ['a --ca without a certificate', () => ['--ca', path('not.pem')], /--ca: .* holds no PEM certificate/],
    ['an --alpn name over 255 bytes', () => ['--alpn', `h2,${'a'.repeat(256)}`], /--alpn: .*1 to 255 bytes/],
  ];
  for (const [name, flags, message] of bad) {
    it(`exit 2 on ${name}`, async () => {
      const r = await call(['https://127.0.0.1:1/', '--insecure', ...flags()]);
      assert.equal(r.code, 2, r.out + r.err);
      assert.match(r.err, message);
      assert.equal(r.out, '', 'no call was made');
    });
  }

  it('a valid --cert/--key pair and --ca pass the check', async () => {
    const r = await call([
      'https://127.0.0.1:1/',
      '--cert',
      path('a.crt'),
      '--key',
      path('a.key'),
      '--ca',
      path('a.crt'),
    ]);
    assert.equal(r.code, 1, r.err);
    assert.match(r.out, /error=ECONNREFUSED/);
  });

  it('options TLS refuses at the handshake fail that call, not the process', async () => {
    const t = await startTestServer({ https: true, httpsPort: 0 });
    try {
      const [cert, key] = [await readFile(path('a.crt')), await readFile(path('b.key'))];
      const r = await callOnce(`${t.server.listener.httpsUrl!}/`, {
        method: 'GET',
        headers: [],
        body: Buffer.alloc(0),
        timeoutMs: 2000,
        maxResponseBytes: 1024,
        proxyProtocol: null,
        tls: { insecure: true, cert, key },
      });
      assert.equal(r.ok, false);
      assert.match(r.error ?? '', /mismatch|KEY_VALUES_MISMATCH/i);
    } finally {
      await t.close();
    }
  });
});

describe('echo-server call: a long run', () => {
  it('keeps no answer once its line is written: memory does not grow with --count', async () => {
    // An answer of a few hundred KiB parsed, kept per call for the summary, made
    // --count 2000 hold 1.8 GB; the summary needs a status and a latency.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const t = await startTestServer({}, { identity: { hostname: 'kept', addresses: [] } });
    try {
      let first: WeakRef<object> | null = null;
      let collected: boolean | null = null;
      const summary = await runCalls(
        [`${t.url}/`],
        {
          method: 'GET',
          headers: [],
          body: Buffer.alloc(0),
          timeoutMs: 5000,
          maxResponseBytes: 1 << 20,
          proxyProtocol: null,
          tls: { insecure: false },
          count: 3,
          qps: 0,
          trace: continueTrace(null),
          requestId: null,
          forwarded: [],
        },
        (r) => {
          // Call 1's answer, looked at again in call 3's turn (another task: WeakRefs hold within one).
          if (r.n === 1) first = new WeakRef(r.echo as object);
          if (r.n === 3) {
            gc();
            collected = first!.deref() === undefined;
          }
        },
      );
      assert.equal(summary.ok, 3);
      assert.deepEqual(summary.replicas, { kept: 3 });
      assert.equal(collected, true, "the first call's answer is no longer held");
    } finally {
      await t.close();
    }
  });
});

describe('echo-server call: a gRPC target that answers nonsense', () => {
  // grpc-status 0 with a message its frame says is 3 bytes, holding a field that runs
  // past its end; a frame longer than what follows; a compressed flag nobody offered.
  const answers: [string, Buffer, RegExp][] = [
    ['a message that is not protobuf', Buffer.from([0, 0, 0, 0, 3, 0x0a, 0x7f, 0x41]), /malformed gRPC answer/],
    ['a frame longer than its message', Buffer.from([0, 0, 0, 0, 9, 0x0a, 0x00]), /shorter than its frame/],
    ['a compressed message', Buffer.from([1, 0, 0, 0, 2, 0x0a, 0x00]), /compressed message/],
  ];
  for (const [name, bytes, message] of answers) {
    for (const path of ['/', '/grpc.health.v1.Health/Check']) {
      it(`${name}${path === '/' ? '' : ' (health)'} fails the call, exit 1`, async () => {
        const target = createH2Server();
        target.on('stream', (st) => {
          st.on('error', () => {});
          st.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          st.on('wantTrailers', () => st.sendTrailers({ 'grpc-status': '0' }));
          st.end(bytes);
        });
        await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
        try {
          const { port } = target.address() as { port: number };
          const r = await call([`grpc://127.0.0.1:${port}${path}`, '--timeout', '2s']);
          assert.equal(r.code, 1, r.out + r.err);
          assert.match(r.out, message);
        } finally {
          target.close();
        }
      });
    }
  }
});
