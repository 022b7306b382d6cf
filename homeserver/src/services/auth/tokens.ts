import { SignJWT, jwtVerify, generateKeyPair, exportJWK, importJWK, errors as joseErrors, type JWK } from 'jose';
import type { Sql } from '../../storage/db.js';
import { getOrCreateSecret } from '../../storage/server_secrets.js';

export interface AccessClaims {
  userId: string;
  deviceId: string;
  sessionId: string;
  /** The refresh-token generation this access token belongs to; 0 for non-refreshable sessions. */
  refreshId: number;
}

export type VerifyResult = { ok: true; claims: AccessClaims } | { ok: false; expired: boolean };

type KeyLike = Awaited<ReturnType<typeof importJWK>>;

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
    const stored = await getOrCreateSecret(sql, 'access_token_jwk', async () => {
      const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
      const jwk = await exportJWK(privateKey);
      jwk.kid = `hearth-${Date.now().toString(36)}`;
      return JSON.stringify(jwk);
    });
    const jwk = JSON.parse(stored) as JWK;
    const { d: _d, ...publicJwk } = jwk;
    publicJwk.alg = 'EdDSA';
    publicJwk.use = 'sig';
    const privateKey = await importJWK({ ...jwk, alg: 'EdDSA' }, 'EdDSA');
    const publicKey = await importJWK({ ...publicJwk }, 'EdDSA');
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
