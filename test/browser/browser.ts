// Browser-test helpers: Debian's Chromium, driven headless by playwright-core, and a
// watch on every page for anything that must never happen (a CSP violation, a
// console error, an uncaught exception, a dialog, a call to the payloads' hook).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const WRAPPER = new URL('./netns-chromium.sh', import.meta.url).pathname;
const RELAY = new URL('./netns-relay.ts', import.meta.url).pathname;

function missing(ctx: { skip(msg: string): void }, what: string, install: string): null {
  if (process.env.CI === 'true') throw new Error(`${what} is not available; .ci/run installs ${install}`);
  ctx.skip(`SKIPPED: ${what} is not available (apt-get install ${install}); browser tests did not run`);
  console.warn(`browser tests skipped: ${what} is not available`);
  return null;
}

/** Passes connections from the browser's namespace (Unix sockets in `dir`) to the servers on loopback. */
async function hostRelays(dir: string, ports: number[]): Promise<Server[]> {
  return Promise.all(
    ports.map(
      (port) =>
        new Promise<Server>((resolve, reject) => {
          const server = createServer((inbound) => {
            const outbound = connect({ port, host: '127.0.0.1' });
            inbound.pipe(outbound).pipe(inbound);
            for (const [a, b] of [
              [inbound, outbound],
              [outbound, inbound],
            ] as const) {
              a.on('error', () => b.destroy());
              a.on('close', () => b.destroy());
            }
          });
          server.once('error', reject);
          server.listen(join(dir, `${port}.sock`), () => resolve(server));
        }),
    ),
  );
}

/**
 * The system Chromium in a network namespace of its own (netns-chromium.sh), able to
 * reach only the test servers on `ports` (as localhost or 127.0.0.1, on the same port
 * numbers). Null when Chromium or the namespace tools are missing: the test is then
 * skipped with a message, except in CI (CI=true), where that is a failure.
 * playwright-core gives every launch a fresh temporary profile (user data dir).
 */
export async function launchChromium(
  ctx: { skip(msg: string): void },
  ports: number[],
  extraArgs: string[] = [],
): Promise<Browser | null> {
  if (!existsSync(CHROMIUM)) return missing(ctx, CHROMIUM, 'chromium');
  for (const tool of ['unshare', 'ip']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0)
      return missing(ctx, tool, tool === 'ip' ? 'iproute2' : 'util-linux');
  }
  const dir = await mkdtemp(join(tmpdir(), 'echo-browser-'));
  const relays = await hostRelays(dir, ports);
  const cleanup = async () => {
    for (const r of relays) r.close();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const browser = await chromium.launch({
      executablePath: WRAPPER,
      env: {
        ...process.env,
        ECHO_CHROMIUM: CHROMIUM,
        ECHO_NODE: process.execPath,
        ECHO_RELAY: RELAY,
        ECHO_RELAY_DIR: dir,
        ECHO_RELAY_PORTS: ports.join(','),
        // Root makes the namespace directly; anyone else through a user namespace.
        ECHO_UNSHARE_FLAGS: process.getuid?.() === 0 ? '--net' : '--map-root-user --net',
      },
      headless: true,
      timeout: 60_000,
      // No QUIC, no component or sync traffic, no GPU probing (there is no network anyway).
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-dev-shm-usage',
        ...extraArgs,
      ],
    });
    browser.once('disconnected', () => {
      void cleanup();
    });
    return browser;
  } catch (err) {
    await cleanup();
    throw err;
  }
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
export async function watchedPage(
  browser: Browser,
  options: BrowserContextOptions = {},
): Promise<{ context: BrowserContext; page: Page; watch: PageWatch }> {
  const context = await browser.newContext(options);
  const watch: PageWatch = {
    cspViolations: [],
    consoleErrors: [],
    pageErrors: [],
    dialogs: [],
    pwned: [],
    clear() {
      for (const list of [this.cspViolations, this.consoleErrors, this.pageErrors, this.dialogs, this.pwned])
        list.length = 0;
    },
    problems() {
      return [
        ...this.cspViolations.map((v) => `CSP violation: ${v}`),
        ...this.consoleErrors.map((m) => `console error: ${m}`),
        ...this.pageErrors.map((m) => `page error: ${m}`),
        ...this.dialogs.map((m) => `dialog: ${m}`),
        ...this.pwned.map((m) => `payload ran: ${m}`),
      ];
    },
  };
  await context.exposeFunction('__pwned', (what: unknown) => {
    watch.pwned.push(String(what));
  });
  await context.exposeFunction('__cspViolation', (what: unknown) => {
    watch.cspViolations.push(String(what));
  });
  // Runs before the page's own scripts, in every frame; a violation event fires for
  // blocked inline handlers, inline scripts, styles and connections alike.
  await context.addInitScript({
    content:
      "document.addEventListener('securitypolicyviolation', (e) => " +
      "window.__cspViolation(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' (' + e.sample + ')'));",
  });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') watch.consoleErrors.push(m.text());
  });
  page.on('pageerror', (err) => {
    watch.pageErrors.push(err.message);
  });
  page.on('dialog', (d) => {
    watch.dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss();
  });
  return { context, page, watch };
}
