// `echo-server healthcheck`: the image's HEALTHCHECK. It asks the local server's
// liveness endpoint with Node's own HTTP client, so the image needs no curl or shell.
import { request } from 'node:http';
import { connect } from 'node:net';
import type { Config } from './config.ts';
import { encodeProxyV2 } from './proxy-protocol.ts';

export interface ProbeResult {
  ok: boolean;
  detail: string;
}

export function probeTarget(config: Config): { host: string; port: number; path: string } {
  const wildcard = config.host === '::' || config.host === '0.0.0.0';
  return { host: wildcard ? '127.0.0.1' : config.host, port: config.port, path: config.livenessPath };
}

export function probe(config: Config): Promise<ProbeResult> {
  const { host, port, path } = probeTarget(config);
  // A listener that requires a PROXY header drops a connection without one, so the
  // probe speaks like a load balancer's own health check: a v2 LOCAL header (no
  // addresses to invent; the server keeps the real peer), then the request.
  const proxyHeader = config.proxyProtocol.includes('http') ? encodeProxyV2({ command: 'LOCAL' }) : null;
  return new Promise((resolve) => {
    const req = request({
      host, port, path, method: 'GET', timeout: config.healthcheckTimeoutMs, headers: { 'User-Agent': 'echo-server-healthcheck' },
      ...(proxyHeader === null ? {} : {
        createConnection: () => {
          const socket = connect({ host, port });
          socket.write(proxyHeader); // queued until connected, and always ahead of the request
          return socket;
        },
      }),
    }, (res) => {
      res.resume();
      const ok = res.statusCode === 200;
      resolve({ ok, detail: `GET http://${host.includes(':') ? `[${host}]` : host}:${port}${path}${proxyHeader === null ? '' : ' (after a PROXY v2 LOCAL header)'} answered ${res.statusCode}` });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${config.healthcheckTimeoutMs} ms`)));
    req.on('error', (err) => resolve({ ok: false, detail: `GET ${path} on ${host}:${port} failed: ${err.message}` }));
    req.end();
  });
}
