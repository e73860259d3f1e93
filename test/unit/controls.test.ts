import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ANSWERS,
  CONTROLS,
  HEADER_PREFIX,
  QUERY_PREFIX,
  parseHeader,
  parseStatus,
  pickStatus,
  type ControlGate,
  type ControlGates,
  type ControlSettings,
  type ControlSpec,
} from '../../src/controls/table.ts';
import {
  ControlError,
  addControlInput,
  controlInput,
  gateRefusal,
  parseControls,
  pickRepresentation,
  type ControlInput,
} from '../../src/controls/read.ts';
import { healthControlAnswer } from '../../src/controls/health.ts';
import { SETTINGS, defaultConfig } from '../../src/config/settings.ts';
import { scanHeaders } from '../../src/core/request-head.ts';
import { outOfBound, queryOf } from '../control-cases.ts';

const limits = { maxDelayMs: 1000, maxGeneratedSize: 1024, maxResponseHeaders: 2 };
/** Every gate a control of the table names. */
const GATES = [...new Set(CONTROLS.flatMap((c) => (c.gate === null ? [] : [c.gate])))];
const gatesAll = (on: boolean): ControlGates => Object.fromEntries(GATES.map((g) => [g, on])) as ControlGates;
const settings: ControlSettings = { ...limits, ...gatesAll(true) };
const flagOf = (gate: ControlGate) => `--${SETTINGS.find((s) => s.key === gate)!.flag}`;

function input(pairs: [string, string][]): ControlInput {
  const m: ControlInput = new Map();
  for (const [k, v] of pairs) addControlInput(m, k, `echo_${k}`, v);
  return m;
}

describe('controls', () => {
  it('parses every control', () => {
    const c = parseControls(
      input([
        ['status', '418'],
        ['delay', '20ms'],
        ['header', 'X-A: 1'],
        ['size', '1KiB'],
        ['health', 'fail-once'],
      ]),
      settings,
    );
    assert.deepEqual(c.status, [{ code: 418, weight: 1 }]);
    assert.equal(c.delayMs, 20);
    assert.deepEqual(c.headers, [['X-A', '1']]);
    assert.equal(c.size, 1024);
    assert.equal(c.health, 'fail-once');
  });

  const bad: [string, [string, string][], RegExp][] = [
    ['status below range', [['status', '99']], /echo_status: 99 is out of range 100\.\.599/],
    ['status above range', [['status', '600']], /out of range/],
    ['status not a number', [['status', 'abc']], /not a whole number/],
    ['101 cannot be final', [['status', '101']], /only 100, 102 and 103/],
    ['weight zero', [['status', '200:0']], /out of range 1\.\.1000/],
    ['delay above max', [['delay', '2s']], /echo_delay: 2s exceeds the maximum of 1s/],
    ['size above max', [['size', '2KiB']], /echo_size: 2KiB exceeds/],
    [
      'too many headers',
      [
        ['header', 'A: 1'],
        ['header', 'B: 2'],
        ['header', 'C: 3'],
      ],
      /at most 2 headers/,
    ],
    ['health word', [['health', 'explode']], /not one of fail, fail-once, ok/],
    ['unknown control', [['colour', 'red']], /unknown control echo_colour/],
  ];
  for (const [name, pairs, message] of bad) {
    it(`rejects ${name}`, () =>
      assert.throws(
        () => parseControls(input(pairs), settings),
        (e: Error) => e instanceof ControlError && message.test(e.message),
      ));
  }

  it('parses weighted status choices', () => {
    assert.deepEqual(parseStatus('200:3,503:1'), [
      { code: 200, weight: 3 },
      { code: 503, weight: 1 },
    ]);
  });

  it('picks by weight', () => {
    const choices = parseStatus('200:3,503:1');
    assert.equal(
      pickStatus(choices, () => 0),
      200,
    );
    assert.equal(
      pickStatus(choices, () => 0.74),
      200,
    );
    assert.equal(
      pickStatus(choices, () => 0.75),
      503,
    );
    assert.equal(
      pickStatus(choices, () => 0.9999),
      503,
    );
  });

  const forbidden = [
    'Content-Type: text/html',
    'content-length: 5',
    'Proxy-Connection: keep-alive',
    'Set-Cookie: a=b',
    'Transfer-Encoding: chunked',
    'Content-Security-Policy: none',
    'X-Content-Type-Options: sniff',
    'Refresh: 0;url=https://evil.example',
  ];
  for (const h of forbidden) {
    it(`refuses to set ${h.split(':')[0]}`, () => assert.throws(() => parseHeader(h), /cannot be set by a client/));
  }
  it('allows only same-origin Location', () => {
    assert.deepEqual(parseHeader('Location: /next'), ['Location', '/next']);
    assert.throws(() => parseHeader('Location: https://evil.example/'), /path on this server/);
    assert.throws(() => parseHeader('Location: //evil.example/'), /path on this server/);
  });
  it('refuses malformed headers', () => {
    assert.throws(() => parseHeader('no colon'), /Name: value/);
    assert.throws(() => parseHeader('Bad Name: x'), /not a valid header name/);
    assert.throws(() => parseHeader('X-A: a\u0000b'), /control characters/);
  });
});

