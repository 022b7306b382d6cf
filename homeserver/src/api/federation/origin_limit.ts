import type { Middleware } from 'koa';
import { limitExceeded } from '../../core/errors.js';
import type { FederationState } from '../middleware/x_matrix.js';

/**
 * At most `max` requests of one origin in flight at once (HEARTH_FEDERATION_MAX_CONCURRENT_PER_ORIGIN);
 * more get 429 M_LIMIT_EXCEEDED, so one busy or hostile peer cannot take every worker. Goes after
 * `requireXMatrix` (it counts by authenticated origin).
 */
export function originConcurrencyLimit(max: number, retryAfterMs = 1000): Middleware<FederationState> {
  const inFlight = new Map<string, number>();
  return async function originConcurrencyLimitMiddleware(ctx, next) {
    const origin = ctx.state.origin;
    if (!origin) return next();
    const current = inFlight.get(origin) ?? 0;
    if (current >= max) throw limitExceeded(retryAfterMs);
    inFlight.set(origin, current + 1);
    try {
      await next();
    } finally {
      const left = (inFlight.get(origin) ?? 1) - 1;
      if (left === 0) inFlight.delete(origin);
      else inFlight.set(origin, left);
    }
  };
}
