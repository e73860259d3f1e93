// One pass over the raw request headers collects everything the handler needs,
// so the hot path never builds Node's lower-cased `req.headers` object.
import { HEADER_PREFIX, headerControlRead } from './controls.ts';

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
  expect: string | undefined;
  /** `X-Echo-*` headers read as controls, as [name without prefix, value]; null when there are none. */
  controls: [string, string][] | null;
}

/** `controls`: --controls is on; off, only the controls the table keeps under --no-controls are collected. */
export function scanHeaders(raw: readonly string[], controls: boolean): HeaderScan {
  const scan: HeaderScan = {
    accept: undefined, requestId: undefined, contentLength: undefined, userAgent: undefined, chunked: false,
    origin: undefined, host: undefined, hosts: 0, expect: undefined, controls: null,
  };
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const len = name.length;
    // Compare lengths first: most headers are rejected without lower-casing.
    if (len === 4) {
      if (name.toLowerCase() === 'host') {
        scan.host = raw[i + 1];
        scan.hosts++;
      }
    } else if (len === 6) {
      const lower = name.toLowerCase();
      if (lower === 'accept') scan.accept = raw[i + 1];
      else if (lower === 'origin') scan.origin = raw[i + 1];
      else if (lower === 'expect') scan.expect = raw[i + 1];
    } else if (len === 10) {
      if (name.toLowerCase() === 'user-agent') scan.userAgent = raw[i + 1];
    } else if (len === 12) {
      if (name.toLowerCase() === 'x-request-id') scan.requestId = raw[i + 1];
    } else if (len === 14) {
      if (name.toLowerCase() === 'content-length') scan.contentLength = raw[i + 1];
    } else if (len === 17) {
      if (name.toLowerCase() === 'transfer-encoding') scan.chunked = true;
    }
    if (len > HEADER_PREFIX.length && (name.charCodeAt(0) | 0x20) === 0x78 /* x */) {
      const lower = name.toLowerCase();
      if (lower.startsWith(HEADER_PREFIX) && headerControlRead(lower, controls)) {
        (scan.controls ??= []).push([lower.slice(HEADER_PREFIX.length), raw[i + 1]!]);
      }
    }
  }
  return scan;
}
