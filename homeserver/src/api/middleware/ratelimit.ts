import type { Middleware, ParameterizedContext } from 'koa';
import type { RateLimitRule } from '../../core/config.js';
import { limitExceeded } from '../../core/errors.js';
import type { RateLimiter } from '../../bus/ratelimit.js';
import type { AuthState } from './auth.js';

/** Rate-limits by the authenticated user when there is one, else by client IP. */
export function rateLimit(limiter: RateLimiter, action: string, rule: RateLimitRule): Middleware<AuthState> {
  return async function rateLimitMiddleware(ctx, next) {
    await enforceRateLimit(limiter, action, rule, ctx);
    await next();
  };
}

export async function enforceRateLimit(
  limiter: RateLimiter,
  action: string,
  rule: RateLimitRule,
  ctx: ParameterizedContext<AuthState>,
): Promise<void> {
  const who = ctx.state.requester ? `u:${ctx.state.requester.userId}` : `ip:${ctx.ip}`;
  const decision = await limiter.take(`${action}:${who}`, rule);
  if (!decision.allowed) throw limitExceeded(decision.retryAfterMs);
}
