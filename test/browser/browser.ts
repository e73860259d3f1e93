// Browser-test helpers: Debian's Chromium, driven headless by playwright-core, and a
// watch on every page for anything that must never happen (a CSP violation, a
// console error, an uncaught exception, a dialog, a call to the payloads' hook).
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * The system Chromium, or null when it is not installed: then the test is skipped
 * with a message, except in CI (CI=true), where a missing browser is a failure.
 * playwright-core gives every launch a fresh temporary profile (user data dir).
 */
export async function launchChromium(ctx: { skip(msg: string): void }, extraArgs: string[] = []): Promise<Browser | null> {
  if (!existsSync(CHROMIUM)) {
    if (process.env.CI === 'true') throw new Error(`${CHROMIUM} is not installed; .ci/run installs Debian's chromium`);
    ctx.skip(`SKIPPED: ${CHROMIUM} is not installed (apt-get install chromium); browser tests did not run`);
    console.warn(`browser tests skipped: ${CHROMIUM} is not installed`);
    return null;
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60_000,
    // Nothing may leave the machine: no QUIC, no component or sync traffic, no GPU probing.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', ...extraArgs],
  });
}

/** Everything a page did that a safe page never does. */
export interface PageWatch {
  cspViolations: string[];
  consoleErrors: string[];
  pageErrors: string[];
  dialogs: string[];
  /** Calls of window.__pwned(): the test payloads call it if they ever run. */
  pwned: string[];
  /** Empties every list: a step that expects a failure (an error response) clears it. */
  clear(): void;
  /** Everything that went wrong, for one assertion with a readable message. */
  problems(): string[];
}

/** A fresh context and page with the watch installed before any page script runs. */
export async function watchedPage(browser: Browser, options: BrowserContextOptions = {}): Promise<{ context: BrowserContext; page: Page; watch: PageWatch }> {
  const context = await browser.newContext(options);
  const watch: PageWatch = {
    cspViolations: [], consoleErrors: [], pageErrors: [], dialogs: [], pwned: [],
    clear() {
      for (const list of [this.cspViolations, this.consoleErrors, this.pageErrors, this.dialogs, this.pwned]) list.length = 0;
    },
    problems() {
      return [
        ...this.cspViolations.map((v) => `CSP violation: ${v}`), ...this.consoleErrors.map((m) => `console error: ${m}`),
        ...this.pageErrors.map((m) => `page error: ${m}`), ...this.dialogs.map((m) => `dialog: ${m}`), ...this.pwned.map((m) => `payload ran: ${m}`),
      ];
    },
  };
  await context.exposeFunction('__pwned', (what: unknown) => { watch.pwned.push(String(what)); });
  await context.exposeFunction('__cspViolation', (what: unknown) => { watch.cspViolations.push(String(what)); });
  // Runs before the page's own scripts, in every frame; a violation event fires for
  // blocked inline handlers, inline scripts, styles and connections alike.
  await context.addInitScript({
    content: "document.addEventListener('securitypolicyviolation', (e) => " +
      "window.__cspViolation(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' (' + e.sample + ')'));",
  });
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') watch.consoleErrors.push(m.text()); });
  page.on('pageerror', (err) => { watch.pageErrors.push(err.message); });
  page.on('dialog', (d) => {
    watch.dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss();
  });
  return { context, page, watch };
}
