// The request header names the server itself reads, recognised in one place: the
// HTTP stage's scan (http/request-head.ts) and the echo model's pass (model.ts) both
// ask here. Names are compared by length first, so most headers are rejected
// without being lower-cased.

/** What a header name is to the server; OTHER for every name it does not read. */
export const OTHER = 0;
export const HOST = 1;
export const ACCEPT = 2;
export const ORIGIN = 3;
export const EXPECT = 4;
export const COOKIE = 5;
export const USER_AGENT = 6;
export const X_REQUEST_ID = 7;
export const CONTENT_LENGTH = 8;
export const TRANSFER_ENCODING = 9;
export const FORWARDED = 10;
export const X_REAL_IP = 11;
export const X_FORWARDED_FOR = 12;
/** An `X-Echo-*` response control. */
export const ECHO_CONTROL = 13;
/** HTTP/2's `:authority`, which stands for Host. */
export const AUTHORITY = 14;
export const X_FORWARDED_HOST = 15;

export const CONTROL_PREFIX = 'x-echo-';

/** Which known header `name` (any letter case) is. */
export function headerKind(name: string): number {
  switch (name.length) {
    case 4:
      return name.toLowerCase() === 'host' ? HOST : OTHER;
    case 6: {
      const lower = name.toLowerCase();
      return lower === 'accept'
        ? ACCEPT
        : lower === 'origin'
          ? ORIGIN
          : lower === 'expect'
            ? EXPECT
            : lower === 'cookie'
              ? COOKIE
              : controlOrOther(name);
    }
    case 9: {
      const lower = name.toLowerCase();
      return lower === 'forwarded' ? FORWARDED : lower === 'x-real-ip' ? X_REAL_IP : controlOrOther(name);
    }
    case 10: {
      const lower = name.toLowerCase();
      return lower === 'user-agent' ? USER_AGENT : lower === ':authority' ? AUTHORITY : controlOrOther(name);
    }
    case 12:
      return name.toLowerCase() === 'x-request-id' ? X_REQUEST_ID : controlOrOther(name);
    case 14:
      return name.toLowerCase() === 'content-length' ? CONTENT_LENGTH : controlOrOther(name);
    case 15:
      return name.toLowerCase() === 'x-forwarded-for' ? X_FORWARDED_FOR : controlOrOther(name);
    case 16:
      return name.toLowerCase() === 'x-forwarded-host' ? X_FORWARDED_HOST : controlOrOther(name);
    case 17:
      return name.toLowerCase() === 'transfer-encoding' ? TRANSFER_ENCODING : controlOrOther(name);
    default:
      return controlOrOther(name);
  }
}

/** `X-Echo-<something>`: checked on the first letter before anything is lower-cased. */
function controlOrOther(name: string): number {
  return name.length > CONTROL_PREFIX.length &&
    (name.charCodeAt(0) | 0x20) === 0x78 /* x */ &&
    name.toLowerCase().startsWith(CONTROL_PREFIX)
    ? ECHO_CONTROL
    : OTHER;
}
