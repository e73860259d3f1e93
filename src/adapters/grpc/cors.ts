// gRPC-Web from a page of another origin: the CORS a browser needs before it lets
// the page send a call and read its answer. The rule is the one --allowed-origins
// already sets for WebSockets and event streams (handlers/origin.ts): no Origin or
// this server's own is always allowed, listed origins too, `*` all. An allowed
// origin's preflight gets 204 with what gRPC-Web clients send; its calls carry
// Access-Control-Allow-Origin and expose the status, message and the echo's own
// headers. Another origin's preflight is 403, so the browser never sends the call.
import type { Config } from '../../config/settings.ts';
import { CHOSEN_DELAY_HEADER, CHOSEN_SIZE_HEADER, CONTROLS } from '../../controls/table.ts';
import { TRAILER_CONTROL } from '../../controls/grpc.ts';
import type { ConnectionFacts } from '../../core/facts.ts';
import type { HeaderScan } from '../../core/request-head.ts';
import { requestOriginAllowed } from '../../handlers/origin.ts';

/** What gRPC-Web clients send (grpc-web, Connect, Envoy's filter) and the x-echo-* controls. */
export const GRPC_WEB_ALLOW_HEADERS = [
  'content-type',
  'x-grpc-web',
  'x-user-agent',
  'grpc-timeout',
  ...CONTROLS.map((c) => c.header.toLowerCase()),
  TRAILER_CONTROL.toLowerCase(),
].join(', ');

/** What a page may read of the answer besides the CORS-safelisted headers. */
const EXPOSED = [
  'grpc-status',
  'grpc-message',
  'x-request-id',
  CHOSEN_DELAY_HEADER.toLowerCase(),
  CHOSEN_SIZE_HEADER.toLowerCase(),
];

/** How long a browser may keep a preflight's answer, in seconds. */
const PREFLIGHT_MAX_AGE = '600';

/** Whether a request is a CORS preflight for a gRPC-Web call to one of `paths`. */
export function isGrpcWebPreflight(
  method: string,
  url: string,
  headers: Readonly<Record<string, string | string[] | undefined>>,
  paths: ReadonlyMap<string, unknown>,
): boolean {
  if (method !== 'OPTIONS' || headers.origin === undefined || headers['access-control-request-method'] === undefined)
    return false;
  const q = url.indexOf('?');
  return paths.has(q < 0 ? url : url.slice(0, q));
}

type OriginFacts = { scan: HeaderScan; facts: ConnectionFacts };
type OriginConfig = Pick<Config, 'allowedOrigins' | 'trustedProxies'>;

/**
 * A preflight's answer: 204 and its headers for an allowed origin asking to POST,
 * else 403 with the reason.
 */
export function preflightAnswer(
  x: OriginFacts,
  method: string | undefined,
  config: OriginConfig,
): { status: number; headers: string[]; reason: string } {
  if (!requestOriginAllowed(x, config)) {
    return {
      status: 403,
      headers: ['Vary', 'Origin'],
      reason: 'origin may not call gRPC-Web here (--allowed-origins)\n',
    };
  }
  if (method?.trim().toUpperCase() !== 'POST') {
    return { status: 403, headers: ['Vary', 'Origin'], reason: 'gRPC-Web calls are POST requests\n' };
  }
  return {
    status: 204,
    headers: [
      'Access-Control-Allow-Origin',
      x.scan.origin!,
      'Access-Control-Allow-Methods',
      'POST',
      'Access-Control-Allow-Headers',
      GRPC_WEB_ALLOW_HEADERS,
      'Access-Control-Max-Age',
      PREFLIGHT_MAX_AGE,
      'Vary',
      'Origin',
    ],
    reason: '',
  };
}

/**
 * The CORS headers of a gRPC-Web call's answer ([name, value, ...]): none without an
 * Origin or for one not allowed; `headerNames`, the metadata x-echo-header adds, are
 * exposed too.
 */
export function callCorsHeaders(x: OriginFacts, config: OriginConfig, headerNames: readonly string[] = []): string[] {
  if (x.scan.origin === undefined || !requestOriginAllowed(x, config)) return [];
  const exposed = headerNames.length === 0 ? EXPOSED : [...EXPOSED, ...headerNames.map((n) => n.toLowerCase())];
  return [
    'access-control-allow-origin',
    x.scan.origin,
    'access-control-expose-headers',
    exposed.join(', '),
    'vary',
    'Origin',
  ];
}
