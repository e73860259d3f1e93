import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { connect as h2connect } from 'node:http2';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import type { Echo } from '../../src/echo/model.ts';
import { selfSigned } from '../../src/transport/self-signed.ts';
import { h2request, requireTool, runTool, startTestServer, waitFor, type TestServer } from '../helpers.ts';

/** Handshake only: the certificate and the negotiated ALPN. */
function handshake(port: number, opts: { alpn?: string[]; cert?: string; key?: string; servername?: string } = {}) {
  return new Promise<{ cert: PeerCertificate; alpn: string | false; authorized: boolean }>((resolve, reject) => {
    const s = tlsConnect(
      {
        host: '127.0.0.1',
        port,
        rejectUnauthorized: false,
        ALPNProtocols: opts.alpn ?? ['h2', 'http/1.1'],
        servername: opts.servername ?? 'localhost',
        cert: opts.cert,
        key: opts.key,
      },
      () => {
        resolve({ cert: s.getPeerCertificate(), alpn: s.alpnProtocol ?? false, authorized: s.authorized });
        s.end();
      },
    );
    s.on('error', reject);
  });
}

function https11(
  port: number,
  path: string,
  extra: { cert?: string; key?: string } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        rejectUnauthorized: false,
        servername: 'localhost',
        headers: { accept: 'application/json' },
        ...extra,
        agent: false,
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('HTTPS with a self-signed certificate made in memory', () => {
  let t: TestServer;
  let port: number;
  before(async () => {
    t = await startTestServer({ https: true, httpsPort: 0 });
    port = t.server.listener.httpsAddress!.port;
  });
  after(() => t.close());

  it('offers h2 and http/1.1 by ALPN, for localhost', async () => {
    const h2 = await handshake(port, { alpn: ['h2'] });
    assert.equal(h2.alpn, 'h2');
    const h1 = await handshake(port, { alpn: ['http/1.1'] });
    assert.equal(h1.alpn, 'http/1.1');
    assert.match(h2.cert.subjectaltname ?? '', /DNS:localhost/);
    assert.match(h2.cert.subjectaltname ?? '', /IP Address:127\.0\.0\.1/);
    assert.equal(t.server.tlsSource, 'self-signed, in memory');
  });

  it('listens on one port per row of the port table, each with its scheme', () => {
    const { ports, address, url, httpsAddress, httpsUrl } = t.server.listener;
    assert.deepEqual(
      ports.map((p) => [p.row.name, p.row.tls, p.row.protocols]),
      [
        ['http', false, ['http/1.1', 'h2c']],
        ['https', true, ['h2', 'http/1.1']],
      ],
    );
    assert.deepEqual(
      ports.map((p) => [p.address, p.url]),
      [
        [address, url],
        [httpsAddress, httpsUrl],
      ],
    );
    assert.match(httpsUrl ?? '', /^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('makes a new key for every server, so no two deployments share one', async () => {
    const other = await startTestServer({ https: true, httpsPort: 0 });
    try {
      const a = await handshake(port);
      const b = await handshake(other.server.listener.httpsAddress!.port);
      assert.notEqual(a.cert.fingerprint256, b.cert.fingerprint256);
      assert.notEqual(a.cert.pubkey?.toString('hex'), b.cert.pubkey?.toString('hex'));
    } finally {
      await other.close();
    }
  });

  it('echoes TLS details and HTTP/2 pseudo-headers over h2', async () => {
    const { status, body } = await h2request(`https://localhost:${port}`, '/secure?a=1');
    assert.equal(status, 200);
    const e = JSON.parse(body) as Echo;
    assert.equal(e.proto, 'HTTP/2.0');
    assert.equal(e.requestURI, '/secure?a=1');
    assert.deepEqual(e.pseudoHeaders, {
      ':method': 'GET',
      ':authority': `localhost:${port}`,
      ':scheme': 'https',
      ':path': '/secure?a=1',
    });
    assert.equal(e.headers[':path'], undefined, 'pseudo-headers are not mixed into headers');
    assert.match(e.tls!.version!, /^TLSv1\.[23]$/);
    assert.ok(e.tls!.cipher);
    assert.equal(e.tls!.sni, 'localhost');
    assert.equal(e.tls!.alpn, 'h2');
    assert.equal(e.tls!.clientCertificate, null);
  });

  it('echoes over HTTP/1.1 on the same port', async () => {
    const { status, body } = await https11(port, '/one');
    assert.equal(status, 200);
    const e = JSON.parse(body) as Echo;
    assert.equal(e.proto, 'HTTP/1.1');
    assert.equal(e.tls!.alpn, null, 'the client offered no ALPN');
  });

  it('shows the TLS details in the HTML view too', async () => {
    const res = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          path: '/?echo_format=html',
          rejectUnauthorized: false,
          servername: 'localhost',
          agent: false,
          ALPNProtocols: ['http/1.1'],
        } as RequestOptions & { ALPNProtocols: string[] },
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
    assert.match(res, /<h2 id="echo-tls">TLS<\/h2><table[^>]*><tbody><tr><th>Version<\/th><td>TLSv1\.3<\/td>/);
    assert.match(res, /<th>ALPN<\/th><td>http\/1\.1<\/td>/);
  });

  it('applies the controls and limits to HTTP/2 streams', async () => {
    assert.equal((await h2request(`https://localhost:${port}`, '/?echo_status=418')).status, 418);
    assert.equal((await h2request(`https://localhost:${port}`, '/?echo_delay=abc')).status, 400);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    // 418 is off the list of exact codes: it is counted under its class (bounded labels).
    assert.match(metrics, /echo_http_requests_total\{method="GET",status="4xx"\} 1/);
  });

  it('answers curl --http2 with the text echo', async (ctx) => {
    if (!requireTool(ctx, 'curl')) return;
    const r = await runTool('curl', ['-sk', '--http2', '-D', '-', `https://localhost:${port}/curl`]);
    assert.match(r.stdout, /^HTTP\/2 200/m);
    assert.match(r.stdout, /^Proto: HTTP\/2\.0$/m);
    assert.match(r.stdout, /^TLS: \{"version":"TLSv1\.3".*"alpn":"h2"/m);
  });

  it('shows ALPN and the certificate to openssl s_client, and serves HTTP/1.1 through it', async (ctx) => {
    if (!requireTool(ctx, 'openssl')) return;
    const r = await runTool(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-alpn', 'http/1.1', '-ign_eof'],
      'GET /s_client HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    );
    assert.match(r.stdout, /ALPN protocol: http\/1\.1/);
    assert.match(r.stdout, /subject=.*CN ?= ?localhost/);
    assert.match(r.stdout, /^RequestURI: \/s_client$/m);
    const h2 = await runTool('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-alpn', 'h2'], '');
    assert.match(h2.stdout, /ALPN protocol: h2/);
  });
});

describe('HTTPS with certificate files', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'echo-tls-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('serves them, and reloads them on change without dropping connections', async () => {
    const a = await selfSigned(['localhost']);
    const b = await selfSigned(['localhost']);
    const certFile = join(dir, 'tls.crt');
    const keyFile = join(dir, 'tls.key');
    await writeFile(certFile, a.cert);
    await writeFile(keyFile, a.key);
    const t = await startTestServer({ https: true, httpsPort: 0, tlsCert: certFile, tlsKey: keyFile });
    try {
      const port = t.server.listener.httpsAddress!.port;
      const session = h2connect(`https://localhost:${port}`, { rejectUnauthorized: false });
      const before = await handshake(port);
      await writeFile(certFile, b.cert);
      await writeFile(keyFile, b.key);
      await waitFor(() => t.logs.messages('TLS certificate reloaded').length > 0, 5000);
      const afterReload = await handshake(port);
      assert.equal(
        before.cert.fingerprint256,
        new X509Certificate(a.cert).fingerprint256,
        'the configured certificate first',
      );
      assert.equal(
        afterReload.cert.fingerprint256,
        new X509Certificate(b.cert).fingerprint256,
        'new connections get the new certificate',
      );
      // The connection opened before the reload still serves requests.
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':path': '/still-here' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.resume();
        req.end();
      });
      assert.equal(status, 200);
      session.close();
    } finally {
      await t.close();
    }
  });
});

