// One pass over the raw request headers collects everything the handler needs, so
// no handler looks names up one by one in a header object (node:http builds its
// lower-cased `req.headers` on HTTP/1.1 anyway, to check Expect; nothing here adds
// to that). Which names matter is decided in one place for the whole server
// (header-names.ts).
import {
  ACCEPT,
  AUTHORITY,
  CONTENT_LENGTH,
  CONTROL_PREFIX,
  ECHO_CONTROL,
  EXPECT,
  HOST,
  ORIGIN,
  TRANSFER_ENCODING,
  USER_AGENT,
  X_FORWARDED_HOST,
  X_REQUEST_ID,
  headerKind,
} from './header-names.ts';

export interface HeaderScan {
  accept: string | undefined;
  requestId: string | undefined;
  contentLength: string | undefined;
  userAgent: string | undefined;
  chunked: boolean;
  origin: string | undefined;
  /** The Host header's value, and how many Host headers there were. */
  host: string | undefined;
  hosts: number;
  /** HTTP/2's `:authority`. */
  authority: string | undefined;
  /** The first X-Forwarded-Host, believed only from a trusted proxy. */
  forwardedHost: string | undefined;
  expect: string | undefined;
  /** `X-Echo-*` headers, as [lower-cased name without the prefix, value]; null when there are none. */
  controls: [string, string][] | null;
}

/**
 * Every `X-Echo-*` header is collected, whatever --controls says: controlInput
 * applies the --no-controls rule, and the probe paths read the health control
 * from the same scan.
 */
export function scanHeaders(raw: readonly string[]): HeaderScan {
  const scan: HeaderScan = {
    accept: undefined,
    requestId: undefined,
    contentLength: undefined,
    userAgent: undefined,
    chunked: false,
    origin: undefined,
    host: undefined,
    hosts: 0,
    authority: undefined,
    forwardedHost: undefined,
    expect: undefined,
    controls: null,
  };
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    switch (headerKind(name)) {
      case HOST:
        scan.host = raw[i + 1];
        scan.hosts++;
        break;
      case ACCEPT:
        scan.accept = raw[i + 1];
        break;
      case AUTHORITY:
        scan.authority = raw[i + 1];
        break;
      case X_FORWARDED_HOST:
        scan.forwardedHost ??= raw[i + 1];
        break;
      case ORIGIN:
        scan.origin = raw[i + 1];
        break;
      case EXPECT:
        scan.expect = raw[i + 1];
        break;
      case USER_AGENT:
        scan.userAgent = raw[i + 1];
        break;
      case X_REQUEST_ID:
        scan.requestId = raw[i + 1];
        break;
      case CONTENT_LENGTH:
        scan.contentLength = raw[i + 1];
        break;
      case TRANSFER_ENCODING:
        scan.chunked = true;
        break;
      case ECHO_CONTROL:
        (scan.controls ??= []).push([name.toLowerCase().slice(CONTROL_PREFIX.length), raw[i + 1]!]);
        break;
    }
  }
  return scan;
}
