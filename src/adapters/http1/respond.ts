// The HTTP answers written without an exchange's port: a complete answer on a
// response of the separate metrics listener, and the raw answers written on sockets
// node:http does not own (parser errors, refused upgrades, CONNECT, the h2c 101),
// with the same common headers as every answer (handlers/answer.ts).
import { STATUS_CODES, type IncomingMessage, type OutgoingHttpHeader, type ServerResponse } from 'node:http';
import { TEXT_TYPE } from '../../handlers/answer.ts';
import { bodilessHeaders, isBodiless } from './exchange.ts';

/**
 * Writes a complete answer: `headers` from answerHeaders (plus any extra), then the
 * body unless the request is HEAD or the status bodiless. Returns the body bytes sent.
 */
export function writeAnswer(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  headers: OutgoingHttpHeader[],
  body: string,
  length: number,
): number {
  if (isBodiless(status)) {
    res.writeHead(status, bodilessHeaders(headers) as string[]);
    res.end();
    return 0;
  }
  res.writeHead(status, headers as string[]);
  if (req.method === 'HEAD') {
    res.end();
    return 0;
  }
  res.end(body);
  return length;
}

/**
 * A complete HTTP/1.1 answer as bytes, for sockets node:http no longer (or not yet)
 * owns: parser errors, refused upgrades, CONNECT. The same common headers; it always
 * closes the connection. `extra` is [name, value, ...].
 */
export function rawAnswer(status: number, body: string, extra: readonly string[] = []): string {
  let head =
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\nContent-Type: ${TEXT_TYPE}\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n${RAW_COMMON}`;
  for (let i = 0; i < extra.length; i += 2) head += `${extra[i]}: ${extra[i + 1]}\r\n`;
  return `${head}Connection: close\r\n\r\n${body}`;
}

/** The head lines every raw answer carries, whatever its status. */
const RAW_COMMON = 'X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n';

/**
 * The `101 Switching Protocols` of an upgrade the transport carries out itself
 * (h2c), as bytes: the common headers, then the switch. It has no body.
 */
export function rawSwitchingProtocols(protocol: string): string {
  return `HTTP/1.1 101 ${STATUS_CODES[101]}\r\n${RAW_COMMON}Connection: Upgrade\r\nUpgrade: ${protocol}\r\n\r\n`;
}
