// The few pieces of the HTTP/2 framing layer (RFC 9113, section 4) that the bytes
// rewritten on their way to node:http2 need: the h2c upgrade's injected request and
// the :authority placeholder of a connection's first request.

/** The client connection preface, `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`. */
export const PREFACE_LENGTH = 24;
export const FRAME_HEADER = 9;
/** The largest frame a peer may send before SETTINGS say otherwise (SETTINGS_MAX_FRAME_SIZE). */
export const MAX_FRAME = 16_384;
export const HEADERS = 0x1;
export const CONTINUATION = 0x9;
export const END_STREAM = 0x1;
export const END_HEADERS = 0x4;

export function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(FRAME_HEADER);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}
