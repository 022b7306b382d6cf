import { generateKeyPair, exportJWK, importJWK, type JWK } from 'jose';
import type { Sql } from '../../storage/db.js';
import { getOrCreateSecret } from '../../storage/server_secrets.js';

type KeyLike = Awaited<ReturnType<typeof importJWK>>;

/** An Ed25519 signing key for JWTs, with its public half ready for a JWKS. */
export interface SigningJwk {
  privateKey: KeyLike;
  publicKey: KeyLike;
  /** Public JWK (`kty`, `crv`, `x`, `kid`, `alg`, `use`); never contains `d`. */
  publicJwk: JWK;
  kid: string;
}

/**
 * Loads the Ed25519 JWK stored in `server_secrets` under `secretName`, generating it on first
 * use. Kept in the database so every homeserver process signs with the same key. Each purpose
 * (access tokens, call tokens) has its own secret name, so one key never signs two kinds of token.
 */
export async function loadSigningJwk(sql: Sql, secretName: string, kidPrefix: string): Promise<SigningJwk> {
  const stored = await getOrCreateSecret(sql, secretName, async () => {
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    const jwk = await exportJWK(privateKey);
    jwk.kid = `${kidPrefix}-${Date.now().toString(36)}`;
    return JSON.stringify(jwk);
  });
  const jwk = JSON.parse(stored) as JWK;
  const { d: _d, ...publicJwk } = jwk;
  publicJwk.alg = 'EdDSA';
  publicJwk.use = 'sig';
  const privateKey = await importJWK({ ...jwk, alg: 'EdDSA' }, 'EdDSA');
  const publicKey = await importJWK({ ...publicJwk }, 'EdDSA');
  return { privateKey, publicKey, publicJwk, kid: publicJwk.kid ?? kidPrefix };
}
