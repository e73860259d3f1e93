// The ports the server listens on, as a table. Each row says where (host, port), what
// comes first on every connection (a PROXY protocol header, a TLS handshake), and
// which protocols it then speaks. The listener opens one front per row and reads
// nothing else from the configuration to decide what a port does, so a new kind of
// port (a raw TCP or UDP echo) is one more row and one more protocol name, not
// another branch through the listener.
import type { Config, ProxyProtocolListener } from '../config/settings.ts';

/**
 * What a port speaks once its front stage is over. On a TLS row the order is the
 * ALPN preference. A later raw TCP echo is a row with ['tcp'], a UDP echo one with
 * ['udp'] (for which the listener binds a datagram socket instead of a TCP server).
 */
export type PortProtocol = 'http/1.1' | 'h2c' | 'h2' | 'tcp' | 'udp';

export interface PortRow {
  /** The listener's name in logs, bind errors and --proxy-protocol. */
  readonly name: ProxyProtocolListener | 'tcp-tls' | 'udp';
  readonly host: string;
  /** 0: the system picks a free port. */
  readonly port: number;
  /** A TLS handshake (after any PROXY header) before the first protocol byte. */
  readonly tls: boolean;
  /** Every connection must begin with a PROXY protocol v1/v2 header. */
  readonly proxyProtocol: boolean;
  readonly protocols: readonly PortProtocol[];
}

/** The port table of a configuration: the plain HTTP port, the HTTPS port when TLS is on, and the L4 echoes when set. */
export function portTable(config: Config): PortRow[] {
  const rows: PortRow[] = [
    {
      name: 'http',
      host: config.host,
      port: config.port,
      tls: false,
      proxyProtocol: config.proxyProtocol.includes('http'),
      protocols: config.h2c ? ['http/1.1', 'h2c'] : ['http/1.1'],
    },
  ];
  if (config.https) {
    rows.push({
      name: 'https',
      host: config.host,
      port: config.httpsPort,
      tls: true,
      proxyProtocol: config.proxyProtocol.includes('https'),
      protocols: ['h2', 'http/1.1'],
    });
  }
  if (config.tcpPort !== null) {
    rows.push({
      name: 'tcp',
      host: config.host,
      port: config.tcpPort,
      tls: false,
      proxyProtocol: config.proxyProtocol.includes('tcp'),
      protocols: ['tcp'],
    });
  }
  if (config.tcpTlsPort !== null) {
    rows.push({
      name: 'tcp-tls',
      host: config.host,
      port: config.tcpTlsPort,
      tls: true,
      proxyProtocol: config.proxyProtocol.includes('tcp'),
      protocols: ['tcp'],
    });
  }
  if (config.udpPort !== null) {
    rows.push({
      name: 'udp',
      host: config.host,
      port: config.udpPort,
      tls: false,
      proxyProtocol: false,
      protocols: ['udp'],
    });
  }
  return rows;
}
