// HTML rendering for browsers: one self-contained page, every value escaped, and a
// Content-Security-Policy that allows nothing but the page's own inline style
// (pinned by hash), so reflected input can never run as script.
import { createHash } from 'node:crypto';
import type { Echo } from '../model.ts';

export const HTML_TYPE = 'text/html; charset=utf-8';

const STYLE = 'body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}' +
  'h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}' +
  'table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}' +
  'th{background:#f4f4f4;width:14em;font-weight:600}td{font-family:ui-monospace,monospace;white-space:pre-wrap;word-break:break-all}';

/** The CSP sent with every HTML page. */
export const HTML_CSP = "default-src 'none'; " +
  `style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'; ` +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function rows(pairs: Iterable<[string, string]>): string {
  let out = '';
  for (const [k, v] of pairs) out += `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`;
  return out;
}

function section(title: string, pairs: [string, string][]): string {
  if (pairs.length === 0) return '';
  return `<h2>${escapeHtml(title)}</h2><table>${rows(pairs)}</table>`;
}

export function renderHtml(e: Echo): string {
  const c = e.client;
  const request: [string, string][] = [
    ['Remote address', e.remoteAddr], ['Method', e.method], ['Request URI', e.requestURI],
    ['Protocol', e.proto], ['Content length', String(e.contentLength)], ['Path', e.path],
    ['Request ID', e.requestId],
  ];
  const client: [string, string][] = [['Client IP', c.ip], ['Source', c.source], ['Peer', c.peer], ['Peer trusted', String(c.peerTrusted)]];
  if (c.forwarded !== null) client.push(['Forwarded', c.forwarded]);
  if (c.xForwardedFor !== null) client.push(['X-Forwarded-For', c.xForwardedFor]);
  if (c.xRealIp !== null) client.push(['X-Real-IP', c.xRealIp]);
  const query: [string, string][] = Object.entries(e.query).flatMap(([k, vs]) => vs.map((v): [string, string] => [k, v]));
  const body: [string, string][] = e.body.bytes > 0
    ? [['Bytes', String(e.body.bytes)], ['Truncated', String(e.body.truncated)], ['Encoding', e.body.encoding], ['Data', e.body.data]]
    : [];
  const tls: [string, string][] = e.tls === null ? [] : [
    ['Version', e.tls.version ?? ''], ['Cipher', e.tls.cipher ?? ''], ['SNI', e.tls.sni ?? ''], ['ALPN', e.tls.alpn ?? ''],
    ...(e.tls.clientCertificate === null ? [] : Object.entries(e.tls.clientCertificate).map(([k, v]): [string, string] => [`Client certificate ${k}`, String(v)])),
  ];
  const proxy: [string, string][] = e.proxy === null ? [] : [
    ['Version', String(e.proxy.version)], ['Command', e.proxy.command], ['Transport', e.proxy.transport],
    ['Source', `${e.proxy.sourceAddress ?? ''}:${e.proxy.sourcePort ?? ''}`], ['Destination', `${e.proxy.destinationAddress ?? ''}:${e.proxy.destinationPort ?? ''}`],
    ['Proxy (TCP peer)', e.proxy.peer], ['TLVs', JSON.stringify(e.proxy.tlvs)],
  ];
  const server: [string, string][] = e.server === null ? [] : [['Hostname', e.server.hostname], ['Addresses', e.server.addresses.join(', ')]];
  return '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width,initial-scale=1">' +
    `<title>echo-server: ${escapeHtml(e.method)} ${escapeHtml(e.path)}</title><style>${STYLE}</style></head><body>` +
    `<h1>${escapeHtml(e.method)} ${escapeHtml(e.requestURI)} ${escapeHtml(e.proto)}</h1>` +
    section('Request', request) +
    section('Pseudo-headers', Object.entries(e.pseudoHeaders)) +
    section('Headers', e.rawHeaders.filter(([n]) => !n.startsWith(':'))) +
    section('Query', query) +
    section('Cookies', Object.entries(e.cookies)) +
    section('Body', body) +
    section('Client', client) +
    section('TLS', tls) +
    section('PROXY protocol', proxy) +
    section('Server', server) +
    section('Environment', e.env === null ? [] : Object.entries(e.env)) +
    '</body></html>\n';
}
