// JSON rendering: the Echo object as is; its field names are the documented contract.
import type { Echo } from '../model.ts';

export const JSON_TYPE = 'application/json; charset=utf-8';

export function renderJson(e: Echo): string {
  return JSON.stringify(e) + '\n';
}
