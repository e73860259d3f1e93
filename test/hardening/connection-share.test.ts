// One client must not take every --max-connections slot: --max-connections-per-client
// holds each client (the TCP peer, the PROXY header's source, an IPv6 client by its
// /64) to a share of the open connections, on every port and protocol together.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connectionShare } from '../../src/core/connection-share.ts';
import { NetworkSet } from '../../src/util/addresses.ts';
import { startTestServer, waitFor, type TestServer } from '../helpers.ts';

const portOf = (t: TestServer, name: string) => t.server.listener.ports.find((p) => p.row.name === name)!.address.port;

/** A GET from another loopback address (another client), so it takes none of the first client's share. */
function getFrom(localAddress: string, port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, localAddress, agent: false, headers: { connection: 'close' } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      },
    );
    req.on('error', reject);
    req.setTimeout(3000, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

const refusedMetric = async (t: TestServer, limit: string) =>
  Number(
    new RegExp(`^echo_connections_refused_total\\{limit="${limit}"\\} (\\d+)$`, 'm').exec(
      (await getFrom('127.0.0.9', t.port, '/metrics')).body,
    )?.[1],
  );

/** A connection that the server has taken: open, and (after the first byte sent) not closed at once. */
async function open(port: number, localAddress = '127.0.0.1', first?: string): Promise<Socket> {
  const s = connect({ port, host: '127.0.0.1', localAddress });
  s.on('error', () => {});
  await once(s, 'connect');
  if (first !== undefined) s.write(first);
  return s;
}

/** Whether the server closed the connection at once, nothing answered. */
async function closedAtOnce(s: Socket): Promise<boolean> {
  let got = '';
  s.on('data', (c: Buffer) => {
    got += c.toString('latin1');
  });
  await waitFor(() => s.readableEnded || s.destroyed || got.length > 0, 3000, 'the server to answer or close');
  return got === '';
}

const PARTIAL = 'GET / HTTP/1.1\r\nHost: h\r\n'; // a head that is never finished: the connection stays open

describe('--max-connections-per-client', () => {
  let t: TestServer;
  const held: Socket[] = [];
  const sessions: ClientHttp2Session[] = [];
  before(async () => {
    // auto: a tenth of --max-connections, at least 10 -> 10 of 100.
    t = await startTestServer({
      maxConnections: 100,
      tcpPort: 0,
      tcpBanner: false,
      headersTimeoutMs: 20_000,
      requestTimeoutMs: 30_000,
    });
  });
  after(async () => {
    for (const s of held) s.destroy();
    for (const s of sessions) s.destroy();
    await t.close();
  });

  it("counts a client's connections on every port and protocol together, and refuses the one past its share", async () => {
    // 4 HTTP/1.1 connections, 3 h2c sessions and 3 TCP echo connections from 127.0.0.1.
    for (let i = 0; i < 4; i++) held.push(await open(t.port, '127.0.0.1', PARTIAL));
    for (let i = 0; i < 3; i++) {
      const session = h2connect(t.url, { localAddress: '127.0.0.1' } as never);
      session.on('error', () => {});
      const r = session.request({ ':path': '/' });
      r.on('error', () => {});
      await once(r, 'response'); // the session stays open after its answer
      sessions.push(session);
    }
    for (let i = 0; i < 3; i++) {
      const s = await open(portOf(t, 'tcp'));
      s.write('ping\n');
      await once(s, 'data');
      held.push(s);
    }
    // The eleventh, on any port, is closed at once.
    assert.equal(
      await closedAtOnce(await open(t.port, '127.0.0.1', 'GET / HTTP/1.1\r\nHost: h\r\n\r\n')),
      true,
      'the HTTP port refuses it',
    );
    assert.equal(
      await closedAtOnce(await open(portOf(t, 'tcp'), '127.0.0.1', 'ping\n')),
      true,
      'the TCP echo port refuses it',
    );
    // Another client is served.
    assert.equal((await getFrom('127.0.0.2', t.port, '/')).status, 200);
    await waitFor(
      () => t.logs.messages('connection refused: --max-connections-per-client reached').length === 2,
      2000,
      'one warning per refusal',
    );
    const [line] = t.logs.messages('connection refused: --max-connections-per-client reached');
    assert.equal(line!.client, '127.0.0.1');
    assert.equal(line!.limit, 10);
    assert.equal(await refusedMetric(t, 'max_connections_per_client'), 2, 'each refusal counted once');
    assert.equal(await refusedMetric(t, 'max_connections'), 0);
  });

  it("gives a closed connection's slot back", async () => {
    held.shift()!.destroy();
    const again = await waitFor(
      async () => {
        const s = await open(t.port, '127.0.0.1', 'GET /again HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
        if (await closedAtOnce(s)) return null;
        return s;
      },
      3000,
      'a freed slot taken again',
    );
    again.destroy();
  });
});

describe('--max-connections-per-client behind the PROXY protocol and a trusted proxy', () => {
  let t: TestServer;
  const held: Socket[] = [];
  before(async () => {
    t = await startTestServer({
      proxyProtocol: ['http'],
      maxConnections: 1000,
      maxConnectionsPerClient: 3,
      headersTimeoutMs: 20_000,
      requestTimeoutMs: 30_000,
    });
  });
  after(async () => {
    for (const s of held) s.destroy();
    await t.close();
  });

  it("counts the PROXY header's source, not the proxy, and an IPv6 client by its /64", async () => {
    // Many clients through one proxy (all from 127.0.0.1): none is refused.
    for (let i = 1; i <= 6; i++) {
      held.push(await open(t.port, '127.0.0.1', `PROXY TCP4 198.51.100.${i} 192.0.2.1 4000 80\r\n${PARTIAL}`));
    }
    // One source: its fourth connection is refused, once the header names it.
    for (let i = 0; i < 3; i++)
      held.push(await open(t.port, '127.0.0.1', `PROXY TCP4 203.0.113.7 192.0.2.1 ${4000 + i} 80\r\n${PARTIAL}`));
    assert.equal(
      await closedAtOnce(
        await open(
          t.port,
          '127.0.0.1',
          'PROXY TCP4 203.0.113.7 192.0.2.1 4100 80\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n',
        ),
      ),
      true,
    );
    // Three addresses of one IPv6 /64 are one client: the fourth, another address again, is refused.
    for (let i = 1; i <= 3; i++)
      held.push(await open(t.port, '127.0.0.1', `PROXY TCP6 2001:db8:1:2::${i} 2001:db8::1 4000 80\r\n${PARTIAL}`));
    assert.equal(
      await closedAtOnce(
        await open(
          t.port,
          '127.0.0.1',
          'PROXY TCP6 2001:db8:1:2:ffff::9 2001:db8::1 4000 80\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n',
        ),
      ),
      true,
    );
    // Another /64 is another client.
    const other = await open(
      t.port,
      '127.0.0.1',
      'PROXY TCP6 2001:db8:1:3::1 2001:db8::1 4000 80\r\nGET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    );
    assert.equal(await closedAtOnce(other), false);
    const clients = t.logs.messages('connection refused: --max-connections-per-client reached').map((l) => l.client);
    assert.deepEqual(clients, ['203.0.113.7', '2001:db8:1:2::/64']);
  });

  it('does not hold a peer in --trusted-proxies to the share', async () => {
    const trusted = await startTestServer({
      maxConnections: 1000,
      maxConnectionsPerClient: 3,
      trustedProxies: new NetworkSet(['loopback']),
      headersTimeoutMs: 20_000,
    });
    const mine: Socket[] = [];
    try {
      for (let i = 0; i < 6; i++) mine.push(await open(trusted.port, '127.0.0.1', PARTIAL));
      assert.equal(
        await closedAtOnce(
          await open(trusted.port, '127.0.0.1', 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n'),
        ),
        false,
      );
      assert.equal(trusted.logs.messages('connection refused: --max-connections-per-client reached').length, 0);
    } finally {
      for (const s of mine) s.destroy();
      await trusted.close();
    }
  });
});

describe('--max-connections-per-client auto', () => {
  it('is a tenth of --max-connections, at least 10; a share as large as the limit is none', () => {
    assert.equal(connectionShare({ maxConnections: 10_000, maxConnectionsPerClient: 0 }), 1000);
    assert.equal(connectionShare({ maxConnections: 528, maxConnectionsPerClient: 0 }), 53, 'under --memory 128m');
    assert.equal(connectionShare({ maxConnections: 100, maxConnectionsPerClient: 0 }), 10);
    assert.equal(
      connectionShare({ maxConnections: 6, maxConnectionsPerClient: 0 }),
      0,
      'the floor of 10 is above the limit: no share',
    );
    assert.equal(connectionShare({ maxConnections: 1000, maxConnectionsPerClient: 1000 }), 0);
    assert.equal(connectionShare({ maxConnections: 1000, maxConnectionsPerClient: 7 }), 7);
  });
});
