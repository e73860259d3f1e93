// Lint is the project's `go vet`: type-aware rules catch promise and type misuse
// that the compiler alone lets through.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * One no-restricted-imports rule per stage folder of src/: the stages it may not
 * import (but for the file of a stage matched by its `except` regex), and any top-level
 * module (cli, server, workers, healthcheck, main), which only wires the stages together.
 */
function stageRules(stages) {
  return Object.entries(stages).map(([stage, { not, modules = [], except = {} }]) => ({
    files: [`src/${stage}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: modules,
          patterns: [
            ...not.map((other) => ({
              regex: `(^|/)${other}/${except[other] === undefined ? '' : `(?!${except[other]}$)`}`,
              message: `src/${stage}/ may not import src/${other}/ (docs/architecture.md)`,
            })),
            {
              regex: String.raw`^(\.\./)+(cli|healthcheck|main|server|workers)\.ts$`,
              message: `src/${stage}/ may not import the top-level modules; they wire the stages`,
            },
          ],
        },
      ],
    },
  }));
}

export default tseslint.config(
  // The generated protobuf code (npm run proto) is checked against proto/ by a test, not linted.
  { ignores: ['node_modules/', 'dist/', '.cache/', 'src/adapters/grpc/gen/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // node:test's describe/it return promises the runner itself tracks.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
  // The stages of src/ and the directions imports may run (docs/architecture.md):
  // top level (cli, server, workers) -> transport -> adapters -> handlers -> controls
  // -> echo -> core -> config -> util; ops/ is used by all but uses only config/ and
  // util/. The transport hands sockets and ConnectionFacts (core/) to the adapters the
  // top level gives it; an adapter turns its protocol into exchanges (core/) that the
  // handlers answer through a port; what the record says is closed by the port alone.
  ...stageRules({
    util: { not: ['adapters', 'config', 'controls', 'core', 'echo', 'handlers', 'ops', 'transport'] },
    config: { not: ['adapters', 'controls', 'core', 'echo', 'handlers', 'ops', 'transport'] },
    ops: { not: ['adapters', 'controls', 'core', 'echo', 'handlers', 'transport'] },
    // The protocol-neutral core: what every protocol shares, knowing none of them.
    core: {
      not: ['adapters', 'controls', 'echo', 'handlers', 'transport'],
      modules: ['node:http', 'node:http2', 'node:net', 'node:tls', 'ws'].map((name) => ({
        name,
        message: `core/ may not import ${name}: it is protocol-neutral, adapters pass it plain data`,
      })),
    },
    echo: {
      not: ['adapters', 'controls', 'handlers', 'ops', 'transport'],
      // The echo model and renderers are transport-free: no sockets, no servers.
      modules: [
        { name: 'node:http', message: 'echo/ is transport-free: the HTTP stage passes it plain data' },
        { name: 'node:http2', message: 'echo/ is transport-free: the HTTP stage passes it plain data' },
        { name: 'node:tls', message: 'echo/ is transport-free: TLS facts arrive as ConnectionFacts' },
        {
          name: 'node:net',
          importNames: ['Socket', 'Server', 'createServer', 'connect', 'createConnection'],
          message: 'echo/ is transport-free',
        },
      ],
    },
    // The request controls: a table and pure parsers. No protocol, no handler, no I/O.
    controls: {
      not: ['adapters', 'handlers', 'transport'],
      modules: ['node:http', 'node:http2', 'node:net', 'node:tls', 'ws'].map((name) => ({
        name,
        message: `controls/ may not import ${name}: controls are parsed from plain data`,
      })),
    },
    // Written once against the answer port, for every protocol: never an adapter's internals.
    handlers: {
      not: ['adapters', 'transport'],
      modules: [
        ...['node:http', 'node:http2', 'node:tls', 'ws'].map((name) => ({
          name,
          message: `handlers/ may not import ${name}: they answer through the port, adapters own the wire`,
        })),
        {
          name: 'node:net',
          importNames: ['Socket', 'Server', 'createServer', 'connect', 'createConnection'],
          message: 'handlers/ may not use sockets: they answer through the port',
        },
      ],
    },
    // One folder per protocol, owning its casts and wire quirks; of transport/ only the
    // interface the HTTP adapter implements.
    adapters: { not: ['transport'], except: { transport: String.raw`handlers\.ts` } },
    transport: { not: ['adapters', 'controls', 'handlers'] },
    // Outbound calls (echo-server call): a client of the protocols, never the server's stages.
    calls: {
      not: ['adapters', 'controls', 'handlers', 'transport', 'core'],
      except: { adapters: String.raw`grpc/gen/.*` },
    },
  }),
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    // The HTML page's console: plain browser script, inlined into the page.
    files: ['src/echo/render/assets/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: Object.fromEntries(
        [
          'window',
          'document',
          'location',
          'navigator',
          'fetch',
          'Headers',
          'URL',
          'performance',
          'TextDecoder',
          'TextEncoder',
          'WebSocket',
          'EventSource',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
  {
    files: ['**/*.mjs'],
    languageOptions: {
      globals: { process: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', console: 'readonly' },
    },
  },
);
