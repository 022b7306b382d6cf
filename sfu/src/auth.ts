// Call-token verification (/tmp/call-contract.md, protocol-spec/calls.md): the homeserver signs an
// EdDSA JWT per (user, device, room); the SFU fetches its public keys from the JWKS URL (cached by
// jose, refetched when an unknown `kid` shows up) and shares nothing else with it.
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { SfuError } from './signalling/errors.js';

export const CALL_TOKEN_AUDIENCE = 'hearth-sfu';

export interface CallGrant {
  userId: string;
  deviceId: string;
  roomId: string;
  /** Expiry, ms since the epoch. */
  expiresAt: number;
}

export interface TokenVerifier {
  /** Resolves the grant, or throws SfuError `unauthorized`. */
  verify(token: string): Promise<CallGrant>;
}

export interface TokenVerifierOptions {
  jwksUrl: string;
  issuer: string;
  /** For tests: a key set other than the remote JWKS. */
  keys?: JWTVerifyGetKey;
  /** Clock skew tolerated on exp/iat, seconds. */
  clockToleranceSec?: number;
}

export function createTokenVerifier(opts: TokenVerifierOptions): TokenVerifier {
  const keys = opts.keys ?? createRemoteJWKSet(new URL(opts.jwksUrl), { timeoutDuration: 5000, cooldownDuration: 30_000 });
  return {
    async verify(token: string): Promise<CallGrant> {
      let payload;
      try {
        ({ payload } = await jwtVerify(token, keys, {
          algorithms: ['EdDSA'],
          audience: CALL_TOKEN_AUDIENCE,
          issuer: opts.issuer,
          requiredClaims: ['exp', 'sub', 'room_id', 'device_id'],
          clockTolerance: opts.clockToleranceSec ?? 5,
        }));
      } catch (err) {
        throw new SfuError('unauthorized', describe(err));
      }
      const { sub, device_id: deviceId, room_id: roomId, exp } = payload;
      if (typeof sub !== 'string' || typeof deviceId !== 'string' || typeof roomId !== 'string' || typeof exp !== 'number') {
        throw new SfuError('unauthorized', 'call token claims sub, device_id and room_id must be strings');
      }
      return { userId: sub, deviceId, roomId, expiresAt: exp * 1000 };
    },
  };
}

/** A client-safe reason (no key material, no token). */
function describe(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'call token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `call token claim check failed: ${err.claim} (${err.reason})`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'call token signature invalid';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'call token signed by an unknown key';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'call token algorithm not allowed';
  if (err instanceof joseErrors.JWKSTimeout || (err instanceof joseErrors.JOSEError && err.code === 'ERR_JOSE_GENERIC')) {
    return 'call token keys unavailable';
  }
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return 'call token malformed';
  return 'call token rejected';
}
