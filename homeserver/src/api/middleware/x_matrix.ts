import type { Middleware } from 'koa';
import { MatrixError, badJson, forbidden } from '../../core/errors.js';
import { CanonicalJsonError, parseStrictJson, type JsonValue } from '../../core/canonical_json.js';
import type { Logger } from '../../core/logger.js';
import type { KeyRing } from '../../services/federation/key_ring.js';
import { parseServerName, type ServerNameAccess } from '../../services/federation/server_name.js';
import { XMatrixParseError, parseXMatrix, verifyRequest } from '../../services/federation/x_matrix.js';

export interface FederationState {
  /** The authenticated origin server of a federation request. */
  origin?: string;
}

const unauthorized = (msg: string) => new MatrixError(401, 'M_UNAUTHORIZED', msg);

export interface XMatrixDeps {
  serverName: string;
  keyRing: KeyRing;
  access: ServerNameAccess;
  logger: Logger;
}

/**
 * Verifies the `X-Matrix` Authorization of an incoming federation request (spec: "Request
 * Authentication") and puts the origin in `ctx.state.origin`. Missing, malformed or badly signed
 * headers, another destination, or a key we cannot get: 401 M_UNAUTHORIZED. An origin the allow/deny
 * lists refuse: 403 M_FORBIDDEN (checked before any key fetch, so a denied server costs nothing).
 * The signed content is the raw body text parsed strictly: the bytes the origin signed, not what a
 * lenient parser makes of them.
 */
export function requireXMatrix(deps: XMatrixDeps): Middleware<FederationState> {
  return async function xMatrixMiddleware(ctx, next) {
    const header = ctx.get('Authorization');
    if (!header) throw unauthorized('Missing X-Matrix Authorization header');
    let auth;
    try {
      auth = parseXMatrix(header);
    } catch (err) {
      if (err instanceof XMatrixParseError) throw unauthorized(`Malformed X-Matrix Authorization header: ${err.message}`);
      throw err;
    }
    if (!parseServerName(auth.origin)) throw unauthorized('The origin is not a valid server name');
    if (auth.destination !== undefined && auth.destination !== deps.serverName) {
      throw unauthorized(`The request is addressed to ${auth.destination}, not to this server`);
    }
    if (!deps.access.isAllowed(auth.origin)) throw forbidden('Federation with this server is not allowed');
    let content: JsonValue | undefined;
    if (ctx.request.jsonText) {
      try {
        content = parseStrictJson(ctx.request.jsonText);
      } catch (err) {
        if (err instanceof CanonicalJsonError) throw badJson(`The body is not canonical-JSON compatible: ${err.message}`);
        throw err;
      }
    }
    const key = await deps.keyRing.getVerifyKey(auth.origin, auth.key, { atTs: Date.now() });
    if (!key) throw unauthorized(`Unknown or expired key ${auth.key} of ${auth.origin}`);
    const parts = { method: ctx.method, uri: ctx.originalUrl, origin: auth.origin, destination: deps.serverName, content };
    if (!verifyRequest(auth, parts, key.publicKey)) {
      deps.logger.debug({ origin: auth.origin, key: auth.key, method: ctx.method, path: ctx.path }, 'bad X-Matrix signature');
      throw unauthorized('Invalid X-Matrix signature');
    }
    ctx.state.origin = auth.origin;
    await next();
  };
}

/** The authenticated origin; only for handlers behind `requireXMatrix`. */
export function originOf(ctx: { state: FederationState }): string {
  const origin = ctx.state.origin;
  if (!origin) throw unauthorized('Missing X-Matrix Authorization header');
  return origin;
}
