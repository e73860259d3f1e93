// Load balancers check a backend by opening a TCP connection and closing it without
// sending anything, about once a second each. On a PROXY or TLS port that is not a bad
// header or a failed handshake: it is counted in echo_connections_closed_early_total
// and logged at debug only. A client that does send something wrong is still reported.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { NetworkSet } from '../../src/util/addresses.ts';
import { createLogger } from '../../src/ops/logger.ts';
import { freePort, LogCapture, rawRequest, startTestServer, waitFor, type TestServer } from '../helpers.ts';

/** A TCP health check: connect, then close without a byte. */
function tcpCheck(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.end());
    s.on('close', () => resolve());
    s.on('error', reject);
  });
}

async function closedEarly(metricsPort: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^echo_connections_closed_early_total\{reason="(\w+)"\} (\d+)$/gm))
    out[m[1]!] = Number(m[2]);
  return out;
}

const reported = (logs: LogCapture) =>
  logs.lines.filter(
    (l) => l.msg === 'connection closed: bad or missing PROXY header' || l.msg === 'TLS handshake failed',
  );

describe('L4 health checks', () => {
  let proxied: TestServer;
  let plain: TestServer;
  let proxiedMetrics: number;
  let plainMetrics: number;
  const debugLogs = new LogCapture();

  before(async () => {
    proxiedMetrics = await freePort();
    proxied = await startTestServer({
      proxyProtocol: ['http', 'https'],
      https: true,
      httpsPort: 0,
      metricsPort: proxiedMetrics,
      trustedProxies: new NetworkSet(['127.0.0.1/32']),
    });
    plainMetrics = await freePort();
    plain = await startTestServer(
      { https: true, httpsPort: 0, metricsPort: plainMetrics },
      { logger: createLogger({ level: 'debug', format: 'json', destination: debugLogs }) },
    );
  });
  after(async () => {
    await proxied?.close();
    await plain?.close();
  });

  it('on PROXY ports (plain and TLS): counted, no WARN line', async () => {
    const https = proxied.server.listener.httpsAddress!.port;
    for (let i = 0; i < 3; i++) await Promise.all([tcpCheck(proxied.port), tcpCheck(https)]);
    const counts = await waitFor(
      async () => {
        const c = await closedEarly(proxiedMetrics);
        return c.before_proxy_header === 6 ? c : null;
      },
      5000,
      '6 early closes counted',
    );
    assert.deepEqual(counts, { before_proxy_header: 6, before_tls_handshake: 0, before_request: 0 });
    assert.deepEqual(reported(proxied.logs), []);
  });

  it('on the TLS port and the plain port without PROXY: counted, no INFO line, one debug line each', async () => {
    const https = plain.server.listener.httpsAddress!.port;
    for (let i = 0; i < 3; i++) await Promise.all([tcpCheck(plain.port), tcpCheck(https)]);
    const counts = await waitFor(
      async () => {
        const c = await closedEarly(plainMetrics);
        return c.before_tls_handshake === 3 && c.before_request === 3 ? c : null;
      },
      5000,
      '3 + 3 early closes counted',
    );
    assert.deepEqual(counts, { before_proxy_header: 0, before_tls_handshake: 3, before_request: 3 });
    assert.deepEqual(reported(debugLogs), []);
    const debug = debugLogs.messages('connection closed without sending anything');
    assert.equal(debug.length, 6);
    assert.deepEqual(debug.map((l) => l.reason).sort(), [
      ...Array<string>(3).fill('before_request'),
      ...Array<string>(3).fill('before_tls_handshake'),
    ]);
    assert.ok(
      debug.every((l) => l.level === 'debug' || l.level === 20),
      JSON.stringify(debug[0]),
    );
  });

  it('a client that sends a bad PROXY header or a bad handshake is still reported, and not counted as a health check', async () => {
    const before = await closedEarly(proxiedMetrics);
    await rawRequest(proxied.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(() => reported(proxied.logs).length === 1, 5000, 'the bad PROXY header logged');
    assert.equal(reported(proxied.logs)[0]!.level, 'warn');
    await rawRequest(plain.server.listener.httpsAddress!.port, 'not a TLS hello\r\n\r\n');
    await waitFor(() => debugLogs.messages('TLS handshake failed').length === 1, 5000, 'the failed handshake logged');
    assert.deepEqual(await closedEarly(proxiedMetrics), before);
  });
});