describe('the controls table', () => {
  /** Reads one control's values as the echo handler does: the representation, then the rest. */
  function read(
    spec: ControlSpec,
    values: readonly string[],
    source: string,
    within: ControlSettings = settings,
  ): void {
    const m: ControlInput = new Map();
    for (const v of values) addControlInput(m, spec.name, source, v);
    pickRepresentation(m, undefined, true);
    parseControls(m, within);
  }
  const defaults = { ...defaultConfig(), ...gatesAll(true) };

  for (const spec of CONTROLS) {
    it(`${spec.query}: the example is within the default bound, and every listed word is taken`, () => {
      read(spec, [spec.example], spec.query, defaults);
      if (spec.bound.kind === 'one-of') for (const word of spec.bound.words) read(spec, [word], spec.query);
    });
    for (const values of outOfBound(spec, limits)) {
      for (const source of [spec.query, spec.header]) {
        it(`${source}: refuses ${values.length > 1 ? `${values.length} values` : `"${values[0]}"`} with 400 naming the control`, () => {
          assert.throws(
            () => read(spec, values, source),
            (e: Error) => e instanceof ControlError && e.status === 400 && e.message.startsWith(`invalid ${source}: `),
          );
        });
      }
    }
    it(`${spec.query}: the query and header names follow the one scheme`, () => {
      assert.equal(spec.query, QUERY_PREFIX + spec.name);
      // Dashes in the header where the query has underscores (fronts drop headers with underscores).
      assert.equal(spec.header.toLowerCase(), HEADER_PREFIX + spec.name.replaceAll('_', '-'));
    });
  }

  it('names every declared control, and only those, when one is unknown', () => {
    assert.throws(
      () => parseControls(input([['colour', 'red']]), settings),
      (e: Error) => e.message.endsWith(`known: ${CONTROLS.map((c) => c.query).join(', ')}`),
    );
  });

  it('lists every place a control may apply from one vocabulary', () => {
    for (const spec of CONTROLS) for (const a of spec.appliesTo) assert.ok(ANSWERS.includes(a), `${spec.query}: ${a}`);
  });

  it('returns no input (null) for a request without controls', () => {
    assert.equal(controlInput('/a?b=1&c=echo', 2, null, true), null);
    assert.equal(controlInput('/a', -1, null, true), null);
    assert.equal(scanHeaders(['Host', 'h', 'X-Other', '1', 'X-Echoes', '2']).controls, null);
  });

  it('with controls off, takes only the controls declared for it, from the query and the headers', () => {
    const off = CONTROLS.filter((c) => c.withControlsOff);
    assert.deepEqual(
      off.map((c) => c.name),
      ['format'],
    );
    const raw: string[] = [];
    for (const c of CONTROLS) raw.push(c.header, c.example);
    const query = '/?' + CONTROLS.map((c) => queryOf(c, [c.example])).join('&') + '&echo_nope=1';
    // The scan collects every X-Echo-* header (the probe paths read health from it); controlInput applies the rule.
    const scanned = scanHeaders(raw).controls;
    assert.deepEqual(
      scanned,
      CONTROLS.map((c) => [c.name.replaceAll('_', '-'), c.example]),
    );
    assert.deepEqual(
      [...controlInput(query, 1, scanned, false)!.keys()],
      off.map((c) => c.name),
    );
    assert.deepEqual(
      [...controlInput('/', -1, scanned, false)!.values()].map((e) => e.source),
      off.map((c) => c.header),
    );
    // Controls on: all of them, and the unknown one, which parseControls refuses.
    assert.deepEqual([...controlInput(query, 1, scanned, true)!.keys()], [...CONTROLS.map((c) => c.name), 'nope']);
  });
});

