// Production build: one bundled file with every dependency inside, so the image
// needs no node_modules. The source is ESM; the bundle is CommonJS because Node
// loads a CommonJS file with about 5 MB less resident memory than the same code
// through the ES module loader (measured with the benchmark's idle-RSS figure). Flags: --outfile <path>, --no-minify, --sourcemap,
// --metafile (prints what the bundle is made of), --metafile-out <path> (writes the
// inputs of both output files as JSON: the SBOM lists exactly these).
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { build, analyzeMetafile, type Plugin } from 'esbuild';

const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const outIndex = args.indexOf('--outfile');
const outfile = outIndex >= 0 ? args[outIndex + 1]! : 'dist/echo-server.cjs';
const metaIndex = args.indexOf('--metafile-out');
const metaOut = metaIndex >= 0 ? args[metaIndex + 1] : undefined;
const known = new Set(['--outfile', outfile, '--no-minify', '--sourcemap', '--metafile', '--metafile-out', metaOut]);
const unknown = args.filter((a) => !known.has(a));
if (unknown.length > 0) {
  console.error(`build: unknown argument(s) ${unknown.join(' ')}`);
  process.exit(2);
}

/** Build metadata: from the environment (the image build passes it), else from git. */
function fromGit(gitArgs: string[]): string {
  try {
    return execFileSync('git', gitArgs, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}
const commit = process.env.COMMIT_HASH ?? fromGit(['rev-parse', 'HEAD']);
const created = process.env.CREATED_DATE ?? fromGit(['show', '-s', '--format=%cI', 'HEAD']);

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
    b.onResolve({ filter: /^\.\/assets\.ts$/ }, (args) => (/src[\\/]echo[\\/]render[\\/]html\.ts$/.test(args.importer)
      ? { path: join(args.resolveDir, args.path), namespace: 'page-assets' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'page-assets' }, (args) => {
      const dir = join(dirname(args.path), 'assets');
      const text = (name: string) => JSON.stringify(readFileSync(join(dir, name), 'utf8'));
      return { contents: `export const PAGE_CSS = ${text('page.css')};\nexport const CONSOLE_JS = ${text('console.js')};\n`, loader: 'js', watchFiles: [join(dir, 'page.css'), join(dir, 'console.js')] };
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'cjs',
  minify: !flag('--no-minify'),
  sourcemap: flag('--sourcemap'),
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
} as const;

const side = await build({ ...common, entryPoints: ['src/transport/self-signed.ts'], outfile: join(dirname(outfile), SIDE_FILE) });
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
if (flag('--metafile')) console.log(await analyzeMetafile(result.metafile));
if (metaOut !== undefined) {
  await writeFile(metaOut, JSON.stringify({ inputs: { ...side.metafile.inputs, ...result.metafile.inputs }, outputs: { ...side.metafile.outputs, ...result.metafile.outputs } }));
}
const size = (r: typeof result) => `${(Object.values(r.metafile.outputs).reduce((n, o) => n + o.bytes, 0) / 1024).toFixed(0)} KiB`;
console.log(`built ${outfile} (${size(result)}) and ${SIDE_FILE} (${size(side)}), commit ${commit || 'unknown'}`);
