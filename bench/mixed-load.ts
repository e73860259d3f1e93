// The mixed load of the memory figure: small GETs and 16 KiB POSTs on keep-alive
// HTTP/1.1 connections, HTTP/2 streams, WebSocket connections opened, used and
// closed, and Server-Sent Event streams opened and dropped, all at once, for a
// bounded time against 127.0.0.1. Each lane waits for its answer before the next
// request, so the load is closed-loop and cannot pile up.
import { Agent, request } from 'node:http';
import { connect as h2connect } from 'node:http2';
import WebSocket from 'ws';

export interface MixTarget {
  /** HTTP/1.1 and WebSocket port. */
  port: number;
  /** Cleartext HTTP/2 port (echo-server takes it on the same port). */
  h2port: number;
  ssePath: string;
}

export interface MixCounts {
  gets: number;
  posts: number;
  h2: number;
  websockets: number;
  sse: number;
  errors: number;
}

const HOST = '127.0.0.1';
const BODY = Buffer.alloc(16 * 1024, 'p');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function mixedLoad(target: MixTarget, seconds: number): Promise<MixCounts> {
  const until = performance.now() + seconds * 1000;
  const counts: MixCounts = { gets: 0, posts: 0, h2: 0, websockets: 0, sse: 0, errors: 0 };
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const running = () => performance.now() < until;

  const http1 = (method: string, body: Buffer | null) =>
    new Promise<boolean>((resolve) => {
      const req = request(
        {
          host: HOST,
          port: target.port,
          path: '/mix?x=1',
          method,
          agent,
          headers: body ? { 'Content-Length': body.length } : {},
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode === 200));
        },
      );
      req.setTimeout(10_000, () => req.destroy());
      req.on('error', () => resolve(false));
      req.end(body ?? undefined);
    });

  const getLane = async () => {
    while (running())
      if (await http1('GET', null)) counts.gets++;
      else counts.errors++;
  };
  const postLane = async () => {
    while (running())
      if (await http1('POST', BODY)) counts.posts++;
      else counts.errors++;
  };
  const h2Lane = async () => {
    while (running()) {
      // A session per 200 streams: sessions come and go too.
      const session = h2connect(`http://${HOST}:${target.h2port}`);
      session.on('error', () => {});
      for (let i = 0; i < 200 && running(); i++) {
        const ok = await new Promise<boolean>((resolve) => {
          const s = session.request({ ':path': '/mix?h2=1' });
          s.on('response', (h) => {
            s.resume();
            s.on('end', () => resolve(h[':status'] === 200));
          });
          s.on('error', () => resolve(false));
          s.end();
        });
        if (ok) counts.h2++;
        else counts.errors++;
      }
      session.close();
    }
  };
  const wsLane = async () => {
    while (running()) {
      const ok = await new Promise<boolean>((resolve) => {
        const ws = new WebSocket(`ws://${HOST}:${target.port}/mix`);
        let got = 0;
        const timer = setTimeout(() => ws.terminate(), 10_000);
        ws.on('message', () => {
          got++;
          if (got <= 5) ws.send(`message ${got}`);
          else ws.close(1000);
        });
        ws.on('close', () => {
          clearTimeout(timer);
          resolve(got > 5);
        });
        ws.on('error', () => {});
      });
      if (ok) counts.websockets++;
      else counts.errors++;
    }
  };
  const sseLane = async () => {
    while (running()) {
      const ok = await new Promise<boolean>((resolve) => {
        const req = request(
          {
            host: HOST,
            port: target.port,
            path: target.ssePath,
            agent: false,
            headers: { Accept: 'text/event-stream' },
          },
          (res) => {
            res.once('data', () => {
              // The first event (the echo) arrived: hold the stream a moment, then drop it.
              setTimeout(() => {
                req.destroy();
                resolve(res.statusCode === 200);
              }, 1500);
            });
          },
        );
        req.on('error', () => resolve(false));
        req.end();
      });
      if (ok) counts.sse++;
      else counts.errors++;
      await sleep(10);
    }
  };

  const lanes = [
    ...Array.from({ length: 8 }, getLane),
    ...Array.from({ length: 4 }, postLane),
    ...Array.from({ length: 4 }, h2Lane),
    ...Array.from({ length: 2 }, wsLane),
    ...Array.from({ length: 8 }, sseLane),
  ];
  await Promise.all(lanes);
  agent.destroy();
  return counts;
}
