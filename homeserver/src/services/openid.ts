import { MatrixError } from '../core/errors.js';
import { randomString, sha256Hex } from '../core/ids.js';
import type { Database } from '../storage/db.js';
import * as store from '../storage/openid_erasure.js';

export interface OpenIdToken {
  access_token: string;
  token_type: 'Bearer';
  matrix_server_name: string;
  /** Seconds. */
  expires_in: number;
}

/**
 * OpenID tokens (spec: client-server "OpenID", server-server "OpenID"): a third party given one
 * asks this server, over `/_matrix/federation/v1/openid/userinfo`, who it belongs to. The token
 * proves nothing else and opens no other API. Only its SHA-256 is stored, with its expiry.
 */
export class OpenIdService {
  constructor(private readonly deps: { db: Database; serverName: string; lifetimeMs: number }) {}

  async requestToken(userId: string): Promise<OpenIdToken> {
    const token = randomString(40);
    const now = Date.now();
    await this.deps.db.transaction(async (tx) => {
      await store.deleteExpiredOpenidTokens(tx, now);
      await store.insertOpenidToken(tx, sha256Hex(token), userId, now + this.deps.lifetimeMs);
    });
    return { access_token: token, token_type: 'Bearer', matrix_server_name: this.deps.serverName, expires_in: Math.floor(this.deps.lifetimeMs / 1000) };
  }

  /** The user a live token names; 401 M_UNKNOWN_TOKEN for an unknown or expired one (openid.yaml). */
  async userInfo(token: string): Promise<{ sub: string }> {
    const sub = token.length > 0 && token.length <= 256 ? await store.openidTokenOwner(this.deps.db, sha256Hex(token), Date.now()) : undefined;
    if (!sub) throw new MatrixError(401, 'M_UNKNOWN_TOKEN', 'Access token unknown or expired');
    return { sub };
  }
}
