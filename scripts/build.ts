// Production build: one bundled file with every dependency inside, so the image
// needs no node_modules. The source is ESM; the bundle is CommonJS because Node
// loads a CommonJS file with about 5 MB less resident memory than the same code
// through the ES module loader (measured with the benchmark's idle-RSS figure). Flags: --outfile <path>, --no-minify, --sourcemap,
// --metafile (prints what the bundle is made of), --metafile-out <path> (writes the
// inputs of both output files as JSON: the SBOM lists exactly these).
import { writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { build, analyzeMetafile, type Plugin } from 'esbuild';
import { scriptArgs } from './lib/args.ts';
import { commitDateWithOffset, headCommit } from './lib/git.ts';
import { esbuildTarget } from './lib/node-target.ts';

const { values: opts } = scriptArgs('build', {
  options: {
    outfile: { type: 'string', default: 'dist/echo-server.cjs' },
    minify: { type: 'boolean', default: true },
    sourcemap: { type: 'boolean', default: false },
    metafile: { type: 'boolean', default: false },
    'metafile-out': { type: 'string' },
  },
  allowNegative: true,
});
const outfile = opts.outfile;
const metaOut = opts['metafile-out'];

/** Build metadata: from the environment (the image build passes it), else from git. */
const commit = process.env.COMMIT_HASH ?? headCommit();
const created = process.env.CREATED_DATE ?? commitDateWithOffset();
const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { engines: { node: string } };

/**
 * Library parts the server never uses, replaced by stubs that throw if ever called:
 * prom-client's Pushgateway (loads https, tls and zlib) and cluster aggregation
 * (loads cluster), and pino's worker-thread transports. Loading them cost about
 * 4 MB of resident memory at idle, measured with the benchmark.
 */
const UNUSED: [importer: RegExp, path: RegExp][] = [
  [/prom-client[\\/]index\.js$/, /^\.\/lib\/(pushgateway|cluster)$/],
  [/pino[\\/]lib[\\/]tools\.js$/, /^\.\/transport$/],
];
const stubUnused: Plugin = {
  name: 'stub-unused',
  setup(b) {
    b.onResolve({ filter: /^\.\// }, (args) => {
      const hit = UNUSED.some(([importer, path]) => importer.test(args.importer) && path.test(args.path));
      return hit ? { path: args.path, namespace: 'unused' } : undefined;
    });
    b.onLoad({ filter: /.*/, namespace: 'unused' }, (args) => ({
      contents: `module.exports = function unused() { throw new Error(${JSON.stringify(`${args.path} is not part of the echo-server bundle`)}); };`,
      loader: 'js',
    }));
  },
};

/**
 * The self-signed certificate maker is most of the code (an X.509 library) and only
 * a server without certificate files runs it, so it is a second file beside the
 * bundle, loaded on demand; parsing it at start cost about 5 MB of resident memory.
 */
const SIDE_FILE = 'self-signed.cjs';
const sideModule: Plugin = {
  name: 'side-module',
  setup(b) {
    b.onResolve({ filter: /\/self-signed\.ts$/ }, () => ({ path: `./${SIDE_FILE}`, external: true }));
  },
};

/**
 * The HTML page's stylesheet and console script are files that src/render/assets.ts
 * reads at start-up; the bundle has no files beside it, so that module is replaced
 * by one that holds the same text.
 */
const pageAssets: Plugin = {
  name: 'page-assets',
  setup(b) {
    b.onResolve({ filter: /^\.\/assets\.ts$/ }, (args) =>
      /src[\\/]echo[\\/]render[\\/]html\.ts$/.test(args.importer)
        ? { path: join(args.resolveDir, args.path), namespace: 'page-assets' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'page-assets' }, (args) => {
      const dir = join(dirname(args.path), 'assets');
      const text = (name: string) => JSON.stringify(readFileSync(join(dir, name), 'utf8'));
      return {
        contents: `export const PAGE_CSS = ${text('page.css')};\nexport const CONSOLE_JS = ${text('console.js')};\n`,
        loader: 'js',
        watchFiles: [join(dir, 'page.css'), join(dir, 'console.js')],
      };
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  target: esbuildTarget(pkg.engines.node),
  format: 'cjs',
  minify: opts.minify,
  sourcemap: opts.sourcemap,
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
} as const;

const side = await build({
  ...common,
  entryPoints: ['src/transport/self-signed.ts'],
  outfile: join(dirname(outfile), SIDE_FILE),
});
const result = await build({
  ...common,
  entryPoints: ['src/main.ts'],
  outfile,
  plugins: [stubUnused, sideModule, pageAssets],
  define: {
    __BUILD_COMMIT__: JSON.stringify(commit),
    __BUILD_DATE__: JSON.stringify(created),
  },
});
if (opts.metafile) console.log(await analyzeMetafile(result.metafile));
if (metaOut !== undefined) {
  await writeFile(
    metaOut,
    JSON.stringify({
      inputs: { ...side.metafile.inputs, ...result.metafile.inputs },
      outputs: { ...side.metafile.outputs, ...result.metafile.outputs },
    }),
  );
}
const size = (r: typeof result) =>
  `${(Object.values(r.metafile.outputs).reduce((n, o) => n + o.bytes, 0) / 1024).toFixed(0)} KiB`;
console.log(`built ${outfile} (${size(result)}) and ${SIDE_FILE} (${size(side)}), commit ${commit || 'unknown'}`);
