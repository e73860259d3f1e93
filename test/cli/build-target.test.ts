// The bundle's esbuild target is derived from package.json's engines.node, so the two
// cannot drift: the derivation, and that esbuild takes what package.json gives.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { transform } from 'esbuild';
import { esbuildTarget } from '../../scripts/lib/node-target.ts';

describe('esbuild target from engines.node', () => {
  const derived: [range: string, target: string][] = [
    ['>=24.9', 'node24.9'],
    ['>=24', 'node24'],
    ['>=24.9.1', 'node24.9.1'],
    ['>= 24.9', 'node24.9'],
    ['^24.9.0', 'node24.9.0'],
    ['~24.9', 'node24.9'],
    ['24.9.0', 'node24.9.0'],
    ['v24.9', 'node24.9'],
  ];
  for (const [range, target] of derived) {
    it(`"${range}" -> ${target}`, () => assert.equal(esbuildTarget(range), target));
  }

  // Ranges without one lowest version are refused, not guessed from.
  for (const range of ['', '*', '24.x', '<26', '>=24.9 <27', '>=24 || >=26', '>24.9', 'latest', '>=24.9.0-rc.1']) {
    it(`refuses "${range}"`, () => assert.throws(() => esbuildTarget(range), /is not a single lowest version/));
  }

  it('package.json gives a target esbuild accepts, and esbuild checks it', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      engines: { node: string };
    };
    const target = esbuildTarget(pkg.engines.node);
    assert.match(target, /^node\d+(\.\d+){0,2}$/);
    await transform('export const x = 1n ** 2n;', { target, format: 'esm' });
    await assert.rejects(
      transform('', { target: 'node24.x' }),
      /Invalid version/,
      'esbuild does check the version it is given',
    );
  });
});
