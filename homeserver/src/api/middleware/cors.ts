import type { Middleware } from 'koa';

/** The spec requires permissive CORS on client API endpoints so browser clients work. */
export function cors(): Middleware {
  return async function corsMiddleware(ctx, next) {
    ctx.set('Access-Control-Allow-Origin', '*');
    ctx.set('Access-Control-Allow-Methods', 'GET, HEAD, POST, PUT, DELETE, OPTIONS');
    ctx.set('Access-Control-Allow-Headers', 'X-Requested-With, Content-Type, Authorization');
    if (ctx.method === 'OPTIONS') {
      ctx.status = 204;
      return;
    }
    await next();
  };
}
