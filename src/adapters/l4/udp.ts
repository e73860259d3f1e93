// The UDP echo. Each datagram is answered by at most one datagram, never more than
// three times its size (QUIC's anti-amplification factor): UDP sources can be forged,
// and an echo that answered a small datagram with a large one would be a reflector.
// In envelope mode the answer is, in order of preference, the full JSON envelope
// (peer, replica, size, payload); the envelope without its payload (`payload`
// omitted, `truncated: true`); or the exact bytes. --udp-mode echo always answers the
// exact bytes. A per-source rate and a global budget, both per one-second window,
// drop the rest, and every drop is counted. The table of sources holds only sources
// seen in the current window and at most MAX_SOURCES of them, whatever addresses
// clients claim; a new source beyond that is dropped as over its rate.
import { isUtf8 } from 'node:buffer';
import type { Config } from '../../config/settings.ts';
import type { Identity } from '../../echo/identity.ts';
import type { LimitedLog } from '../../ops/log-limit.ts';
import type { Metrics, UdpResult } from '../../ops/metrics.ts';
import { formatHostPort, normalizeIp } from '../../util/addresses.ts';
import type { DatagramSource } from '../../transport/handlers.ts';

/** The most sources tracked in one window. */
export const MAX_SOURCES = 10_000;
/** The answer is never larger than this many times the datagram. */
export const AMPLIFICATION = 3;
/** The largest UDP payload over IPv4 (65,535 less the IP and UDP headers): a larger answer could not be sent at all. */
export const MAX_DATAGRAM = 65_507;

export interface UdpEcho {
  datagram(msg: Buffer, from: DatagramSource, reply: (data: Uint8Array) => void): void;
}

export interface UdpDeps {
  metrics: Metrics | null;
  identity: Identity | null;
  /** One line per datagram would be too many: lines go through the rate-limited log (a burst, then a few a second, with a count of those held back). */
  log: LimitedLog | null;
  now?: () => number;
}

export function createUdpEcho(config: Config, deps: UdpDeps): UdpEcho {
  const { metrics, identity, log } = deps;
  const now = deps.now ?? (() => performance.now());
  let window = -1;
  let answered = 0;
  const bySource = new Map<string, number>();

  /** Null when the datagram may be answered, else why not. Counts it in its window. */
  function admit(source: string): UdpResult | null {
    const w = Math.floor(now() / 1000);
    if (w !== window) {
      window = w;
      answered = 0;
      bySource.clear();
    }
    if (answered >= config.udpMaxPps) return 'dropped_budget';
    const seen = bySource.get(source);
    if (seen === undefined && bySource.size >= MAX_SOURCES) return 'dropped_source_rate';
    if ((seen ?? 0) >= config.udpRatePerSource) return 'dropped_source_rate';
    bySource.set(source, (seen ?? 0) + 1);
    answered++;
    return null;
  }

  return {
    datagram(msg, from, reply) {
      const address = normalizeIp(from.address);
      const dropped = admit(address);
      if (dropped !== null) {
        metrics?.udpDatagram(dropped, msg.length, 0);
        return;
      }
      const peer = formatHostPort(address, from.port);
      const answer = config.udpMode === 'echo' ? msg : envelopeFor(msg, peer, identity);
      metrics?.udpDatagram('answered', msg.length, answer.length);
      log?.(
        'info',
        {
          protocol: 'udp',
          clientIp: address,
          peer,
          bytesIn: msg.length,
          bytesOut: answer.length,
          raw: answer === msg,
        },
        'udp',
      );
      reply(answer);
    },
  };
}

/** The identity's JSON, made once per identity object (the same one for every datagram). */
let identityOf: Identity | null = null;
let identityText = 'null';
function identityJson(identity: Identity | null): string {
  if (identity === null) return 'null';
  if (identity !== identityOf) {
    identityOf = identity;
    identityText = JSON.stringify(identity);
  }
  return identityText;
}

const FULL_UTF8 = ',"encoding":"utf8","payload":';
const FULL_BASE64 = ',"encoding":"base64","payload":';
const TRUNCATED = ',"truncated":true}';

/**
 * The largest answer the envelope mode gives a datagram: the envelope, or less of it,
 * or the datagram itself. The text is what JSON.stringify writes for the objects
 * `{ protocol, remoteAddr, identity, bytes, encoding, payload }` and `{ protocol,
 * remoteAddr, identity, bytes, truncated: true }`, put together from one head. The
 * payload is not even decoded when the envelope could not fit whatever it holds:
 * its JSON is never shorter than the datagram (escapes and base64 only lengthen it),
 * and no text is shorter in UTF-8 bytes than in characters.
 */
export function envelopeFor(msg: Buffer, remoteAddr: string, identity: Identity | null): Buffer {
  const limit = Math.min(AMPLIFICATION * msg.length, MAX_DATAGRAM);
  const head = `{"protocol":"udp","remoteAddr":${JSON.stringify(remoteAddr)},"identity":${identityJson(identity)},"bytes":${msg.length}`;
  // The shortest the full envelope could be: the payload as at least its own bytes, quoted, and the closing brace.
  if (head.length + FULL_UTF8.length + msg.length + 3 <= limit) {
    const utf8 = isUtf8(msg);
    const full = Buffer.from(
      utf8
        ? `${head}${FULL_UTF8}${JSON.stringify(msg.toString('utf8'))}}`
        : `${head}${FULL_BASE64}"${msg.toString('base64')}"}`,
    );
    if (full.length <= limit) return full;
  }
  if (head.length + TRUNCATED.length > limit) return msg;
  const bare = Buffer.from(head + TRUNCATED);
  return bare.length <= limit ? bare : msg;
}
