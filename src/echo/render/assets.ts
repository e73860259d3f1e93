// The page's stylesheet and console script: real files beside this module, read
// once at start-up. The production bundle has no files beside it, so the build
// (scripts/build.ts) replaces this module with one holding the same text.
import { readFileSync } from 'node:fs';

const read = (name: string) => readFileSync(new URL(`./assets/${name}`, import.meta.url), 'utf8');

export const PAGE_CSS: string = read('page.css');
export const CONSOLE_JS: string = read('console.js');
