// Test inputs derived from the controls table, so a new control or a changed bound is
// tested without editing the tests: values just outside each bound, in both forms.
import { boundMax, type ControlLimits, type ControlSpec } from '../src/controls/table.ts';

/**
 * Requests that break the control's bound, each as the values it carries (a count
 * bound repeats the example once more than allowed).
 */
export function outOfBound(spec: ControlSpec, limits: ControlLimits): string[][] {
  const { bound } = spec;
  const max = boundMax(bound, limits);
  switch (bound.kind) {
    case 'range':
      return [[String(bound.min - 1)], [String(max + 1)]];
    case 'one-of':
      return [['nonesuch']];
    case 'length':
      return [['k'.repeat(max + 1)]];
    case 'limit':
      if (bound.unit === 'duration') return [[`${max + 1}ms`]];
      if (bound.unit === 'size') return [[String(max + 1)]];
      return [Array<string>(max + 1).fill(spec.example)];
  }
}

/** `echo_x=a&echo_x=b`: the query form of one control. */
export function queryOf(spec: ControlSpec, values: readonly string[]): string {
  return values.map((v) => `${spec.query}=${encodeURIComponent(v)}`).join('&');
}

/** `X-Echo-X: a\r\nX-Echo-X: b\r\n`: the header form, one line per value (fetch would join them into one). */
export function headerLinesOf(spec: ControlSpec, values: readonly string[]): string {
  return values.map((v) => `${spec.header}: ${v}\r\n`).join('');
}
