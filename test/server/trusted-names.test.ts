// The named groups of --trusted-proxies trust no more than their names say: `loopback`
// is 127.0.0.1 and ::1 (any local process can bind another 127.0.0.x address), and
// `private` leaves out carrier-grade NAT space (100.64.0.0/10, shared with the
// carrier's other customers), which has a name of its own. Checked through the echo:
// a forged X-Forwarded-For from such a peer is shown, not believed.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { NetworkSet } from '../../src/util/addresses.ts';
import { startTestServer, type TestServer } from '../helpers.ts';

/** One request on its own connection, from `localAddress`, prefixed by `prefix` (a PROXY header); the ClientIP line. */
function clientIpLine(port: number, localAddress: string, prefix = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', localAddress }, () => {
      s.write(
        `${prefix}GET / HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\nX-Forwarded-For: 198.51.100.9\r\nConnection: close\r\n\r\n`,
      );
    });
    let got = '';
    s.on('data', (c: Buffer) => {
      got += c.toString('latin1');
    });
    s.on('error', reject);
    s.on('close', () => {
      const line = /^ClientIP: .*$/m.exec(got);
      if (line) resolve(line[0]);
      else reject(new Error(`no ClientIP line in: ${got.slice(0, 300)}`));
    });
  });
}

const proxyV1 = (source: string) => `PROXY TCP4 ${source} 192.0.2.1 40000 80\r\n`;

describe('named trusted-proxy groups', () => {
  let loopback: TestServer;
  let privateNets: TestServer;
  let withCgnat: TestServer;
  before(async () => {
    loopback = await startTestServer({ trustedProxies: new NetworkSet(['loopback']) });
    // Behind PROXY protocol the peer the trust is judged on is the header's source address.
    privateNets = await startTestServer({ proxyProtocol: ['http'], trustedProxies: new NetworkSet(['private']) });
    withCgnat = await startTestServer({
      proxyProtocol: ['http'],
      trustedProxies: new NetworkSet(['private', 'cgnat']),
    });
  });
  after(async () => {
    await loopback?.close();
    await privateNets?.close();
    await withCgnat?.close();
  });

  it('loopback trusts 127.0.0.1', async () => {
    assert.match(
      await clientIpLine(loopback.port, '127.0.0.1'),
      /^ClientIP: 198\.51\.100\.9 \(x-forwarded-for via trusted peer 127\.0\.0\.1/,
    );
  });

  it('loopback does not trust another 127/8 address', async () => {
    assert.match(await clientIpLine(loopback.port, '127.0.0.2'), /^ClientIP: 127\.0\.0\.2 /);
  });

  it('private trusts RFC 1918 peers', async () => {
    assert.match(
      await clientIpLine(privateNets.port, '127.0.0.1', proxyV1('10.1.2.3')),
      /^ClientIP: 198\.51\.100\.9 \(x-forwarded-for via trusted peer 10\.1\.2\.3/,
    );
  });

  it('private does not trust carrier-grade NAT space', async () => {
    assert.match(await clientIpLine(privateNets.port, '127.0.0.1', proxyV1('100.64.0.7')), /^ClientIP: 100\.64\.0\.7 /);
  });

  it('cgnat, named, does', async () => {
    assert.match(
      await clientIpLine(withCgnat.port, '127.0.0.1', proxyV1('100.127.255.1')),
      /^ClientIP: 198\.51\.100\.9 \(x-forwarded-for via trusted peer 100\.127\.255\.1/,
    );
  });

  it('the names are listed in the error for an unknown one', () => {
    assert.throws(() => new NetworkSet(['carrier']), /one of loopback, private, cgnat, linklocal/);
  });
});
