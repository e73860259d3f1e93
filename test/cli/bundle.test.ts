import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { get } from 'node:https';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { CONSOLE_JS, PAGE_CSS } from '../../src/echo/render/assets.ts';
import { HTML_CSP } from '../../src/echo/render/html.ts';
import { waitFor } from '../helpers.ts';

const run = promisify(execFile);

describe('production bundle', () => {
  it('builds one self-contained file that serves and reports its build', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'echo-bundle-'));
    try {
      const outfile = join(dir, 'echo-server.cjs');
      await run(process.execPath, ['scripts/build.ts', '--outfile', outfile], {
        env: { ...process.env, COMMIT_HASH: 'abc123', CREATED_DATE: '2026-01-02T03:04:05Z' },
      });
      // docs/image.md's figure may not drift more than 15% from the real size (it had gone stale).
      // The image build's context has no docs; the repository's own run checks it.
      const pageUrl = new URL('../../docs/image.md', import.meta.url);
      if (existsSync(pageUrl)) {
        const page = await readFile(pageUrl, 'utf8');
        const documented = Number(/Only the bundle is added \((\d+) KiB/.exec(page)?.[1]);
        const kib = (await stat(outfile)).size / 1024;
        assert.ok(
          Math.abs(kib - documented) / documented < 0.15,
          `docs/image.md says ${documented} KiB, the bundle is ${Math.round(kib)} KiB`,
        );
      }
      // Run from an empty directory: nothing from node_modules can be reached.
      const child = spawn(
        process.execPath,
        [outfile, '--port', '0', '--host', '127.0.0.1', '--https', '--https-port', '0'],
        { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
      });
      try {
        await waitFor(() => out.includes('echo-server started'), 10_000);
        const url = (JSON.parse(out.split('\n')[0]!) as { listeners: string[] }).listeners[0]!;
        const version = (await (await fetch(`${url}/version`)).json()) as Record<string, unknown>;
        assert.equal(version.commit, 'abc123');
        assert.equal(version.created, '2026-01-02T03:04:05Z');
        assert.match(await (await fetch(url)).text(), /^Proto: HTTP\/1\.1$/m);
        // `call` runs from the bundle too: the image has no shell and no curl.
        const called = await run(process.execPath, [outfile, 'call', `${url}/`, '--count', '3'], { cwd: dir });
        assert.equal(
          called.stdout.split('\n').filter((l) => / 200 replica=\S+ protocol=HTTP\/1\.1 /.test(l)).length,
          3,
          called.stdout,
        );
        assert.match(called.stdout, /^summary: 3 calls, 3 ok, 0 failed/m);
        // The page's stylesheet and console script are inside the bundle, pinned by the CSP.
        const page = await fetch(url, { headers: { accept: 'text/html' } });
        const html = await page.text();
        assert.ok(html.includes(`<script>${CONSOLE_JS}</script>`) && html.includes(`<style>${PAGE_CSS}</style>`));
        assert.equal(page.headers.get('content-security-policy'), HTML_CSP);
        // HTTPS without certificate files loads the self-signed module from beside the bundle.
        const httpsUrl = (JSON.parse(out.split('\n')[0]!) as { listeners: string[] }).listeners[1]!;
        assert.match(httpsUrl, /^https:/);
        const text = await new Promise<string>((resolve, reject) => {
          get(`${httpsUrl}/bundled`, { rejectUnauthorized: false }, (res) => {
            let s = '';
            res.on('data', (c: Buffer) => {
              s += c.toString();
            });
            res.on('end', () => resolve(s));
          }).on('error', reject);
        });
        assert.match(text, /^TLS: \{"version":"TLSv1\.3"/m);
      } finally {
        child.kill('SIGTERM');
        assert.equal((await once(child, 'exit'))[0], 0);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
