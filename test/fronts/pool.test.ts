// A health-checked pool of two echo-servers behind each real front, one backend
// stopped (SIGTERM) and started again under a POST load, five times, with and
// without --shutdown-delay, each front with its own health checking: nginx passive
// only (it never polls), HAProxy and Caddy polling /readyz. Not one request may fail.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  HAPROXY_DEFAULTS,
  caddyGlobals,
  freePort,
  nginxConfig,
  postLoad,
  requireFront,
  scratch,
  startBackend,
  startFront,
  type Backend,
  type FrontName,
} from './fronts.ts';
import { waitFor } from '../helpers.ts';

const STOPS = 5;

function configFor(front: FrontName, dir: string, port: number, a: number, b: number): string {
  if (front === 'nginx') {
    return nginxConfig(
      dir,
      `
  upstream echo {
    server 127.0.0.1:${a} max_fails=1 fail_timeout=2s;
    server 127.0.0.1:${b} max_fails=1 fail_timeout=2s;
    keepalive 16;
    keepalive_timeout 4s;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }
  }`,
    );
  }
  if (front === 'haproxy') {
    return `${HAPROXY_DEFAULTS}
    retries 3
    option redispatch 1
frontend echo
    bind 127.0.0.1:${port}
    default_backend echo
backend echo
    option httpchk GET /readyz
    # A check may take longer than its interval on a loaded machine: a backend is
    # taken out by its 503 (draining), not by a slow answer.
    timeout check 2s
    default-server check inter 300ms fall 1 rise 1
    server a 127.0.0.1:${a}
    server b 127.0.0.1:${b}
`;
  }
  return `${caddyGlobals(dir)}
http://127.0.0.1:${port} {
  bind 127.0.0.1
  reverse_proxy 127.0.0.1:${a} 127.0.0.1:${b} {
    lb_policy round_robin
    lb_try_duration 5s
    health_uri /readyz
    health_interval 300ms
    health_timeout 1s
    lb_retry_match {
      method POST
    }
    transport http {
      keepalive 4s
    }
  }
}
`;
}

async function postsServed(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(1000) })).text();
  return [...text.matchAll(/^echo_http_requests_total\{method="POST",status="\d+"\} (\d+)$/gm)].reduce(
    (n, m) => n + Number(m[1]),
    0,
  );
}

describe('a pool of two behind each front, backends stopped under a POST load', { timeout: 5 * 60_000 }, () => {
  // Made when the suite runs, so a filtered or skipped run leaves nothing behind.
  let dir = '';
  let cleanup = () => {};
  before(() => ({ dir, cleanup } = scratch()));
  after(() => cleanup());

  for (const front of ['nginx', 'haproxy', 'caddy'] as const) {
    for (const delay of ['0s', '2s']) {
      it(`${front}, --shutdown-delay ${delay}: ${STOPS} stops, 0 failed requests`, async (t) => {
        if (!requireFront(t, front)) return;
        if (front === 'caddy' && delay === '0s') {
          // Caddy 2.6 cannot retry a request with a body: Go's transport closes the body
          // on a failed dial, and a retry goes out empty (measured: 11 to 111 failed POSTs
          // over 5 stops). Behind Caddy a stopping backend needs the delay (docs/fronts/caddy.md).
          t.skip('Caddy 2.6 cannot retry a POST; behind Caddy --shutdown-delay is required');
          return;
        }
        const ports: [number, number] = [await freePort(), await freePort()];
        // The fronts connect from 127.0.0.1 and are trusted, as docs/fronts/ tell users to set.
        const args = ['--shutdown-delay', delay, '--drain-timeout', '5s', '--trusted-proxies', '127.0.0.1/32'];
        const backends: Backend[] = await Promise.all(ports.map((p) => startBackend(p, args)));
        const port = await freePort();
        const f = await startFront(front, dir, configFor(front, dir, port, ports[0], ports[1]), port);
        let stopped = false;
        const load = postLoad(`http://127.0.0.1:${port}/`, () => stopped, {
          concurrency: 4,
          maxMs: 120_000,
          pauseMs: 20,
        });
        const perStop: number[] = [];
        try {
          for (let i = 0; i < STOPS; i++) {
            // Both backends answer the load before one of them is stopped.
            const [seenA, seenB] = await Promise.all([postsServed(ports[0]), postsServed(ports[1])]);
            await waitFor(
              async () => (await postsServed(ports[0])) >= seenA + 10 && (await postsServed(ports[1])) >= seenB + 10,
              20_000,
              `${front}: both backends serving`,
              50,
            );
            const before = load.live.failed;
            const victim = i % 2 === 0 ? 0 : 1;
            assert.equal(await backends[victim]!.stop(), 0, 'the backend drained and exited 0');
            backends[victim] = await startBackend(ports[victim], args);
            perStop.push(load.live.failed - before);
          }
        } finally {
          stopped = true;
          const r = await load.finished;
          await f.stop();
          await Promise.all(backends.map((b) => b.stop()));
          console.log(
            `# ${front} --shutdown-delay ${delay}: ${r.sent} POSTs, ${r.failed} failed; per stop ${perStop.join(' ')}${r.failures.length > 0 ? ` (first: ${r.failures[0]})` : ''}`,
          );
          t.diagnostic(`${front} delay ${delay}: sent ${r.sent}, failed ${r.failed}, per stop [${perStop.join(', ')}]`);
          assert.deepEqual(
            r.failures,
            [],
            `${front} said: ${f
              .output()
              .split('\n')
              .filter((l) => /"error"|\[error\]|\[crit\]|DOWN|alert/i.test(l))
              .slice(0, 6)
              .join('\n')
              .slice(0, 3000)}`,
          );
        }
      });
    }
  }
});
