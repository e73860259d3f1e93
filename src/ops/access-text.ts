// Pieces of the access-log line that are cheap to write on the hot path, each
// provably the same text as the slow, general way (JSON.stringify, String(number)).

/**
 * True when `s` is at most `max` characters of printable ASCII other than `"` and
 * `\`: then JSON.stringify(s) is `"` + s + `"`, and nothing in it is a control a
 * terminal would obey (the line is also pure ASCII, so it can be copied byte for byte).
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

/** `.5`, `.25`, `.125`...: the decimals of a thousandth, as JavaScript prints them (none for 0). */
const THOUSANDTHS: readonly string[] = Array.from({ length: 1000 }, (_, f) =>
  f === 0 ? '' : `.${String(f).padStart(3, '0').replace(/0+$/, '')}`);

/**
 * A duration in milliseconds rounded to the microsecond (Math.round(x * 1e3) / 1e3),
 * as String(ms) writes it. Printing a fractional double is slow (a few hundred
 * nanoseconds); an integer is fast, so the integer part and the thousandths are
 * looked up instead. Below 1e12 a number with at most three decimals prints as
 * exactly those decimals (two such numbers are further apart than a double's
 * precision there), so the result is identical; anything else takes String().
 */
export function durationText(ms: number): string {
  const k = Math.round(ms * 1000);
  if (k >= 0 && k < 1e15 && k / 1000 === ms) return `${Math.floor(k / 1000)}${THOUSANDTHS[k % 1000]!}`;
  return String(ms);
}
