// HTML rendering for browsers: the echo (every value escaped), a summary of what
// the proxies did at the top, and a console for trying the server's controls and
// protocols. The page's one stylesheet and one script are inline and pinned by their
// sha256 in the Content-Security-Policy; nothing else may run or load, so reflected
// input can never execute, even if an escape were missed.
import { createHash } from 'node:crypto';
import type { Echo } from '../model.ts';
import { CONSOLE_JS, PAGE_CSS } from './assets.ts';
import { CONSOLE_MARKUP } from './console-markup.ts';

export const HTML_TYPE = 'text/html; charset=utf-8';

const sha256 = (s: string) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`;

/**
 * The CSP sent with every HTML page. connect-src 'self' lets the console reach this
 * origin by fetch, WebSocket (ws/wss on the same host count as 'self' in CSP Level 3)
 * and EventSource, and nothing else.
 */
export const HTML_CSP =
  "default-src 'none'; " +
  `script-src ${sha256(CONSOLE_JS)}; style-src ${sha256(PAGE_CSS)}; ` +
  "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function rows(pairs: Iterable<[string, string]>): string {
  let out = '';
  for (const [k, v] of pairs) out += `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`;
  return out;
}

function section(id: string, title: string, pairs: [string, string][]): string {
  if (pairs.length === 0) return '';
  return `<h2 id="${id}">${escapeHtml(title)}</h2><table aria-labelledby="${id}"><tbody>${rows(pairs)}</tbody></table>`;
}

function card(id: string, title: string, big: string, lines: string[]): string {
  return (
    `<div class="card" id="${id}"><h2>${title}</h2><p class="big">${escapeHtml(big)}</p>` +
    lines.map((l) => `<p class="how">${l}</p>`).join('') +
    '</div>'
  );
}

const SOURCE_NAMES: Record<string, string> = {
  forwarded: 'Forwarded',
  'x-forwarded-for': 'X-Forwarded-For',
  'x-real-ip': 'X-Real-IP',
};

/** Client IP and how it was derived: the first question behind a proxy. Lines are escaped here. */
function clientCard(e: Echo): string {
  const c = e.client;
  const lines: string[] = [];
  const sent = [
    c.forwarded !== null ? 'Forwarded' : '',
    c.xForwardedFor !== null ? 'X-Forwarded-For' : '',
    c.xRealIp !== null ? 'X-Real-IP' : '',
  ].filter(Boolean);
  if (c.source !== 'peer') {
    lines.push(
      `from ${SOURCE_NAMES[c.source] ?? escapeHtml(c.source)}, believed because peer ${escapeHtml(c.peer)} is a trusted proxy`,
    );
  } else if (sent.length > 0 && !c.peerTrusted) {
    lines.push(
      `the TCP peer; <span class="flag">${sent.join(', ')} ignored</span>: peer ${escapeHtml(c.peer)} is not a trusted proxy (--trusted-proxies)`,
    );
  } else {
    lines.push(
      `the TCP peer${c.peerTrusted ? ` (a trusted proxy that named no client in ${SOURCE_NAMES[c.trustedHeader] ?? ''})` : ', no forwarding headers'}`,
    );
  }
  if (c.peerTrusted)
    lines.push(`only ${SOURCE_NAMES[c.trustedHeader] ?? ''} is believed from a trusted proxy (--client-ip-header)`);
  if (e.proxy !== null)
    lines.push(`original client from a PROXY protocol v${e.proxy.version} header sent by ${escapeHtml(e.proxy.peer)}`);
  return card('summary-client', 'Client IP', c.ip, lines);
}

function protocolCard(e: Echo): string {
  const lines: string[] = [];
  const t = e.tls;
  if (t === null) {
    lines.push(e.proto.startsWith('HTTP/2') ? 'cleartext HTTP/2 (h2c)' : 'cleartext, no TLS');
  } else {
    lines.push(
      escapeHtml(
        [
          t.version ?? 'TLS',
          t.alpn !== null ? `ALPN ${t.alpn}` : 'no ALPN',
          t.sni !== null ? `SNI ${t.sni}` : 'no SNI',
        ].join(' · '),
      ),
    );
    if (t.cipher !== null) lines.push(escapeHtml(t.cipher));
    const cc = t.clientCertificate;
    if (cc !== null)
      lines.push(
        `client certificate ${escapeHtml(cc.subject)} (${cc.verified ? 'verified' : `<span class="flag">not verified: ${escapeHtml(cc.verifyError ?? '')}</span>`})`,
      );
  }
  return card('summary-protocol', 'Protocol', e.proto, lines);
}

function replicaCard(e: Echo): string {
  if (e.server === null) return card('summary-replica', 'Replica', 'not shown', ['the server runs with --no-identity']);
  return card('summary-replica', 'Replica', e.server.hostname, [
    escapeHtml(e.server.addresses.join(', ') || 'no external address'),
  ]);
}

function requestIdCard(e: Echo): string {
  const sent = Object.entries(e.headers).some(([n, vs]) => n.toLowerCase() === 'x-request-id' && vs[0] === e.requestId);
  return card('summary-request-id', 'Request ID', e.requestId, [
    sent ? "kept from the request's X-Request-Id" : 'made by this server; sent back as X-Request-Id',
  ]);
}

export function renderHtml(e: Echo): string {
  const c = e.client;
  const request: [string, string][] = [
    ['Remote address', e.remoteAddr],
    ['Method', e.method],
    ['Request URI', e.requestURI],
    ['Protocol', e.proto],
    ['Content length', String(e.contentLength)],
    ['Path', e.path],
    ['Request ID', e.requestId],
  ];
  const client: [string, string][] = [
    ['Client IP', c.ip],
    ['Source', c.source],
    ['Peer', c.peer],
    ['Peer trusted', String(c.peerTrusted)],
    ['Trusted header', c.trustedHeader],
  ];
  if (c.forwarded !== null) client.push(['Forwarded', c.forwarded]);
  if (c.xForwardedFor !== null) client.push(['X-Forwarded-For', c.xForwardedFor]);
  if (c.xRealIp !== null) client.push(['X-Real-IP', c.xRealIp]);
  const query: [string, string][] = Object.entries(e.query).flatMap(([k, vs]) =>
    vs.map((v): [string, string] => [k, v]),
  );
  const body: [string, string][] =
    e.body.bytes > 0
      ? [
          ['Bytes', String(e.body.bytes)],
          ['Truncated', String(e.body.truncated)],
          ['Encoding', e.body.encoding],
          ['Data', e.body.data],
        ]
      : [];
  const tls: [string, string][] =
    e.tls === null
      ? []
      : [
          ['Version', e.tls.version ?? ''],
          ['Cipher', e.tls.cipher ?? ''],
          ['SNI', e.tls.sni ?? ''],
          ['ALPN', e.tls.alpn ?? ''],
          ...(e.tls.clientCertificate === null
            ? []
            : Object.entries(e.tls.clientCertificate).map(([k, v]): [string, string] => [
                `Client certificate ${k}`,
                String(v),
              ])),
        ];
  const proxy: [string, string][] =
    e.proxy === null
      ? []
      : [
          ['Version', String(e.proxy.version)],
          ['Command', e.proxy.command],
          ['Transport', e.proxy.transport],
          ['Source', `${e.proxy.sourceAddress ?? ''}:${e.proxy.sourcePort ?? ''}`],
          ['Destination', `${e.proxy.destinationAddress ?? ''}:${e.proxy.destinationPort ?? ''}`],
          ['Proxy (TCP peer)', e.proxy.peer],
          ['TLVs', JSON.stringify(e.proxy.tlvs)],
        ];
  const server: [string, string][] =
    e.server === null
      ? []
      : [
          ['Hostname', e.server.hostname],
          ['Addresses', e.server.addresses.join(', ')],
        ];
  return (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="color-scheme" content="light dark">' +
    `<title>echo-server: ${escapeHtml(e.method)} ${escapeHtml(e.path)}</title><style>${PAGE_CSS}</style></head><body>` +
    '<header class="top"><div class="wrap"><p class="brand">echo-server: what reached the backend</p>' +
    `<h1 id="echo-title"><span class="method">${escapeHtml(e.method)}</span> ${escapeHtml(e.requestURI)} <span class="proto">${escapeHtml(e.proto)}</span></h1>` +
    '</div></header>' +
    `<div class="wrap"><section class="summary" aria-label="Summary">${clientCard(e)}${protocolCard(e)}${replicaCard(e)}${requestIdCard(e)}</section></div>` +
    '<main class="wrap"><section id="echo" class="echo" aria-label="Echo">' +
    section('echo-request', 'Request', request) +
    section('echo-pseudo', 'Pseudo-headers', Object.entries(e.pseudoHeaders)) +
    section(
      'echo-headers',
      'Headers',
      e.rawHeaders.filter(([n]) => !n.startsWith(':')),
    ) +
    section('echo-query', 'Query', query) +
    section('echo-cookies', 'Cookies', Object.entries(e.cookies)) +
    section('echo-body', 'Body', body) +
    section('echo-client', 'Client', client) +
    section('echo-tls', 'TLS', tls) +
    section('echo-proxy', 'PROXY protocol', proxy) +
    section('echo-server', 'Server', server) +
    section('echo-env', 'Environment', e.env === null ? [] : Object.entries(e.env)) +
    '<noscript><p class="note">The console for trying response controls, WebSocket and SSE needs JavaScript; the echo above is complete without it.</p></noscript>' +
    `</section>${CONSOLE_MARKUP}</main><script>${CONSOLE_JS}</script></body></html>\n`
  );
}
