// The baseline (plain JavaScript, so no type stripping inflates its memory): the least a node:http server can do to answer like echo-server.
// It renders the article's six lines (or the same fields as JSON), echoes bodies,
// streams 1 MiB and holds delayed requests, with no limits, logs or metrics.
// Its figures are the ceiling for Node on the machine running the benchmark.
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? 8081);
const MIB = Buffer.alloc(1024 * 1024, 'x');

createServer((req, res) => {
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
  let bytes = 0;
  const chunks = [];
  req.on('data', (c) => { bytes += c.length; chunks.push(c); });
  req.on('end', () => {
    const answer = () => {
      const fields = {
        RemoteAddr: `${req.socket.remoteAddress}:${req.socket.remotePort}`, Method: req.method, RequestURI: url,
        Proto: `HTTP/${req.httpVersion}`, ContentLength: bytes, Headers: req.headers,
      };
      // Like echo-server, a body comes back as a JSON string, so both answers are the same size.
      if (bytes > 0) fields.Body = Buffer.concat(chunks).toString('utf8');
      const json = req.headers.accept === 'application/json';
      const body = json ? JSON.stringify(fields) : Object.entries(fields).map(([k, v]) => `${k}: ${typeof v === 'object' || k === 'Body' ? JSON.stringify(v) : String(v)}`).join('\n') + '\n';
      res.writeHead(200, { 'Content-Type': json ? 'application/json' : 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (url.startsWith('/delay')) setTimeout(answer, 5000);
    else answer();
  });
}).listen(port, '127.0.0.1');
