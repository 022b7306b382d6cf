import { SignJWT, jwtVerify, errors as joseErrors, type JWK } from 'jose';
import type { Sql } from '../../storage/db.js';
import { loadSigningJwk, type SigningJwk } from './signing_jwk.js';

export interface AccessClaims {
  userId: string;
  deviceId: string;
  sessionId: string;
  /** The refresh-token generation this access token belongs to; 0 for non-refreshable sessions. */
  refreshId: number;
}

export type VerifyResult = { ok: true; claims: AccessClaims } | { ok: false; expired: boolean };

type KeyLike = SigningJwk['privateKey'];

/**
 * Access tokens are EdDSA-signed JWTs (jose). The signing key is generated once and kept in
 * the database so every homeserver process shares it; its public half is published as a JWKS
 * so other services (the SFU) can verify tokens the homeserver issues.
 */
export class AccessTokens {
  private constructor(
    private readonly privateKey: KeyLike,
    private readonly publicKey: KeyLike,
    readonly publicJwk: JWK,
    private readonly issuer: string,
  ) {}

  static async load(sql: Sql, issuer: string): Promise<AccessTokens> {
    const { privateKey, publicKey, publicJwk } = await loadSigningJwk(sql, 'access_token_jwk', 'hearth');
    return new AccessTokens(privateKey, publicKey, publicJwk, issuer);
  }

  get keyId(): string {
    return this.publicJwk.kid ?? 'hearth';
  }

  async issue(claims: AccessClaims, lifetimeMs: number | null): Promise<string> {
    const jwt = new SignJWT({ dev: claims.deviceId, sid: claims.sessionId, rid: claims.refreshId })
      .setProtectedHeader({ alg: 'EdDSA', kid: this.keyId, typ: 'JWT' })
      .setSubject(claims.userId)
      .setIssuer(this.issuer)
      .setIssuedAt()
      .setJti(crypto.randomUUID());
    if (lifetimeMs !== null) jwt.setExpirationTime(new Date(Date.now() + lifetimeMs));
    return jwt.sign(this.privateKey);
  }

  async verify(token: string): Promise<VerifyResult> {
    try {
      const { payload } = await jwtVerify(token, this.publicKey, { issuer: this.issuer, algorithms: ['EdDSA'] });
      const { sub, dev, sid, rid } = payload as Record<string, unknown>;
      if (typeof sub !== 'string' || typeof dev !== 'string' || typeof sid !== 'string' || typeof rid !== 'number') {
        return { ok: false, expired: false };
      }
      return { ok: true, claims: { userId: sub, deviceId: dev, sessionId: sid, refreshId: rid } };
    } catch (err) {
      return { ok: false, expired: err instanceof joseErrors.JWTExpired };
    }
  }
}
