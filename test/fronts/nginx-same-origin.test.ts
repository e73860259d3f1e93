// Behind a real nginx with its default `Host $proxy_host` (the upstream's address),
// the page's own WebSocket and event stream are same-origin: echo-server believes
// X-Forwarded-Host from nginx, a trusted proxy, and still refuses another origin.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NetworkSet } from '../../src/util/addresses.ts';
import { freePort, rawRequest, requireTool, startTestServer, waitFor, type TestServer } from '../helpers.ts';

const statusOf = (res: string) => Number(/^HTTP\/1\.1 (\d{3}) /.exec(res)?.[1] ?? 0);

describe('same origin behind nginx (Host $proxy_host, X-Forwarded-Host $http_host)', () => {
  let t: TestServer;
  let nginx: ChildProcess | null = null;
  let dir: string;
  let port = 0;
  let output = '';
  before(async () => {
    if (spawnSync('sh', ['-c', 'command -v nginx'], { stdio: 'ignore' }).status !== 0) return; // the test says so
    t = await startTestServer({ trustedProxies: new NetworkSet(['loopback']), sseCount: 1, sseIntervalMs: 10 });
    dir = mkdtempSync(join(tmpdir(), 'admission-nginx-'));
    mkdirSync(join(dir, 'temp'));
    port = await freePort();
    const cfg = join(dir, 'nginx.conf');
    writeFileSync(
      cfg,
      `
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events {}
http {
  access_log off;
  client_body_temp_path ${dir}/temp; proxy_temp_path ${dir}/temp; fastcgi_temp_path ${dir}/temp;
  uwsgi_temp_path ${dir}/temp; scgi_temp_path ${dir}/temp;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://127.0.0.1:${t.port};
      proxy_http_version 1.1;
      proxy_buffering off;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-Host $http_host;
    }
  }
}
`,
    );
    nginx = spawn('nginx', ['-p', dir, '-c', cfg, '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
    nginx.stderr!.on('data', (d: Buffer) => {
      output += d.toString();
    });
    await waitFor(
      () =>
        rawRequest(port, 'GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 500).then((r) =>
          r.startsWith('HTTP/1.1 200'),
        ),
      5000,
      `nginx up (${output})`,
      50,
    );
  });
  after(async () => {
    if (nginx !== null && nginx.exitCode === null) {
      nginx.kill('SIGQUIT');
      await new Promise((r) => nginx!.once('exit', r));
    }
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    await t?.close();
  });

  const WS =
    'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n';
  const SSE = 'Accept: text/event-stream\r\n';
  for (const [kind, extra, ok] of [
    ['WebSocket', WS, 101],
    ['event stream', SSE, 200],
  ] as const) {
    it(`allows the page's own ${kind} and refuses another origin's`, async (ctx) => {
      if (!requireTool(ctx, 'nginx')) return;
      const ask = (origin: string) =>
        rawRequest(port, `GET /page HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: ${origin}\r\n${extra}\r\n`, {
          until: (r) => r.includes('\r\n\r\n'),
        });
      assert.equal(statusOf(await ask(`http://127.0.0.1:${port}`)), ok, 'own origin');
      assert.equal(statusOf(await ask('http://evil.example')), 403, 'another origin');
    });
  }
});
