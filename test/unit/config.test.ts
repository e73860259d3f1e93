import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, SETTINGS, defaultConfig, loadConfig } from '../../src/config/settings.ts';
import { parseArgs } from '../../src/cli.ts';

const load = (argv: string[], env: Record<string, string> = {}) => loadConfig(parseArgs(argv).flags, env);

describe('configuration', () => {
  it('has working defaults', () => {
    const c = defaultConfig();
    assert.equal(c.port, 8080);
    assert.equal(c.host, '::');
    assert.equal(c.maxHeaderSize, 64 * 1024);
    assert.equal(c.healthControl, false);
    assert.deepEqual(c.echoEnv, []);
  });

  it('every setting has a distinct flag and ECHO_ variable', () => {
    assert.equal(new Set(SETTINGS.map((s) => s.flag)).size, SETTINGS.length);
    for (const s of SETTINGS) assert.match(s.env, /^ECHO_[A-Z0-9_]+$/);
  });

  it('reads environment variables', () => {
    const c = load([], { ECHO_PORT: '9000', ECHO_CONTROLS: 'false', ECHO_TRUSTED_PROXIES: '10.0.0.0/8,loopback' });
    assert.equal(c.port, 9000);
    assert.equal(c.controls, false);
    assert.equal(c.trustedProxies.has('10.1.2.3'), true);
    assert.equal(c.trustedProxies.has('::1'), true);
  });

  it('flags win over the environment', () => {
    assert.equal(load(['--port', '9001'], { ECHO_PORT: '9000' }).port, 9001);
    assert.equal(load(['--port=9002'], { ECHO_PORT: '9000' }).port, 9002);
  });

  it('takes boolean flags in every form', () => {
    assert.equal(load(['--no-identity']).identity, false);
    assert.equal(load(['--identity=false']).identity, false);
    assert.equal(load(['--health-control']).healthControl, true);
    assert.equal(load(['--health-control', 'false']).healthControl, false);
  });

  const bad: [string, string[], Record<string, string>, RegExp][] = [
    ['port out of range', ['--port', '70000'], {}, /invalid --port: 70000 is out of range 0\.\.65535/],
    ['port from env', [], { ECHO_PORT: 'http' }, /invalid ECHO_PORT: "http" is not a whole number/],
    ['size unit', ['--max-body-size', '10 bananas'], {}, /invalid --max-body-size/],
    ['unknown flag', ['--colour', 'red'], {}, /unknown flag --colour/],
    ['bad log level', ['--log-level', 'loud'], {}, /invalid --log-level: "loud" is not one of trace, debug/],
    ['bad proxy', ['--trusted-proxies', 'example.com'], {}, /invalid --trusted-proxies/],
    ['env echo of everything', ['--echo-env', '*'], {}, /would echo every variable/],
    ['relative path', ['--metrics-path', 'metrics'], {}, /must be an absolute path/],
    ['duplicate paths', ['--metrics-path', '/livez'], {}, /must differ/],
    [
      'headers timeout above request timeout',
      ['--headers-timeout', '2m', '--request-timeout', '1m'],
      {},
      /must not exceed --request-timeout/,
    ],
    ['delay beyond idle timeout', ['--max-delay', '5m'], {}, /shorter than --idle-timeout/],
    ['bad host', ['--host', 'my host'], {}, /not an IP address/],
    [
      'a PROXY header on the TCP echo without one',
      ['--proxy-protocol', 'tcp'],
      {},
      /invalid --proxy-protocol: tcp needs --tcp-port/,
    ],
    ['the TCP echo on the HTTP port', ['--tcp-port', '8080'], {}, /invalid --tcp-port: it must differ from --port/],
    ['an unknown UDP mode', ['--udp-mode', 'loud'], {}, /invalid --udp-mode: "loud" is not one of envelope, echo/],
    [
      'the certificate settings with neither HTTPS nor the TLS TCP echo',
      ['--tls-client-auth', 'request'],
      {},
      /invalid --tls-client-auth: it needs --https/,
    ],
    [
      'the HTTPS port with the TLS TCP echo but no HTTPS',
      ['--tcp-tls-port', '7443', '--https-port', '9443'],
      {},
      /invalid --https-port: it needs --https/,
    ],
    [
      'a forward allowlist entry that is no CIDR nor name',
      ['--forward-allow', '10.0.0.0/8,not a host'],
      {},
      /invalid --forward-allow: "not a host" is not a CIDR/,
    ],
    [
      'a forward allowlist entry with a bad port',
      ['--forward-allow', 'echo-b:99999'],
      {},
      /invalid --forward-allow: "echo-b:99999" has an invalid port/,
    ],
  ];
  it('the L4 echoes are off unless given a port', () => {
    assert.deepEqual([defaultConfig().tcpPort, defaultConfig().udpPort], [null, null]);
    const c = load(['--tcp-port', '7000', '--proxy-protocol', 'tcp'], { ECHO_UDP_PORT: '0' });
    assert.deepEqual([c.tcpPort, c.udpPort, c.proxyProtocol], [7000, 0, ['tcp']]);
    // The TLS TCP echo takes the certificate settings without --https.
    assert.equal(load(['--tcp-tls-port', '7443', '--tls-client-auth', 'request']).tlsClientAuth, 'request');
  });
  for (const [name, argv, env, message] of bad) {
    it(`rejects ${name}`, () =>
      assert.throws(
        () => load(argv, env),
        (e: Error) => e instanceof ConfigError && message.test(e.message),
      ));
  }

  it('rejects a flag without its value and stray arguments', () => {
    assert.throws(() => parseArgs(['--port']), /--port needs a value/);
    assert.throws(() => parseArgs(['serve', 'extra']), /unexpected argument "extra"/);
  });
});
