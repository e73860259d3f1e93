// Every relative link in the README and the docs pages must lead to a file that exists and,
// when it names an anchor, to a heading of that file (GitHub's slugs), so moving text between
// pages cannot leave a dangling link behind.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

const root = resolve(import.meta.dirname, '../..');

function markdownFiles(): string[] {
  const files = ['README.md', 'CONTRIBUTING.md', 'CHANGELOG.md', 'SECURITY.md'].filter((f) =>
    existsSync(join(root, f)),
  );
  const walk = (dir: string): void => {
    for (const name of readdirSync(join(root, dir))) {
      const path = join(dir, name);
      if (statSync(join(root, path)).isDirectory()) walk(path);
      else if (name.endsWith('.md')) files.push(path);
    }
  };
  walk('docs');
  return files;
}

/** Markdown with fenced code blocks and inline code removed: links and headings there are not real. */
function prose(text: string): string[] {
  const lines: string[] = [];
  let fence = false;
  for (const line of text.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fence = !fence;
    else if (!fence) lines.push(line.replace(/`[^`]*`/g, ''));
  }
  return lines;
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
export function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fence = false;
  for (const line of text.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) fence = !fence;
    const m = fence ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = (m[1] ?? '')
      .replace(/<[^>]*>/g, '')
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of text.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) out.add(m[1] ?? '');
  return out;
}

export function brokenLinks(file: string, text: string, read: (path: string) => string | null): string[] {
  const broken: string[] = [];
  for (const line of prose(text)) {
    // Markdown links and images, and the HTML <img>/<a> some pages use to size a picture.
    const targets = [
      ...line.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g),
      ...line.matchAll(/<(?:img|a)\s[^>]*?(?:src|href)="([^"]+)"/g),
    ];
    for (const m of targets) {
      const target = m[1] ?? '';
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: ...
      const [path = '', anchor] = target.split('#', 2);
      const dest = path === '' ? file : join(dirname(file), decodeURIComponent(path));
      const body = read(dest);
      if (body === null) broken.push(`${file}: ${target} (no such file)`);
      else if (anchor !== undefined && dest.endsWith('.md') && !anchors(body).has(anchor.toLowerCase()))
        broken.push(`${file}: ${target} (no such heading)`);
    }
  }
  return broken;
}

function readRepo(path: string): string | null {
  const full = join(root, path);
  if (relative(root, full).startsWith('..') || !existsSync(full)) return null;
  return statSync(full).isDirectory() ? '' : readFileSync(full, 'utf8');
}

test('every relative link and anchor in the README and docs resolves', () => {
  const broken = markdownFiles().flatMap((file) => brokenLinks(file, readFileSync(join(root, file), 'utf8'), readRepo));
  assert.deepEqual(broken, []);
});

test('the link check finds a missing file and a missing heading', () => {
  const pages: Record<string, string> = { 'docs/a.md': '# Title\n\n## Some `code`, here!\n' };
  const read = (path: string): string | null => pages[path] ?? null;
  assert.deepEqual(brokenLinks('README.md', '[ok](docs/a.md#some-code-here) [x](docs/b.md)', read), [
    'README.md: docs/b.md (no such file)',
  ]);
  assert.deepEqual(brokenLinks('README.md', '[y](docs/a.md#nope) `[z](docs/c.md)`', read), [
    'README.md: docs/a.md#nope (no such heading)',
  ]);
});
