// The echo: every request that is not an operations endpoint. Controls are read
// first (a bad one is a 400 before the body is touched) and their effects applied
// here (reading them has none), then the body within its limits, then the answer:
// the echo rendered in the negotiated format, an event stream, or a generated body
// of the requested size.
import { HTML_CSP } from '../echo/render/html.ts';
import { RENDERERS } from '../echo/render/renderers.ts';
import type { Representation } from '../echo/render/negotiate.ts';
import { EMPTY_BODY, buildEcho, type BodyResult, type Echo } from '../echo/model.ts';
import { clip, formatDuration } from '../util/parse.ts';
import type { HttpContext } from './context.ts';
import { controlledStatus } from './controlled-status.ts';
import { chooseValues, type CompressAsk, type Controls } from '../controls/table.ts';
import { acceptEncodingOf, compressBody, negotiateCoding } from './compress.ts';
import { ControlError, controlInput, parseControls, pickRepresentation } from '../controls/read.ts';
import { faultRefusal, pickFault } from '../controls/faults.ts';
import type { HandlerExchange } from './exchange.ts';
import { delay } from './delay.ts';
import { GeneratedBody } from './generated-body.ts';
import { attemptControls } from './fail-first.ts';
import { answerSick, sickAnswerOf } from './sick.ts';
import { readDefaultControls, withDefaults } from './default-controls.ts';
import { chunkedWrite, pacedWrite, rateRefusal } from './paced-body.ts';
import { requestOriginAllowed } from './origin.ts';
import { fail } from './refusals.ts';
import { declaredLength, readRequestBody } from './request-body.ts';
import { answerHeaders, beginBody, sendText, sendWith } from './answer.ts';

/** Where the echo goes when the client asked for an event stream (adapters/sse/). */
export interface EventStreams {
  send(x: HandlerExchange, echo: Echo, controls: Controls | null): void;
  /** Ends every open stream (shutdown). */
  endAll(): void;
}

/** What the controls asked for, or the answer refusing them. */
type Asked = { format: Representation; controls: Controls | null; rateSource: string } | ControlError;

