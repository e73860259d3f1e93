// `echo-server healthcheck`: the image's HEALTHCHECK. It asks the local server's
// liveness endpoint with Node's own HTTP client, so the image needs no curl or shell.
import { request } from 'node:http';
import { connect } from 'node:net';
import type { Config } from './config/settings.ts';
import { encodeProxyV2 } from './transport/proxy-protocol.ts';

export interface ProbeResult {
  ok: boolean;
  detail: string;
}

export function probeTarget(config: Config): { host: string; port: number; path: string } {
  const wildcard = config.host === '::' || config.host === '0.0.0.0';
  return { host: wildcard ? '127.0.0.1' : config.host, port: config.port, path: config.livenessPath };
}

const LOCAL_HEADER = encodeProxyV2({ command: 'LOCAL' });

export function probe(config: Config): Promise<ProbeResult> {
  const { host, port, path } = probeTarget(config);
  const ms = config.healthcheckTimeoutMs;
  return new Promise((resolve) => {
    // A listener that requires the PROXY protocol gets a v2 LOCAL header first: the
    // command a proxy uses for its own health checks, carrying no client address.
    const viaProxyProtocol = config.proxyProtocol.includes('http')
      ? {
          createConnection: () => {
            const s = connect({ host, port });
            s.write(LOCAL_HEADER);
            return s;
          },
        }
      : {};
    const req = request(
      { host, port, path, method: 'GET', headers: { 'User-Agent': 'echo-server-healthcheck' }, ...viaProxyProtocol },
      (res) => {
        res.on('end', () => clearTimeout(deadline));
        res.on('error', () => {}); // the body cut off by the deadline: the status was already the answer
        res.resume();
        const ok = res.statusCode === 200;
        resolve({
          ok,
          detail: `GET http://${host.includes(':') ? `[${host}]` : host}:${port}${path} answered ${res.statusCode}`,
        });
      },
    );
    // One deadline for the whole check (connect, request, answer), not an idle
    // timeout: a peer that trickles a byte now and then must not hold it longer.
    const deadline = setTimeout(() => req.destroy(new Error(`no answer within ${ms} ms`)), ms);
    req.on('error', (err) => {
      clearTimeout(deadline);
      resolve({ ok: false, detail: `GET ${path} on ${host}:${port} failed: ${err.message}` });
    });
    req.end();
  });
}
