// Docs tables that mirror a table in the code (settings, controls): found by their
// header row, compared row by row in both directions, so a declared row missing
// from the page and a row on the page nobody declares both fail, each by name.
import assert from 'node:assert/strict';

/** A table row's cells, trimmed; a `\|` inside a cell is not a separator. */
function cells(line: string): string[] {
  return line
    .trim()
    .replace(/^\||\|$/g, '')
    .split(/(?<!\\)\|/)
    .map((c) => c.trim());
}

/** The body rows of the Markdown table whose header row has exactly these cells, keyed by their first cell. */
export function markdownTable(markdown: string, header: readonly string[], page: string): Map<string, string[]> {
  const lines = markdown.split('\n');
  const at = lines.findIndex((l) => l.startsWith('|') && cells(l).join('\u0000') === header.join('\u0000'));
  assert.ok(at >= 0, `${page} has a table with the header | ${header.join(' | ')} |`);
  const rows = new Map<string, string[]>();
  for (const line of lines.slice(at + 2)) {
    if (!line.startsWith('|')) break;
    const row = cells(line);
    assert.ok(!rows.has(row[0]!), `${page}: table row ${row[0]} appears once`);
    rows.set(row[0]!, row);
  }
  return rows;
}

/**
 * Every declared row is on the page with the same first `columns` cells, and every
 * row on the page is declared. `page` names the page in messages; a failure shows the
 * row as it should read.
 */
export function assertSameRows(
  onPage: Map<string, string[]>,
  declared: readonly string[][],
  page: string,
  columns = Infinity,
): void {
  const keys = new Set<string>();
  for (const row of declared) {
    const key = row[0]!;
    keys.add(key);
    const found = onPage.get(key);
    assert.ok(found !== undefined, `${page} has no row for ${key}; add:\n| ${row.join(' | ')} |`);
    assert.deepEqual(
      found.slice(0, columns),
      row.slice(0, columns),
      `${page}: row ${key} should read:\n| ${row.join(' | ')} |`,
    );
  }
  for (const key of onPage.keys())
    assert.ok(keys.has(key), `${page} has a row for ${key}, which the code does not declare`);
}
