import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as H from '../../src/core/header-names.ts';

/** [name as a client may spell it, what the server must take it for]. */
const NAMES: [string, number][] = [
  ['Host', H.HOST],
  ['HOST', H.HOST],
  ['host', H.HOST],
  ['Hast', H.OTHER],
  ['Accept', H.ACCEPT],
  ['Origin', H.ORIGIN],
  ['Expect', H.EXPECT],
  ['Cookie', H.COOKIE],
  ['cOOKIE', H.COOKIE],
  ['Pragma', H.OTHER],
  ['Forwarded', H.FORWARDED],
  ['X-Real-IP', H.X_REAL_IP],
  ['x-real-ip', H.X_REAL_IP],
  ['X-Real-Ix', H.OTHER],
  ['User-Agent', H.USER_AGENT],
  ['X-Request-Id', H.X_REQUEST_ID],
  ['X-REQUEST-ID', H.X_REQUEST_ID],
  ['Content-Length', H.CONTENT_LENGTH],
  ['Content-Lengthy', H.OTHER],
  ['X-Forwarded-For', H.X_FORWARDED_FOR],
  ['Transfer-Encoding', H.TRANSFER_ENCODING],
  ['X-Forwarded-Proto', H.OTHER],
  ['X-Echo-Status', H.ECHO_CONTROL],
  ['x-echo-format', H.ECHO_CONTROL],
  ['X-ECHO-H', H.ECHO_CONTROL],
  ['X-Echo-Nope-At-All', H.ECHO_CONTROL],
  ['X-Echo-', H.OTHER],
  ['X-Echoes', H.OTHER],
  ['Y-Echo-Status', H.OTHER],
  ['', H.OTHER],
  [':authority', H.AUTHORITY],
  [':Authority', H.AUTHORITY],
  [':authorit', H.OTHER],
  ['X-Forwarded-Host', H.X_FORWARDED_HOST],
  ['x-forwarded-host', H.X_FORWARDED_HOST],
  ['X-Forwarded-Hosts', H.OTHER],
  ['__proto__', H.OTHER],
  ['constructor', H.OTHER],
];

describe('header names', () => {
  it('recognises each name the server reads, in any letter case, and nothing else', () => {
    for (const [name, kind] of NAMES) assert.equal(H.headerKind(name), kind, name);
  });
});
