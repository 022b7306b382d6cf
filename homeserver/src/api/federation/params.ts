/** Shared parsing for the room federation endpoints. */
import type { ParameterizedContext } from 'koa';
import { badJson } from '../../core/errors.js';
import { parseStrictJson, type JsonObject } from '../../core/canonical_json.js';

/** The body exactly as signed (strict canonical-JSON parse; X-Matrix already refused anything else). */
export function strictBody(ctx: ParameterizedContext): JsonObject {
  const text = (ctx.request as unknown as { jsonText?: string }).jsonText;
  const parsed = text ? parseStrictJson(text) : {};
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw badJson('The body must be a JSON object');
  return parsed as JsonObject;
}

/** A query parameter given once or repeated, as a list. */
export function queryList(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

export function queryInt(v: string | string[] | undefined, dflt: number): number {
  if (typeof v !== 'string') return dflt;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : dflt;
}
