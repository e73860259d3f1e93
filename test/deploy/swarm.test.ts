// deploy/swarm/stack.yaml on a single-node swarm made by this test, against the real
// engine: 3 echo-server replicas (endpoint_mode dnsrr) behind HAProxy built from
// Debian's package, found through Docker's DNS, checked on /readyz, PROXY v2 to each;
// the raw TCP echo behind the same HAProxy in `mode tcp`, reached by Python's sockets.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  DOCKER,
  PREFIX,
  buildEchoImage,
  buildHaproxyImage,
  docker,
  dockerSkip,
  freeFixedPort,
  get,
  hostnameOf,
  load,
  runCommand,
  until,
} from './fleet.ts';

const STACK = PREFIX;
const SERVICE = `${STACK}_echo`;
const V1 = `${PREFIX}-echo-server:v1`;
const V2 = `${PREFIX}-echo-server:v2`;

interface Echo {
  remoteAddr: string;
  server: { hostname: string };
  proxy: { version: number; command: string; sourceAddress: string; peer: string } | null;
}

describe('Swarm stack behind HAProxy', { skip: dockerSkip(), timeout: 15 * 60_000 }, () => {
  let createdSwarm = false;
  let deployed = false;
  let url = '';
  let tcpPort = 0;
  let env: NodeJS.ProcessEnv = {};

  const deploy = async (image: string) => {
    const r = await runCommand(
      DOCKER,
      ['stack', 'deploy', '--resolve-image', 'never', '-c', 'deploy/swarm/stack.yaml', STACK],
      { ...env, ECHO_IMAGE: image },
    );
    assert.equal(r.code, 0, r.output);
  };
  /** Container IDs of the running echo tasks. */
  const runningTasks = async () =>
    (
      await docker(
        'ps',
        '-q',
        '--no-trunc',
        '--filter',
        `label=com.docker.swarm.service.name=${SERVICE}`,
        '--filter',
        'status=running',
      )
    )
      .split('\n')
      .filter(Boolean);
  const containerOf = async (hostname: string) => (await runningTasks()).find((id) => id.startsWith(hostname));
  /** Hostnames seen in `n` requests through HAProxy. */
  const sample = async (n: number) => {
    const seen = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const a = await get(url);
      assert.equal(a.status, 200, a.body);
      const h = hostnameOf(a);
      seen.set(h, (seen.get(h) ?? 0) + 1);
    }
    return seen;
  };

  before(async () => {
    const state = await docker('info', '--format', '{{.Swarm.LocalNodeState}}');
    // A swarm this test did not make belongs to someone else: never join, change or leave it.
    assert.equal(
      state,
      'inactive',
      `this engine is already in a swarm (state "${state}"); the Swarm test makes its own and will not touch an existing one`,
    );
    const [echoImage, haproxyImage] = await Promise.all([buildEchoImage(), buildHaproxyImage()]);
    await docker('tag', echoImage, V1);
    await docker('tag', echoImage, V2);
    await docker('swarm', 'init', '--advertise-addr', '127.0.0.1');
    createdSwarm = true;
    const port = await freeFixedPort();
    tcpPort = await freeFixedPort([port]);
    url = `http://127.0.0.1:${port}/`;
    env = {
      ...process.env,
      HAPROXY_IMAGE: haproxyImage,
      HAPROXY_PORT: String(port),
      HAPROXY_TCP_PORT: String(tcpPort),
      ECHO_HEALTH_INTERVAL: '1s',
      ECHO_HEALTH_CONTROL: 'true',
    };
    await deploy(V1);
    deployed = true;
    // Tasks enter DNS once healthy, HAProxy resolves every second and needs 2 good checks.
    await until('3 replicas answering through HAProxy', 120_000, async () => (await sample(9)).size === 3);
  });

  after(async () => {
    if (deployed) {
      await runCommand(DOCKER, ['stack', 'rm', STACK]);
      // stack rm returns at once; wait for the containers and the network to go.
      await until(
        'stack removed',
        60_000,
        async () => (await docker('ps', '-aq', '--filter', `label=com.docker.stack.namespace=${STACK}`)) === '',
      ).catch(() => {});
      await until(
        'stack network removed',
        30_000,
        async () =>
          (await docker('network', 'ls', '-q', '--filter', `label=com.docker.stack.namespace=${STACK}`)) === '',
      ).catch(() => {});
    }
    if (createdSwarm) await docker('swarm', 'leave', '--force');
    await docker('image', 'rm', V1, V2).catch(() => '');
  });

  it('reaches all 3 replicas, and the echo shows the original client through PROXY v2', async () => {
    const seen = await sample(30);
    assert.equal(seen.size, 3, `replicas seen: ${[...seen.keys()].join(', ')}`);
    const running = await runningTasks();
    for (const h of seen.keys())
      assert.ok(
        running.some((id) => id.startsWith(h)),
        `${h} is a running task of ${SERVICE}`,
      );

    const echo = JSON.parse((await get(url)).body) as Echo;
    assert.ok(echo.proxy, 'the connection to the replica began with a PROXY header');
    assert.equal(echo.proxy.version, 2);
    assert.equal(echo.proxy.command, 'PROXY');
    // The client HAProxy saw: on this host, the gateway of docker_gwbridge that carries
    // host-mode ports. The connection itself came from HAProxy's overlay address.
    const gateway = await docker(
      'network',
      'inspect',
      'docker_gwbridge',
      '--format',
      '{{range .IPAM.Config}}{{.Gateway}}{{end}}',
    );
    const clientIp = echo.remoteAddr.slice(0, echo.remoteAddr.lastIndexOf(':'));
    assert.equal(clientIp, gateway);
    assert.equal(echo.proxy.sourceAddress, gateway);
    const haproxy = (
      await docker('ps', '-q', '--filter', `label=com.docker.swarm.service.name=${STACK}_haproxy`)
    ).split('\n')[0]!;
    const haproxyIps = await docker(
      'inspect',
      haproxy,
      '--format',
      '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}',
    );
    const peerIp = echo.proxy.peer.slice(0, echo.proxy.peer.lastIndexOf(':'));
    assert.ok(haproxyIps.split(' ').includes(peerIp), `peer ${peerIp} is HAProxy (${haproxyIps.trim()})`);
    assert.notEqual(clientIp, peerIp);
  });

  it('balances the TCP echo over the replicas in mode tcp, the banner naming the original client through PROXY v2', async () => {
    // 12 connections, one after another: round robin over 3 replicas gives each of them 4.
    const program = `
import socket, json
out = []
for i in range(12):
    s = socket.create_connection(('127.0.0.1', ${tcpPort}), timeout=10)
    buf = b''
    while not buf.endswith(b'\\n'):
        c = s.recv(1)
        if not c: raise SystemExit('closed before the banner ended')
        buf += c
    payload = b'through haproxy %d' % i
    s.sendall(payload)
    back = b''
    while len(back) < len(payload):
        c = s.recv(4096)
        if not c: break
        back += c
    s.close()
    out.append({'banner': json.loads(buf), 'same': back == payload})
print(json.dumps(out))
`;
    const r = await runCommand('python3', ['-c', program]);
    assert.equal(r.code, 0, r.output);
    const conns = JSON.parse(r.output.trim().split('\n').pop()!) as {
      same: boolean;
      banner: {
        protocol: string;
        remoteAddr: string;
        clientIp: string;
        proxy: { version: number; command: string; sourceAddress: string } | null;
        identity: { hostname: string };
      };
    }[];
    assert.equal(conns.length, 12);
    for (const c of conns) {
      assert.equal(c.banner.protocol, 'tcp');
      assert.ok(c.same, 'the bytes came back through HAProxy');
    }
    const running = await runningTasks();
    const seen = new Map<string, number>();
    for (const c of conns) seen.set(c.banner.identity.hostname, (seen.get(c.banner.identity.hostname) ?? 0) + 1);
    assert.equal(seen.size, 3, `replicas seen: ${[...seen].join(', ')}`);
    for (const h of seen.keys())
      assert.ok(
        running.some((id) => id.startsWith(h)),
        `${h} is a running task of ${SERVICE}`,
      );
    // Round robin: consecutive connections go to different replicas.
    for (let i = 1; i < conns.length; i++)
      assert.notEqual(
        conns[i]!.banner.identity.hostname,
        conns[i - 1]!.banner.identity.hostname,
        `connection ${i} went to the replica of connection ${i - 1}`,
      );

    const gateway = await docker(
      'network',
      'inspect',
      'docker_gwbridge',
      '--format',
      '{{range .IPAM.Config}}{{.Gateway}}{{end}}',
    );
    const haproxy = (
      await docker('ps', '-q', '--filter', `label=com.docker.swarm.service.name=${STACK}_haproxy`)
    ).split('\n')[0]!;
    const haproxyIps = (
      await docker('inspect', haproxy, '--format', '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}')
    ).split(' ');
    for (const { banner } of conns) {
      assert.equal(banner.proxy?.version, 2);
      assert.equal(banner.proxy.command, 'PROXY');
      assert.equal(banner.proxy.sourceAddress, gateway, 'the client HAProxy saw');
      assert.equal(banner.clientIp, gateway);
      const peerIp = banner.remoteAddr.slice(0, banner.remoteAddr.lastIndexOf(':'));
      assert.ok(haproxyIps.includes(peerIp), `the TCP peer ${peerIp} is HAProxy (${haproxyIps.join(' ').trim()})`);
    }
  });

  it('takes a replica set unready out of rotation within its check interval, and back when ok', async () => {
    const set = await get(`${url}?echo_health=unready`);
    const setAt = performance.now();
    const victim = hostnameOf(set);
    // HAProxy checks /readyz every 1 s and needs 2 failures (fall 2): gone within ~2 s.
    let lastSeen = setAt;
    await until(
      `${victim} out of rotation`,
      15_000,
      async () => {
        const seen = await sample(6);
        if (seen.has(victim)) lastSeen = performance.now();
        return !seen.has(victim);
      },
      0,
    );
    const outMs = lastSeen - setAt;
    const stays = await sample(30);
    assert.ok(!stays.has(victim), 'it stays out while unready');
    assert.equal(stays.size, 2, 'the two others serve');
    console.log(
      `# unready: ${victim} last answered ${Math.round(outMs)} ms after the control (check interval 1 s, fall 2)`,
    );
    assert.ok(outMs < 4000, `out of rotation within the check interval x fall, plus slack (${Math.round(outMs)} ms)`);

    // Out of rotation it is out of reach through HAProxy: set it back from inside its
    // container, as a proxy would speak to it (PROXY header first).
    const container = await containerOf(victim);
    assert.ok(container, `container of ${victim}`);
    const script =
      "const s=require('net').connect(8080,'127.0.0.1',()=>s.write('PROXY TCP4 127.0.0.1 127.0.0.1 1 8080\\r\\nGET /readyz?echo_health=ok HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'));s.pipe(process.stdout)";
    const out = await docker('exec', container, '/nodejs/bin/node', '-e', script);
    assert.match(out, /^HTTP\/1\.1 200 /);
    assert.match(out, /health: ok/);
    const okAt = performance.now();
    await until(`${victim} back in rotation`, 15_000, async () => (await sample(6)).has(victim), 0);
    console.log(`# ok: ${victim} back after ${Math.round(performance.now() - okAt)} ms (rise 2)`);
  });

  it('replaces a replica whose liveness fails', async () => {
    const victim = hostnameOf(await get(`${url}?echo_health=fail`));
    const container = await containerOf(victim);
    assert.ok(container);
    const failedAt = performance.now();
    // 3 failed health checks 1 s apart: Swarm stops the task and starts another.
    await until(
      `${victim} replaced`,
      90_000,
      async () => {
        const running = await runningTasks();
        return running.length === 3 && !running.includes(container);
      },
      1000,
    );
    const state = await docker('inspect', container, '--format', '{{.State.Health.Status}}').catch(() => 'removed');
    assert.ok(['unhealthy', 'removed'].includes(state), `the old container was unhealthy (${state})`);
    await until('3 replicas answering, the failed one not among them', 60_000, async () => {
      const seen = await sample(9);
      return seen.size === 3 && !seen.has(victim);
    });
    console.log(
      `# liveness: ${victim} replaced and its successor in rotation after ${Math.round((performance.now() - failedAt) / 1000)} s`,
    );
  });

  it('rolls a new image tag out under continuous load with 0 failed requests', async () => {
    const before = new Set((await sample(9)).keys());
    let updated = false;
    const answered = new Map<string, number>();
    const running = load(url, {
      rate: 150,
      concurrency: 6,
      minSeconds: 30,
      maxSeconds: 150,
      done: () => updated,
      onOk: (a) => {
        const h = hostnameOf(a);
        answered.set(h, (answered.get(h) ?? 0) + 1);
      },
    });
    // The rollout begins only once the load flows through every current replica.
    await until(
      'load answered by every replica',
      30_000,
      () => Promise.resolve([...before].every((h) => (answered.get(h) ?? 0) >= 20)),
      100,
    );
    const started = performance.now();
    await deploy(V2);
    const watch = (async () => {
      await until(
        'rolling update completed',
        140_000,
        async () => {
          const s = await docker(
            'service',
            'inspect',
            SERVICE,
            '--format',
            '{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}',
          );
          assert.ok(!s.startsWith('rollback') && s !== 'paused', `update state ${s}`);
          return s === 'completed';
        },
        1000,
      );
      // The last old task is still draining when the update reports completion: keep
      // the load on until every running task is a new one.
      await until(
        'only new tasks left',
        60_000,
        async () => {
          const ids = await runningTasks();
          const images = await Promise.all(ids.map((id) => docker('inspect', id, '--format', '{{.Config.Image}}')));
          return ids.length === 3 && images.every((i) => i === V2);
        },
        1000,
      );
    })();
    await watch.finally(() => {
      updated = true;
    });
    const updateSeconds = (performance.now() - started) / 1000;
    const r = await running;
    const after = [...r.hostnames.keys()].filter((h) => !before.has(h));
    console.log(
      `# rolling update: ${r.sent} requests sent in ${r.seconds.toFixed(1)} s (${r.rate.toFixed(0)}/s), ${r.ok} ok, ${r.failed} failed; update took ${updateSeconds.toFixed(1)} s; replicas seen: ${r.hostnames.size} (${after.length} new)`,
    );
    assert.deepEqual(r.failures, [], 'no failed request');
    assert.equal(r.failed, 0);
    assert.ok(r.seconds >= 30, `load ran ${r.seconds.toFixed(1)} s`);
    assert.ok(r.rate >= 100, `at least 100 requests/s (${r.rate.toFixed(0)})`);
    const now = await sample(9);
    assert.equal(now.size, 3);
    for (const h of now.keys()) assert.ok(!before.has(h), `${h} is a new replica`);
    assert.deepEqual(
      after.sort(),
      [...now.keys()].sort(),
      'the replicas that served during the run besides the old ones are exactly the three running now',
    );
  });
});
