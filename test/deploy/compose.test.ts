// deploy/compose.yaml with Debian's docker-compose against the real engine: the
// hardened run is what the engine applied and what the process really has, and a
// stop follows the shutdown sequence (readiness fails, serving goes on, exit 0).
// deploy/compose.l4.yaml is added to it, so the TCP and UDP echoes are reached
// through their published ports by Python's sockets.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { DOCKER, PREFIX, buildEchoImage, docker, dockerSkip, get, hostnameOf, runCommand, until } from './fleet.ts';

const PROJECT = `${PREFIX}-compose`;

function requireCompose(): void {
  const found = spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0;
  assert.ok(found, "docker-compose is not installed; .ci/run installs Debian's docker-compose");
}

describe('Compose: the hardened run', { skip: dockerSkip(), timeout: 10 * 60_000 }, () => {
  let env: NodeJS.ProcessEnv;
  let container = '';
  let base = '';
  let up = false;
  let tcpPort = 0;
  let udpPort = 0;
  const compose = (...args: string[]) =>
    runCommand(
      'docker-compose',
      ['-p', PROJECT, '-f', 'deploy/compose.yaml', '-f', 'deploy/compose.l4.yaml', ...args],
      env,
    );

  before(async () => {
    requireCompose();
    const image = await buildEchoImage();
    // docker-compose talks to the engine itself; DOCKER only picks the CLI for the rest.
    env = {
      ...process.env,
      ECHO_IMAGE: image,
      ECHO_HOST_PORT: '0',
      ECHO_TCP_HOST_PORT: '0',
      ECHO_UDP_HOST_PORT: '0',
      ECHO_HEALTH_INTERVAL: '1s',
    };
    up = true;
    const r = await compose('up', '-d');
    assert.equal(r.code, 0, r.output);
    container = (await compose('ps', '-q', 'echo')).output.trim();
    assert.match(container, /^[0-9a-f]{64}$/);
    await until(
      'container healthy',
      60_000,
      async () => (await docker('inspect', container, '--format', '{{.State.Health.Status}}')) === 'healthy',
    );
    const mapping = await docker('port', container, '8080/tcp');
    base = `http://127.0.0.1:${/127\.0\.0\.1:(\d+)/.exec(mapping)![1]}`;
    tcpPort = Number(/127\.0\.0\.1:(\d+)/.exec(await docker('port', container, '7000/tcp'))![1]);
    udpPort = Number(/127\.0\.0\.1:(\d+)/.exec(await docker('port', container, '7001/udp'))![1]);
  });

  after(async () => {
    if (up) await compose('down', '--volumes', '--remove-orphans', '--timeout', '25');
  });

  it('serves on 127.0.0.1 only, from the container that answered', async () => {
    const a = await get(`${base}/`);
    assert.equal(a.status, 200);
    assert.ok(container.startsWith(hostnameOf(a)));
    const bindings = JSON.parse(
      await docker('inspect', container, '--format', '{{json .HostConfig.PortBindings}}'),
    ) as Record<string, { HostIp: string }[]>;
    assert.deepEqual(
      bindings['8080/tcp']!.map((b) => b.HostIp),
      ['127.0.0.1'],
    );
  });

  it('without deploy/compose.l4.yaml publishes the HTTP port only', async () => {
    const r = await runCommand('docker-compose', ['-p', PROJECT, '-f', 'deploy/compose.yaml', 'config'], env);
    assert.equal(r.code, 0, r.output);
    assert.doesNotMatch(r.output, /7000|7001|ECHO_TCP_PORT|ECHO_UDP_PORT/);
  });

  it('with it, the TCP echo (banner naming the peer and the container, then the bytes) and the UDP envelope, on 127.0.0.1 only', async () => {
    const bindings = JSON.parse(
      await docker('inspect', container, '--format', '{{json .HostConfig.PortBindings}}'),
    ) as Record<string, { HostIp: string }[]>;
    assert.deepEqual(
      bindings['7000/tcp']!.map((b) => b.HostIp),
      ['127.0.0.1'],
    );
    assert.deepEqual(
      bindings['7001/udp']!.map((b) => b.HostIp),
      ['127.0.0.1'],
    );
    const program = `
import socket, json
s = socket.create_connection(('127.0.0.1', ${tcpPort}), timeout=10)
buf = b''
while not buf.endswith(b'\\n'):
    c = s.recv(1)
    if not c: raise SystemExit('closed before the banner ended')
    buf += c
payload = bytes(range(256)) * 64
s.sendall(payload)
back = b''
while len(back) < len(payload):
    c = s.recv(65536)
    if not c: break
    back += c
s.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
datagram = b'u' * 300
answer = None
for attempt in range(5):
    u.sendto(datagram, ('127.0.0.1', ${udpPort}))
    try:
        answer = u.recv(65535)
        break
    except socket.timeout:
        pass
print(json.dumps({'banner': json.loads(buf), 'same': back == payload, 'answer': answer.decode() if answer else None, 'size': len(datagram)}))
`;
    const r = await runCommand('python3', ['-c', program]);
    assert.equal(r.code, 0, r.output);
    const out = JSON.parse(r.output.trim().split('\n').pop()!) as {
      banner: { protocol: string; remoteAddr: string; localAddr: string; identity: { hostname: string } };
      same: boolean;
      answer: string | null;
      size: number;
    };
    assert.equal(out.banner.protocol, 'tcp');
    assert.match(out.banner.localAddr, /:7000$/, 'the container port');
    assert.ok(
      container.startsWith(out.banner.identity.hostname),
      `banner names the container (${out.banner.identity.hostname})`,
    );
    assert.ok(out.same, '16 KiB came back byte for byte');
    assert.ok(out.answer, 'the datagram was answered');
    assert.ok(Buffer.byteLength(out.answer) <= 3 * out.size, 'no amplification');
    const envelope = JSON.parse(out.answer) as {
      protocol: string;
      bytes: number;
      payload: string;
      identity: { hostname: string };
    };
    assert.equal(envelope.protocol, 'udp');
    assert.equal(envelope.bytes, out.size);
    assert.equal(envelope.payload, 'u'.repeat(out.size));
    assert.ok(container.startsWith(envelope.identity.hostname));
  });

  it('runs as the engine was told: read-only root, no capabilities, no-new-privileges, non-root, limits, healthcheck', async () => {
    const host = JSON.parse(await docker('inspect', container, '--format', '{{json .HostConfig}}')) as Record<
      string,
      unknown
    >;
    const config = JSON.parse(await docker('inspect', container, '--format', '{{json .Config}}')) as Record<
      string,
      unknown
    >;
    assert.equal(host.ReadonlyRootfs, true);
    assert.deepEqual(host.CapDrop, ['ALL']);
    assert.ok(((host.CapAdd as string[] | null) ?? []).length === 0);
    assert.ok((host.SecurityOpt as string[]).includes('no-new-privileges:true'));
    assert.equal(host.Privileged, false);
    assert.equal(config.User, '8080:8080');
    assert.equal(host.Memory, 256 * 1024 ** 2);
    assert.equal(host.NanoCpus, 1e9);
    assert.equal(host.PidsLimit, 64);
    assert.equal(config.StopTimeout, 20);
    assert.deepEqual((config.Healthcheck as { Test: string[] }).Test, [
      'CMD',
      '/nodejs/bin/node',
      '--disable-sigusr1',
      '/app/echo-server.cjs',
      'healthcheck',
    ]);
  });

  it('and the process really has exactly that: its IDs, no capabilities, no new privileges, nowhere to write', async () => {
    const script =
      "const s=require('fs').readFileSync('/proc/self/status','utf8');for(const k of ['Uid','Gid','CapEff','CapPrm','CapBnd','NoNewPrivs','Seccomp'])console.log(k+':'+s.match(new RegExp('^'+k+':\\\\s*(.*)$','m'))[1].replace(/\\s+/g,' '));try{require('fs').writeFileSync('/app/x','x');console.log('write:ok')}catch(e){console.log('write:'+e.code)}";
    const out = await docker('exec', container, '/nodejs/bin/node', '-e', script);
    const field = (k: string) => new RegExp(`^${k}:(.*)$`, 'm').exec(out)?.[1];
    assert.equal(field('Uid'), '8080 8080 8080 8080');
    assert.equal(field('Gid'), '8080 8080 8080 8080');
    assert.equal(field('CapEff'), '0000000000000000');
    assert.equal(field('CapPrm'), '0000000000000000');
    assert.equal(field('CapBnd'), '0000000000000000');
    assert.equal(field('NoNewPrivs'), '1');
    assert.equal(field('Seccomp'), '2', 'the default seccomp profile filters system calls');
    assert.equal(field('write'), 'EROFS');
  });

  it('on stop: readiness fails at once, serving goes on for the delay, then a clean exit 0', async () => {
    const stopping = compose('stop');
    const sent = performance.now();
    await until('readiness failing', 10_000, async () => (await get(`${base}/readyz`)).status === 503, 100);
    const during = await get(`${base}/`);
    assert.equal(during.status, 200, 'still serving during the shutdown delay');
    assert.equal(during.headers.connection, 'close');
    const r = await stopping;
    assert.equal(r.code, 0, r.output);
    const seconds = (performance.now() - sent) / 1000;
    assert.ok(
      seconds >= 4.5 && seconds < 20,
      `stopped after the 5 s delay, before the 20 s grace period (${seconds.toFixed(1)} s)`,
    );
    assert.equal(await docker('inspect', container, '--format', '{{.State.ExitCode}}'), '0');
    const logs = (await runCommand(DOCKER, ['logs', container])).output;
    assert.match(logs, /"msg":"shutdown delay: still serving, readiness failed"/);
    assert.match(logs, /"msg":"shutdown complete"/);
  });
});
