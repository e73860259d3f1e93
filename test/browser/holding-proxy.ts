// A TCP relay in front of a test server that holds WebSocket handshakes until told
// to let them through: it gives a browser test a WebSocket that stays "connecting"
// for as long as the test needs. Everything else is relayed at once. Loopback only.
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface HoldingProxy {
  url: string;
  port: number;
  /** Resolves once a WebSocket handshake has arrived and is being held. */
  holding(): Promise<void>;
  /** Lets every held handshake (and any later one) through. */
  release(): void;
  close(): Promise<void>;
}

export async function holdingProxy(upstreamPort: number): Promise<HoldingProxy> {
  const sockets = new Set<Socket>();
  let released = false;
  const held: (() => void)[] = [];
  let onHold: (() => void) | null = null;
  const relay = (client: Socket, first: Buffer) => {
    const upstream = connect(upstreamPort, '127.0.0.1', () => {
      upstream.write(first);
      client.pipe(upstream).pipe(client);
      client.resume();
    });
    sockets.add(upstream);
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
  };
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    client.once('data', (first: Buffer) => {
      client.pause();
      if (released || !/^upgrade:\s*websocket/im.test(first.toString('latin1'))) {
        relay(client, first);
        return;
      }
      held.push(() => relay(client, first));
      onHold?.();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    holding: () =>
      held.length > 0
        ? Promise.resolve()
        : new Promise((resolve) => {
            onHold = resolve;
          }),
    release() {
      released = true;
      for (const go of held.splice(0)) go();
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
