// The renderings of an echo, by format name: the one table the HTTP stage looks a
// negotiated format up in (negotiate.ts chooses the name).
import type { Echo } from '../model.ts';
import { HTML_TYPE, renderHtml } from './html.ts';
import { JSON_TYPE, renderJson } from './json.ts';
import { TEXT_TYPE, renderText } from './text.ts';

/** `sse` is not a rendering but a stream of events, each carrying the JSON echo. */
export type Format = 'text' | 'json' | 'html' | 'sse';
export const FORMATS: readonly Format[] = ['text', 'json', 'html', 'sse'];

export interface Renderer {
  contentType: string;
  render(e: Echo): string;
}

export const RENDERERS: Record<Exclude<Format, 'sse'>, Renderer> = {
  text: { contentType: TEXT_TYPE, render: renderText },
  json: { contentType: JSON_TYPE, render: renderJson },
  html: { contentType: HTML_TYPE, render: renderHtml },
};
