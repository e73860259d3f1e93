// deploy/kubernetes, proven offline (no cluster runs here): rendered by kubectl's
// kustomize, every object validated against the Kubernetes OpenAPI schemas, every Pod
// Security "restricted" rule checked on the rendered pod spec, and the image run under
// Docker with exactly the pod's security context and environment.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IService } from 'kubernetes-models/v1/Service';
import { parseAllDocuments } from 'yaml';
import { parseDuration, parseSize } from '../../src/util/parse.ts';
import { PREFIX, buildEchoImage, docker, dockerSkip, get, until } from './fleet.ts';
import { HealthCheckResponse_ServingStatus as Serving } from '../../src/adapters/grpc/gen/grpc/health/v1/health_pb.js';
import { EchoClient } from '../grpc-client.ts';
import { startTestServer } from '../helpers.ts';

const KUBECTL = process.env.KUBECTL ?? 'kubectl';
const VARIANTS = {
  base: 'deploy/kubernetes',
  https: 'deploy/kubernetes/overlays/https',
  servicemonitor: 'deploy/kubernetes/overlays/servicemonitor',
  ingress: 'deploy/kubernetes/overlays/ingress',
  l4: 'deploy/kubernetes/overlays/l4',
  'grpc-probes': 'deploy/kubernetes/overlays/grpc-probes',
} as const;
type Variant = keyof typeof VARIANTS;

/** A rendered object; typed by kind where it is read (the kubernetes-models types). */
interface KObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
}
type Model = new (data: KObject) => { validate(): void };

function kubectlFound(): boolean {
  return spawnSync(KUBECTL, ['version', '--client'], { stdio: 'ignore' }).status === 0;
}
const kubectlSkip = kubectlFound()
  ? false
  : process.env.CI === 'true'
    ? false
    : 'kubectl is not installed (Debian: kubernetes-client)';

function render(dir: string): KObject[] {
  const out = execFileSync(KUBECTL, ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return parseAllDocuments(out)
    .map((d) => d.toJSON() as KObject | null)
    .filter((o) => o !== null);
}

const rendered = new Map<Variant, KObject[]>();
function objects(v: Variant): KObject[] {
  let r = rendered.get(v);
  if (r === undefined) rendered.set(v, (r = render(VARIANTS[v])));
  return r;
}
function find<T>(v: Variant, kind: string): T {
  const o = objects(v).find((x) => x.kind === kind);
  assert.ok(o, `${v} renders a ${kind}`);
  return o as T;
}
const deployment = (v: Variant) => find<IDeployment>(v, 'Deployment');
const podSpec = (v: Variant): IPodSpec => deployment(v).spec!.template.spec!;
/** Every container of the pod, with the fields the rules read. */
const allContainers = (p: IPodSpec): Pick<IContainer, 'name' | 'securityContext' | 'ports'>[] => [
  ...(p.initContainers ?? []),
  ...p.containers,
  ...(p.ephemeralContainers ?? []),
];
const envOf = (c: IContainer): Record<string, string> =>
  Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? '']));
const securityContexts = (p: IPodSpec) => [p.securityContext, ...allContainers(p).map((c) => c.securityContext)];

/** The model class for an object, from the kubernetes-models family. */
async function modelFor(apiVersion: string, kind: string): Promise<Model> {
  const mod =
    apiVersion === 'monitoring.coreos.com/v1'
      ? ((await import('@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1')) as unknown as Record<
          string,
          Model | undefined
        >)
      : ((await import(`kubernetes-models/${apiVersion}`)) as unknown as Record<string, Model | undefined>);
  const model = mod[kind];
  assert.ok(model, `no schema for ${apiVersion} ${kind}`);
  return model;
}

