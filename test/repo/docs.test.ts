import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { SETTINGS, type Config } from '../../src/config/settings.ts';
import { CONTROLS, type Bound, type ControlSpec } from '../../src/controls/table.ts';
import { BLOCK_SIZE } from '../../src/handlers/generated-body.ts';
import { HTML_CSP } from '../../src/echo/render/html.ts';
import { assertSameRows, markdownTable } from './docs-tables.ts';

const doc = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const readme = doc('README.md');
const settingsPage = doc('docs/settings.md');
const controlsPage = doc('docs/controls.md');
const echoPage = doc('docs/echo.md');

const code = (text: string) => `\`${text}\``;

function setting(key: keyof Config) {
  const s = SETTINGS.find((x) => x.key === key);
  assert.ok(s !== undefined, `a setting for ${key}`);
  return s;
}

/** A setting as the README names it with its default: `--max-delay` (`30s`). */
function flagWithDefault(key: keyof Config): string {
  const s = setting(key);
  return `${code(`--${s.flag}`)} (${code(s.default)})`;
}

function boundText(bound: Bound): string {
  switch (bound.kind) {
    case 'range':
      return `${bound.min}–${bound.max}`;
    case 'one-of':
      return bound.words.map(code).join(', ');
    case 'length':
      return `at most ${bound.max} characters`;
    case 'limit':
      return `at most ${flagWithDefault(bound.limit)}${bound.unit === 'count' ? ' of them' : ''}`;
  }
}

/** The README row of a control, generated from its declaration. */
function controlRow(c: ControlSpec): string[] {
  const query = `${c.query}=${encodeURIComponent(c.example).replace(/%3A/g, ':')}`;
  const gate = c.gate === null ? '' : `; only with ${code(`--${setting(c.gate).flag}`)}, else 403`;
  return [
    code(query),
    code(`${c.header}: ${c.example}`),
    c.values,
    boundText(c.bound) + gate,
    c.withControlsOff ? 'yes' : 'no',
    c.appliesTo.join(', '),
    c.description,
  ];
}

describe('README', () => {
  it('documents every setting with its environment twin and true default, and no other', () => {
    const rows = SETTINGS.map((s) => [
      code(`--${s.flag}`),
      code(s.env),
      s.default === '' ? '(empty)' : code(s.default),
    ]);
    assertSameRows(
      markdownTable(settingsPage, ['flag', 'environment', 'default', 'meaning'], 'docs/settings.md'),
      rows,
      'docs/settings.md',
      3,
    );
  });
  it('documents every response control as declared, and no other', () => {
    const header = ['query', 'header', 'values', 'bound', `with ${code('--no-controls')}`, 'applies to', 'effect'];
    assertSameRows(
      markdownTable(controlsPage, header, 'docs/controls.md'),
      CONTROLS.map(controlRow),
      'docs/controls.md',
    );
  });
  it('lists the CSP the HTML page is served with', () => {
    const documented = HTML_CSP.replace(
      /'sha256-[^']+'; style-src 'sha256-[^']+'/,
      "'sha256-<console.js>'; style-src 'sha256-<page.css>'",
    );
    assert.notEqual(documented, HTML_CSP);
    assert.ok(echoPage.includes('\n' + documented + '\n'), documented);
  });
  it('states the real size of the generated-body block', () => {
    assert.ok(controlsPage.includes(`streamed from one ${BLOCK_SIZE / 1024 ** 2} MiB random block`));
  });
  it('starts with the set-up and test commands', () => {
    assert.match(readme, /npm ci && npm start/);
    assert.match(readme, /^npm test /m);
  });
});
