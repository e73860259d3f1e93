// Bounded parsers for every number a user or operator can hand us.
// Each returns a value or throws ParseError with a message that names nothing but
// the problem; the caller adds the name of the setting or control.

export class ParseError extends Error {}

const INTEGER = /^[0-9]+$/;

/** A decimal integer in [min, max]. No signs, no exponents, no hex. */
export function parseInteger(text: string, min: number, max: number): number {
  const s = text.trim();
  if (!INTEGER.test(s) || s.length > 16) throw new ParseError(`"${clip(text)}" is not a whole number`);
  const n = Number(s);
  if (n < min || n > max) throw new ParseError(`${n} is out of range ${min}..${max}`);
  return n;
}

const DURATION = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)?$/;
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A duration such as `250ms`, `1.5s`, `2m`; a bare number means milliseconds. Result in ms. */
export function parseDuration(text: string, maxMs: number, minMs = 0): number {
  const m = DURATION.exec(text.trim());
  if (!m) throw new ParseError(`"${clip(text)}" is not a duration (examples: 250ms, 2s, 1m)`);
  const ms = Math.round(Number(m[1]) * (DURATION_UNITS[m[2] ?? 'ms'] ?? 1));
  if (!Number.isFinite(ms) || ms > maxMs)
    throw new ParseError(`${clip(text)} exceeds the maximum of ${formatDuration(maxMs)}`);
  if (ms < minMs) throw new ParseError(`${clip(text)} is below the minimum of ${formatDuration(minMs)}`);
  return ms;
}

const SIZE = /^([0-9]+(?:\.[0-9]+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i;
const SIZE_UNITS: Record<string, number> = {
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

/** A byte size such as `512`, `64KiB`, `10MB`, `1g`. Result in bytes. */
export function parseSize(text: string, maxBytes: number, minBytes = 0): number {
  const m = SIZE.exec(text.trim());
  if (!m) throw new ParseError(`"${clip(text)}" is not a size (examples: 1024, 64KiB, 10MB)`);
  const bytes = Math.floor(Number(m[1]) * (SIZE_UNITS[(m[2] ?? 'b').toLowerCase()] ?? 1));
  if (!Number.isFinite(bytes) || bytes > maxBytes)
    throw new ParseError(`${clip(text)} exceeds the maximum of ${formatSize(maxBytes)}`);
  if (bytes < minBytes) throw new ParseError(`${clip(text)} is below the minimum of ${formatSize(minBytes)}`);
  return bytes;
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);

export function parseBoolean(text: string): boolean {
  const s = text.trim().toLowerCase();
  if (TRUE.has(s)) return true;
  if (FALSE.has(s)) return false;
  throw new ParseError(`"${clip(text)}" is not a boolean (use true or false)`);
}

/** A comma-separated list; empty items are dropped. */
export function parseList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms > 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

export function formatSize(bytes: number): string {
  if (bytes % 1024 ** 3 === 0 && bytes > 0) return `${bytes / 1024 ** 3}GiB`;
  if (bytes % 1024 ** 2 === 0 && bytes > 0) return `${bytes / 1024 ** 2}MiB`;
  if (bytes % 1024 === 0 && bytes > 0) return `${bytes / 1024}KiB`;
  return `${bytes}`;
}

/** Keep user text short inside error messages. */
export function clip(text: string, max = 64): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