describe('Kubernetes manifests, offline', { skip: kubectlSkip }, () => {
  it('render with kubectl kustomize: the base and each overlay', () => {
    const kinds = (v: Variant) =>
      objects(v)
        .map((o) => o.kind)
        .sort();
    const base = ['Deployment', 'NetworkPolicy', 'PodDisruptionBudget', 'Service'];
    assert.deepEqual(kinds('base'), base);
    assert.deepEqual(kinds('https'), base);
    assert.deepEqual(kinds('servicemonitor'), [...base, 'ServiceMonitor'].sort());
    assert.deepEqual(kinds('ingress'), [...base, 'Ingress'].sort());
    assert.deepEqual(kinds('l4'), base);
    assert.deepEqual(kinds('grpc-probes'), base);
  });

  it('every rendered object is valid against the Kubernetes OpenAPI schemas', async () => {
    let n = 0;
    for (const v of Object.keys(VARIANTS) as Variant[]) {
      for (const o of objects(v)) {
        const Model = await modelFor(o.apiVersion, o.kind);
        assert.doesNotThrow(() => new Model(o).validate(), `${v}: ${o.kind}/${o.metadata.name}`);
        n++;
      }
    }
    assert.equal(n, 26);
    // The validator is not a formality: a wrong type is caught.
    const Deployment = await modelFor('apps/v1', 'Deployment');
    const broken = structuredClone(find<KObject & { spec: Record<string, unknown> }>('base', 'Deployment'));
    broken.spec.replicas = 'three';
    assert.throws(() => new Deployment(broken).validate(), /replicas must be integer/);
  });

  // Pod Security Standards, "restricted" profile (which includes "baseline"), one
  // check per rule, applied to the pod spec of the base and of every overlay.
  const RULES: [string, (p: IPodSpec, annotations: Record<string, string> | undefined) => void][] = [
    [
      'baseline: HostProcess: no Windows host process',
      (p) => {
        for (const sc of securityContexts(p)) assert.notEqual(sc?.windowsOptions?.hostProcess, true);
      },
    ],
    [
      'baseline: Host Namespaces: no hostNetwork, hostPID, hostIPC',
      (p) => {
        assert.ok(!p.hostNetwork && !p.hostPID && !p.hostIPC);
      },
    ],
    [
      'baseline: Privileged Containers: none',
      (p) => {
        for (const c of allContainers(p)) assert.notEqual(c.securityContext?.privileged, true);
      },
    ],
    [
      'baseline: HostPath Volumes: none',
      (p) => {
        for (const vol of p.volumes ?? []) assert.equal(vol.hostPath, undefined, vol.name);
      },
    ],
    [
      'baseline: Host Ports: none',
      (p) => {
        for (const c of allContainers(p))
          for (const port of c.ports ?? []) assert.ok(!port.hostPort, `${c.name} ${port.name}`);
      },
    ],
    [
      'baseline: AppArmor: unset, runtime/default or localhost',
      (p, annotations) => {
        for (const [k, val] of Object.entries(annotations ?? {})) {
          if (k.startsWith('container.apparmor.security.beta.kubernetes.io/'))
            assert.match(String(val), /^(runtime\/default|localhost\/.+)$/);
        }
        for (const sc of securityContexts(p)) assert.notEqual(sc?.appArmorProfile?.type, 'Unconfined');
      },
    ],
    [
      'baseline: SELinux: no custom user or role, only the allowed types',
      (p) => {
        for (const sc of securityContexts(p)) {
          const se = sc?.seLinuxOptions;
          if (se === undefined) continue;
          assert.ok(se.user === undefined && se.role === undefined);
          assert.ok(
            [undefined, '', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t'].includes(
              se.type,
            ),
          );
        }
      },
    ],
    [
      'baseline: /proc Mount Type: default',
      (p) => {
        for (const c of allContainers(p)) assert.ok([undefined, 'Default'].includes(c.securityContext?.procMount));
      },
    ],
    [
      'baseline: Seccomp: never Unconfined',
      (p) => {
        for (const sc of securityContexts(p)) assert.notEqual(sc?.seccompProfile?.type, 'Unconfined');
      },
    ],
    [
      'baseline: Sysctls: only the safe set',
      (p) => {
        const safe = new Set([
          'kernel.shm_rmid_forced',
          'net.ipv4.ip_local_port_range',
          'net.ipv4.ip_unprivileged_port_start',
          'net.ipv4.tcp_syncookies',
          'net.ipv4.ping_group_range',
          'net.ipv4.ip_local_reserved_ports',
          'net.ipv4.tcp_keepalive_time',
          'net.ipv4.tcp_fin_timeout',
          'net.ipv4.tcp_keepalive_intvl',
          'net.ipv4.tcp_keepalive_probes',
        ]);
        for (const s of p.securityContext?.sysctls ?? []) assert.ok(safe.has(s.name), s.name);
      },
    ],
    [
      'restricted: Volume Types: only configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret',
      (p) => {
        const allowed = new Set([
          'name',
          'configMap',
          'csi',
          'downwardAPI',
          'emptyDir',
          'ephemeral',
          'persistentVolumeClaim',
          'projected',
          'secret',
        ]);
        for (const vol of p.volumes ?? [])
          for (const k of Object.keys(vol)) assert.ok(allowed.has(k), `${vol.name}: ${k}`);
      },
    ],
    [
      'restricted: Privilege Escalation: allowPrivilegeEscalation false in every container',
      (p) => {
        for (const c of allContainers(p)) assert.equal(c.securityContext?.allowPrivilegeEscalation, false, c.name);
      },
    ],
    [
      'restricted: Running as Non-root: runAsNonRoot true, never false',
      (p) => {
        for (const c of allContainers(p)) {
          assert.notEqual(c.securityContext?.runAsNonRoot, false, c.name);
          assert.equal(c.securityContext?.runAsNonRoot ?? p.securityContext?.runAsNonRoot, true, c.name);
        }
      },
    ],
    [
      'restricted: Running as Non-root user: runAsUser never 0',
      (p) => {
        assert.notEqual(p.securityContext?.runAsUser, 0);
        for (const c of allContainers(p)) assert.notEqual(c.securityContext?.runAsUser, 0, c.name);
      },
    ],
    [
      'restricted: Seccomp: RuntimeDefault or Localhost for every container',
      (p) => {
        for (const c of allContainers(p))
          assert.ok(
            ['RuntimeDefault', 'Localhost'].includes(
              c.securityContext?.seccompProfile?.type ?? p.securityContext?.seccompProfile?.type ?? 'unset',
            ),
            c.name,
          );
      },
    ],
    [
      'restricted: Capabilities: drop ALL, add nothing but NET_BIND_SERVICE',
      (p) => {
        for (const c of allContainers(p)) {
          assert.ok((c.securityContext?.capabilities?.drop ?? []).includes('ALL'), c.name);
          for (const cap of c.securityContext?.capabilities?.add ?? []) assert.equal(cap, 'NET_BIND_SERVICE', c.name);
        }
      },
    ],
  ];
  // For each rule, in the same order, a change that breaks it: every check must reject
  // its violation, so none of them can pass by looking at nothing.
  const VIOLATIONS: ((p: IPodSpec, c: IContainer, annotations: Record<string, string>) => void)[] = [
    (_p, c) => {
      c.securityContext!.windowsOptions = { hostProcess: true };
    },
    (p) => {
      p.hostPID = true;
    },
    (_p, c) => {
      c.securityContext!.privileged = true;
    },
    (p) => {
      p.volumes = [{ name: 'root', hostPath: { path: '/' } }];
    },
    (_p, c) => {
      c.ports![0]!.hostPort = 8080;
    },
    (_p, _c, a) => {
      a['container.apparmor.security.beta.kubernetes.io/echo-server'] = 'unconfined';
    },
    (p) => {
      p.securityContext!.seLinuxOptions = { user: 'system_u' };
    },
    (_p, c) => {
      c.securityContext!.procMount = 'Unmasked';
    },
    (_p, c) => {
      c.securityContext!.seccompProfile = { type: 'Unconfined' };
    },
    (p) => {
      p.securityContext!.sysctls = [{ name: 'kernel.msgmax', value: '65536' }];
    },
    (p) => {
      p.volumes = [{ name: 'share', nfs: { server: 'nfs.example', path: '/' } }];
    },
    (_p, c) => {
      delete c.securityContext!.allowPrivilegeEscalation;
    },
    (_p, c) => {
      c.securityContext!.runAsNonRoot = false;
    },
    (p) => {
      p.securityContext!.runAsUser = 0;
    },
    (p, c) => {
      delete p.securityContext!.seccompProfile;
      delete c.securityContext!.seccompProfile;
    },
    (_p, c) => {
      c.securityContext!.capabilities = { drop: ['ALL'], add: ['NET_ADMIN'] };
    },
  ];
  describe('Pod Security "restricted", rule by rule, on every variant', () => {
    assert.equal(VIOLATIONS.length, RULES.length);
    RULES.forEach(([name, check], i) => {
      it(name, () => {
        for (const v of Object.keys(VARIANTS) as Variant[])
          check(podSpec(v), deployment(v).spec!.template.metadata?.annotations);
        const bad = structuredClone(podSpec('base'));
        const annotations: Record<string, string> = {};
        VIOLATIONS[i]!(bad, bad.containers[0]!, annotations);
        assert.throws(
          () => check(bad, annotations),
          assert.AssertionError,
          'the check rejects a pod that breaks the rule',
        );
      });
    });
  });

  it('the grpc-probes overlay asks gRPC health on the HTTP port, and a server answers as readiness and liveness say', async () => {
    const c = podSpec('grpc-probes').containers[0]!;
    const httpPort = c.ports!.find((p) => p.name === 'http')!.containerPort;
    for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) {
      assert.equal(probe?.httpGet, undefined);
      assert.equal(probe?.grpc?.port, httpPort);
    }
    // What the kubelet would ask, asked of a real server (on an ephemeral port) with grpc-js.
    const t = await startTestServer({ healthControl: true });
    const client = new EchoClient(`127.0.0.1:${t.port}`);
    try {
      const ask = async (service: string | undefined) => (await client.check(service ?? '')).response?.status;
      assert.equal(await ask(c.readinessProbe!.grpc!.service), Serving.SERVING);
      assert.equal(await ask(c.livenessProbe!.grpc!.service), Serving.SERVING);
      await fetch(`${t.url}/?echo_health=unready`);
      assert.equal(await ask(c.readinessProbe!.grpc!.service), Serving.NOT_SERVING);
      assert.equal(await ask(c.livenessProbe!.grpc!.service), Serving.SERVING, 'unready is not a restart');
      await fetch(`${t.url}/?echo_health=fail`);
      assert.equal(await ask(c.livenessProbe!.grpc!.service), Serving.NOT_SERVING);
    } finally {
      client.close();
      await t.close();
    }
  });

  it('the Deployment has what the issue asks beyond Pod Security', () => {
    const d = deployment('base');
    const p = podSpec('base');
    const c = p.containers[0]!;
    const psc = p.securityContext!;
    assert.equal(d.spec!.replicas, 3);
    assert.equal(typeof psc.runAsUser, 'number');
    assert.equal(typeof psc.runAsGroup, 'number');
    assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
    assert.equal(p.enableServiceLinks, false);
    assert.equal(p.automountServiceAccountToken, false);
    for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) assert.ok(probe?.httpGet);
    for (const r of ['cpu', 'memory'])
      assert.ok(c.resources?.requests?.[r] !== undefined && c.resources.limits?.[r] !== undefined, r);
    const spread = p.topologySpreadConstraints?.[0];
    assert.equal(spread?.topologyKey, 'kubernetes.io/hostname');
    assert.deepEqual(spread.labelSelector?.matchLabels, d.spec!.selector.matchLabels);
    const env = envOf(c);
    const delayMs = parseDuration(env.ECHO_SHUTDOWN_DELAY!, 3_600_000);
    const needMs = delayMs + parseDuration(env.ECHO_DRAIN_TIMEOUT!, 3_600_000);
    assert.ok(
      p.terminationGracePeriodSeconds! * 1000 > needMs,
      `grace ${p.terminationGracePeriodSeconds} s > delay + drain ${needMs} ms`,
    );
    // Readiness notices the drain well within the shutdown delay.
    const r = c.readinessProbe!;
    assert.ok(r.periodSeconds! * r.failureThreshold! * 1000 < delayMs);
    assert.equal(d.spec!.strategy?.rollingUpdate?.maxUnavailable, 0);
    assert.deepEqual(
      find<IPodDisruptionBudget>('base', 'PodDisruptionBudget').spec?.selector?.matchLabels,
      d.spec!.selector.matchLabels,
    );
    assert.deepEqual(find<IService>('base', 'Service').spec?.selector, d.spec!.template.metadata?.labels);
    const np = find<INetworkPolicy>('base', 'NetworkPolicy').spec!;
    assert.deepEqual(np.podSelector?.matchLabels, d.spec!.selector.matchLabels);
    assert.deepEqual(np.policyTypes, ['Ingress', 'Egress']);
    assert.deepEqual(np.egress, [], 'nothing goes out');
  });

  /** The HTTPS overlay's Secret volume and where the container mounts it. */
  function tlsVolume(p: IPodSpec) {
    const c = p.containers[0]!;
    const vol = p.volumes?.find((x) => x.secret !== undefined);
    assert.ok(vol?.secret);
    const mount = c.volumeMounts?.find((m) => m.name === vol.name);
    assert.ok(mount);
    return { c, secret: vol.secret, mount };
  }

  it('the HTTPS overlay mounts the certificate Secret as a directory, which the server can read and reload', () => {
    const p = podSpec('https');
    const { c, secret, mount } = tlsVolume(p);
    assert.equal(mount.subPath, undefined, 'a subPath mount never sees a renewed Secret');
    assert.equal(mount.readOnly, true);
    const env = envOf(c);
    assert.equal(env.ECHO_HTTPS, 'true');
    assert.ok(env.ECHO_TLS_CERT!.startsWith(mount.mountPath + '/'));
    assert.ok(env.ECHO_TLS_KEY!.startsWith(mount.mountPath + '/'));
    // Not world-readable, so readable through fsGroup.
    assert.equal(secret.defaultMode! & 0o004, 0);
    assert.equal(p.securityContext?.fsGroup, p.securityContext?.runAsGroup);
    const https = c.ports?.find((x) => x.name === 'https');
    assert.equal(String(https?.containerPort), env.ECHO_HTTPS_PORT);
    assert.ok(find<IService>('https', 'Service').spec?.ports?.some((x) => x.targetPort === 'https'));
    assert.ok(
      find<INetworkPolicy>('https', 'NetworkPolicy').spec?.ingress?.[0]?.ports?.some((x) => x.port === 'https'),
    );
  });

  it('the L4 overlay: the TCP and UDP echo ports, each named through Service, container and NetworkPolicy with its protocol', () => {
    const c = podSpec('l4').containers[0]!;
    const env = envOf(c);
    const service = find<IService>('l4', 'Service').spec!.ports!;
    const policy = find<INetworkPolicy>('l4', 'NetworkPolicy').spec!.ingress![0]!.ports!;
    for (const [name, protocol, variable] of [
      ['tcp-echo', 'TCP', 'ECHO_TCP_PORT'],
      ['udp-echo', 'UDP', 'ECHO_UDP_PORT'],
    ] as const) {
      const port = c.ports?.find((x) => x.name === name);
      assert.equal(port?.protocol, protocol, name);
      assert.equal(String(port?.containerPort), env[variable], `${variable} is the container port`);
      assert.ok(
        service.some((x) => x.targetPort === name && x.protocol === protocol),
        `the Service forwards ${name} over ${protocol}`,
      );
      assert.ok(
        policy.some((x) => x.port === name && x.protocol === protocol),
        `the NetworkPolicy lets ${name} in over ${protocol}`,
      );
    }
    assert.ok(
      service.some((x) => x.targetPort === 'http'),
      'the HTTP port stays',
    );
  });

  describe(
    "the image under the pod's security context, with Docker",
    { skip: dockerSkip(), timeout: 10 * 60_000 },
    () => {
      const containers: string[] = [];
      let image = '';
      let tmp = '';

      before(async () => {
        image = await buildEchoImage();
        tmp = mkdtempSync(join(tmpdir(), `${PREFIX}-k8s-`));
      });
      after(async () => {
        for (const c of containers) await docker('rm', '-f', c).catch(() => '');
        if (tmp) rmSync(tmp, { recursive: true, force: true });
      });

      /** `docker run` arguments that mirror the pod spec: IDs, groups, root, capabilities, seccomp, limits, env, ports. */
      function podRunArgs(p: IPodSpec, c: IContainer): string[] {
        const psc = p.securityContext!;
        const sc = { ...psc, ...c.securityContext };
        const args = ['--user', `${sc.runAsUser}:${sc.runAsGroup}`];
        if (psc.fsGroup !== undefined) args.push('--group-add', String(psc.fsGroup));
        if (sc.readOnlyRootFilesystem === true) args.push('--read-only');
        for (const cap of sc.capabilities?.drop ?? []) args.push('--cap-drop', cap);
        for (const cap of sc.capabilities?.add ?? []) args.push('--cap-add', cap);
        if (sc.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges:true');
        // RuntimeDefault is the engine's default seccomp profile: nothing to pass, never unconfined.
        assert.equal(sc.seccompProfile?.type, 'RuntimeDefault');
        const limits = c.resources!.limits!;
        args.push(
          '--memory',
          String(parseSize(String(limits.memory).replace(/i$/, 'iB'), 2 ** 40)),
          '--cpus',
          String(limits.cpu),
        );
        for (const e of c.env ?? []) args.push('--env', `${e.name}=${e.value}`);
        for (const port of c.ports ?? []) args.push('-p', `127.0.0.1::${port.containerPort}`);
        return args;
      }
      const hostPort = async (name: string, containerPort: number) =>
        Number(/127\.0\.0\.1:(\d+)/.exec(await docker('port', name, `${containerPort}/tcp`))![1]);
      const portNumber = (c: IContainer, port: string | number) => {
        if (typeof port === 'number') return port;
        const found = c.ports?.find((x) => x.name === port);
        assert.ok(found, `port ${port} is declared`);
        return found.containerPort;
      };
      const healthy = (name: string) =>
        until(
          `${name} healthy`,
          60_000,
          async () => (await docker('inspect', name, '--format', '{{.State.Health.Status}}')) === 'healthy',
        );

      it('becomes healthy, serves, answers the probes as the manifests name them, and stops within the grace period', async () => {
        const p = podSpec('base');
        const c = p.containers[0]!;
        const grace = p.terminationGracePeriodSeconds!;
        const name = `${PREFIX}-k8s-pod`;
        containers.push(name);
        await docker('run', '-d', '--name', name, '--health-interval', '1s', ...podRunArgs(p, c), image);
        await healthy(name);

        const line = (await docker('logs', name)).split('\n').find((l) => l.includes('"echo-server started"'));
        assert.ok(line);
        const cfg = (JSON.parse(line) as { config: Record<string, unknown> }).config;
        assert.equal(cfg.port, portNumber(c, 'http'), 'the container port is the one the server listens on');
        assert.equal(cfg.livenessPath, c.livenessProbe?.httpGet?.path);
        assert.equal(cfg.livenessPath, c.startupProbe?.httpGet?.path);
        assert.equal(cfg.readinessPath, c.readinessProbe?.httpGet?.path);
        assert.ok((cfg.shutdownDelayMs as number) + (cfg.drainTimeoutMs as number) < grace * 1000);
        // The kubelet's probes, as it would send them.
        for (const [probe, spec] of [
          ['startup', c.startupProbe],
          ['liveness', c.livenessProbe],
          ['readiness', c.readinessProbe],
        ] as const) {
          const target = portNumber(c, spec!.httpGet!.port);
          const a = await get(`http://127.0.0.1:${await hostPort(name, target)}${spec!.httpGet!.path}`);
          assert.equal(a.status, 200, `${probe} probe on ${target}`);
        }
        const http = await hostPort(name, portNumber(c, 'http'));
        assert.equal((await get(`http://127.0.0.1:${http}/`)).status, 200);
        // The ServiceMonitor's scrape target is served.
        const ep = find<IServiceMonitor>('servicemonitor', 'ServiceMonitor').spec.endpoints[0]!;
        const metrics = await get(`http://127.0.0.1:${await hostPort(name, portNumber(c, ep.port!))}${ep.path}`);
        assert.equal(metrics.status, 200);
        assert.match(metrics.body, /^# HELP echo_http_requests_total/m);
        // And the process has no privilege left.
        const status = await docker(
          'exec',
          name,
          '/nodejs/bin/node',
          '-e',
          "process.stdout.write(require('fs').readFileSync('/proc/self/status','utf8'))",
        );
        assert.match(status, /^CapEff:\s+0{16}$/m);
        assert.match(status, /^NoNewPrivs:\s+1$/m);
        assert.match(status, /^Seccomp:\s+2$/m);
        assert.match(status, new RegExp(`^Uid:\\s+${p.securityContext!.runAsUser}\\s`, 'm'));

        // Deletion: SIGTERM; readiness fails at once while serving goes on; exit 0 within the grace period.
        const sent = performance.now();
        await docker('kill', '--signal', 'TERM', name);
        // `docker kill` returns once the signal is sent, not handled: wait for the first 503.
        await until(
          'readiness fails',
          5000,
          async () => (await get(`http://127.0.0.1:${http}${c.readinessProbe!.httpGet!.path}`)).status === 503,
          20,
        );
        assert.equal((await get(`http://127.0.0.1:${http}/`)).status, 200);
        await until(
          'exited',
          grace * 1000,
          async () => (await docker('inspect', name, '--format', '{{.State.Status}}')) === 'exited',
          200,
        );
        assert.equal(await docker('inspect', name, '--format', '{{.State.ExitCode}}'), '0');
        console.log(
          `# kubernetes: SIGTERM to exit ${((performance.now() - sent) / 1000).toFixed(1)} s (grace period ${grace} s)`,
        );
      });

      it('HTTPS overlay: reads the Secret through fsGroup and reloads a renewed certificate', async () => {
        const p = podSpec('https');
        const { c, secret, mount } = tlsVolume(p);
        // A Secret volume as the kubelet lays it out: files in a timestamped directory,
        // reached through the ..data symlink, which a renewal swaps atomically.
        const dir = join(tmp, 'secret');
        mkdirSync(dir);
        chmodSync(dir, 0o755);
        const gid = p.securityContext!.fsGroup!;
        const writeVersion = (n: number, cn: string) => {
          const ver = join(dir, `..v${n}`);
          mkdirSync(ver);
          chmodSync(ver, 0o755);
          execFileSync(
            'openssl',
            [
              'req',
              '-x509',
              '-newkey',
              'ec',
              '-pkeyopt',
              'ec_paramgen_curve:P-256',
              '-nodes',
              '-days',
              '1',
              '-subj',
              `/CN=${cn}`,
              '-keyout',
              join(ver, 'tls.key'),
              '-out',
              join(ver, 'tls.crt'),
            ],
            { stdio: 'ignore' },
          );
          for (const f of ['tls.crt', 'tls.key']) {
            chownSync(join(ver, f), 0, gid);
            chmodSync(join(ver, f), secret.defaultMode!);
          }
          symlinkSync(`..v${n}`, join(dir, '..data_tmp'));
          renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
        };
        writeVersion(1, 'first.example');
        for (const f of ['tls.crt', 'tls.key']) symlinkSync(`..data/${f}`, join(dir, f));

        const name = `${PREFIX}-k8s-https`;
        containers.push(name);
        await docker(
          'run',
          '-d',
          '--name',
          name,
          '--health-interval',
          '1s',
          '-v',
          `${dir}:${mount.mountPath}:ro`,
          ...podRunArgs(p, c),
          image,
        );
        await healthy(name);
        const port = await hostPort(name, portNumber(c, 'https'));
        const subject = () =>
          new Promise<string>((resolve, reject) => {
            const req = httpsRequest(
              { host: '127.0.0.1', port, path: '/', rejectUnauthorized: false, agent: false },
              (res) => {
                const cert = (res.socket as TLSSocket).getPeerX509Certificate();
                res.resume();
                resolve(cert?.subject ?? '');
              },
            );
            req.on('error', reject);
            req.end();
          });
        assert.equal(await subject(), 'CN=first.example');
        writeVersion(2, 'renewed.example');
        await until('renewed certificate served', 15_000, async () => (await subject()) === 'CN=renewed.example');
      });
    },
  );
});
