import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkSet } from '../../src/util/addresses.ts';
import { EMPTY_BODY, buildEcho } from '../../src/echo/model.ts';
import { REPRESENTATIONS, negotiate, parseRepresentation } from '../../src/echo/render/negotiate.ts';
import { FORMATS, RENDERERS } from '../../src/echo/render/renderers.ts';

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
    ['text/event-stream', 'sse'],
    ['text/event-stream;q=0.5, application/json', 'json'],
  ];
  for (const [accept, want] of cases) {
    it(`${accept ?? '(none)'} -> ${want}`, () => {
      assert.equal(negotiate(accept), want);
      assert.equal(negotiate(accept), want, 'cached answer agrees');
    });
  }

  it('does not pick an event stream when streams are off, even from the cache', () => {
    assert.equal(negotiate('text/event-stream, application/json;q=0.5'), 'sse');
    assert.equal(negotiate('text/event-stream, application/json;q=0.5', false), 'json');
    assert.equal(negotiate('text/event-stream', false), 'text');
  });
});

describe('formats and representations', () => {
  const echo = buildEcho(
    {
      remoteAddress: '127.0.0.1',
      remotePort: 5000,
      method: 'GET',
      uri: '/x',
      proto: 'HTTP/1.1',
      rawHeaders: ['Host', 'h'],
      contentLength: 0,
      body: EMPTY_BODY,
      requestId: 'rid-1',
      tls: null,
      proxy: null,
      peerAddress: '127.0.0.1',
      peerPort: 5000,
    },
    {
      trustedProxies: new NetworkSet([]),
      clientIpHeader: 'x-forwarded-for',
      identity: { hostname: 'replica-1', addresses: [] },
      env: null,
    },
  );

  // A Format is a rendering: each one has a renderer, and nothing else is a Format.
  for (const format of FORMATS) {
    it(`${format} is rendered by its renderer`, () => {
      const renderer = RENDERERS[format];
      assert.ok(renderer !== undefined, `no renderer for ${format}`);
      assert.ok(renderer.render(echo).includes('rid-1'));
      assert.match(renderer.contentType, /^[a-z]+\/[a-z+-]+; charset=utf-8$/);
    });
  }
  it('has exactly the formats it has renderers for', () => {
    assert.deepEqual([...FORMATS].sort(), Object.keys(RENDERERS).sort());
  });

  it('negotiates the renderings and the event stream, which is no rendering', () => {
    assert.deepEqual(REPRESENTATIONS, [...FORMATS, 'sse']);
    assert.ok(!(FORMATS as readonly string[]).includes('sse'));
  });

  const explicit: [string, string | null][] = [
    ['text', 'text'],
    ['JSON', 'json'],
    [' html ', 'html'],
    ['sse', 'sse'],
    ['xml', null],
    ['', null],
    ['event-stream', null],
  ];
  for (const [value, want] of explicit) {
    it(`echo_format "${value}" -> ${want ?? 'nothing'}`, () => assert.equal(parseRepresentation(value), want));
  }
});
