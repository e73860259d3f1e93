import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultConfig } from '../../src/config/settings.ts';
import { portTable } from '../../src/core/ports.ts';

describe('the port table', () => {
  it('has the plain HTTP port alone by default, speaking HTTP/1.1 and h2c', () => {
    assert.deepEqual(portTable(defaultConfig({ port: 8080, host: '::' })), [
      { name: 'http', host: '::', port: 8080, tls: false, proxyProtocol: false, protocols: ['http/1.1', 'h2c'] },
    ]);
  });

  it('adds the HTTPS port with TLS on, h2 first (the ALPN preference), each with its own PROXY mode', () => {
    const rows = portTable(
      defaultConfig({ port: 80, https: true, httpsPort: 443, host: '127.0.0.1', proxyProtocol: ['https'], h2c: false }),
    );
    assert.deepEqual(rows, [
      { name: 'http', host: '127.0.0.1', port: 80, tls: false, proxyProtocol: false, protocols: ['http/1.1'] },
      { name: 'https', host: '127.0.0.1', port: 443, tls: true, proxyProtocol: true, protocols: ['h2', 'http/1.1'] },
    ]);
    assert.equal(portTable(defaultConfig({ proxyProtocol: ['http', 'https'] }))[0]!.proxyProtocol, true);
  });

  it('adds the TCP and UDP echoes when they have ports, the TCP one with its own PROXY mode', () => {
    const rows = portTable(
      defaultConfig({ port: 80, host: '::', tcpPort: 7000, udpPort: 7001, proxyProtocol: ['tcp'] }),
    );
    assert.deepEqual(rows.slice(1), [
      { name: 'tcp', host: '::', port: 7000, tls: false, proxyProtocol: true, protocols: ['tcp'] },
      { name: 'udp', host: '::', port: 7001, tls: false, proxyProtocol: false, protocols: ['udp'] },
    ]);
    assert.equal(rows[0]!.proxyProtocol, false);
    const tls = portTable(defaultConfig({ tcpTlsPort: 7443, proxyProtocol: ['tcp'] }));
    assert.deepEqual(tls[1], {
      name: 'tcp-tls',
      host: '::',
      port: 7443,
      tls: true,
      proxyProtocol: true,
      protocols: ['tcp'],
    });
  });
});
