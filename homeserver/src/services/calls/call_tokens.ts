import { SignJWT, type JWK } from 'jose';
import { forbidden } from '../../core/errors.js';
import type { Database } from '../../storage/db.js';
import { getMembership } from '../../storage/state.js';
import { loadSigningJwk, type SigningJwk } from '../auth/signing_jwk.js';

/** The `aud` of every call token; the SFU refuses any other audience. */
export const CALL_TOKEN_AUDIENCE = 'hearth-sfu';
/** The server_secrets row of the call-token key (never the access-token or federation key). */
export const CALL_TOKEN_SECRET = 'call_token_jwk';

export interface IssuedCallToken {
  token: string;
  expires_in_ms: number;
  sfu_url: string | null;
}

/**
 * Call tokens (protocol-spec/calls.md): short-lived EdDSA JWTs that let a joined room member
 * into that room's call on the SFU. The SFU shares no database with us: it verifies the
 * signature against our JWKS and trusts the `room_id`/`sub` claims, so a token is only issued
 * after checking current membership.
 */
export class CallTokenService {
  private constructor(
    private readonly deps: { db: Database; serverName: string; ttlMs: number; sfuPublicUrl?: string },
    private readonly key: SigningJwk,
  ) {}

  static async load(deps: { db: Database; serverName: string; ttlMs: number; sfuPublicUrl?: string }): Promise<CallTokenService> {
    return new CallTokenService(deps, await loadSigningJwk(deps.db, CALL_TOKEN_SECRET, 'hearth-call'));
  }

  /** The JWKS the SFU fetches: the public half only. */
  jwks(): { keys: JWK[] } {
    return { keys: [{ ...this.key.publicJwk }] };
  }

  /** A token for `userId`'s device to join the call of `roomId`; M_FORBIDDEN unless joined now. */
  async issue(userId: string, deviceId: string, roomId: string): Promise<IssuedCallToken> {
    // Same answer for unknown rooms and rooms the user is not in: no existence oracle.
    if ((await getMembership(this.deps.db, roomId, userId)) !== 'join') throw forbidden('You are not joined to this room');
    const nowMs = Date.now();
    const token = await new SignJWT({ device_id: deviceId, room_id: roomId })
      .setProtectedHeader({ alg: 'EdDSA', kid: this.key.kid, typ: 'JWT' })
      .setIssuer(this.deps.serverName)
      .setAudience(CALL_TOKEN_AUDIENCE)
      .setSubject(userId)
      .setIssuedAt(Math.floor(nowMs / 1000))
      .setExpirationTime(Math.floor((nowMs + this.deps.ttlMs) / 1000))
      .setJti(crypto.randomUUID())
      .sign(this.key.privateKey);
    return { token, expires_in_ms: this.deps.ttlMs, sfu_url: this.deps.sfuPublicUrl ?? null };
  }
}
