// The architecture as docs/architecture.md draws it: the lint rule refuses every import that
// runs the wrong way between the stage folders of src/ (checked with the project's
// own ESLint configuration, on real files' paths), and docs/architecture.md lists every file.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** [file the import is written in, the import line, whether the rule must refuse it]. */
const IMPORTS: [string, string, boolean][] = [
  ['src/echo/model.ts', "import { listen } from '../transport/listener.ts';", true],
  ['src/echo/render/text.ts', "import { createServer } from 'node:http';", true],
  ['src/echo/render/json.ts', "import { connect } from 'node:tls';", true],
  ['src/echo/client-ip.ts', "import { Socket } from 'node:net';", true],
  ['src/echo/model.ts', "import { createApp } from '../adapters/http1/app.ts';", true],
  ['src/echo/model.ts', "import { Health } from '../ops/health.ts';", true],
  ['src/ops/metrics.ts', "import { createApp } from '../adapters/http1/app.ts';", true],
  ['src/ops/logger.ts', "import { listen } from '../transport/listener.ts';", true],
  ['src/ops/health.ts', "import { buildEcho } from '../echo/model.ts';", true],
  ['src/transport/front.ts', "import { createApp } from '../adapters/http1/app.ts';", true],
  ['src/adapters/http1/app.ts', "import { factsOf } from '../../transport/front.ts';", true],
  // Of transport/, the HTTP adapter may import only the interface it implements.
  ['src/adapters/http1/app.ts', "import type { Listener } from '../../transport/listener.ts';", true],
  ['src/config/settings.ts', "import { buildEcho } from '../echo/model.ts';", true],
  ['src/util/parse.ts', "import { SETTINGS } from '../config/settings.ts';", true],
  ['src/adapters/http1/app.ts', "import { startServer } from '../../server.ts';", true],
  ['src/echo/render/html.ts', "import { main } from '../../cli.ts';", true],
  ['src/adapters/http2/stream.ts', "import { listen } from '../../transport/listener.ts';", true],
  ['src/transport/h2.ts', "import { refuseNow } from '../adapters/http2/stream.ts';", true],
  ['src/echo/model.ts', "import { refuseNow } from '../adapters/http2/stream.ts';", true],
  ['src/core/admission.ts', "import { refuseNow } from '../adapters/http2/stream.ts';", true],
  // core/ is protocol-neutral: no protocol module, no stage above it.
  ['src/core/admission.ts', "import type { IncomingMessage } from 'node:http';", true],
  ['src/core/admission.ts', "import { constants } from 'node:http2';", true],
  ['src/core/request-head.ts', "import { WebSocket } from 'ws';", true],
  ['src/core/facts.ts', "import { createApp } from '../adapters/http1/app.ts';", true],
  ['src/core/facts.ts', "import { listen } from '../transport/listener.ts';", true],
  ['src/core/facts.ts', "import { buildEcho } from '../echo/model.ts';", true],
  ['src/config/settings.ts', "import type { ConnectionFacts } from '../core/facts.ts';", true],
  ['src/ops/logger.ts', "import type { HeaderScan } from '../core/request-head.ts';", true],
  // The exchange record, the ledger and the answer port know no protocol object.
  ['src/core/ledger.ts', "import type { ServerResponse } from 'node:http';", true],
  ['src/core/exchange.ts', "import type { IncomingMessage } from 'node:http';", true],
  ['src/core/answer-port.ts', "import type { ServerHttp2Stream } from 'node:http2';", true],
  ['src/core/answer-port.ts', "import type { WebSocket } from 'ws';", true],
  ['src/core/ledger.ts', "import { HttpExchange } from '../adapters/http1/exchange.ts';", true],
  // Handlers answer through the port, never through an adapter or a socket; controls are pure.
  ['src/handlers/echo.ts', "import { listen } from '../transport/listener.ts';", true],
  ['src/controls/table.ts', "import { createEchoHandler } from '../handlers/echo.ts';", true],
  ['src/controls/read.ts', "import { createServer } from 'node:http';", true],
  ['src/transport/listener.ts', "import { createEchoHandler } from '../handlers/echo.ts';", true],
  ['src/core/ledger.ts', "import { CONTROLS } from '../controls/table.ts';", true],
  ['src/echo/model.ts', "import { CONTROLS } from '../controls/table.ts';", true],
  // The directions docs/architecture.md allows.
  ['src/adapters/http1/app.ts', "import { buildEcho } from '../../echo/model.ts';", false],
  ['src/transport/listener.ts', "import { EMPTY_BODY } from '../echo/model.ts';", false],
  ['src/transport/listener.ts', "import { createMetrics } from '../ops/metrics.ts';", false],
  ['src/echo/client-ip.ts', "import { isIP } from 'node:net';", false],
  ['src/echo/render/text.ts', "import { buildEcho } from '../model.ts';", false],
  ['src/ops/logger.ts', "import { SETTINGS } from '../config/settings.ts';", false],
  ['src/config/settings.ts', "import { clip } from '../util/parse.ts';", false],
  ['src/core/admission.ts', "import type { Config } from '../config/settings.ts';", false],
  ['src/echo/model.ts', "import type { ProxyInfo } from '../core/facts.ts';", false],
  ['src/adapters/http1/app.ts', "import { admissionProblem } from '../../core/admission.ts';", false],
  ['src/adapters/http1/app.ts', "import { createEchoHandler } from '../../handlers/echo.ts';", false],
  ['src/handlers/echo.ts', "import { parseControls } from '../controls/table.ts';", false],
  ['src/handlers/echo.ts', "import type { Ledger } from '../core/ledger.ts';", false],
  ['src/transport/front.ts', "import type { ConnectionFacts } from '../core/facts.ts';", false],
  ['src/adapters/http1/app.ts', "import { refuseNow } from '../http2/stream.ts';", false],
  ['src/adapters/http1/app.ts', "import type { Handlers } from '../../transport/handlers.ts';", false],
  ['src/transport/listener.ts', "import { portTable } from '../core/ports.ts';", false],
  ['src/adapters/http2/stream.ts', "import type { Config } from '../../config/settings.ts';", false],
  ['src/core/ledger.ts', "import type { Metrics } from '../ops/metrics.ts';", false],
  ['src/adapters/http1/exchange.ts', "import { closeExchange } from '../../core/answer-port.ts';", false],
];

