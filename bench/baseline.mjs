// The baseline (plain JavaScript, so no type stripping inflates its memory): the least a node:http server can do to answer like echo-server.
// It renders the article's six lines (or the same fields as JSON), echoes bodies,
// streams 1 MiB and holds delayed requests, with no limits, logs or metrics.
// Its figures are the ceiling for Node on the machine running the benchmark.
// For the mixed-load memory figure it also answers Server-Sent Events (`/sse`),
// WebSocket upgrades (the `ws` library, as echo-server) and cleartext HTTP/2 on a
// second port (argv[3]), the least each protocol needs.
import { createServer } from 'node:http';
import { createServer as createH2 } from 'node:http2';
import { clearInterval, setInterval } from 'node:timers';

const port = Number(process.argv[2] ?? 8081);
const h2port = Number(process.argv[3] ?? 0);
const MIB = Buffer.alloc(1024 * 1024, 'x');

function handle(req, res) {
  const url = req.url ?? '/';
  if (url.startsWith('/livez')) {
    res.end('ok\n');
    return;
  }
  if (url.startsWith('/1mib')) {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': MIB.length });
    res.end(MIB);
    return;
  }
  if (url.startsWith('/sse')) {
    res.writeHead(200, { 'Content-Type': 'text/event-stream' });
    res.write(`event: echo\ndata: ${JSON.stringify({ url, headers: req.headers })}\n\n`);
    let n = 0;
    const timer = setInterval(() => {
      res.write(`event: tick\nid: ${++n}\ndata: {"n":${n}}\n\n`);
      if (n >= 10) {
        clearInterval(timer);
        res.end();
      }
    }, 1000);
    res.on('close', () => clearInterval(timer));
    return;
  }
  let bytes = 0;
  const chunks = [];
  req.on('data', (c) => {
    bytes += c.length;
    chunks.push(c);
  });
  req.on('end', () => {
    const answer = () => {
      const fields = {
        RemoteAddr: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
        Method: req.method,
        RequestURI: url,
        Proto: `HTTP/${req.httpVersion}`,
        ContentLength: bytes,
        Headers: req.headers,
      };
      // Like echo-server, a body comes back as a JSON string, so both answers are the same size.
      if (bytes > 0) fields.Body = Buffer.concat(chunks).toString('utf8');
      const json = req.headers.accept === 'application/json';
      const body = json
        ? JSON.stringify(fields)
        : Object.entries(fields)
            .map(([k, v]) => `${k}: ${typeof v === 'object' || k === 'Body' ? JSON.stringify(v) : String(v)}`)
            .join('\n') + '\n';
      res.writeHead(200, {
        'Content-Type': json ? 'application/json' : 'text/plain; charset=utf-8',
        'Content-Length': Buffer.byteLength(body),
      });
      res.end(body);
    };
    if (url.startsWith('/delay')) setTimeout(answer, 5000);
    else answer();
  });
}

const server = createServer(handle).listen(port, '127.0.0.1');
if (h2port > 0) {
  createH2(handle).listen(h2port, '127.0.0.1');
  // Loaded only for the mixed load, as echo-server loads it on the first upgrade.
  server.on('upgrade', async (req, socket, head) => {
    const { WebSocketServer } = await import('ws');
    const wss = (globalThis.wss ??= new WebSocketServer({ noServer: true }));
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(JSON.stringify({ url: req.url, headers: req.headers }));
      ws.on('message', (data, binary) => ws.send(data, { binary }));
    });
  });
}
