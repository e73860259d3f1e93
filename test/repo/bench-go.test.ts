// The bench's Go net/http reference (bench/go) must answer what the article's
// six-line node:http server (bench/article.mjs) answers, or the Go row would compare
// echo-server with a server doing different work. Go is optional for the bench (it
// skips the row without it); .ci/run installs it so this runs in CI, and a machine
// without `go` skips it locally (in CI a missing `go` is a failure).
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, waitFor } from '../helpers.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const HAS_GO = spawnSync('sh', ['-c', 'command -v go'], { stdio: 'ignore' }).status === 0;
if (!HAS_GO && process.env.CI === 'true') throw new Error('go is not installed; .ci/run installs it (golang-go)');

describe('the bench Go reference', { skip: HAS_GO ? false : 'go is not installed (Debian: golang-go)' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'echo-bench-go-'));
  const children: ChildProcess[] = [];
  let goUrl = '';
  let nodeUrl = '';

  const startOn = async (argv: string[], env: NodeJS.ProcessEnv): Promise<string> => {
    const port = await freePort();
    const child = spawn(argv[0]!, [...argv.slice(1), String(port)], { cwd: REPO, env, stdio: 'ignore' });
    children.push(child);
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${url}/livez`)).ok, 10_000, `${argv[0]} on ${port}`, 50);
    return url;
  };

  before(async () => {
    // As bench/run.ts builds it: offline, caches in a temporary directory, no cgo.
    const bin = join(dir, 'echo-go');
    const built = spawnSync('go', ['build', '-o', bin, '.'], {
      cwd: join(REPO, 'bench/go'),
      encoding: 'utf8',
      timeout: 5 * 60_000,
      env: {
        ...process.env,
        GOCACHE: join(dir, 'cache'),
        GOPATH: join(dir, 'path'),
        GOTOOLCHAIN: 'local',
        GOPROXY: 'off',
        GOFLAGS: '',
        CGO_ENABLED: '0',
      },
    });
    assert.equal(built.status, 0, built.stderr);
    goUrl = await startOn([bin], { ...process.env, GOMAXPROCS: '1' });
    nodeUrl = await startOn([process.execPath, 'bench/article.mjs'], process.env);
  });

  after(async () => {
    for (const c of children) {
      if (c.exitCode === null) {
        const gone = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        await gone;
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers the six lines the node:http six-line server answers, in the same order', async () => {
    const lines = async (url: string) => {
      const res = await fetch(`${url}/bench?x=1`);
      assert.equal(res.status, 200);
      return (await res.text()).trimEnd().split('\n');
    };
    const [go, node] = [await lines(goUrl), await lines(nodeUrl)];
    const names = (ls: string[]) => ls.map((l) => l.slice(0, l.indexOf(':')));
    assert.deepEqual(names(go), names(node));
    assert.deepEqual(names(go), ['RemoteAddr', 'Method', 'RequestURI', 'Proto', 'ContentLength', 'Headers']);
    assert.ok(go.includes('RequestURI: /bench?x=1'), go.join('\n'));
    assert.ok(go.includes('Method: GET'), go.join('\n'));
  });

  it('answers the same fields as one JSON object for Accept: application/json', async () => {
    const doc = async (url: string) => {
      const res = await fetch(`${url}/bench?x=1`, { headers: { accept: 'application/json' } });
      assert.equal(res.status, 200);
      return (await res.json()) as Record<string, unknown>;
    };
    const [go, node] = [await doc(goUrl), await doc(nodeUrl)];
    assert.deepEqual(Object.keys(go), Object.keys(node));
    assert.equal(go.RequestURI, '/bench?x=1');
    assert.equal(go.ContentLength, 0);
  });
});
