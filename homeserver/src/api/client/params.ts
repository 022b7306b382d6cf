import { badJson, invalidParam } from '../../core/errors.js';
import { CanonicalJsonError, parseStrictJson } from '../../core/canonical_json.js';

/** Query-string and body helpers shared by the client API areas. */

/** A query parameter given at most once (a repeated one is M_INVALID_PARAM, not silently one of them). */
export function queryString(v: unknown, name: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw invalidParam(`'${name}' must be given once`);
  return v;
}

/** A non-negative integer query parameter. */
export function intParam(v: unknown, name: string, dflt: number): number {
  const s = queryString(v, name);
  if (s === undefined) return dflt;
  if (!/^\d{1,9}$/.test(s)) throw invalidParam(`'${name}' must be a non-negative integer`);
  return Number(s);
}

/** A query parameter that must be one of `allowed`. */
export function enumParam<T extends string>(v: unknown, name: string, allowed: readonly T[]): T | undefined {
  const s = queryString(v, name);
  if (s !== undefined && !(allowed as readonly string[]).includes(s)) throw invalidParam(`'${name}' must be one of ${allowed.join(', ')}`);
  return s as T | undefined;
}

/**
 * The JSON body, parsed strictly: bodies carrying event content must be canonical JSON, which
 * forbids floats, integers beyond ±(2^53-1) and duplicate keys that JSON.parse would silently
 * round or merge.
 */
export function strictJsonBody(ctx: { request: { json: Record<string, unknown>; jsonText: string } }): Record<string, unknown> {
  if (ctx.request.jsonText === '') return ctx.request.json;
  try {
    parseStrictJson(ctx.request.jsonText);
  } catch (err) {
    if (err instanceof CanonicalJsonError) throw badJson(`Content is not valid canonical JSON: ${err.message}`);
    throw err;
  }
  return ctx.request.json;
}
