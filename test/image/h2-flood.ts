// An HTTP/2 flood from one client process, run as a child of the memory-limit test
// so that its own memory and CPU stay apart from the test's:
//   node h2-flood.ts PORT CONNECTIONS STREAMS MODE SECONDS
// MODE `delay`: GET /?echo_delay=20s; MODE `livez`: POST /livez whose body never comes
// (HEADERS without END_STREAM, then nothing). Each session keeps STREAMS streams
// open, opening a new one whenever one ends (an answer, a refusal) as a retrying
// attacker would; a session the server closes is replaced, until SECONDS pass.
// On its last line it prints what it saw as JSON.
import { connect, type ClientHttp2Session } from 'node:http2';

const [port, connections, streams, mode, seconds] = process.argv.slice(2).map((a, i) => (i === 3 ? a : Number(a))) as [
  number,
  number,
  number,
  string,
  number,
];
const headers =
  mode === 'livez' ? { ':method': 'POST', ':path': '/livez' } : { ':method': 'GET', ':path': '/?echo_delay=20s' };
const seen: Record<string, number> = {};
const count = (k: string) => {
  seen[k] = (seen[k] ?? 0) + 1;
};
const until = performance.now() + seconds * 1000;
let peakOpen = 0;
let open = 0;
const live = new Set<ClientHttp2Session>();

function stream(s: ClientHttp2Session): void {
  if (s.closed || s.destroyed || performance.now() > until) return;
  let r;
  try {
    r = s.request(headers, { endStream: mode !== 'livez' });
  } catch {
    return; // the session is going away
  }
  r.on('response', (h) => count(`status ${h[':status']}`));
  r.on('error', () => {});
  r.on('close', () => {
    if (r.rstCode !== 0 && r.rstCode !== 8) count(`rst ${r.rstCode}`);
    // A little later, not at once: a retry loop on the same tick would only measure this client.
    setImmediate(() => stream(s));
  });
  r.resume();
}

function session(): void {
  if (performance.now() > until) return;
  count('sessions');
  const s = connect(`http://127.0.0.1:${port}`, { settings: { enablePush: false } });
  live.add(s);
  s.on('error', (err: NodeJS.ErrnoException) => count(`error ${err.code ?? err.message}`));
  s.on('goaway', (code: number) => count(`goaway ${code}`));
  let connected = false;
  s.on('connect', () => {
    connected = true;
    peakOpen = Math.max(peakOpen, ++open);
    for (let i = 0; i < streams; i++) stream(s);
  });
  s.on('close', () => {
    live.delete(s);
    if (connected) open--;
    setTimeout(session, 100);
  });
}

for (let i = 0; i < connections; i++) session();
setTimeout(
  () => {
    for (const s of live) s.destroy();
    console.log(JSON.stringify({ ...seen, peakOpen }));
    process.exit(0);
  },
  seconds * 1000 + 500,
);
