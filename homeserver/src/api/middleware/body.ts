import type { Middleware, ParameterizedContext } from 'koa';
import { isObject } from '../../core/json.js';
import { notJson, tooLarge } from '../../core/errors.js';

declare module 'koa' {
  interface Request {
    /** The parsed JSON object body; `{}` when the request has none. */
    json: Record<string, unknown>;
    /** The body's text, for handlers that must parse it strictly (event content). */
    jsonText: string;
  }
}

/**
 * Reads and parses JSON bodies with a hard size limit. The body must be a JSON
 * object (every client-server request body is but uploads, which `skip` selects); anything else is M_NOT_JSON.
 */
export function jsonBody(maxBytes: number, skip: (ctx: ParameterizedContext) => boolean = () => false): Middleware {
  return async function jsonBodyMiddleware(ctx, next) {
    ctx.request.json = {};
    ctx.request.jsonText = '';
    // Bodies that are not JSON (media uploads) are left unread for their handler to stream.
    if (ctx.method === 'GET' || ctx.method === 'HEAD' || ctx.method === 'OPTIONS' || skip(ctx)) {
      return next();
    }
    const declared = ctx.request.length;
    if (declared !== undefined && declared > maxBytes) throw tooLarge(`Request body exceeds ${maxBytes} bytes`);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) throw tooLarge(`Request body exceeds ${maxBytes} bytes`);
      chunks.push(chunk);
    }
    const raw = Buffer.concat(chunks);
    if (raw.length > 0) {
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
      } catch {
        throw notJson('Body is not valid UTF-8');
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw notJson('Content not JSON.');
      }
      if (!isObject(parsed)) throw notJson('Body must be a JSON object');
      ctx.request.json = parsed;
      ctx.request.jsonText = text;
    }
    await next();
  };
}
