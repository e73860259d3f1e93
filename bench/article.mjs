// What a user would run instead of echo-server: the article's six-line server
// written with node:http (its six lines, or the same fields as JSON for
// `Accept: application/json`), nothing read, limited or logged; plus, for the
// HTTP/2 rows, a bare node:http2 server on the stream API (h2c on argv[3], TLS on
// argv[4] with the key and certificate files argv[5], argv[6]). `/1mib` sends a
// 1 MiB buffer for the generated-response row. Plain JavaScript: no type stripping.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createH2, createSecureServer } from 'node:http2';

const [port = 8081, h2c = 0, h2tls = 0] = process.argv.slice(2, 5).map(Number);
const MIB = Buffer.alloc(1024 * 1024, 'x');

createServer((req, res) => {
  if (req.url.startsWith('/1mib')) return res.end(MIB);
  const f = { RemoteAddr: `${req.socket.remoteAddress}:${req.socket.remotePort}`, Method: req.method, RequestURI: req.url, Proto: `HTTP/${req.httpVersion}`, ContentLength: Number(req.headers['content-length'] ?? 0), Headers: req.headers };
  if (req.headers.accept === 'application/json') return res.end(JSON.stringify(f));
  res.end(`RemoteAddr: ${f.RemoteAddr}\nMethod: ${f.Method}\nRequestURI: ${f.RequestURI}\nProto: ${f.Proto}\nContentLength: ${f.ContentLength}\nHeaders: ${JSON.stringify(f.Headers)}\n`);
}).listen(port, '127.0.0.1');

function stream(s, h) {
  s.on('error', () => {});
  const addr = `${s.session.socket.remoteAddress}:${s.session.socket.remotePort}`;
  s.respond({ ':status': 200, 'content-type': 'text/plain; charset=utf-8' });
  s.end(`RemoteAddr: ${addr}\nMethod: ${h[':method']}\nRequestURI: ${h[':path']}\nProto: HTTP/2.0\nContentLength: ${Number(h['content-length'] ?? 0)}\nHeaders: ${JSON.stringify(h)}\n`);
}
if (h2c > 0) createH2().on('stream', stream).listen(h2c, '127.0.0.1');
if (h2tls > 0) createSecureServer({ key: readFileSync(process.argv[5]), cert: readFileSync(process.argv[6]), allowHTTP1: false }).on('stream', stream).listen(h2tls, '127.0.0.1');