describe('architecture', () => {
  it('refuses, by lint, every import that runs the wrong way between the stages', async () => {
    const eslint = new ESLint({ cwd: REPO });
    for (const [file, line, refused] of IMPORTS) {
      const [result] = await eslint.lintText(`${line}\nexport const used = [${line.match(/\{ (\w+) \}/)![1]}];\n`, {
        filePath: join(REPO, file),
      });
      const hits = result!.messages.filter((m) => m.ruleId === 'no-restricted-imports');
      if (refused) {
        assert.equal(hits.length, 1, `${file}: ${line} must be refused`);
        assert.match(hits[0]!.message, /may not import|transport-free/);
      } else {
        assert.deepEqual(
          hits.map((m) => m.message),
          [],
          `${file}: ${line} is allowed`,
        );
      }
    }
  });

  it("closes an exchange's record from one module: the ledger's close is called in core/answer-port.ts only", () => {
    const sources = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
      );
    const callers = new Set<string>();
    /** Each protocol's port: the HTTP one (over node:http's response, and raw CONNECT refusals), the WebSocket path and the TCP echo. */
    const ports = new Set<string>();
    // Handlers answer through the port and keep no books: no close, no completion, no done flag.
    const keepsNoBooks = (name: string) =>
      name.startsWith('src/handlers/') ||
      name.startsWith('src/controls/') ||
      name === 'src/adapters/sse/event-stream.ts';
    const bookkeeping = /closeExchange|\.closed\b|\.done\b|complete(OnClose)?\(|\.finish\(|ledger\.(close|begin)\(/;
    for (const file of sources(join(REPO, 'src'))) {
      const text = readFileSync(file, 'utf8');
      const name = relative(REPO, file);
      // `ledger.close(`, `this.#ledger.close(`, `ctx.ledger.close(`: any call of it through a ledger.
      if (/ledger\)?\.close\(/i.test(text)) callers.add(name);
      if (/closeExchange\(/.test(text) && name !== 'src/core/answer-port.ts') ports.add(name);
      if (keepsNoBooks(name)) assert.equal(bookkeeping.exec(text)?.[0], undefined, `${name} does bookkeeping`);
    }
    assert.deepEqual([...callers], ['src/core/answer-port.ts']);
    assert.deepEqual([...ports].sort(), [
      'src/adapters/grpc/exchange.ts',
      'src/adapters/http1/exchange.ts',
      'src/adapters/http2/exchange.ts',
      'src/adapters/l4/tcp.ts',
      'src/adapters/websocket/upgrade.ts',
    ]);
  });

  it('lists every source file in docs/architecture.md, and no file that is gone', () => {
    const page = readFileSync(join(REPO, 'docs/architecture.md'), 'utf8');
    const tree = page.slice(page.indexOf('```\nsrc/'));
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory()
          ? e.name === 'assets'
            ? []
            : files(join(dir, e.name))
          : [relative(join(REPO, 'src'), join(dir, e.name))],
      );
    // Lines of the tree: a folder (`name/`) or files, indented two spaces per level
    // below src/; a file belongs to the folders above it with less indentation.
    const listed = new Set<string>();
    const folders: { indent: number; name: string }[] = [];
    for (const line of tree.split('\n').slice(2)) {
      // after the fence and `src/`
      const m = /^( +)(\S.*?)(?: {2,}.*)?$/.exec(line);
      if (m === null) break; // the tree of src/ ends where test/ begins
      const indent = m[1]!.length;
      const names = m[2]!;
      while (folders.length > 0 && folders.at(-1)!.indent >= indent) folders.pop();
      const prefix = folders.map((f) => f.name).join('');
      if (names.endsWith('/') && !names.includes(' ')) {
        folders.push({ indent, name: names });
        continue;
      }
      for (const name of names.split(' ')) listed.add(prefix + name);
    }
    for (const f of files(join(REPO, 'src'))) {
      if (f.startsWith('echo/render/')) continue; // listed as a folder
      assert.ok(listed.has(f), `docs/architecture.md lists src/${f}`);
    }
    for (const f of listed) {
      assert.ok(files(join(REPO, 'src')).includes(f), `docs/architecture.md lists src/${f}, which does not exist`);
    }
  });
});
