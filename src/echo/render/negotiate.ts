// Choose what answers a request from the Accept header (with q-values), or from the
// explicit echo_format override: a rendering of the echo, or an event stream.
// Results are cached per distinct Accept value, because load generators send the
// same one millions of times.
import { FORMATS, type Format } from './renderers.ts';

/**
 * What negotiation picks: a rendering of the echo (a Format, see RENDERERS), or
 * `sse`, an event stream whose events carry the JSON echo. The stream is not a
 * rendering, so it is not a Format: the HTTP stage serves it on its own path.
 */
export type Representation = Format | 'sse';
/** Every value negotiation may pick, in the order the echo_format control lists them. */
export const REPRESENTATIONS: readonly Representation[] = [...FORMATS, 'sse'];

/** Media ranges each representation answers to, most specific first. */
const MEDIA: [Representation, string][] = [
  ['text', 'text/plain'],
  ['json', 'application/json'],
  ['html', 'text/html'],
  ['html', 'application/xhtml+xml'],
  ['sse', 'text/event-stream'],
];

const cache = new Map<string, Representation>();
const CACHE_LIMIT = 256;

export function negotiate(accept: string | undefined, sse = true): Representation {
  if (accept === undefined || accept === '' || accept === '*/*') return 'text';
  const hit = cache.get(accept);
  if (hit !== undefined) return hit === 'sse' && !sse ? choose(accept, false) : hit;
  const chosen = choose(accept, true);
  if (chosen === 'sse' && !sse) return choose(accept, false);
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(accept, chosen);
  return chosen;
}

/**
 * Highest q wins; at equal q an exact media type beats `type/*`, which beats `*\/*`;
 * then the earlier entry in the header wins. Without a usable match: text.
 */
function choose(accept: string, sse: boolean): Representation {
  let best: Representation = 'text';
  let bestQ = 0;
  let bestSpecificity = -1;
  for (const part of accept.slice(0, 4096).split(',')) {
    const [rangeRaw = '', ...params] = part.split(';');
    const range = rangeRaw.trim().toLowerCase();
    let q = 1;
    for (const p of params) {
      const [k, v] = p.split('=');
      if (k?.trim().toLowerCase() === 'q' && v !== undefined) {
        const n = Number(v.trim());
        q = Number.isFinite(n) ? Math.min(Math.max(n, 0), 1) : 0;
      }
    }
    if (q <= 0) continue;
    const match = matchRange(range);
    if (match === null || (match[0] === 'sse' && !sse)) continue;
    const [format, specificity] = match;
    if (q > bestQ || (q === bestQ && specificity > bestSpecificity)) {
      best = format;
      bestQ = q;
      bestSpecificity = specificity;
    }
  }
  return best;
}

function matchRange(range: string): [Representation, number] | null {
  if (range === '*/*') return ['text', 0];
  for (const [format, media] of MEDIA) {
    if (range === media) return [format, 2];
  }
  if (range === 'text/*') return ['text', 1];
  if (range === 'application/*') return ['json', 1];
  return null;
}

/** An explicit `echo_format` value; null when it names nothing negotiation could pick. */
export function parseRepresentation(text: string): Representation | null {
  const s = text.trim().toLowerCase();
  return (REPRESENTATIONS as readonly string[]).includes(s) ? (s as Representation) : null;
}
