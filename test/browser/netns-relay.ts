// Runs inside Chromium's network namespace (see netns-chromium.sh): listens on each
// test server's port on 127.0.0.1 and ::1, and passes every connection to a Unix
// socket the test process serves, which connects it to the real server. Unix
// sockets are files, so they cross between network namespaces.
import { writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';

const dir = process.env.ECHO_RELAY_DIR!;
const ports = process.env.ECHO_RELAY_PORTS!.split(',').map(Number);
const parent = process.ppid;
let pending = 0;

for (const port of ports) {
  for (const host of ['127.0.0.1', '::1']) {
    pending++;
    const server = createServer((inbound) => {
      const outbound = connect(join(dir, `${port}.sock`));
      inbound.pipe(outbound).pipe(inbound);
      inbound.on('error', () => outbound.destroy());
      outbound.on('error', () => inbound.destroy());
      inbound.on('close', () => outbound.destroy());
      outbound.on('close', () => inbound.destroy());
    });
    const listening = () => {
      if (--pending === 0) writeFileSync(join(dir, 'ready'), '');
    };
    server.on('error', (err) => {
      if (host === '::1')
        listening(); // no IPv6 here: Chromium then uses 127.0.0.1
      else throw err;
    });
    server.listen({ port, host }, listening);
  }
}

// Chromium replaced the script that started this relay; once it exits, so does the relay.
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 200);