describe('mTLS', () => {
  let dir: string;
  const pki: Record<string, string> = {};
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'echo-mtls-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** A CA and a client certificate it signs, made with openssl. */
  async function makePki(): Promise<void> {
    const sh = (cmd: string) => runTool('sh', ['-c', cmd]);
    const run = async (cmd: string) => {
      const r = await sh(`cd ${dir} && ${cmd}`);
      assert.equal(r.code, 0, r.stderr);
    };
    await run(
      'openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -subj "/CN=Echo Test CA" -days 2',
    );
    await run(
      'openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key -out client.csr -subj "/CN=client-one/O=Echo Tests"',
    );
    await writeFile(
      join(dir, 'ext.cnf'),
      'subjectAltName=DNS:client.example,email:client@example.com\nextendedKeyUsage=clientAuth\n',
    );
    await run(
      'openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2 -extfile ext.cnf',
    );
    await run(
      'openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout rogue.key -out rogue.crt -subj "/CN=rogue" -days 2',
    );
    for (const f of ['ca.crt', 'client.crt', 'client.key', 'rogue.crt', 'rogue.key']) {
      pki[f] = (await runTool('cat', [join(dir, f)])).stdout;
    }
  }

  it('requires a client certificate signed by the CA, and echoes it', async (ctx) => {
    if (!requireTool(ctx, 'openssl')) return;
    await makePki();
    const t = await startTestServer({
      https: true,
      httpsPort: 0,
      tlsClientAuth: 'require',
      tlsClientCa: join(dir, 'ca.crt'),
    });
    try {
      const port = t.server.listener.httpsAddress!.port;
      await assert.rejects(https11(port, '/'), 'no certificate: the handshake fails');
      await assert.rejects(
        https11(port, '/', { cert: pki['rogue.crt'], key: pki['rogue.key'] }),
        'a certificate from another CA fails',
      );
      const { body } = await https11(port, '/', { cert: pki['client.crt'], key: pki['client.key'] });
      const c = (JSON.parse(body) as { tls: { clientCertificate: Record<string, unknown> } }).tls.clientCertificate;
      assert.match(c.subject as string, /CN=client-one/);
      assert.match(c.subject as string, /O=Echo Tests/);
      assert.match(c.issuer as string, /CN=Echo Test CA/);
      assert.equal(c.subjectAltName, 'DNS:client.example, email:client@example.com');
      assert.match(c.serialNumber as string, /^[0-9A-F]+$/);
      assert.match(c.fingerprint256 as string, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
      assert.ok(new Date(c.validTo as string) > new Date(c.validFrom as string));
      assert.equal(c.verified, true);
      assert.equal(c.verifyError, null);
    } finally {
      await t.close();
    }
  });

  it('in request mode, serves anyone and says whether the certificate verified', async (ctx) => {
    if (!requireTool(ctx, 'openssl')) return;
    if (pki['ca.crt'] === undefined) await makePki();
    const t = await startTestServer({
      https: true,
      httpsPort: 0,
      tlsClientAuth: 'request',
      tlsClientCa: join(dir, 'ca.crt'),
    });
    try {
      const port = t.server.listener.httpsAddress!.port;
      const none = JSON.parse((await https11(port, '/')).body) as { tls: { clientCertificate: unknown } };
      assert.equal(none.tls.clientCertificate, null);
      const rogue = JSON.parse((await https11(port, '/', { cert: pki['rogue.crt'], key: pki['rogue.key'] })).body) as {
        tls: { clientCertificate: { verified: boolean; verifyError: string; subject: string } };
      };
      assert.equal(rogue.tls.clientCertificate.verified, false);
      assert.match(rogue.tls.clientCertificate.verifyError, /SELF_SIGNED|self.signed/i);
      assert.match(rogue.tls.clientCertificate.subject, /CN=rogue/);
    } finally {
      await t.close();
    }
  });

  it('in request mode, echoes a forged certificate whose dates are no dates, and keeps serving', async () => {
    // A client certificate is the client's to make: here its notBefore is not a time
    // at all (the signature no longer matches, which request mode accepts unverified).
    const { cert, key } = await selfSigned(['forged']);
    const der = new X509Certificate(cert).raw;
    const at = der.indexOf(Buffer.from([0x17, 0x0d])); // the first UTCTime: notBefore
    assert.ok(at > 0, 'the certificate has a UTCTime');
    Buffer.from('99AB01000000Z', 'latin1').copy(der, at + 2);
    const forged = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;
    assert.equal(new X509Certificate(forged).validFrom, 'Bad time value');
    const t = await startTestServer({ https: true, httpsPort: 0, tlsClientAuth: 'request' });
    try {
      const port = t.server.listener.httpsAddress!.port;
      const r = await https11(port, '/', { cert: forged, key });
      assert.equal(r.status, 200);
      const c = (JSON.parse(r.body) as Echo).tls!.clientCertificate!;
      assert.equal(c.validFrom, 'Bad time value');
      assert.equal(c.verified, false);
      assert.equal((await https11(port, '/')).status, 200, 'still serving');
    } finally {
      await t.close();
    }
  });
});
