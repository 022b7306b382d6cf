import type { Middleware } from 'koa';
import { MatrixError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';

/**
 * Turns every failure into a Matrix error body. MatrixErrors keep their status;
 * anything else is logged and answered as a 500 M_UNKNOWN without details.
 */
export function matrixErrors(logger: Logger): Middleware {
  return async function matrixErrorMiddleware(ctx, next) {
    try {
      await next();
    } catch (err) {
      if (err instanceof MatrixError) {
        ctx.status = err.status;
        ctx.body = err.body();
        for (const [k, v] of Object.entries(err.headers)) ctx.set(k, v);
        return;
      }
      // Koa/http-errors raised by the framework itself (e.g. a malformed URI).
      const status = (err as { status?: number; expose?: boolean }).status;
      if (typeof status === 'number' && status >= 400 && status < 500) {
        ctx.status = status;
        ctx.body = { errcode: status === 413 ? 'M_TOO_LARGE' : 'M_UNKNOWN', error: 'Bad request' };
        return;
      }
      logger.error({ err, method: ctx.method, path: ctx.path }, 'unhandled error');
      ctx.status = 500;
      ctx.body = { errcode: 'M_UNKNOWN', error: 'Internal server error' };
    }
  };
}
