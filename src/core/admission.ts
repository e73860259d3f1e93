// Whether a request is taken at all: the checks made before any work, the same on
// every protocol. node:http enforces the head limits on HTTP/1.1 (its parser answers
// 431); node:http2 enforces neither, so they are checked here for every request.
// Protocol-neutral: it reads a RequestHead, never a node:http or node:http2 object
// (an IncomingMessage is one as it stands, and so is an HTTP/2 stream's exchange).
import type { Config } from '../config/settings.ts';
import { clip } from '../util/parse.ts';
import type { HeaderScan } from './request-head.ts';

export interface Refusal {
  status: number;
  reason: string;
  /** The setting that refused it, when a limit did (logged, rate-limited). */
  limit?: string;
}

/** What admission reads of a request: its version ('1.0', '1.1', '2.0') and raw header list. */
export interface RequestHead {
  readonly httpVersion: string;
  readonly rawHeaders: readonly string[];
}

const isHttp2 = (head: RequestHead) => head.httpVersion.charCodeAt(0) === 0x32; // '2'

/** uri-host [":" port]: a registered name, an IPv4 address or a bracketed IP literal. */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::[0-9]{0,5})?$/;

/** HTTP/1.1 needs exactly one Host (RFC 9112, section 3.2); HTTP/1.0 at most one. */
function hostValid(head: RequestHead, scan: HeaderScan): boolean {
  if (scan.hosts > 1) return false;
  if (scan.hosts === 0) return head.httpVersion === '1.0';
  return HOST.test(scan.host!);
}

/** The size of a header list as the HTTP/1.1 head it stands for: `name: value\r\n` per field. */
export function headerListSize(raw: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i++) n += raw[i]!.length + 2;
  return n;
}

/** Header fields, not counting HTTP/2 pseudo-headers (`:path`...), which stand for the request line. */
function fieldCount(raw: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.charCodeAt(0) !== 0x3a) n++;
  return n;
}

/** Whether a Content-Length declares more than `limit` bytes (an unparsable one is node:http's to refuse). */
export function declaredOverLimit(contentLength: string | undefined, limit: number): boolean {
  return contentLength !== undefined && Number(contentLength) > limit;
}

/** Null when the request may be served; else the answer that refuses it. */
export function admissionProblem(req: RequestHead, scan: HeaderScan, config: Config): Refusal | null {
  if (isHttp2(req) && headerListSize(req.rawHeaders) > config.maxHeaderSize) {
    return {
      status: 431,
      reason: `request header fields too large (--max-header-size ${config.maxHeaderSize})`,
      limit: '--max-header-size',
    };
  }
  if (req.rawHeaders.length > 2 * config.maxHeaderCount && fieldCount(req.rawHeaders) > config.maxHeaderCount) {
    return {
      status: 431,
      reason: `too many header fields (--max-header-count ${config.maxHeaderCount})`,
      limit: '--max-header-count',
    };
  }
  if (!isHttp2(req) && !hostValid(req, scan)) {
    return { status: 400, reason: 'a request must carry exactly one valid Host header (RFC 9112, section 3.2)' };
  }
  if (scan.expect !== undefined && scan.expect.trim().toLowerCase() !== '100-continue') {
    return { status: 417, reason: `expectation "${clip(scan.expect)}" is not supported; only 100-continue is` };
  }
  return null;
}
