// The characters JSON.stringify leaves raw but a terminal (or a log viewer) obeys:
// DEL, the C1 controls (0x80-0x9f, among them NEL and CSI) and the Unicode line and
// paragraph separators. The text echo and the log both spell them out as \uXXXX.
const RAW_AFTER_JSON = /[\x7f-\x9f\u2028\u2029]/;
const RAW_AFTER_JSON_ALL = /[\x7f-\x9f\u2028\u2029]/g;

const spell = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** `s` with those characters written as `\uXXXX` (unchanged, and not copied, when it has none). */
export function escapeRawControls(s: string): string {
  return RAW_AFTER_JSON.test(s) ? s.replace(RAW_AFTER_JSON_ALL, spell) : s;
}

/** JSON in which no character a terminal would obey stays raw. */
export function safeJson(v: unknown): string {
  return escapeRawControls(JSON.stringify(v));
}

/**
 * True when `s` is at most `max` characters of printable ASCII other than `"` and
 * `\`: then JSON.stringify(s) is `"` + s + `"` and safeJson leaves it so. A scan is
 * cheaper than JSON.stringify and a regular expression for the short text of a
 * typical request; anything else takes the general way.
 */
export function plainJson(s: string, max: number): boolean {
  const n = s.length;
  if (n > max) return false;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

/** safeJson of a string, with the scan first. */
export function safeJsonString(s: string): string {
  return plainJson(s, Infinity) ? `"${s}"` : safeJson(s);
}
