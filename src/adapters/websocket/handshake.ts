// What a WebSocket upgrade must carry (RFC 6455 section 4.2.1), checked before `ws`
// sees it, so every refusal is answered, logged and counted by the app. Kept apart
// from websocket.ts, which loads `ws` and is only imported on the first upgrade.
import type { IncomingMessage } from 'node:http';
import type { WebSocketEcho, WebSocketEvents, WebSocketSummary } from './echo.ts';

export type { WebSocketEcho, WebSocketEvents, WebSocketSummary };

const KEY = /^[A-Za-z0-9+/]{22}==$/;

/** Null when the handshake is well-formed; else the status and reason to refuse it with. */
export function websocketHandshakeProblem(req: IncomingMessage): readonly [number, string] | null {
  if (req.method !== 'GET') return [405, 'a WebSocket handshake must use GET'];
  if (req.headers['sec-websocket-version'] !== '13')
    return [426, 'unsupported Sec-WebSocket-Version; this server speaks 13'];
  const key = req.headers['sec-websocket-key'];
  if (key === undefined || !KEY.test(key.trim())) return [400, 'missing or malformed Sec-WebSocket-Key'];
  return null;
}
