/**
 * An in-process identity server (the boundary we cannot run here): HTTPS on 127.0.0.1 with a
 * certificate from a test CA, implementing what a homeserver calls for third-party invites —
 * `/_matrix/identity/v2/hash_details`, `/lookup` (sha256 + pepper), `/store-invite`,
 * `/pubkey/{keyId}`, `/pubkey/isvalid`, `/pubkey/ephemeral/isvalid` — and `bind()`, which does what
 * a real identity server does once a user proves an address: it calls the homeserver's
 * `/3pid/onbind` with every pending invite for that address, each with a `signed` object signed by
 * the long-term key it published (or, for forgery tests, another key).
 */
import { createHash, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { encodeBase64, generateSeed, privateKeyFromSeed, publicKeyBytes, signJson } from '../../src/core/signing.js';
import { randomString } from '../../src/core/ids.js';
import { listen } from '../../src/server.js';
import type { TestCa } from './federation.js';
import type { Response } from './harness.js';

export interface IdentityRequest {
  method: string;
  path: string;
  authorization?: string;
  body?: any;
}

export interface StoredInviteRecord {
  token: string;
  body: Record<string, any>;
  ephemeralPublicKey: string;
}

export interface TestIdentityServer {
  /** `127.0.0.1:<port>`: what clients put in `id_server`. */
  serverName: string;
  /** The one access token this server accepts (`id_access_token`). */
  accessToken: string;
  /** The long-term key `ed25519:0`, unpadded base64. */
  publicKey: string;
  pepper: string;
  requests: IdentityRequest[];
  storedInvites: StoredInviteRecord[];
  /** `ok`; `down` answers 503 to everything; `unauthorized` refuses every token; `hang` never answers; `huge` answers 64 KiB of JSON. */
  mode: 'ok' | 'down' | 'unauthorized' | 'hang' | 'huge';
  /** Public keys `isvalid` reports as revoked. */
  revoked: Set<string>;
  /** Records a binding without telling anyone (a look-up then finds it). */
  addBinding(medium: string, address: string, mxid: string): void;
  /** `{mxid, token, signatures}` (plus `extra`, e.g. `sender` as `/sign-ed25519` gives it) signed by the long-term key, or by `key` (a forgery). */
  sign(mxid: string, token: string, key?: KeyObject, extra?: Record<string, string>): Record<string, any>;
  /**
   * Binds the address and delivers `/3pid/onbind` (through `deliver`) with its pending invites,
   * signed by the long-term key unless `signWith` is given. Returns what the homeserver answered.
   */
  bind(medium: string, address: string, mxid: string, deliver: (body: Record<string, unknown>) => Promise<Response>, opts?: { signWith?: KeyObject }): Promise<Response>;
  close(): Promise<void>;
}

/** A fresh ed25519 key that is not the identity server's (forgeries). */
export function strayKey(): KeyObject {
  return privateKeyFromSeed(generateSeed());
}

export async function startIdentityServer(ca: TestCa): Promise<TestIdentityServer> {
  const cert = await ca.issue({ ips: ['127.0.0.1'] });
  const longTerm = privateKeyFromSeed(generateSeed());
  const ephemeralValid = new Set<string>();
  const bindings = new Map<string, string>(); // "address medium" → mxid
  const is: TestIdentityServer = {
    serverName: '',
    accessToken: `ist_${randomString(16)}`,
    publicKey: encodeBase64(publicKeyBytes(longTerm)),
    pepper: `pepper${randomString(8)}`,
    requests: [],
    storedInvites: [],
    mode: 'ok',
    revoked: new Set(),
    addBinding(medium, address, mxid) {
      bindings.set(`${address} ${medium}`, mxid);
    },
    sign(mxid, token, key = longTerm, extra = {}) {
      return signJson({ ...extra, mxid, token }, is.serverName, 'ed25519:0', key) as Record<string, any>;
    },
    async bind(medium, address, mxid, deliver, opts = {}) {
      is.addBinding(medium, address, mxid);
      const pending = is.storedInvites.filter((i) => i.body.medium === medium && i.body.address === address);
      is.storedInvites = is.storedInvites.filter((i) => !pending.includes(i));
      const invites = pending.map((i) => ({
        medium,
        address,
        mxid,
        room_id: i.body.room_id,
        sender: i.body.sender,
        signed: is.sign(mxid, i.token, opts.signWith),
      }));
      return deliver({ medium, address, mxid, invites });
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
  const base = () => `https://${is.serverName}/_matrix/identity/v2`;
  const answer = (res: http.ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

  const server = https.createServer({ cert: fs.readFileSync(cert.certFile), key: fs.readFileSync(cert.keyFile) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'https://x');
      const text = Buffer.concat(chunks).toString('utf8');
      let body: any;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = undefined;
      }
      is.requests.push({ method: req.method ?? '', path: url.pathname, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}), ...(body !== undefined ? { body } : {}) });
      if (is.mode === 'down') return answer(res, 503, { errcode: 'M_UNKNOWN', error: 'down for maintenance' });
      if (is.mode === 'hang') return; // the socket stays open until the client gives up (or close())
      if (is.mode === 'huge') return answer(res, 200, { lookup_pepper: 'x'.repeat(65_536), algorithms: ['sha256'] });
      const p = url.pathname.replace(/^\/_matrix\/identity\/v2/, '');
      // Unauthenticated: the key endpoints.
      if (req.method === 'GET' && p === '/pubkey/isvalid') return answer(res, 200, { valid: url.searchParams.get('public_key') === is.publicKey && !is.revoked.has(is.publicKey) });
      if (req.method === 'GET' && p === '/pubkey/ephemeral/isvalid') {
        const k = url.searchParams.get('public_key') ?? '';
        return answer(res, 200, { valid: ephemeralValid.has(k) && !is.revoked.has(k) });
      }
      if (req.method === 'GET' && p === '/pubkey/ed25519:0') return answer(res, 200, { public_key: is.publicKey });
      if (is.mode === 'unauthorized' || req.headers.authorization !== `Bearer ${is.accessToken}`) {
        return answer(res, 401, { errcode: 'M_UNAUTHORIZED', error: 'Unrecognised access token' });
      }
      if (req.method === 'GET' && p === '/hash_details') return answer(res, 200, { lookup_pepper: is.pepper, algorithms: ['none', 'sha256'] });
      if (req.method === 'POST' && p === '/lookup') {
        if (body?.pepper !== is.pepper) return answer(res, 400, { errcode: 'M_INVALID_PEPPER', error: 'Unknown or invalid pepper' });
        if (body?.algorithm !== 'sha256') return answer(res, 400, { errcode: 'M_INVALID_PARAM', error: 'algorithm' });
        const mappings: Record<string, string> = {};
        for (const [key, mxid] of bindings) {
          const hash = createHash('sha256').update(`${key} ${is.pepper}`).digest('base64url');
          if (Array.isArray(body.addresses) && body.addresses.includes(hash)) mappings[hash] = mxid;
        }
        return answer(res, 200, { mappings });
      }
      if (req.method === 'POST' && p === '/store-invite') {
        if (body?.medium !== 'email') return answer(res, 400, { errcode: 'M_UNRECOGNIZED', error: 'Only email invites' });
        if (bindings.has(`${body.address} ${body.medium}`)) return answer(res, 400, { errcode: 'M_THREEPID_IN_USE', error: 'Binding already known' });
        const token = randomString(24);
        const ephemeral = encodeBase64(publicKeyBytes(privateKeyFromSeed(generateSeed())));
        ephemeralValid.add(ephemeral);
        is.storedInvites.push({ token, body, ephemeralPublicKey: ephemeral });
        const [local, domain] = String(body.address).split('@');
        return answer(res, 200, {
          token,
          display_name: `${local?.[0] ?? ''}...@${domain?.[0] ?? ''}...`,
          public_keys: [
            { public_key: is.publicKey, key_validity_url: `${base()}/pubkey/isvalid` },
            { public_key: ephemeral, key_validity_url: `${base()}/pubkey/ephemeral/isvalid` },
          ],
        });
      }
      answer(res, 404, { errcode: 'M_UNRECOGNIZED', error: 'not here' });
    });
  });
  const port = await listen(server as unknown as http.Server, '127.0.0.1', 0);
  is.serverName = `127.0.0.1:${port}`;
  return is;
}
