// A stand-in homeserver for call tokens: an Ed25519 key served as a JWKS over local HTTP, and
// tokens signed with it (or with anything else, to forge them).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';

export interface SignOptions {
  userId?: string;
  deviceId?: string;
  roomId: string;
  /** Seconds from now; negative: already expired. */
  ttlSec?: number;
  audience?: string;
  issuer?: string;
  /** Extra claims. */
  claims?: JWTPayload;
  /** Sign with another key (forgery). */
  key?: CryptoKey;
  kid?: string;
}

export interface TestIssuer {
  jwksUrl: string;
  issuer: string;
  /** A token for (user, device, room); the other options make bad ones (expired, wrong audience, forged...). */
  sign(opts: SignOptions): Promise<string>;
  /** Requests served (to see that keys are cached). */
  hits(): number;
  close(): Promise<void>;
}

export async function startTestIssuer(issuer = 'test.hearth'): Promise<TestIssuer> {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const kid = 'test-key-1';
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' };
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits++;
    if (req.url === '/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'public, max-age=300' });
      res.end(JSON.stringify({ keys: [jwk] }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    jwksUrl: `http://127.0.0.1:${port}/jwks.json`,
    issuer,
    async sign({ userId = '@alice:test.hearth', deviceId = 'DEVICE', roomId, ttlSec = 300, audience = 'hearth-sfu', claims = {}, key, ...o }) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ device_id: deviceId, room_id: roomId, jti: Math.random().toString(36).slice(2), ...claims })
        .setProtectedHeader({ alg: 'EdDSA', kid: o.kid ?? kid, typ: 'JWT' })
        .setIssuer(o.issuer ?? issuer)
        .setAudience(audience)
        .setSubject(userId)
        .setIssuedAt(now + Math.min(0, ttlSec) - 60)
        .setExpirationTime(now + ttlSec)
        .sign(key ?? privateKey);
    },
    hits: () => hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
