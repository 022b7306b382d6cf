import type { ParameterizedContext } from 'koa';
import type { Area } from '../../app.js';
import { MatrixError, forbidden, invalidParam, limitExceeded, missingParam } from '../../core/errors.js';
import { optionalInteger, optionalString, requireString, type JsonObject } from '../../core/json.js';
import { requireAuth, requesterOf, type AuthState } from '../middleware/auth.js';
import { enforceRateLimit } from '../middleware/ratelimit.js';
import { passwordStage } from './uia_stages.js';
import * as threepidStore from '../../storage/threepids.js';
import {
  EMAIL_SUBMIT_TOKEN_PATH,
  EMAIL_VALIDATE_PATH,
  canonicaliseEmail,
  requireClientSecret,
  type ThreepidPurpose,
  type ValidationState,
} from '../../services/threepids.js';
import { escapeHtml } from '../../services/threepid_mail.js';

const threepidAuthFailed = (msg: string) => new MatrixError(403, 'M_THREEPID_AUTH_FAILED', msg);

/** `{medium, address}` of a body naming one of the user's 3PIDs; email addresses in stored form. */
function namedThreepid(body: JsonObject): { medium: string; address: string } {
  const medium = requireString(body, 'medium', 16);
  if (medium !== 'email' && medium !== 'msisdn') throw invalidParam("'medium' must be 'email' or 'msisdn'");
  const address = requireString(body, 'address', 512);
  optionalString(body, 'id_server', 512); // accepted and ignored: we never bind on identity servers
  return { medium, address: medium === 'email' ? address.trim().toLowerCase() : address };
}

/** Administrative contact (spec: "Adding Account Administrative Contact Information"), email only. */
export const threepidArea: Area = (router, deps) => {
  const { services, bus, config, db } = deps;
  const auth = requireAuth(services.sessions);

  // POST /register|/account/3pid|/account/password /email/requestToken: one handler, three purposes.
  const requestToken = (purpose: ThreepidPurpose) => async (ctx: ParameterizedContext<AuthState>) => {
    await enforceRateLimit(bus.rateLimiter, 'requestToken', config.rateLimits.requestToken, ctx);
    const body = ctx.request.json;
    const clientSecret = requireClientSecret(body);
    const email = requireString(body, 'email', 512);
    const sendAttempt = optionalInteger(body, 'send_attempt');
    if (sendAttempt === undefined) throw missingParam('send_attempt');
    const nextLink = optionalString(body, 'next_link', 2048);
    if (purpose === 'register') {
      if (config.registration === 'closed') throw forbidden('Registration is disabled');
      if (config.registration !== 'email') {
        throw new MatrixError(400, 'M_THREEPID_MEDIUM_NOT_SUPPORTED', 'Registration on this server does not use email');
      }
    }
    // Also per address, so one inbox cannot be flooded from many IPs.
    const perAddress = await bus.rateLimiter.take(`requestToken-address:${canonicaliseEmail(email)}`, config.rateLimits.requestToken);
    if (!perAddress.allowed) throw limitExceeded(perAddress.retryAfterMs);
    ctx.body = await services.threepids.requestEmailToken({ email, clientSecret, sendAttempt, nextLink, purpose });
  };
  router.post('/register/email/requestToken', requestToken('register'));
  router.post('/account/3pid/email/requestToken', requestToken('bind'));
  router.post('/account/password/email/requestToken', requestToken('password_reset'));
  for (const path of ['/register/msisdn/requestToken', '/account/3pid/msisdn/requestToken', '/account/password/msisdn/requestToken']) {
    router.post(path, () => {
      throw new MatrixError(400, 'M_THREEPID_MEDIUM_NOT_SUPPORTED', 'This server does not support phone numbers');
    });
  }

  router.get('/account/3pid', auth, async (ctx) => {
    const rows = await threepidStore.listThreepids(db, requesterOf(ctx).userId);
    ctx.body = {
      threepids: rows.map((t) => ({
        medium: t.medium,
        address: t.address,
        validated_at: Number(t.validated_ts),
        added_at: Number(t.added_ts),
      })),
    };
  });

  router.post('/account/3pid/add', auth, async (ctx) => {
    const r = requesterOf(ctx);
    const body = ctx.request.json;
    const creds = { sid: requireString(body, 'sid', 255), client_secret: requireClientSecret(body) };
    // Checked before asking for the password, so an unclicked link is reported without a UIA round.
    const t = await services.threepids.checkValidated(creds, 'bind').catch((err: unknown) => {
      throw err instanceof MatrixError && err.errcode === 'M_UNAUTHORIZED' ? threepidAuthFailed(err.message) : err;
    });
    const uia = await services.uia.authenticate({
      endpoint: 'POST /account/3pid/add',
      userId: r.userId,
      auth: body.auth,
      flows: [['m.login.password']],
      validators: { 'm.login.password': passwordStage(deps, r.userId) },
    });
    await db.transaction(async (tx) => {
      if (!(await services.threepids.consume(tx, t.sid))) throw threepidAuthFailed('This email validation was already used or has expired');
      const added = await threepidStore.addThreepid(tx, { medium: t.medium, address: t.address, userId: r.userId, validatedTs: t.validated_ts });
      if (!added && (await threepidStore.findThreepidOwner(tx, t.medium, t.address)) !== r.userId) {
        throw new MatrixError(400, 'M_THREEPID_IN_USE', 'That email address is already in use on this server');
      }
    });
    await services.uia.finish(uia.session);
    ctx.body = {};
  });

  router.post('/account/3pid/delete', auth, async (ctx) => {
    const { medium, address } = namedThreepid(ctx.request.json);
    await threepidStore.deleteThreepid(db, requesterOf(ctx).userId, medium, address);
    // Nothing was ever bound on an identity server, so there is nothing to unbind.
    ctx.body = { id_server_unbind_result: 'no-support' };
  });

  router.post('/account/3pid/unbind', auth, (ctx) => {
    namedThreepid(ctx.request.json);
    ctx.body = { id_server_unbind_result: 'no-support' };
  });

  router.post('/account/3pid/bind', auth, (ctx) => {
    requireString(ctx.request.json, 'id_server', 512);
    throw new MatrixError(400, 'M_SERVER_NOT_TRUSTED', 'This server does not bind addresses on identity servers');
  });

  // Deprecated: the spec makes it an alias of /3pid/bind, whose identity-server check we cannot do.
  router.post('/account/3pid', auth, () => {
    throw threepidAuthFailed(
      'This server does not verify addresses with identity servers: use POST /account/3pid/email/requestToken, then /account/3pid/add',
    );
  });
};

