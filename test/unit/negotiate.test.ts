import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { negotiate } from '../../src/echo/render/negotiate.ts';

describe('Accept negotiation', () => {
  const cases: [string | undefined, string][] = [
    [undefined, 'text'],
    ['*/*', 'text'],
    ['text/plain', 'text'],
    ['application/json', 'json'],
    ['application/json, */*', 'json'],
    ['text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8', 'html'],
    ['application/json;q=0.5, text/html;q=0.9', 'html'],
    ['text/html;q=0.2, application/json;q=0.2, text/plain;q=0.1', 'html'],
    ['text/*', 'text'],
    ['application/*', 'json'],
    ['image/png', 'text'],
    ['application/json;q=0', 'text'],
    ['text/html;q=abc, application/json', 'json'],
  ];
  for (const [accept, want] of cases) {
    it(`${accept ?? '(none)'} -> ${want}`, () => {
      assert.equal(negotiate(accept), want);
      assert.equal(negotiate(accept), want, 'cached answer agrees');
    });
  }
});
