// The generated protobuf code is what `npm run proto` makes of proto/ today: the
// .proto files are the source, and a change to one without regenerating fails here.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const GEN = 'src/adapters/grpc/gen';

const filesUnder = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)],
  );

describe('generated protobuf code', () => {
  it('matches what npm run proto generates from proto/', () => {
    const out = mkdtempSync(join(tmpdir(), 'echo-proto-'));
    try {
      // The same buf.gen.yaml, written under another base directory.
      const run = spawnSync(join(REPO, 'node_modules/.bin/buf'), ['generate', 'proto', '--output', out], {
        cwd: REPO,
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, PATH: `${join(REPO, 'node_modules/.bin')}:${process.env.PATH ?? ''}` },
      });
      assert.equal(run.status, 0, run.stderr);
      const fresh = filesUnder(join(out, GEN))
        .map((f) => relative(join(out, GEN), f))
        .sort();
      const committed = filesUnder(join(REPO, GEN))
        .map((f) => relative(join(REPO, GEN), f))
        .sort();
      assert.deepEqual(committed, fresh, 'the generated files: run npm run proto');
      for (const f of fresh) {
        assert.equal(
          readFileSync(join(REPO, GEN, f), 'utf8'),
          readFileSync(join(out, GEN, f), 'utf8'),
          `${f} is stale: run npm run proto`,
        );
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