const SUCCESS: Record<ThreepidPurpose, string> = {
  register: 'Your email address is confirmed. Go back to the app to finish creating your account.',
  bind: 'Your email address is confirmed. Go back to the app to finish adding it to your account.',
  password_reset: 'Your email address is confirmed. Go back to the app to finish resetting your password.',
};

/** A small self-contained HTML page; the URL holds secrets, so it is never cached, framed or referred. */
function page(ctx: ParameterizedContext, status: number, title: string, message: string, confirmButton?: string): void {
  ctx.status = status;
  ctx.type = 'text/html; charset=utf-8';
  ctx.set('Cache-Control', 'no-store');
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'");
  // A form without `action` posts back to this very URL (query string included).
  const form = confirmButton ? `<form method="post"><button type="submit">${escapeHtml(confirmButton)}</button></form>` : '';
  ctx.body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto;padding:0 1em;line-height:1.5">
<h1>${escapeHtml(title)}</h1><p>${escapeHtml(message)}</p>${form}
</body></html>`;
}

/**
 * Unprefixed routes the emailed links and `submit_url` point at; app.ts registers this Area on its
 * root router. GET on the link validates it (Identity Service API `GET .../submitToken` semantics:
 * a page, or a redirect to `next_link`), except for password resets, where it first asks for a click:
 * mail scanners follow links, and a reset validated by a scanner would hand the account to whoever
 * requested it.
 */
export const hearthEmailArea: Area = (router, { services, bus, config }) => {
  const limit = (ctx: ParameterizedContext<AuthState>) => enforceRateLimit(bus.rateLimiter, 'email-submit', config.rateLimits.client, ctx);

  const linkParams = (ctx: ParameterizedContext) => {
    const get = (k: string) => (typeof ctx.query[k] === 'string' ? (ctx.query[k] as string) : '');
    return { sid: get('sid'), clientSecret: get('client_secret'), token: get('token') };
  };

  const finish = async (ctx: ParameterizedContext, p: { sid: string; clientSecret: string; token: string }) => {
    const state: ValidationState = await services.threepids.submitToken(p.sid, p.clientSecret, p.token);
    if (state.nextLink) ctx.redirect(state.nextLink);
    else page(ctx, 200, 'Email address confirmed', SUCCESS[state.purpose]);
  };

  const showing = (handler: (ctx: ParameterizedContext<AuthState>) => Promise<void>) => async (ctx: ParameterizedContext<AuthState>) => {
    await limit(ctx);
    const p = linkParams(ctx);
    if (!p.sid || !p.clientSecret || !p.token) return page(ctx, 400, 'Link incomplete', 'This link is incomplete: open the whole link from the email.');
    try {
      await handler(ctx);
    } catch (err) {
      if (!(err instanceof MatrixError)) throw err;
      page(ctx, 400, 'Could not confirm your email address', err.message);
    }
  };

  router.get(
    EMAIL_VALIDATE_PATH,
    showing(async (ctx) => {
      const p = linkParams(ctx);
      const state = await services.threepids.describe(p.sid, p.clientSecret);
      if (state.purpose === 'password_reset' && !state.validated) {
        return page(ctx, 200, 'Reset your password?', `Confirm that you want to reset the password of the account with ${state.address}.`, 'Yes, reset my password');
      }
      await finish(ctx, p);
    }),
  );
  router.post(
    EMAIL_VALIDATE_PATH,
    showing((ctx) => finish(ctx, linkParams(ctx))),
  );

  // submit_url: the Identity Service API's `POST /validate/email/submitToken`, without an access token.
  router.post(EMAIL_SUBMIT_TOKEN_PATH, async (ctx) => {
    await limit(ctx);
    const body = ctx.request.json;
    const sid = requireString(body, 'sid', 255);
    const clientSecret = requireString(body, 'client_secret', 255);
    const token = requireString(body, 'token', 255);
    await services.threepids.submitToken(sid, clientSecret, token);
    ctx.body = { success: true };
  });
};
