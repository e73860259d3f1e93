// The duration in an access line, printed from integers: provably the same text as
// String(number), which is slow for a fractional double.

/** `.5`, `.25`, `.125`...: the decimals of a thousandth, as JavaScript prints them (none for 0). */
const THOUSANDTHS: readonly string[] = Array.from({ length: 1000 }, (_, f) =>
  f === 0 ? '' : `.${String(f).padStart(3, '0').replace(/0+$/, '')}`,
);

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
