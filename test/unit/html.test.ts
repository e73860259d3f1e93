import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { NetworkSet } from '../../src/util/addresses.ts';
import { EMPTY_BODY, buildEcho, type EchoContext, type RequestInfo } from '../../src/echo/model.ts';
import { CONSOLE_JS, PAGE_CSS } from '../../src/echo/render/assets.ts';
import { HTML_CSP, renderHtml } from '../../src/echo/render/html.ts';

function info(over: Partial<RequestInfo> = {}): RequestInfo {
  return {
    remoteAddress: '127.0.0.1',
    remotePort: 5000,
    method: 'GET',
    uri: '/x',
    proto: 'HTTP/1.1',
    rawHeaders: ['Host', 'h'],
    contentLength: 0,
    body: EMPTY_BODY,
    requestId: 'rid-1',
    tls: null,
    proxy: null,
    peerAddress: '127.0.0.1',
    peerPort: 5000,
    ...over,
  };
}
const ctx = (over: Partial<EchoContext> = {}): EchoContext => ({
  trustedProxies: new NetworkSet([]),
  clientIpHeader: 'x-forwarded-for',
  identity: { hostname: 'replica-1', addresses: ['10.0.0.5'] },
  env: null,
  ...over,
});
/** The visible text of one summary card, tags stripped. */
function card(html: string, id: string): string {
  const m = new RegExp(`<div class="card" id="${id}">(.*?)</div>`).exec(html);
  assert.ok(m, id);
  return m[1]!
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}
const sha = (s: string) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`;

describe('HTML page assets', () => {
  it('pins the inline script and stylesheet by their sha256 in the CSP', () => {
    assert.ok(HTML_CSP.includes(`script-src ${sha(CONSOLE_JS)};`));
    assert.ok(HTML_CSP.includes(`style-src ${sha(PAGE_CSS)};`));
    const html = renderHtml(buildEcho(info(), ctx()));
    assert.ok(html.includes(`<script>${CONSOLE_JS}</script>`));
    assert.ok(html.includes(`<style>${PAGE_CSS}</style>`));
  });

  it('keeps the inline assets from ending their own element early', () => {
    assert.doesNotMatch(CONSOLE_JS, /<\/script|<!--|<script/i);
    assert.doesNotMatch(PAGE_CSS, /<\/style|<!--/i);
  });

  it('gives the console script no way to turn text into markup or code', () => {
    assert.doesNotMatch(
      CONSOLE_JS,
      /innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|createContextualFragment|srcdoc/,
    );
  });
});

describe('HTML summary', () => {
  it('says the client IP is the peer when no proxy is involved', () => {
    assert.equal(
      card(renderHtml(buildEcho(info(), ctx())), 'summary-client'),
      'Client IP 127.0.0.1 the TCP peer, no forwarding headers',
    );
  });

  it('says forwarding headers were ignored from an untrusted peer', () => {
    const e = buildEcho(info({ rawHeaders: ['X-Forwarded-For', '203.0.113.7', 'X-Real-IP', '203.0.113.8'] }), ctx());
    assert.equal(
      card(renderHtml(e), 'summary-client'),
      'Client IP 127.0.0.1 the TCP peer; X-Forwarded-For, X-Real-IP ignored : peer 127.0.0.1 is not a trusted proxy (--trusted-proxies)',
    );
  });

  it('names the header the client IP came from behind a trusted proxy', () => {
    const e = buildEcho(
      info({ rawHeaders: ['Forwarded', 'for=198.51.100.4'] }),
      ctx({ trustedProxies: new NetworkSet(['loopback']), clientIpHeader: 'forwarded' }),
    );
    assert.equal(
      card(renderHtml(e), 'summary-client'),
      'Client IP 198.51.100.4 from Forwarded, believed because peer 127.0.0.1 is a trusted proxy only Forwarded is believed from a trusted proxy (--client-ip-header)',
    );
  });

  it('names a PROXY protocol header', () => {
    const proxy = {
      version: 2 as const,
      command: 'PROXY' as const,
      transport: 'TCP4',
      sourceAddress: '192.0.2.1',
      sourcePort: 1,
      destinationAddress: '192.0.2.2',
      destinationPort: 2,
      tlvs: {},
    };
    const e = buildEcho(info({ remoteAddress: '192.0.2.1', proxy: proxy, peerAddress: '10.1.1.1' }), ctx());
    assert.match(
      card(renderHtml(e), 'summary-client'),
      /original client from a PROXY protocol v2 header sent by 10\.1\.1\.1:5000$/,
    );
  });

  it('shows TLS version, ALPN, SNI and cipher, or cleartext, or h2c', () => {
    const tls = {
      version: 'TLSv1.3',
      cipher: 'TLS_AES_128_GCM_SHA256',
      sni: 'echo.example',
      alpn: 'h2',
      clientCertificate: null,
    };
    assert.equal(
      card(renderHtml(buildEcho(info({ proto: 'HTTP/2.0', tls }), ctx())), 'summary-protocol'),
      'Protocol HTTP/2.0 TLSv1.3 · ALPN h2 · SNI echo.example TLS_AES_128_GCM_SHA256',
    );
    assert.equal(card(renderHtml(buildEcho(info(), ctx())), 'summary-protocol'), 'Protocol HTTP/1.1 cleartext, no TLS');
    assert.equal(
      card(renderHtml(buildEcho(info({ proto: 'HTTP/2.0' }), ctx())), 'summary-protocol'),
      'Protocol HTTP/2.0 cleartext HTTP/2 (h2c)',
    );
  });

  it('shows the replica, or says identity is off; says whether the request id was kept', () => {
    assert.equal(card(renderHtml(buildEcho(info(), ctx())), 'summary-replica'), 'Replica replica-1 10.0.0.5');
    assert.equal(
      card(renderHtml(buildEcho(info(), ctx({ identity: null }))), 'summary-replica'),
      'Replica not shown the server runs with --no-identity',
    );
    assert.match(
      card(renderHtml(buildEcho(info(), ctx())), 'summary-request-id'),
      /^Request ID rid-1 made by this server/,
    );
    const kept = buildEcho(info({ rawHeaders: ['X-Request-Id', 'rid-1'] }), ctx());
    assert.equal(card(renderHtml(kept), 'summary-request-id'), "Request ID rid-1 kept from the request's X-Request-Id");
  });

  it('escapes what it reflects in the summary', () => {
    const e = buildEcho(
      info({ rawHeaders: ['X-Forwarded-For', '<b>x</b>'] }),
      ctx({ trustedProxies: new NetworkSet(['loopback']), identity: { hostname: '<i>h</i>', addresses: [] } }),
    );
    const html = renderHtml(e);
    assert.doesNotMatch(html, /<b>|<i>/);
    assert.match(card(html, 'summary-replica'), /&lt;i&gt;h&lt;\/i&gt;/);
  });
});
