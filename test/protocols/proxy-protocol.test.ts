import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { NetworkSet } from '../../src/util/addresses.ts';
import type { Echo } from '../../src/echo/model.ts';
import { encodeProxyV2 } from '../../src/transport/proxy-protocol.ts';
import { rawRequest, requireTool, runTool, startTestServer, waitFor, type TestServer } from '../helpers.ts';

const GET = (path: string) =>
  `GET ${path} HTTP/1.1\r\nHost: h\r\nAccept: application/json\r\nConnection: close\r\n\r\n`;
const body = (res: string) => JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4)) as Echo;

describe('PROXY protocol', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({
      proxyProtocol: ['http', 'https'],
      https: true,
      httpsPort: 0,
      headersTimeoutMs: 500,
      requestTimeoutMs: 1000,
      trustedProxies: new NetworkSet(['10.0.0.0/8']),
    });
  });
  after(() => t.close());

  it('v1: echoes the original client and the proxy separately', async () => {
    const res = await rawRequest(t.port, `PROXY TCP4 203.0.113.9 192.0.2.1 40000 80\r\n${GET('/v1')}`);
    const e = body(res);
    assert.equal(e.remoteAddr, '203.0.113.9:40000');
    assert.equal(e.client.ip, '203.0.113.9');
    assert.match(e.proxy!.peer, /^127\.0\.0\.1:\d+$/);
    assert.deepEqual(
      [e.proxy!.version, e.proxy!.transport, e.proxy!.destinationAddress, e.proxy!.destinationPort],
      [1, 'TCP4', '192.0.2.1', 80],
    );
  });

  it('the access line names the client the PROXY header names, as the echo does; LOCAL keeps the peer', async () => {
    await rawRequest(t.port, `PROXY TCP4 203.0.113.21 192.0.2.1 40000 80\r\n${GET('/who-v1')}`);
    const local = encodeProxyV2({ command: 'LOCAL' });
    await rawRequest(t.port, Buffer.concat([local, Buffer.from(GET('/who-local'))]));
    const lineOf = (uri: string) => t.logs.messages('request').find((l) => l.uri === uri);
    await waitFor(() => lineOf('/who-v1') !== undefined && lineOf('/who-local') !== undefined);
    assert.equal(lineOf('/who-v1')!.clientIp, '203.0.113.21');
    assert.equal(lineOf('/who-local')!.clientIp, '127.0.0.1');
  });

  it('v2: shows the TLVs (ALPN, authority, unique id, SSL)', async () => {
    const ssl = Buffer.concat([Buffer.from([0x01, 0, 0, 0, 0]), Buffer.from([0x21, 0, 7]), Buffer.from('TLSv1.3')]);
    const header = encodeProxyV2({
      source: ['2001:db8::5', 51000],
      destination: ['2001:db8::1', 443],
      tlvs: [
        [0x01, Buffer.from('h2')],
        [0x02, Buffer.from('echo.example')],
        [0x05, Buffer.from('req-77')],
        [0x20, ssl],
      ],
    });
    const e = body(await rawRequest(t.port, Buffer.concat([header, Buffer.from(GET('/v2'))])));
    assert.equal(e.remoteAddr, '[2001:db8::5]:51000');
    assert.deepEqual(e.proxy!.tlvs, {
      alpn: 'h2',
      authority: 'echo.example',
      uniqueId: 'req-77',
      ssl: { client: 1, clientBits: ['SSL'], verify: 0, verified: false, version: 'TLSv1.3' },
    });
  });

  it('v2: the SSL TLV says verified only for a presented certificate that verified', async () => {
    const rows: [string, number, number, boolean, string[]][] = [
      ['TLS, no client certificate', 0x01, 0, false, ['SSL']],
      ['a cleartext frontend', 0x00, 0, false, []],
      ['a certificate on this connection, verified', 0x03, 0, true, ['SSL', 'CERT_CONN']],
      ['a certificate of the session, verified', 0x05, 0, true, ['SSL', 'CERT_SESS']],
      ['a certificate that failed verification', 0x03, 20, false, ['SSL', 'CERT_CONN']],
    ];
    for (const [name, client, verify, verified, clientBits] of rows) {
      const field = Buffer.alloc(5);
      field[0] = client;
      field.writeUInt32BE(verify, 1);
      const header = encodeProxyV2({
        source: ['203.0.113.5', 5000],
        destination: ['192.0.2.1', 443],
        tlvs: [[0x20, field]],
      });
      const e = body(await rawRequest(t.port, Buffer.concat([header, Buffer.from(GET('/ssl'))])));
      assert.deepEqual(e.proxy!.tlvs.ssl, { client, clientBits, verify, verified }, name);
    }
  });

  it('v2: shows a unique id as text when it is printable ASCII, else as hex', async () => {
    for (const [id, shown] of [
      [Buffer.from('7f000001:a2c4_0a00000a:01bb_6578_0001'), '7f000001:a2c4_0a00000a:01bb_6578_0001'],
      [Buffer.from([0x00, 0xff, 0x41]), '00ff41'],
    ] as const) {
      const header = encodeProxyV2({
        source: ['203.0.113.5', 5000],
        destination: ['192.0.2.1', 80],
        tlvs: [[0x05, id]],
      });
      const e = body(await rawRequest(t.port, Buffer.concat([header, Buffer.from(GET('/id'))])));
      assert.equal(e.proxy!.tlvs.uniqueId, shown);
    }
  });

  it('applies the trusted-proxy rules to the original client', async () => {
    const trusted = body(
      await rawRequest(
        t.port,
        `PROXY TCP4 10.1.1.1 192.0.2.1 1 80\r\nGET / HTTP/1.1\r\nHost: h\r\nAccept: application/json\r\nX-Forwarded-For: 198.51.100.4\r\nConnection: close\r\n\r\n`,
      ),
    );
    assert.equal(trusted.client.ip, '198.51.100.4', 'the original client 10.1.1.1 is a trusted proxy');
    const untrusted = body(
      await rawRequest(
        t.port,
        `PROXY TCP4 203.0.113.1 192.0.2.1 1 80\r\nGET / HTTP/1.1\r\nHost: h\r\nAccept: application/json\r\nX-Forwarded-For: 198.51.100.4\r\nConnection: close\r\n\r\n`,
      ),
    );
    assert.equal(untrusted.client.ip, '203.0.113.1');
  });

  it('LOCAL connections (proxy health checks) keep the real peer', async () => {
    const e = body(
      await rawRequest(t.port, Buffer.concat([encodeProxyV2({ command: 'LOCAL' }), Buffer.from(GET('/local'))])),
    );
    assert.match(e.remoteAddr, /^127\.0\.0\.1:\d+$/);
    assert.equal(e.proxy!.command, 'LOCAL');
  });

  it('works ahead of TLS on the HTTPS listener', async () => {
    const socket = connect({ host: '127.0.0.1', port: t.server.listener.httpsAddress!.port });
    await new Promise((r) => socket.once('connect', r));
    socket.write('PROXY TCP4 198.51.100.77 192.0.2.1 5555 443\r\n');
    const tls = tlsConnect({ socket, rejectUnauthorized: false, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
    let out = '';
    tls.on('data', (c: Buffer) => {
      out += c.toString();
    });
    tls.write(GET('/over-tls'));
    await new Promise((r) => tls.once('close', r));
    const e = body(out);
    assert.equal(e.remoteAddr, '198.51.100.77:5555');
    assert.equal(e.tls!.alpn, 'http/1.1');
  });

  const broken: [string, string | Buffer, RegExp][] = [
    ['a missing header', GET('/'), /no PROXY protocol header/],
    ['a malformed v1 header', 'PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n', /port/],
    [
      'a malformed v2 header',
      Buffer.concat([encodeProxyV2({}).subarray(0, 12), Buffer.from([0x21, 0x99, 0, 0])]),
      /family/,
    ],
  ];
  for (const [name, payload, reason] of broken) {
    it(`closes the connection on ${name}, logs why, and keeps serving`, async () => {
      const res = await rawRequest(t.port, payload, 3000);
      assert.equal(res, '', 'no answer');
      await waitFor(() =>
        t.logs.messages('connection closed: bad or missing PROXY header').some((l) => reason.test(l.reason as string)),
      );
      assert.equal(
        body(await rawRequest(t.port, `PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\n${GET('/after')}`)).requestURI,
        '/after',
      );
    });
  }

  it('closes a connection whose PROXY header never completes at the front deadline, and keeps serving', async () => {
    const res = await rawRequest(t.port, 'PROXY TCP4 1.2.3.4', 3000);
    assert.equal(res, '', 'no answer');
    await waitFor(() => t.logs.messages('connection closed: no complete request within --headers-timeout').length > 0);
    assert.equal(
      body(await rawRequest(t.port, `PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\n${GET('/after')}`)).requestURI,
      '/after',
    );
  });

  it('takes curl --haproxy-protocol, over HTTP/1.1 and h2c', async (ctx) => {
    if (!requireTool(ctx, 'curl')) return;
    const r = await runTool('curl', ['-s', '--haproxy-protocol', `${t.url}/curl`]);
    assert.match(r.stdout, /^ProxyProtocol: \{"version":1,"command":"PROXY","transport":"TCP4"/m);
    const h2 = await runTool('curl', ['-s', '--haproxy-protocol', '--http2-prior-knowledge', `${t.url}/curl-h2`]);
    assert.match(h2.stdout, /^Proto: HTTP\/2\.0$/m);
    assert.match(h2.stdout, /^ProxyProtocol: /m);
  });
});
