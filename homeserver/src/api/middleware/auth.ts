import type { Middleware, ParameterizedContext } from 'koa';
import { missingToken } from '../../core/errors.js';
import type { Requester, SessionService } from '../../services/auth/sessions.js';

export interface AuthState {
  requester?: Requester;
}

/** The access token from `Authorization: Bearer` or (deprecated) the `access_token` query parameter. */
export function accessTokenOf(ctx: ParameterizedContext): string | undefined {
  const header = ctx.get('Authorization');
  if (header) {
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    return m?.[1];
  }
  const q = ctx.query.access_token;
  return typeof q === 'string' && q.length > 0 ? q : undefined;
}

/** Requires a valid access token and puts the requester in `ctx.state.requester`. */
export function requireAuth(sessions: SessionService): Middleware<AuthState> {
  return async function requireAuthMiddleware(ctx, next) {
    const token = accessTokenOf(ctx);
    if (!token) throw missingToken();
    const requester = await sessions.authenticate(token);
    ctx.state.requester = requester;
    // Not awaited: recording last_seen must never delay or fail the request (it logs its errors).
    void sessions.recordActivity(requester, ctx.ip);
    await next();
  };
}

/** Like requireAuth, but a request without a token passes through unauthenticated. */
export function optionalAuth(sessions: SessionService): Middleware<AuthState> {
  return async function optionalAuthMiddleware(ctx, next) {
    const token = accessTokenOf(ctx);
    if (token) {
      const requester = await sessions.authenticate(token);
      ctx.state.requester = requester;
      void sessions.recordActivity(requester, ctx.ip);
    }
    await next();
  };
}

export function requesterOf(ctx: { state: AuthState }): Requester {
  const r = ctx.state.requester;
  if (!r) throw missingToken();
  return r;
}