describe('the gate of each control, off and on', () => {
  /** The examples are within the default bounds. */
  const { maxDelayMs, maxGeneratedSize, maxResponseHeaders } = defaultConfig();
  const exampleLimits = { maxDelayMs, maxGeneratedSize, maxResponseHeaders };
  /** The example of one control, as parseControls reads it, under these gates. */
  const parseExample = (spec: ControlSpec, gates: ControlGates) =>
    parseControls(input([[spec.name, spec.example]]), { ...exampleLimits, ...gates });

  it('names only settings that exist and are on or off', () => {
    for (const gate of GATES) {
      const setting = SETTINGS.find((s) => s.key === gate);
      assert.ok(setting !== undefined, gate);
      assert.equal(typeof defaultConfig()[gate], 'boolean', gate);
      assert.equal(defaultConfig()[gate], false, `${gate} is off by default`);
    }
  });

  for (const spec of CONTROLS) {
    if (spec.gate === null) {
      it(`${spec.query} has no gate: taken whatever the gate settings`, () => {
        assert.equal(gateRefusal(spec, gatesAll(false)), null);
        parseExample(spec, gatesAll(false));
        parseExample(spec, gatesAll(true));
      });
      continue;
    }
    const flag = flagOf(spec.gate);
    it(`${spec.query} with ${flag} off: 403 naming ${flag}, and nothing asked`, () => {
      const refusal = gateRefusal(spec, { ...gatesAll(true), [spec.gate!]: false });
      assert.ok(refusal instanceof ControlError);
      assert.equal(refusal.status, 403);
      assert.equal(refusal.message, `the ${spec.name} control is disabled on this server (${flag})`);
      assert.throws(
        () => parseExample(spec, { ...gatesAll(true), [spec.gate!]: false }),
        (e: Error) => e instanceof ControlError && e.status === 403 && e.message === refusal.message,
      );
    });
    it(`${spec.query} with ${flag} off: a bad value is still a 400, checked before the gate`, () => {
      for (const values of outOfBound(spec, limits)) {
        const m: ControlInput = new Map();
        for (const v of values) addControlInput(m, spec.name, spec.query, v);
        assert.throws(
          () => parseControls(m, { ...limits, ...gatesAll(false) }),
          (e: Error) => e instanceof ControlError && e.status === 400,
        );
      }
    });
    it(`${spec.query} with ${flag} off: refused even beside ungated controls, in any order`, () => {
      const others = CONTROLS.filter((c) => c.gate === null && c.read !== null).map((c): [string, string] => [
        c.name,
        c.example,
      ]);
      for (const pairs of [
        [...others, [spec.name, spec.example]],
        [[spec.name, spec.example], ...others],
      ] as [string, string][][]) {
        assert.throws(
          () => parseControls(input(pairs), { ...exampleLimits, ...gatesAll(false) }),
          (e: Error) => e instanceof ControlError && e.status === 403,
        );
      }
    });
    it(`${spec.query} with ${flag} on: taken`, () => {
      assert.equal(gateRefusal(spec, gatesAll(true)), null);
      parseExample(spec, gatesAll(true));
    });
  }

  it('returns the health state asked for, for the handler to set', () => {
    for (const word of ['unready', 'fail', 'fail-once', 'sick', 'ok'] as const) {
      assert.equal(parseControls(input([['health', word]]), settings).health, word);
    }
    assert.equal(parseControls(input([['status', '200']]), settings).health, null);
  });
});

describe('the health control on the probe paths', () => {
  const on = gatesAll(true);
  const off = gatesAll(false);
  const cases: [string, string, [string, string][] | null, ControlGates, ReturnType<typeof healthControlAnswer>][] = [
    ['no control', '/livez', null, on, null],
    ['another control', '/livez?echo_status=503', null, on, null],
    [
      'a valid state',
      '/readyz?echo_health=unready',
      null,
      on,
      { status: 200, body: 'health: unready\n', set: 'unready' },
    ],
    ['a state by header', '/livez', [['health', 'fail']], on, { status: 200, body: 'health: fail\n', set: 'fail' }],
    [
      'the query over the header',
      '/livez?echo_health=ok',
      [['health', 'fail']],
      on,
      { status: 200, body: 'health: ok\n', set: 'ok' },
    ],
    [
      'a bad state',
      '/livez?echo_health=sideways',
      null,
      on,
      {
        status: 400,
        body: 'invalid echo_health: "sideways" is not one of fail, fail-once, ok, sick, unready\n',
        set: null,
      },
    ],
    [
      'a valid state, gate off',
      '/readyz?echo_health=unready',
      null,
      off,
      { status: 403, body: 'the health control is disabled on this server (--health-control)\n', set: null },
    ],
    [
      'a bad state, gate off: the gate first',
      '/readyz?echo_health=sideways',
      null,
      off,
      { status: 403, body: 'the health control is disabled on this server (--health-control)\n', set: null },
    ],
  ];
  for (const [name, uri, headers, gates, want] of cases) {
    it(`${name}: ${want === null ? 'the check as usual' : `${want.status}, sets ${want.set ?? 'nothing'}`}`, () => {
      assert.deepEqual(healthControlAnswer(uri, headers, gates), want);
    });
  }
});

describe('the representation a request asks for', () => {
  const cases: [string | null, string | undefined, boolean, string][] = [
    [null, undefined, true, 'text'],
    [null, 'application/json', true, 'json'],
    [null, 'text/event-stream', true, 'sse'],
    [null, 'text/event-stream', false, 'text'],
    ['html', 'application/json', true, 'html'],
    ['sse', undefined, true, 'sse'],
    ['sse', undefined, false, 'invalid echo_format: use text, json, html'],
    ['xml', undefined, true, 'invalid echo_format: use text, json, html or sse'],
  ];
  for (const [format, accept, sse, want] of cases) {
    it(`echo_format ${format ?? '(none)'}, Accept ${accept ?? '(none)'}, streams ${sse ? 'on' : 'off'}: ${want}`, () => {
      const m = format === null ? null : input([['format', format]]);
      if (!want.startsWith('invalid')) assert.equal(pickRepresentation(m, accept, sse), want);
      else
        assert.throws(
          () => pickRepresentation(m, accept, sse),
          (e: Error) => e instanceof ControlError && e.status === 400 && e.message === want,
        );
    });
  }
});