export function createEchoHandler(ctx: HttpContext, events: EventStreams): (x: HandlerExchange, q: number) => void {
  const { config, health } = ctx;
  const generated = new GeneratedBody();
  const sick = sickAnswerOf(config.sickAnswer);
  const defaults = readDefaultControls(config);

  /** Reads what the request asks for, changing nothing: serveEcho applies it. */
  function readControls(x: HandlerExchange, q: number): Asked {
    const { scan } = x;
    try {
      const own = controlInput(x.target, q, scan.controls, config.controls);
      // Only the defaults: parsed once at start (a copy, since a distribution's pick is per exchange).
      const onlyDefaults = own === null && defaults !== null && defaults.input.get('format') === undefined;
      const input = defaults === null ? own : withDefaults(own, defaults);
      const format = pickRepresentation(onlyDefaults ? null : input, scan.accept, config.sse);
      if (format === 'sse' && !requestOriginAllowed(x, config)) {
        return new ControlError(
          `origin ${clip(scan.origin ?? '')} may not open event streams here (--allowed-origins)`,
          403,
        );
      }
      const controls = onlyDefaults ? { ...defaults.controls } : input === null ? null : parseControls(input, config);
      const refusal = faultRefusal(controls?.fault ?? null, format === 'sse', x.protocol === 'h2');
      if (refusal !== null) return new ControlError(refusal);
      // Picked now, once: the fast path below, the delay and the answer's head all see this value.
      if (controls !== null) chooseValues(controls, ctx.deps.random);
      // An event stream is paced by --sse-interval already.
      if (format === 'sse' && controls?.rate != null)
        return new ControlError(`invalid ${input!.get('rate')!.source}: an event stream is not sent at a rate`);
      if (controls?.chunks != null) {
        const source = input!.get('chunks')!.source;
        if (format === 'sse') return new ControlError(`invalid ${source}: an event stream is sent in pieces already`);
        if (controls.rate != null)
          return new ControlError(`invalid ${source}: a body is sent at a rate or in pieces, not both`);
        const waits = (controls.chunks - 1) * (controls.chunkDelayMs ?? 0);
        if (controls.delayMs + waits > config.maxDelayMs) {
          return new ControlError(
            `invalid ${source}: ${controls.chunks} pieces ${formatDuration(controls.chunkDelayMs ?? 0)} apart${controls.delayMs > 0 ? ` after a delay of ${formatDuration(controls.delayMs)}` : ''} take over the maximum of ${formatDuration(config.maxDelayMs)} (--max-delay)`,
          );
        }
      }
      if (controls?.compress != null) {
        const source = input!.get('compress')!.source;
        // A compressor holds bytes back: pieces and rates would no longer be what was asked.
        if (format === 'sse') return new ControlError(`invalid ${source}: an event stream is not compressed`);
        if (controls.size !== null)
          return new ControlError(`invalid ${source}: a generated body is random bytes, which do not compress`);
        if (controls.rate != null || controls.chunks != null)
          return new ControlError(`invalid ${source}: a body is compressed or sent at a rate or in pieces, not both`);
      }
      if (controls?.rate != null && controls.size !== null) {
        const refused = rateRefusal(
          input!.get('rate')!.source,
          controls.rate,
          controls.size,
          controls.delayMs,
          config.maxDelayMs,
        );
        if (refused !== null) return new ControlError(refused);
      }
      return { format, controls, rateSource: input?.get('rate')?.source ?? '' };
    } catch (err) {
      if (err instanceof ControlError) return err;
      throw err;
    }
  }

  function sendEcho(
    x: HandlerExchange,
    body: BodyResult,
    declared: number,
    format: Representation,
    controls: Controls | null,
    rateSource: string,
  ): void {
    const info = x.requestInfo(declared, body);
    const echo = buildEcho(info, ctx.echoContext);
    if (format === 'sse') {
      events.send(x, echo, controls);
      return;
    }
    const renderer = RENDERERS[format];
    const out = renderer.render(echo);
    // The operator's default applies only where the control itself could.
    const compress =
      controls?.compress ??
      (config.compress === 'auto' && controls?.rate == null && controls?.chunks == null ? 'auto' : null);
    if (compress !== null) {
      sendCompressed(x, compress, info.rawHeaders, renderer.contentType, format === 'html', out, controls!);
      return;
    }
    const length = Buffer.byteLength(out);
    const chunks = controls?.chunks ?? null;
    // In pieces: no Content-Length, so HTTP/1.1 sends each piece as one chunk.
    const headers = answerHeaders(renderer.contentType, chunks === null ? length : null, x.requestId);
    if (format === 'html') headers.push('Content-Security-Policy', HTML_CSP);
    if (chunks !== null && x.method !== 'HEAD') {
      if (!beginBody(x, controlledStatus(x, controls, headers, ctx.deps.random), headers)) return;
      const bytes = Buffer.from(out);
      chunkedWrite(
        x,
        length,
        chunks,
        controls!.chunkDelayMs ?? 0,
        (offset, most) => bytes.subarray(offset, offset + most),
        (n) => {
          x.bytesOut = n;
        },
      );
      return;
    }
    const rate = controls?.rate ?? null;
    if (rate === null || x.method === 'HEAD') {
      sendWith(x, controlledStatus(x, controls, headers, ctx.deps.random), headers, out, length);
      return;
    }
    // The echo's size is known only now, once rendered (after any delay).
    const refused = rateRefusal(rateSource, rate, length, controls!.delayMs, config.maxDelayMs);
    if (refused !== null) {
      sendText(x, 400, refused + '\n');
      return;
    }
    if (!beginBody(x, controlledStatus(x, controls, headers, ctx.deps.random), headers)) return;
    const bytes = Buffer.from(out);
    pacedWrite(
      x,
      length,
      rate,
      (offset, most) => bytes.subarray(offset, offset + most),
      (n) => {
        x.bytesOut = n;
      },
    );
  }

  function sendCompressed(
    x: HandlerExchange,
    ask: CompressAsk,
    rawHeaders: readonly string[],
    type: string,
    html: boolean,
    out: string,
    controls: Controls,
  ): void {
    const coding = negotiateCoding(ask, acceptEncodingOf(rawHeaders));
    if (coding === 'refuse') {
      sendText(x, 406, `echo_compress=${ask}: the client does not accept ${ask} (Accept-Encoding)\n`, [
        'Vary',
        'Accept-Encoding',
      ]);
      return;
    }
    const bytes = coding === null ? Buffer.from(out) : compressBody(coding, out);
    const headers = answerHeaders(type, bytes.length, x.requestId);
    if (coding !== null) headers.push('Content-Encoding', coding);
    headers.push('Vary', 'Accept-Encoding');
    if (html) headers.push('Content-Security-Policy', HTML_CSP);
    if (!x.head(controlledStatus(x, controls, headers, ctx.deps.random), headers)) return;
    if (x.method === 'HEAD') {
      x.end();
      return;
    }
    // What goes on the wire: the compressed bytes.
    x.bytesOut = bytes.length;
    x.end(bytes);
  }

  function sendGenerated(x: HandlerExchange, controls: Controls, size: number): void {
    const headers = answerHeaders('application/octet-stream', controls.chunks == null ? size : null, x.requestId);
    if (!beginBody(x, controlledStatus(x, controls, headers, ctx.deps.random), headers)) return;
    if (x.method === 'HEAD') {
      x.end();
      return;
    }
    if (controls.chunks != null)
      generated.chunked(x, size, controls.chunks, controls.chunkDelayMs ?? 0, (n) => {
        x.bytesOut = n;
      });
    else if (controls.rate != null)
      generated.paced(x, size, controls.rate, (n) => {
        x.bytesOut = n;
      });
    else
      generated.pipe(x, size, (n) => {
        x.bytesOut = n;
      });
  }

  return function serveEcho(x, q) {
    const asked = readControls(x, q);
    if (asked instanceof ControlError) {
      sendText(x, asked.status, asked.message + '\n');
      return;
    }
    const { format, rateSource } = asked;
    const controls = asked.controls === null ? null : attemptControls(ctx.attempts, asked.controls, x.target);
    // The one control aimed at the server rather than the answer: set at once, so
    // probes see it even while this answer waits for its body or its delay.
    if (controls !== null && controls.health !== null) health.apply(controls.health);
    if (health.sick) {
      answerSick(x, sick);
      return;
    }
    const declared = declaredLength(x);
    const answer = (body: BodyResult) => {
      // After the body and the delay, so a fault can also be a slow one.
      const fault = controls?.fault == null ? null : pickFault(controls.fault, ctx.deps.random);
      if (fault !== null && x.fault(fault)) return;
      if (controls?.size != null) sendGenerated(x, controls, controls.size);
      else sendEcho(x, body, declared, format, controls, rateSource);
    };
    // The common case, a request without body, delay, event stream or generated body,
    // is answered right here (its end closes the exchange at once); everything slower
    // closes when its response does.
    if (
      declared === 0 &&
      format !== 'sse' &&
      (controls === null ||
        (controls.delayMs === 0 && controls.size === null && controls.rate == null && controls.chunks == null))
    ) {
      answer(EMPTY_BODY);
      return;
    }
    readRequestBody(ctx, x, declared, config.maxEchoBody, (body) => {
      if (controls === null || controls.delayMs === 0) {
        answer(body);
        return;
      }
      delay(x, controls.delayMs, () => {
        try {
          answer(body);
        } catch (err) {
          fail(ctx, x, err); // runs from a timer, outside every other guard
        }
      });
    });
  };
}
