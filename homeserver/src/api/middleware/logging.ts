import type { Middleware } from 'koa';
import { redactUrl, type Logger } from '../../core/logger.js';

/** One structured line per request; query-string secrets are blanked. */
export function requestLog(logger: Logger): Middleware {
  return async function requestLogMiddleware(ctx, next) {
    const start = performance.now();
    try {
      await next();
    } finally {
      const ms = Math.round((performance.now() - start) * 10) / 10;
      const requester = ctx.state.requester as { userId: string } | undefined;
      logger.info(
        { method: ctx.method, url: redactUrl(ctx.url), status: ctx.status, ms, user: requester?.userId },
        'request',
      );
    }
  };
}
