// The UDP port of the port table: a datagram socket instead of a TCP server. Each
// datagram goes to the L4 handlers with the one way to answer it, to its source.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import type { PortRow } from '../core/ports.ts';
import type { LimitedLog } from '../ops/log-limit.ts';
import type { L4Handlers } from './handlers.ts';

/** Binds the row's datagram socket; `::` is dual-stack, and falls back to 0.0.0.0 on hosts without IPv6. */
export async function bindDatagrams(
  row: PortRow,
  l4: L4Handlers,
  log: LimitedLog,
): Promise<{ socket: UdpSocket; address: AddressInfo }> {
  const attempt = (host: string) =>
    new Promise<UdpSocket>((resolve, reject) => {
      const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', ipv6Only: false });
      socket.once('error', reject);
      socket.bind(row.port, host, () => {
        socket.off('error', reject);
        resolve(socket);
      });
    });
  const host = row.host === 'localhost' ? '127.0.0.1' : row.host;
  const socket = await attempt(host)
    .catch((err: NodeJS.ErrnoException) => {
      if (host === '::' && (err.code === 'EAFNOSUPPORT' || err.code === 'EADDRNOTAVAIL')) return attempt('0.0.0.0');
      throw err;
    })
    .catch((err: unknown) => {
      throw Object.assign(err as Error, { listener: row.name, port: row.port });
    });
  // A send to a source that is gone (ICMP unreachable) surfaces here: not fatal.
  socket.on('error', (err) => log('warn', { listener: row.name, reason: err.message }, 'udp socket error'));
  socket.on('message', (msg, rinfo) => {
    l4.datagram(msg, rinfo, (data) => socket.send(data, rinfo.port, rinfo.address));
  });
  return { socket, address: socket.address() };
}
