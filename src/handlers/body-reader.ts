// Request bodies are streamed and counted; only the first `keep` bytes are held for
// the echo, so a large upload costs a counter, not memory.
import type { Readable } from 'node:stream';
import type { BodyResult } from '../echo/model.ts';

export class BodyTooLarge extends Error {
  readonly limit: number;
  constructor(limit: number) {
    super(`request body exceeds the limit of ${limit} bytes`);
    this.limit = limit;
  }
}

export function readBody(stream: Readable, maxBytes: number, keep: number): Promise<BodyResult> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let bytes = 0;
    const onData = (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > maxBytes) {
        cleanup();
        reject(new BodyTooLarge(maxBytes));
        return;
      }
      if (kept < keep) {
        const part = kept + chunk.length <= keep ? chunk : chunk.subarray(0, keep - kept);
        chunks.push(part);
        kept += part.length;
      }
    };
    const onEnd = () => {
      cleanup();
      const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, kept);
      resolve({ bytes, kept: buf, truncated: bytes > kept });
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onClose = () => {
      if (!stream.readableEnded) onError(new Error('request aborted'));
    };
    const cleanup = () => {
      stream.off('close', onClose);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}
