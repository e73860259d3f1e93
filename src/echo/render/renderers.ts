// The renderings of an echo, by format name: the one table the HTTP stage looks a
// negotiated format up in (negotiate.ts chooses the name). An event stream is not
// among them: it carries the JSON echo in events and is served by the event-stream
// path, so a Format is always something this table renders.
import type { Echo } from '../model.ts';
import { HTML_TYPE, renderHtml } from './html.ts';
import { JSON_TYPE, renderJson } from './json.ts';
import { TEXT_TYPE, renderText } from './text.ts';

export const FORMATS = ['text', 'json', 'html'] as const;
export type Format = (typeof FORMATS)[number];

export interface Renderer {
  contentType: string;
  render(e: Echo): string;
}

export const RENDERERS: Record<Format, Renderer> = {
  text: { contentType: TEXT_TYPE, render: renderText },
  json: { contentType: JSON_TYPE, render: renderJson },
  html: { contentType: HTML_TYPE, render: renderHtml },
};
