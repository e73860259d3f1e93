import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { SETTINGS } from '../../src/config/settings.ts';
import { BLOCK_SIZE } from '../../src/http/generate.ts';
import { HTML_CSP } from '../../src/echo/render/html.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('README', () => {
  it('documents every setting with its environment twin and true default', () => {
    for (const s of SETTINGS) {
      const def = s.default === '' ? '(empty)' : `\`${s.default}\``;
      assert.ok(readme.includes(`| \`--${s.flag}\` | \`${s.env}\` | ${def} |`), `README row for --${s.flag}`);
    }
  });
  it('lists the CSP the HTML page is served with', () => {
    const documented = HTML_CSP.replace(/'sha256-[^']+'; style-src 'sha256-[^']+'/, "'sha256-<console.js>'; style-src 'sha256-<page.css>'");
    assert.notEqual(documented, HTML_CSP);
    assert.ok(readme.includes('\n' + documented + '\n'), documented);
  });
  it('states the real size of the generated-body block', () => {
    assert.ok(readme.includes(`streamed from one ${BLOCK_SIZE / 1024 ** 2} MiB random block`));
  });
  it('starts with the set-up and test commands', () => {
    assert.match(readme, /npm ci && npm start/);
    assert.match(readme, /^npm test /m);
  });
});
